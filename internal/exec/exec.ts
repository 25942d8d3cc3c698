/**
 * Running a command in a running container's context, as `kubectl exec` and `vks pod exec` do: the
 * container's user, groups, environment, working directory and open-files limit, inside the
 * container's cgroup (it counts against the pod, and stopping the pod stops it) and, where the
 * container has one of its own, its mount namespace. Everything is taken from the container's unit and
 * its main process; the session is ended on request or when vks goes away (session.ts).
 */
import { constants, readFileSync, statSync } from "node:fs";
import { access, readFile, readlink } from "node:fs/promises";
import { posix } from "node:path";
import type { Subprocess } from "bun";
import { parseEnvironmentFile } from "../image/environment.ts";
import { ExitCode, VksError, errorMessage } from "../errors.ts";
import type { UnitExecContext } from "../systemd/exec-context.ts";
import type { ManagerScope } from "../systemd/types.ts";
import { trackingCgroupDirectory } from "./cgroup.ts";
import { ChunkQueue } from "./chunk-queue.ts";
import { ENV, NSENTER, PRLIMIT, SETPRIV, commandLine, lookupFailure, type FileProbe } from "./command.ts";
import { execEnvironment } from "./environment.ts";
import { resolveIdentity, type ExecIdentity } from "./identity.ts";
import { FailedExec, RunningExec } from "./process.ts";
import { SessionGuard } from "./session.ts";

export interface TerminalSize {
  width: number;
  height: number;
}

export interface ExecRequest {
  command: string[];
  stdin: boolean;
  tty: boolean;
  terminalSize?: TerminalSize;
}

export interface ExecProcess {
  writeStdin(data: Uint8Array): void;
  closeStdin(): void;
  /** With tty: the terminal's output. */
  readonly stdout: AsyncIterable<Uint8Array>;
  /** Undefined with tty. */
  readonly stderr: AsyncIterable<Uint8Array> | undefined;
  resize(size: TerminalSize): void;
  /** 126 not executable, 127 not found, 128+n killed by signal n. */
  readonly exited: Promise<{ exitCode: number }>;
  /** Ends the session: the command and everything it started. */
  kill(): void;
}

/**
 * The container exists but has no process to join (not started yet, exited, restarting). The message is
 * the kubelet's: it looks for the container among the running ones and does not find it there.
 */
export class ContainerNotRunningError extends VksError {
  override readonly name = "ContainerNotRunningError";
  constructor(
    readonly container: string,
    state: string,
  ) {
    super(`container not found ("${container}")`, {
      exitCode: ExitCode.failure,
      hint: `container ${container} is not running (its unit is ${state}); see vks pod ls`,
    });
  }
}

export interface ExecOptions {
  scope: ManagerScope;
  /** The container's name, for messages. */
  container: string;
}

const DEFAULT_TERMINAL: TerminalSize = { width: 80, height: 24 };

/** Starts `request.command` in the context of the container whose unit `context` describes. */
export async function startExec(context: UnitExecContext, request: ExecRequest, options: ExecOptions): Promise<ExecProcess> {
  const program = request.command[0];
  if (program === undefined) {
    throw new VksError("no command to run", { exitCode: ExitCode.usage, hint: "give the command and its arguments after --" });
  }
  const notRunning = (): ContainerNotRunningError => new ContainerNotRunningError(options.container, `${context.activeState}/${context.subState}`);
  const mainPID = context.mainPID;
  if (mainPID <= 0) throw notRunning();

  let processCgroup: string;
  try {
    processCgroup = await readFile(`/proc/${mainPID}/cgroup`, "utf8");
  } catch {
    throw notRunning();
  }
  const cgroupDirectory = trackingCgroupDirectory(processCgroup, await readFile("/proc/self/mountinfo", "utf8"));
  if (cgroupDirectory === undefined) {
    throw new VksError(`cannot find the cgroup of ${context.unitName} (process ${mainPID}) among this host's cgroup mounts`, {
      exitCode: ExitCode.unavailable,
      hint: "vks needs the cgroup filesystem systemd uses mounted under /sys/fs/cgroup",
    });
  }
  const ownNamespace = await sharesMountNamespace(mainPID);
  const identity = await resolveIdentity(context, options.scope);
  const environment = execEnvironment({
    managerEnvironment: context.managerEnvironment,
    account: identity.account,
    invocationID: context.invocationID,
    runtimeDirectories: runtimeDirectories(context, options.scope, identity),
    unitEnvironment: context.environment,
    environmentFiles: await readEnvironmentFiles(context.environmentFiles, ownNamespace ? "" : `/proc/${mainPID}/root`),
    unsetEnvironment: context.unsetEnvironment,
    tty: request.tty,
  });
  const workingDirectory = ownNamespace
    ? workingDirectoryOf(context, identity, environment.HOME)
    : workingDirectoryPath(context, identity, environment.HOME).path;
  // In another mount namespace vks' view of the files is not the command's: leave the lookup to execvp.
  const failure = ownNamespace ? lookupFailure(program, environment.PATH, workingDirectory, hostFiles) : undefined;
  if (failure !== undefined) return new FailedExec(failure.message, failure.exitCode, request.tty);

  const argv = commandLine({
    command: request.command,
    ...(ownNamespace ? {} : { mountNamespaceOf: mainPID }),
    ...openFilesLimitChange(containerOpenFilesLimit(mainPID, context.limitNOFILE)),
    ...identityChange(identity, context.unitName),
    workingDirectory,
  });
  await requireHelpers(ownNamespace);
  return spawnExec(argv, { environment, workingDirectory: ownNamespace ? workingDirectory : "/", cgroupDirectory, umask: context.umask }, request, context.unitName);
}

