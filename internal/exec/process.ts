/**
 * The two shapes of an exec'd command as the rest of vks sees it (ExecProcess): one that runs, with its
 * pipes or its terminal, and one that could not start, which reports why like a command would (a line
 * on stderr, exit status 126 or 127).
 */
import type { FileSink, Subprocess, Terminal } from "bun";
import { ChunkQueue } from "./chunk-queue.ts";
import type { ExecProcess, TerminalSize } from "./exec.ts";
import type { SessionGuard } from "./session.ts";

/** What ^D sends: a terminal cannot be half-closed, so the end of input is the line discipline's EOF. */
const END_OF_TRANSMISSION = new Uint8Array([0x04]);

async function* readAll(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Passes every chunk through and calls `onEnd` once the reader is done with the stream (read to its end
 * or abandoned): readers are expected to drain both outputs, as a command blocks on a full pipe anyway.
 */
function tracked(source: AsyncIterable<Uint8Array>, onEnd: () => void): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* source;
      } finally {
        onEnd();
      }
    },
  };
}

/** What a command's input is connected to: a pipe (absent without stdin) or its terminal. */
type Input = { kind: "pipe"; sink: FileSink | undefined } | { kind: "terminal"; terminal: Terminal };

export class RunningExec implements ExecProcess {
  readonly stdout: AsyncIterable<Uint8Array>;
  readonly stderr: AsyncIterable<Uint8Array> | undefined;
  readonly exited: Promise<{ exitCode: number }>;
  private readonly outputsEnded: Promise<void>;

  private constructor(
    private readonly child: Subprocess,
    private readonly guard: SessionGuard,
    private readonly input: Input,
    output: { stdout: AsyncIterable<Uint8Array>; stderr: AsyncIterable<Uint8Array> | undefined },
  ) {
    const ends: Promise<void>[] = [];
    const follow = (source: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> => {
      let ended!: () => void;
      ends.push(new Promise<void>((resolve) => (ended = resolve)));
      return tracked(source, ended);
    };
    this.stdout = follow(output.stdout);
    this.stderr = output.stderr === undefined ? undefined : follow(output.stderr);
    this.outputsEnded = Promise.all(ends).then(() => undefined);
    this.exited = child.exited.then((exitCode) => ({ exitCode }));
    // Once the command has exited and its output has ended, nothing of the session holds a stream of
    // ours: what it left running is the container's business, as with any container runtime's exec.
    void Promise.all([this.exited, this.outputsEnded]).then(() => guard.dismiss());
  }

  static withPipes(child: Subprocess<"pipe" | "ignore", "pipe", "pipe">, guard: SessionGuard): RunningExec {
    return new RunningExec(child, guard, { kind: "pipe", sink: child.stdin }, { stdout: readAll(child.stdout), stderr: readAll(child.stderr) });
  }

  /** `output` must be the queue the terminal's data and exit callbacks feed. */
  static withTerminal(child: Subprocess, terminal: Terminal, output: ChunkQueue, guard: SessionGuard): RunningExec {
    const exec = new RunningExec(child, guard, { kind: "terminal", terminal }, { stdout: output, stderr: undefined });
    // The terminal's own end of file comes when every process holding it is gone; the master is closed
    // only then, so output written just before the exit is not lost.
    void exec.exited.then(async () => {
      await exec.outputsEnded;
      terminal.close();
    });
    return exec;
  }

  writeStdin(data: Uint8Array): void {
    try {
      if (this.input.kind === "terminal") this.input.terminal.write(data);
      else this.input.sink?.write(data);
    } catch {
      // The command is gone or closed its input: what it did not read is lost, as with a pipe.
    }
  }

  closeStdin(): void {
    try {
      if (this.input.kind === "terminal") this.input.terminal.write(END_OF_TRANSMISSION);
      else void Promise.resolve(this.input.sink?.end()).catch(() => undefined);
    } catch {
      // Already closed.
    }
  }

  resize(size: TerminalSize): void {
    if (this.input.kind !== "terminal" || this.input.terminal.closed) return;
    this.input.terminal.resize(Math.max(1, size.width), Math.max(1, size.height));
  }

  kill(): void {
    void this.guard.endSession();
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    if (this.input.kind === "terminal") {
      const terminal = this.input.terminal;
      // Killed processes close their end of the terminal; whatever still holds it is no reason to wait.
      void this.exited.then(() => terminal.close());
    }
  }
}

/** A command that never started: its "output" is the reason, its exit status 126 or 127. */
export class FailedExec implements ExecProcess {
  readonly stdout: AsyncIterable<Uint8Array>;
  readonly stderr: AsyncIterable<Uint8Array> | undefined;
  readonly exited: Promise<{ exitCode: number }>;

  constructor(message: string, exitCode: number, tty: boolean) {
    const line = new TextEncoder().encode(tty ? `${message}\r\n` : `${message}\n`);
    const once = (async function* () {
      yield line;
    })();
    const empty = (async function* () {})();
    // A terminal has one stream: the message goes where the command's own error would have appeared.
    this.stdout = tty ? once : empty;
    this.stderr = tty ? undefined : once;
    this.exited = Promise.resolve({ exitCode });
  }

  writeStdin(): void {}
  closeStdin(): void {}
  resize(): void {}
  kill(): void {}
}
