import { existsSync } from "node:fs";
import { join } from "node:path";
import type { ManagerScope } from "../systemd/types.ts";
import { NotFoundError, VksError, ExitCode } from "../errors.ts";
import type { PodLogs } from "../state/records.ts";

/**
 * Where a pod's output goes. journald is the natural home on a real host; a sandboxed manager (and
 * some minimal hosts) have no journald, so vks can also append each container's output to a file, as
 * the kubelet does under /var/log/pods. The choice is stored in the pod's record so `pod logs` reads
 * from where the pod actually wrote.
 */
export type LogMode = "journal" | "file";
export type LogModeSetting = LogMode | "auto";

const JOURNAL_SOCKET = "/run/systemd/journal/socket";

/** auto: the journal when journald's socket exists, else files. */
export function chooseLogMode(setting: LogModeSetting, journalSocket = JOURNAL_SOCKET): LogMode {
  if (setting !== "auto") return setting;
  return existsSync(journalSocket) ? "journal" : "file";
}

export function parseLogModeSetting(value: string | undefined): LogModeSetting {
  const setting = value ?? "auto";
  if (setting === "auto" || setting === "journal" || setting === "file") return setting;
  throw new VksError(`--log-mode: "${setting}" is not a log mode`, {
    exitCode: ExitCode.usage,
    hint: "use auto (journal when journald runs, else files), journal or file",
  });
}

/** The kubelet's layout: one directory per pod, `<namespace>_<pod>_<uid>`, one file per container. */
export function podLogDirectory(stateDir: string, namespace: string, pod: string, uid: string): string {
  return join(stateDir, "logs", `${namespace}_${pod}_${uid}`);
}

export function containerLogFile(directory: string, container: string): string {
  return join(directory, `${container}.log`);
}

export interface LogRequest {
  logs: PodLogs;
  unitName: string;
  container: string;
  scope: ManagerScope;
  follow: boolean;
  /** Last N lines only; undefined for all. */
  tail?: number;
  /** Only lines logged at or after this time (journal mode only: files carry no times). */
  since?: Date;
  /** Only lines logged before this time (journal mode only): bounds one instance of a restarted container. */
  until?: Date;
}

/** Whether a log mode knows when each line was written (since, until and timestamps need it). */
export function logModeHasTimes(logs: PodLogs): boolean {
  return logs.mode === "journal";
}

/**
 * The argv of the program that prints (and with follow, keeps printing) one container's log. tail(1) and
 * journalctl(1) already get rotation, truncation and following right, so vks does not reimplement them.
 */
export function logReaderCommand(request: LogRequest): string[] {
  if (request.logs.mode === "file") {
    const file = containerLogFile(request.logs.directory, request.container);
    const lines = request.tail === undefined ? "+1" : String(request.tail);
    return ["tail", "-n", lines, ...(request.follow ? ["-F"] : []), "--", file];
  }
  // The unit's own output only (not systemd's messages about it), from whichever manager ran it: the
  // system manager's units carry _SYSTEMD_UNIT, a user manager's _SYSTEMD_USER_UNIT (or _SYSTEMD_UNIT when
  // it runs outside a user slice, as in a sandbox). journalctl ORs matches separated by "+". LogExtraFields
  // would be simpler but journald only learns them from the system manager. Only a non-root user reading
  // its own user manager's units needs the user journal. The unit fields come from the writer's cgroup,
  // which journald reads when it handles a line: a process already exited by then (seen under load) leaves
  // them out, so vks also names each unit's stream with SyslogIdentifier=<unit>, which travels in the
  // stream's own header.
  const ownUserJournal = request.scope === "user" && process.getuid?.() !== 0;
  return [
    "journalctl",
    ...(ownUserJournal ? ["--user"] : []),
    `_SYSTEMD_UNIT=${request.unitName}`,
    "+",
    `_SYSTEMD_USER_UNIT=${request.unitName}`,
    "+",
    `SYSLOG_IDENTIFIER=${request.unitName}`,
    "--output",
    "json",
    "--no-pager",
    ...(request.since === undefined ? [] : ["--since", `@${(request.since.getTime() / 1000).toFixed(3)}`]),
    ...(request.until === undefined ? [] : ["--until", `@${(request.until.getTime() / 1000).toFixed(3)}`]),
    // --follow alone starts at the last 10 lines; kubectl logs -f starts at the first.
    ...(request.tail === undefined ? (request.follow ? ["--lines", "all"] : []) : ["--lines", String(request.tail)]),
    ...(request.follow ? ["--follow"] : []),
  ];
}

/** One journal entry's message and the time journald received it (µs since the epoch). */
export interface JournalLine {
  message: string;
  realtimeMicros: bigint | undefined;
  /** Where the entry is in the journal, to resume reading after it. */
  cursor: string | undefined;
}

/** journalctl -o json gives MESSAGE as a string, or as a byte array when it is not valid UTF-8. */
export function parseJournalLine(line: string): JournalLine | undefined {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof entry !== "object" || entry === null) return undefined;
  const fields = entry as { MESSAGE?: unknown; __REALTIME_TIMESTAMP?: unknown; __CURSOR?: unknown };
  const realtime = fields.__REALTIME_TIMESTAMP;
  const realtimeMicros = typeof realtime === "string" && /^\d+$/.test(realtime) ? BigInt(realtime) : undefined;
  const message = fields.MESSAGE;
  const cursor = typeof fields.__CURSOR === "string" ? fields.__CURSOR : undefined;
  if (typeof message === "string") return { message, realtimeMicros, cursor };
  if (Array.isArray(message) && message.every((b) => typeof b === "number")) {
    return { message: Buffer.from(message as number[]).toString("utf8"), realtimeMicros, cursor };
  }
  return undefined;
}