interface Placement {
  environment: Record<string, string>;
  workingDirectory: string;
  cgroupDirectory: string;
  umask: number;
}

function spawnExec(argv: string[], placement: Placement, request: ExecRequest, unitName: string): ExecProcess {
  const base = { env: placement.environment, cwd: placement.workingDirectory, cgroup: placement.cgroupDirectory };
  // The umask is inherited at spawn; spawning is synchronous, so vks' own is changed only for that instant.
  const previousUmask = process.umask(placement.umask);
  let started: { child: Subprocess; withGuard: (guard: SessionGuard) => ExecProcess };
  try {
    if (request.tty) {
      const size = request.terminalSize ?? DEFAULT_TERMINAL;
      const output = new ChunkQueue();
      // A terminal makes the command a session leader with the terminal as its controlling one.
      const child = Bun.spawn(argv, {
        ...base,
        terminal: {
          cols: Math.max(1, size.width),
          rows: Math.max(1, size.height),
          name: "xterm",
          // Copied: the callback's buffer is not the queue's to keep.
          data: (_terminal, data) => output.push(data.slice()),
          exit: () => output.end(),
        },
      });
      const terminal = child.terminal;
      if (terminal === undefined) {
        child.kill("SIGKILL");
        throw new VksError("Bun gave the command no terminal", { exitCode: ExitCode.software });
      }
      started = { child, withGuard: (guard) => RunningExec.withTerminal(child, terminal, output, guard) };
    } else {
      const child = Bun.spawn(argv, { ...base, stdin: request.stdin ? "pipe" : "ignore", stdout: "pipe", stderr: "pipe", detached: true });
      started = { child, withGuard: (guard) => RunningExec.withPipes(child, guard) };
    }
  } catch (err) {
    throw err instanceof VksError ? err : spawnFailed(err, unitName);
  } finally {
    process.umask(previousUmask);
  }

  let guard: SessionGuard;
  try {
    guard = SessionGuard.start(started.child.pid, placement.cgroupDirectory);
  } catch (err) {
    started.child.kill("SIGKILL");
    throw new VksError(`cannot guard the exec session in ${unitName}: ${errorMessage(err)}`, { exitCode: ExitCode.software, cause: err });
  }
  return started.withGuard(guard);
}

function spawnFailed(err: unknown, unitName: string): VksError {
  const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
  if (code === "EACCES" || code === "EPERM") {
    return new VksError(`cannot start a process in the cgroup of ${unitName}: ${errorMessage(err)}`, {
      exitCode: ExitCode.permission,
      hint: "joining a unit's cgroup needs root, or for a user manager a vks running inside that manager's own cgroup tree",
      cause: err,
    });
  }
  return new VksError(`cannot start the command in ${unitName}: ${errorMessage(err)}`, { exitCode: ExitCode.failure, cause: err });
}

async function sharesMountNamespace(pid: number): Promise<boolean> {
  try {
    const [own, theirs] = await Promise.all([readlink("/proc/self/ns/mnt"), readlink(`/proc/${pid}/ns/mnt`)]);
    return own === theirs;
  } catch {
    // Unreadable means vks could not enter it either; its own view is the only one it has.
    return true;
  }
}

/** Where RuntimeDirectory= entries are: under /run for the system manager, $XDG_RUNTIME_DIR for a user's. */
function runtimeDirectories(context: UnitExecContext, scope: ManagerScope, identity: ExecIdentity): string[] {
  if (context.runtimeDirectory.length === 0) return [];
  const managerRuntime = context.managerEnvironment.find((entry) => entry.startsWith("XDG_RUNTIME_DIR="))?.slice("XDG_RUNTIME_DIR=".length);
  const base = scope === "system" ? "/run" : (managerRuntime ?? `/run/user/${identity.uid}`);
  return context.runtimeDirectory.map((name) => posix.join(base, name));
}

async function readEnvironmentFiles(files: UnitExecContext["environmentFiles"], root: string): Promise<string[][]> {
  return Promise.all(
    files.map(async (file) => {
      try {
        return parseEnvironmentFile(await readFile(root + file.path, "utf8")).entries;
      } catch {
        // systemd read the file when the container started; one gone since contributes nothing now.
        return [];
      }
    }),
  );
}

