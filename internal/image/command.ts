/**
 * Running the package tools (apt-get, dpkg, systemctl, flock). Always an argv array, never a shell, and
 * output is handed over line by line while the program runs so long installs can report progress.
 */
import { errorMessage, ExitCode, VksError } from "../errors.ts";

export interface CommandOptions {
  /** Added to (and overriding) vks' own environment. */
  env?: Record<string, string>;
  cwd?: string;
  onStdoutLine?: (line: string) => void;
  onStderrLine?: (line: string) => void;
  /** Lines the program writes to file descriptor 3 (apt's APT::Status-Fd=3). */
  onStatusLine?: (line: string) => void;
  /** Extra open file descriptor handed to the program as its fd 3 (instead of a status pipe). */
  fd3?: number;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** PATH for package tools: maintainer scripts need the sbin directories even when vks' PATH lacks them. */
const TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export async function runCommand(argv: string[], options: CommandOptions = {}): Promise<CommandResult> {
  const env: Record<string, string | undefined> = { ...process.env, PATH: mergedPath(process.env.PATH), ...options.env };
  let child;
  try {
    child = Bun.spawn(argv, {
      env,
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe", options.fd3 ?? (options.onStatusLine === undefined ? "ignore" : "pipe")],
    });
  } catch (err) {
    throw new VksError(`cannot run ${argv[0] ?? "(nothing)"}: ${errorMessage(err)}`, {
      exitCode: ExitCode.unavailable,
      hint: `vks needs ${argv[0] ?? "it"} on this host (Debian's package tools)`,
      cause: err,
    });
  }
  const statusFd = child.stdio[3];
  const statusDone =
    options.onStatusLine !== undefined && options.fd3 === undefined && typeof statusFd === "number"
      ? // Bun.file's stream copes with the non-blocking pipe; node's fs.createReadStream gives up on EAGAIN
        // and closes it, which breaks the writer's pipe.
        readLines(Bun.file(statusFd).stream(), options.onStatusLine)
      : Promise.resolve("");
  const [stdout, stderr] = await Promise.all([
    readLines(child.stdout, options.onStdoutLine),
    readLines(child.stderr, options.onStderrLine),
  ]);
  const exitCode = await child.exited;
  await statusDone;
  return { exitCode, stdout, stderr };
}

function mergedPath(current: string | undefined): string {
  const parts = (current ?? "").split(":").filter((part) => part !== "");
  for (const dir of TOOL_PATH.split(":")) if (!parts.includes(dir)) parts.push(dir);
  return parts.join(":");
}

/** Collects a stream's text, calling onLine for each complete line (a `\r` also ends one: apt's progress). */
async function readLines(stream: ReadableStream<Uint8Array>, onLine?: (line: string) => void): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  let partial = "";
  for await (const chunk of stream) {
    const decoded = decoder.decode(chunk, { stream: true });
    text += decoded;
    if (onLine === undefined) continue;
    partial += decoded;
    const lines = partial.split(/\r\n|\r|\n/);
    partial = lines.pop() ?? "";
    for (const line of lines) if (line !== "") onLine(line);
  }
  const rest = decoder.decode();
  text += rest;
  partial += rest;
  if (onLine !== undefined && partial !== "") onLine(partial);
  return text;
}
