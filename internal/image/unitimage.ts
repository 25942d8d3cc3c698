/**
 * What a package's service unit says about running its program, in ResolvedImage terms. Pure: the
 * caller hands in the parsed unit and reads files for it.
 *
 * Only what a container can carry over is taken: the command (ExecStart), its preparation (ExecStartPre),
 * who runs it (User=, Group=), where (WorkingDirectory=), its environment and runtime directory, and
 * Type=. Specifiers and `$VARS` are expanded here (see specifiers.ts and environment.ts for why). A unit
 * vks cannot take over faithfully gives no entrypoint and an explanation, so the pod must say `command`.
 */
import { errorMessage } from "../errors.ts";
import type { ExecCommand, ServiceType } from "../systemd/types.ts";
import type { ResolvedImage } from "./types.ts";
import {
  environmentMap,
  expandEnvironmentInArgv,
  parseEnvironmentAssignments,
  parseEnvironmentFile,
  parseEnvironmentFileSetting,
} from "./environment.ts";
import { expandSpecifiers, type HostFacts, systemSpecifierValues, type SpecifierValues } from "./specifiers.ts";
import { lastValue, listValues, parseExecLine, type ParsedExecCommand, type UnitFile } from "./unitfile.ts";

export interface UnitImageContext {
  /** The unit's file name, e.g. `ssh.service`: specifiers like %n and %p derive from it. */
  unitName: string;
  host: HostFacts;
  /** Contents of an EnvironmentFile= path, or undefined when there is no such file. */
  readEnvironmentFile(path: string): string | undefined;
  /** Absolute path of a bare executable name in systemd's fixed search path, or undefined. */
  findExecutable(name: string): string | undefined;
}

/** What a package's unit gives its image: a ResolvedImage before it is named (reference, imageID). */
export type UnitImage = Omit<ResolvedImage, "reference" | "imageID" | "warnings"> & { warnings: string[] };

const SERVICE = "Service";
const SERVICE_TYPES: readonly ServiceType[] = ["simple", "exec", "forking", "oneshot", "notify", "dbus", "idle"];

/** Thrown inside this module for a unit vks cannot take over; becomes UnitImage.explanation. */
class CannotTakeOver extends Error {}

export function imageFromUnit(unit: UnitFile, context: UnitImageContext): UnitImage {
  const warnings: string[] = [];
  const image: UnitImage = {
    entrypoint: [],
    cmd: [],
    environment: [],
    environmentFiles: [],
    runtimeDirectory: [],
    execStartPre: [],
    warnings,
  };
  const user = lastValue(unit, SERVICE, "User");
  const specifiers = systemSpecifierValues(context.unitName, context.host, user);
  try {
    const expand = (text: string): string => expandOrExplain(text, specifiers, context.unitName);
    image.type = serviceType(lastValue(unit, SERVICE, "Type"), warnings);
    if (user !== undefined) image.user = expand(user);
    const group = lastValue(unit, SERVICE, "Group");
    if (group !== undefined) image.group = expand(group);
    const workingDirectory = lastValue(unit, SERVICE, "WorkingDirectory");
    if (workingDirectory !== undefined) {
      const directory = workingDirectoryFrom(expand(workingDirectory), warnings);
      if (directory !== undefined) image.workingDirectory = directory;
    }
    for (const value of listValues(unit, SERVICE, "Environment")) {
      const parsed = parseEnvironmentAssignments(expand(value));
      image.environment.push(...parsed.entries);
      warnings.push(...parsed.problems.map((problem) => `Environment=: ${problem}`));
    }
    for (const value of listValues(unit, SERVICE, "EnvironmentFile")) {
      image.environmentFiles.push(parseEnvironmentFileSetting(expand(value)));
    }
    for (const value of listValues(unit, SERVICE, "RuntimeDirectory")) {
      image.runtimeDirectory.push(...expand(value).split(/\s+/).filter((word) => word !== ""));
    }

    const environment = environmentMap([...image.environment, ...environmentFileEntries(image, context, warnings)]);
    const toExecCommand = (command: ParsedExecCommand, setting: string): ExecCommand =>
      execCommandFrom(command, setting, expand, environment, context, warnings);

    for (const value of listValues(unit, SERVICE, "ExecStartPre")) {
      for (const command of parseOrExplain(value, "ExecStartPre")) {
        image.execStartPre.push(toExecCommand(command, "ExecStartPre"));
      }
    }
    const starts = listValues(unit, SERVICE, "ExecStart").flatMap((value) => parseOrExplain(value, "ExecStart"));
    if (starts.length === 0) {
      throw new CannotTakeOver(`${context.unitName} has no ExecStart= command`);
    }
    if (starts.length > 1) {
      throw new CannotTakeOver(
        `${context.unitName} runs ${starts.length} ExecStart= commands one after another; a container runs one`,
      );
    }
    const main = toExecCommand(starts[0] as ParsedExecCommand, "ExecStart");
    image.entrypoint = [main.path];
    image.cmd = main.argv.slice(1);
  } catch (err) {
    if (!(err instanceof CannotTakeOver)) throw err;
    image.entrypoint = [];
    image.cmd = [];
    image.execStartPre = [];
    image.explanation = `${err.message}: give the container a command`;
  }
  return image;
}

