import type { CommandDef, renderUsage as RenderUsage, runCommand as RunCommand } from "citty";
import { ExitCode, VksError } from "../errors.ts";
import { reportError } from "./output.ts";
import { refuseUnknownFlags } from "./unknown-flags.ts";

interface Citty {
  renderUsage: typeof RenderUsage;
  runCommand: typeof RunCommand;
}

/**
 * citty's runMain prints raw errors and always exits 1; scripts need vks' documented exit codes, and
 * users need the hint that says how to fix a problem. So vks resolves help/version itself and maps errors.
 */
export async function runCli(main: CommandDef, rawArgs: string[], citty: Citty): Promise<void> {
  finish(await runToExitCode(main, rawArgs, citty));
}

/**
 * Ends with `code` by letting the event loop drain rather than calling process.exit(): exit() drops what
 * is still queued for a pipe (`vks units ls -o json | jq` would get the first 64 KiB). A handle left open
 * by mistake must not hang the command, hence the unref'd timer.
 */
function finish(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), FORCED_EXIT_DELAY_MS).unref();
}
const FORCED_EXIT_DELAY_MS = 5_000;

async function runToExitCode(main: CommandDef, rawArgs: string[], citty: Citty): Promise<number> {
  try {
    // Words after `--` belong to a command vks runs (`vks pod exec web -- ls -h`), not to vks.
    const ownArgs = rawArgs.includes("--") ? rawArgs.slice(0, rawArgs.indexOf("--")) : rawArgs;
    if (ownArgs.includes("--help") || ownArgs.includes("-h")) {
      const [command, parent] = await resolveSubCommand(main, rawArgs);
      process.stdout.write((await citty.renderUsage(await withSummaries(command), parent)) + "\n");
      return ExitCode.ok;
    }
    if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
      const meta = await resolve(main.meta);
      process.stdout.write(`${meta?.version ?? "unknown"}\n`);
      return ExitCode.ok;
    }
    if (rawArgs.length === 0) {
      process.stdout.write((await citty.renderUsage(await withSummaries(main))) + "\n");
      return ExitCode.usage;
    }
    await refuseUndeclaredFlags(main, ownArgs);
    await citty.runCommand(main, { rawArgs });
    // Commands whose outcome is not an error but still not success (a pod that failed) set exitCode.
    return Number(process.exitCode ?? ExitCode.ok);
  } catch (err) {
    if (isCittyUsageError(err)) {
      const [command, parent] = await resolveSubCommand(main, rawArgs);
      process.stderr.write((await citty.renderUsage(await withSummaries(command), parent)) + "\n");
      reportError(new VksError(err.message, { exitCode: ExitCode.usage, hint: "see --help above" }));
      return ExitCode.usage;
    }
    return reportError(err);
  }
}

/**
 * Walks down the subcommands `words` name, as citty does (the first word that is not a flag), and refuses
 * a flag the command it belongs to does not declare; flags before a subcommand's name belong to its parent.
 */
async function refuseUndeclaredFlags(main: CommandDef, words: string[]): Promise<void> {
  let command = main;
  let rest = words;
  const path = [(await resolve(main.meta))?.name ?? "vks"];
  for (;;) {
    const subCommands = await resolve(command.subCommands);
    const index = rest.findIndex((word) => !word.startsWith("-"));
    const name = index === -1 ? undefined : rest[index];
    const sub = subCommands === undefined || name === undefined ? undefined : subCommands[name];
    if (sub === undefined || name === undefined) break;
    refuseUnknownFlags(rest.slice(0, index), (await resolve(command.args)) ?? {}, path.join(" "));
    command = (await resolve(sub)) as CommandDef;
    path.push(name);
    rest = rest.slice(index + 1);
  }
  refuseUnknownFlags(rest, (await resolve(command.args)) ?? {}, path.join(" "));
}

function isCittyUsageError(err: unknown): err is Error & { code: string } {
  return err instanceof Error && err.name === "CLIError" && typeof (err as { code?: unknown }).code === "string";
}

type Resolvable<T> = T | Promise<T> | (() => T) | (() => Promise<T>);
async function resolve<T>(value: Resolvable<T> | undefined): Promise<T | undefined> {
  return typeof value === "function" ? (value as () => T | Promise<T>)() : value;
}

/**
 * The deepest subcommand named by rawArgs, with its parent for usage output. citty prints only the
 * parent's own name before the command's, so the parent handed back is named by the whole path
 * (`vks pod`), and usage reads `vks pod up`, as typed.
 */
async function resolveSubCommand(command: CommandDef, rawArgs: string[], parent?: CommandDef): Promise<[CommandDef, CommandDef?]> {
  const subCommands = await resolve(command.subCommands);
  if (subCommands) {
    const name = rawArgs.find((arg) => !arg.startsWith("-"));
    const sub = name === undefined ? undefined : subCommands[name];
    if (sub !== undefined) {
      const resolved = (await resolve(sub)) as CommandDef;
      const meta = await resolve(command.meta);
      const parentMeta = await resolve(parent?.meta);
      const path = [parentMeta?.name, meta?.name].filter(Boolean).join(" ");
      return resolveSubCommand(resolved, rawArgs.slice(rawArgs.indexOf(name as string) + 1), { ...command, meta: { ...meta, name: path } });
    }
  }
  return [command, parent];
}

/**
 * A command's description holds its examples; in its parent's list of commands only the first line
 * belongs, so listings show each subcommand with a one-line summary.
 */
async function withSummaries(command: CommandDef): Promise<CommandDef> {
  const subCommands = await resolve(command.subCommands);
  if (!subCommands) return command;
  const summarized: Record<string, CommandDef> = {};
  for (const [name, sub] of Object.entries(subCommands)) {
    const resolved = (await resolve(sub)) as CommandDef;
    const meta = await resolve(resolved.meta);
    summarized[name] = { ...resolved, meta: { ...meta, description: meta?.description?.split("\n")[0] } };
  }
  return { ...command, subCommands: summarized };
}
