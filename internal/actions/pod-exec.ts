import type { V1Pod } from "@kubernetes/client-node";
import { ExitCode, NotFoundError, VksError } from "../errors.ts";
import type { ExecProcess, TerminalSize } from "../exec/exec.ts";
import { PodEngine } from "../pod/engine.ts";
import type { ManagerScope } from "../systemd/types.ts";

export interface PodExecOptions {
  scope: ManagerScope;
  stateDir?: string;
  name: string;
  namespace?: string;
  container?: string;
  /** Pass this process' standard input to the command (-i). */
  stdin: boolean;
  /** Give the command a terminal (-t). */
  tty: boolean;
  command: string[];
}

/** kubectl's annotation naming the container `kubectl exec` and `logs` pick without -c. */
export const DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container";

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
type EndingSignal = keyof typeof SIGNAL_NUMBERS;
const ENDING_SIGNALS: readonly EndingSignal[] = ["SIGHUP", "SIGINT", "SIGTERM"];

/** The container -c names, else the annotated default, else the first; kubectl says which it chose. */
export function chooseContainer(pod: V1Pod, requested: string | undefined): { container: string; notice?: string } {
  const names = (pod.spec?.containers ?? []).map((container) => container.name);
  if (requested !== undefined) return { container: requested };
  const annotated = pod.metadata?.annotations?.[DEFAULT_CONTAINER_ANNOTATION];
  if (annotated !== undefined && names.includes(annotated)) return { container: annotated };
  const first = names[0];
  if (first === undefined) throw new VksError(`pod ${pod.metadata?.name ?? ""} has no containers`, { exitCode: ExitCode.invalidInput });
  return names.length > 1 ? { container: first, notice: `Defaulted container "${first}" out of: ${names.join(", ")}` } : { container: first };
}

function terminalSize(): TerminalSize | undefined {
  const { columns, rows } = process.stdout;
  return process.stdout.isTTY && columns > 0 && rows > 0 ? { width: columns, height: rows } : undefined;
}

/** Resolves once `stream` took the chunk (waiting for it to drain), so a slow reader slows the command. */
function write(stream: NodeJS.WriteStream, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    if (stream.write(chunk)) resolve();
    else stream.once("drain", resolve);
  });
}

async function copy(source: AsyncIterable<Uint8Array> | undefined, target: NodeJS.WriteStream): Promise<void> {
  if (source === undefined) return;
  for await (const chunk of source) await write(target, chunk);
}

/**
 * `vks pod exec NAME [-c C] [-i] [-t] -- CMD...`: runs CMD in the container as `kubectl exec` would,
 * and returns its exit status. With -t the command gets a terminal (this one is put in raw mode when
 * it is one, and its size follows this one's); a signal that ends vks ends the command's session.
 */
export async function podExec(options: PodExecOptions): Promise<number> {
  const namespace = options.namespace ?? "default";
  const engine = await PodEngine.open({ scope: options.scope, stateDir: options.stateDir });
  try {
    const pod = await engine.getPod(namespace, options.name);
    if (pod === undefined) throw new NotFoundError(`no such pod: ${namespace}/${options.name}`, "see `vks pod ls`");
    const { container, notice } = chooseContainer(pod, options.container);
    // On stderr, as kubectl: stdout is the command's alone.
    if (notice !== undefined) process.stderr.write(`${notice}\n`);
    const exec = await engine.exec(namespace, options.name, container, {
      command: options.command,
      stdin: options.stdin,
      tty: options.tty,
      ...(options.tty ? { terminalSize: terminalSize() } : {}),
    });
    return await attachLocal(exec, options);
  } finally {
    await engine.close();
  }
}

async function attachLocal(exec: ExecProcess, options: PodExecOptions): Promise<number> {
  const rawMode = options.tty && options.stdin && process.stdin.isTTY;
  let endedBy: EndingSignal | undefined;
  const onSignal = (signal: EndingSignal): void => {
    endedBy ??= signal;
    exec.kill();
  };
  const handlers = ENDING_SIGNALS.map((signal) => {
    const handler = (): void => onSignal(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  const onResize = (): void => {
    const size = terminalSize();
    if (size !== undefined) exec.resize(size);
  };
  if (options.tty) process.on("SIGWINCH", onResize);
  // A reader that went away (`| head`) ends the command, as SIGPIPE would have ended a local one.
  const onOutputError = (): void => exec.kill();
  process.stdout.on("error", onOutputError);
  process.stderr.on("error", onOutputError);
  if (rawMode) process.stdin.setRawMode(true);
  try {
    if (options.stdin) void feedStdin(exec);
    await Promise.all([copy(exec.stdout, process.stdout), copy(exec.stderr, process.stderr)]);
    const { exitCode } = await exec.exited;
    return endedBy === undefined ? exitCode : 128 + SIGNAL_NUMBERS[endedBy];
  } finally {
    if (rawMode) process.stdin.setRawMode(false);
    if (options.stdin) process.stdin.destroy();
    for (const [signal, handler] of handlers) process.off(signal, handler);
    process.off("SIGWINCH", onResize);
    process.stdout.off("error", onOutputError);
    process.stderr.off("error", onOutputError);
  }
}

async function feedStdin(exec: ExecProcess): Promise<void> {
  const input: AsyncIterable<Uint8Array> = process.stdin;
  try {
    for await (const chunk of input) exec.writeStdin(chunk);
  } catch {
    // Input that fails to read ends like input that ended.
  }
  exec.closeStdin();
}