function expandOrExplain(text: string, specifiers: SpecifierValues, unitName: string): string {
  try {
    return expandSpecifiers(text, specifiers);
  } catch (err) {
    throw new CannotTakeOver(`${unitName}: ${errorMessage(err)}`);
  }
}

function parseOrExplain(value: string, setting: string): ParsedExecCommand[] {
  try {
    return parseExecLine(value);
  } catch (err) {
    throw new CannotTakeOver(`${setting}=: ${errorMessage(err)}`);
  }
}

function serviceType(value: string | undefined, warnings: string[]): ServiceType | undefined {
  if (value === undefined) return undefined;
  const known = SERVICE_TYPES.find((type) => type === value);
  if (known !== undefined) return known;
  if (value === "notify-reload") {
    warnings.push("Type=notify-reload is run as Type=notify: reloading by signal is not carried over");
    return "notify";
  }
  warnings.push(`Type=${value} is not known to vks; the container gets the default type`);
  return undefined;
}

function workingDirectoryFrom(value: string, warnings: string[]): string | undefined {
  const optional = value.startsWith("-");
  const directory = optional ? value.slice(1) : value;
  if (directory === "~") {
    warnings.push("WorkingDirectory=~ (the user's home) is not carried over");
    return undefined;
  }
  if (optional) warnings.push(`WorkingDirectory=${value}: the directory is required to exist under vks`);
  return directory;
}

/** Entries of the unit's environment files as they are now, for `$VAR` substitution in its commands. */
function environmentFileEntries(image: UnitImage, context: UnitImageContext, warnings: string[]): string[] {
  const entries: string[] = [];
  for (const file of image.environmentFiles) {
    const text = context.readEnvironmentFile(file.path);
    if (text === undefined) {
      if (!file.optional) warnings.push(`EnvironmentFile=${file.path} does not exist (yet); the unit requires it`);
      continue;
    }
    const parsed = parseEnvironmentFile(text);
    entries.push(...parsed.entries);
    warnings.push(...parsed.problems.map((problem) => `${file.path}: ${problem}`));
  }
  return entries;
}

function execCommandFrom(
  command: ParsedExecCommand,
  setting: string,
  expand: (text: string) => string,
  environment: ReadonlyMap<string, string>,
  context: UnitImageContext,
  warnings: string[],
): ExecCommand {
  const written = expand(command.path);
  const path = written.startsWith("/") ? written : context.findExecutable(written);
  if (path === undefined) {
    throw new CannotTakeOver(`${setting}=: ${JSON.stringify(written)} is not in systemd's executable search path`);
  }
  const expanded = command.argv.map(expand);
  const argv = command.noEnvironmentExpansion ? expanded : expandEnvironmentInArgv(expanded, environment);
  // ExecCommand carries an argv[0] of its own, but an entrypoint is a plain command line.
  if (command.argv0FromNextWord && setting === "ExecStart") {
    warnings.push(`${setting}=: argv[0] ${JSON.stringify(argv[0] ?? "")} ('@') is not carried over; the program sees its path`);
  }
  // `!!` only matters on kernels without ambient capabilities, which systemd no longer supports anyway.
  if (command.fullPrivileges || command.noCredentialChange) {
    const prefix = command.fullPrivileges ? "+" : "!";
    warnings.push(`${setting}=${prefix}${written}: the '${prefix}' prefix is not carried over; it runs as User= like the rest`);
  }
  return { path, argv: command.argv0FromNextWord ? argv : [path, ...argv.slice(1)], ignoreFailure: command.ignoreFailure };
}