/** WorkingDirectory= decoded: "!" means "if it can be entered", "~" the user's home, "" the root. */
function workingDirectoryPath(context: UnitExecContext, identity: ExecIdentity, home: string | undefined): { path: string; missingOk: boolean } {
  const missingOk = context.workingDirectory.startsWith("!");
  const raw = missingOk ? context.workingDirectory.slice(1) : context.workingDirectory;
  if (raw === "") return { path: "/", missingOk: false };
  if (raw === "~") return { path: identity.account?.home || home || "/", missingOk };
  return { path: raw, missingOk };
}

/** As systemd: a directory the user cannot enter, marked "!", leaves the process in "/". */
function workingDirectoryOf(context: UnitExecContext, identity: ExecIdentity, home: string | undefined): string {
  const { path, missingOk } = workingDirectoryPath(context, identity, home);
  if (!missingOk) return path;
  return canEnter(path, identity) ? path : "/";
}

/** Search permission on every directory of `path` for the identity, from mode bits (root may always). */
export function canEnter(path: string, identity: Pick<ExecIdentity, "uid" | "gid" | "groups">, statPath: (path: string) => { mode: number; uid: number; gid: number } | undefined = statOrUndefined): boolean {
  const parts = posix.resolve(path).split("/").filter(Boolean);
  for (let depth = 0; depth <= parts.length; depth++) {
    const directory = "/" + parts.slice(0, depth).join("/");
    const info = statPath(directory);
    if (info === undefined || (info.mode & constants.S_IFMT) !== constants.S_IFDIR) return false;
    if (identity.uid === 0) continue;
    const bit = info.uid === identity.uid ? 0o100 : info.gid === identity.gid || identity.groups.includes(info.gid) ? 0o010 : 0o001;
    if ((info.mode & bit) === 0) return false;
  }
  return true;
}

function statOrUndefined(path: string): { mode: number; uid: number; gid: number } | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

const hostFiles: FileProbe = {
  kind(path) {
    const info = statOrUndefined(path);
    if (info === undefined) return undefined;
    return (info.mode & constants.S_IFMT) === constants.S_IFDIR ? "directory" : "file";
  },
};

/** A process' open-files limit from /proc/PID/limits (`self`: the one the spawned process would inherit from vks; Bun raises its own soft limit). */
function openFilesLimitOf(pid: number | "self"): { soft: bigint; hard: bigint } | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, "utf8").split("\n").find((row) => row.startsWith("Max open files"));
    if (line === undefined) return undefined;
    const [soft, hard] = line.slice("Max open files".length).trim().split(/\s+/);
    const parse = (value: string | undefined): bigint => (value === "unlimited" ? 0xffff_ffff_ffff_ffffn : BigInt(value ?? "0"));
    return { soft: parse(soft), hard: parse(hard) };
  } catch {
    return undefined;
  }
}

/**
 * The limit the container's main process really runs with, else the unit's LimitNOFILE=. They differ
 * when the manager could not raise the hard limit (it lacks CAP_SYS_RESOURCE, as in some containers):
 * systemd then sets the closest it can, and so must exec, where prlimit would fail outright.
 */
function containerOpenFilesLimit(mainPID: number, configured: UnitExecContext["limitNOFILE"]): UnitExecContext["limitNOFILE"] {
  return openFilesLimitOf(mainPID) ?? configured;
}

function openFilesLimitChange(limit: UnitExecContext["limitNOFILE"]): { openFilesLimit?: { soft: bigint; hard: bigint } } {
  const own = openFilesLimitOf("self");
  if (own === undefined || limit.hard === 0n || (own.soft === limit.soft && own.hard === limit.hard)) return {};
  // Without privileges a hard limit can only be lowered: leave one that would have to be raised.
  if (process.getuid?.() !== 0 && limit.hard > own.hard) return {};
  return { openFilesLimit: limit };
}

/**
 * As root, setpriv takes on the container's identity. Any other vks (a user manager's owner) can only
 * run commands as itself, which is what that manager's units run as unless they name another user.
 */
function identityChange(identity: ExecIdentity, unitName: string): { identity?: ExecIdentity } {
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return { identity };
  if (identity.uid === uid && identity.gid === (process.getgid?.() ?? 0)) return {};
  throw new VksError(`cannot run a command as uid ${identity.uid} (gid ${identity.gid}) of ${unitName}: vks runs as uid ${uid}`, {
    exitCode: ExitCode.permission,
    hint: "run vks as root to exec into containers that run as another user",
  });
}

async function requireHelpers(ownNamespace: boolean): Promise<void> {
  const needed = ownNamespace ? [SETPRIV, PRLIMIT] : [SETPRIV, PRLIMIT, NSENTER, ENV];
  for (const helper of needed) {
    try {
      await access(helper, constants.X_OK);
    } catch {
      throw new VksError(`${helper} is missing: vks needs it to run commands in containers`, {
        exitCode: ExitCode.unavailable,
        hint: "install util-linux and coreutils (apt-get install util-linux coreutils)",
      });
    }
  }
}