/** Runs a log reader and hands each line of its output to `onLine`; resolves when it ends. */
/** What receives log lines; a promise it returns pauses the reader until the line is taken (backpressure). */
export type LogLineSink = (line: string, realtimeMicros?: bigint) => void | Promise<void>;

async function readLines(argv: string[], container: string, onLine: (line: string) => void | Promise<void>, signal?: AbortSignal): Promise<void> {
  const reader = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const onAbort = () => reader.kill("SIGTERM");
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of reader.stdout) {
      pending += decoder.decode(chunk, { stream: true });
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        await onLine(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
      }
    }
    if (pending) await onLine(pending);
    const exitCode = await reader.exited;
    if (exitCode !== 0 && !signal?.aborted) {
      const stderr = (await new Response(reader.stderr).text()).trim();
      throw new VksError(`${argv[0]} failed reading the log of ${container}: ${stderr || `exit ${exitCode}`}`, {
        exitCode: ExitCode.unavailable,
      });
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** The entry's message and time, or undefined when it is not a message or falls outside the request's bounds. */
function journalEntryInBounds(request: LogRequest, line: string): JournalLine | undefined {
  const entry = parseJournalLine(line);
  if (entry === undefined) return undefined;
  // journalctl's --since/--until work at its own precision; the bounds are exact here.
  if (entry.realtimeMicros !== undefined) {
    const millis = Number(entry.realtimeMicros / 1000n);
    if (request.since !== undefined && millis < request.since.getTime()) return undefined;
    if (request.until !== undefined && millis >= request.until.getTime()) return undefined;
  }
  return entry;
}

/**
 * The last `tail` entries of a time window, then (with follow) what comes after them. journalctl's
 * --lines counts from the start of a --since window, not from its end, so the window is read once
 * keeping the last entries, and following resumes after the last entry's cursor: nothing is missed or
 * repeated between the two reads.
 */
async function streamJournalWindowTail(
  request: LogRequest & { tail: number },
  write: LogLineSink,
  signal?: AbortSignal,
): Promise<void> {
  const window = { ...request, follow: false, tail: undefined };
  const kept: JournalLine[] = [];
  let cursor: string | undefined;
  await readLines(
    logReaderCommand(window),
    request.container,
    (line) => {
      const entry = journalEntryInBounds(request, line);
      if (entry === undefined) return;
      cursor = entry.cursor ?? cursor;
      kept.push(entry);
      if (kept.length > request.tail) kept.shift();
    },
    signal,
  );
  for (const entry of kept) await write(entry.message, entry.realtimeMicros);
  if (!request.follow || signal?.aborted) return;
  const following = logReaderCommand({ ...request, tail: undefined });
  const argv = cursor === undefined ? following : [...withoutOption(following, "--since"), "--after-cursor", cursor];
  await readLines(
    argv,
    request.container,
    (line) => {
      const entry = journalEntryInBounds(request, line);
      return entry === undefined ? undefined : write(entry.message, entry.realtimeMicros);
    },
    signal,
  );
}

function withoutOption(argv: string[], option: string): string[] {
  const at = argv.indexOf(option);
  return at === -1 ? argv : [...argv.slice(0, at), ...argv.slice(at + 2)];
}

/**
 * Waits until journald has written what it was sent (`journalctl --sync`): it takes a container's last
 * lines from its stream socket after the process is gone, so a reader stopped right after a container
 * ended could miss them. Best effort: without journald, or without the right to ask, it returns at once.
 */
export async function syncJournal(): Promise<void> {
  try {
    const sync = Bun.spawn(["journalctl", "--sync"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    const timer = setTimeout(() => sync.kill(), 5000);
    await sync.exited;
    clearTimeout(timer);
  } catch {
    // No journalctl: nothing to wait for.
  }
}

/**
 * Streams one container's log to `write`, line by line. Resolves when the reader ends (never, with follow,
 * until `signal` aborts).
 */
export async function streamContainerLog(
  request: LogRequest,
  write: LogLineSink,
  signal?: AbortSignal,
): Promise<void> {
  if (request.logs.mode === "file" && !request.follow) {
    const file = containerLogFile(request.logs.directory, request.container);
    if (!existsSync(file)) {
      throw new NotFoundError(`no log file for container ${request.container}: ${file}`, "the container has not written anything yet");
    }
  }
  const tail = request.tail;
  if (request.logs.mode === "journal" && tail !== undefined && (request.since !== undefined || request.until !== undefined)) {
    return streamJournalWindowTail({ ...request, tail }, write, signal);
  }
  await readLines(
    logReaderCommand(request),
    request.container,
    (line) => {
      if (request.logs.mode === "file") return write(line);
      const entry = journalEntryInBounds(request, line);
      return entry === undefined ? undefined : write(entry.message, entry.realtimeMicros);
    },
    signal,
  );
}
