/**
 * The argv that starts an exec'd command, and the check that it can be found at all. Pure.
 *
 * The command is not run through a shell: dash drops environment variables whose names are not shell
 * identifiers and exports PWD, so the environment would not reach the command as built. Instead, small
 * util-linux and coreutils programs each change one thing and exec the next (all on Debian's essential
 * set):
 *   nsenter -t PID -m --        enter the container's mount namespace (only when it has its own)
 *   prlimit --nofile=S:H --     the container's open-files limit (Bun raises its own for itself)
 *   setpriv --reuid --regid --groups|--clear-groups --   the container's user and groups
 *   env -C DIR --               the working directory, inside that mount namespace (nsenter's --wd
 *                               would resolve it in vks' namespace)
 * setpriv comes last but for env: it runs the command with execvp(3) on the container's PATH, and its
 * failures exit 127 (not found) or 126 (cannot execute), as a shell's do. Without a mount namespace to
 * enter, the working directory is simply the spawned process' own.
 */
import { posix } from "node:path";

export const NSENTER = "/usr/bin/nsenter";
export const PRLIMIT = "/usr/bin/prlimit";
export const SETPRIV = "/usr/bin/setpriv";
export const ENV = "/usr/bin/env";

/** RLIM_INFINITY as systemd reports it. */
const INFINITY = 0xffff_ffff_ffff_ffffn;

export interface CommandLineInput {
  command: readonly string[];
  /** The container's main process, when its mount namespace is not vks' own. */
  mountNamespaceOf?: number;
  /** Set when vks' own limit differs from the container's. */
  openFilesLimit?: { soft: bigint; hard: bigint };
  /** Set when vks is root and can change identity; otherwise the command runs as vks does. */
  identity?: { uid: number; gid: number; groups: readonly number[] };
  /** Applied after entering the mount namespace (only used with mountNamespaceOf). */
  workingDirectory: string;
}

function limitText(value: bigint): string {
  return value === INFINITY ? "unlimited" : value.toString();
}

export function commandLine(input: CommandLineInput): string[] {
  const argv: string[] = [];
  if (input.mountNamespaceOf !== undefined) argv.push(NSENTER, `--target=${input.mountNamespaceOf}`, "--mount", "--");
  if (input.openFilesLimit !== undefined) {
    argv.push(PRLIMIT, `--nofile=${limitText(input.openFilesLimit.soft)}:${limitText(input.openFilesLimit.hard)}`, "--");
  }
  argv.push(SETPRIV);
  if (input.identity !== undefined) {
    const { uid, gid, groups } = input.identity;
    argv.push(`--reuid=${uid}`, `--regid=${gid}`, groups.length === 0 ? "--clear-groups" : `--groups=${groups.join(",")}`);
  }
  argv.push("--");
  if (input.mountNamespaceOf !== undefined) argv.push(ENV, `--chdir=${input.workingDirectory}`, "--");
  argv.push(...input.command);
  return argv;
}

export interface LookupFailure {
  exitCode: 126 | 127;
  /** In runc's words, so the message reads as it does from any Kubernetes node. */
  message: string;
}

export interface FileProbe {
  /** "file" for anything but a directory; undefined when nothing is there. */
  kind(path: string): "file" | "directory" | undefined;
}

/**
 * Why `command[0]` cannot run, for the failures that are certain before trying: nothing by that name on
 * the container's PATH, or no file at the path given. Anything subtler (permissions, a bad interpreter)
 * is left to execvp, whose failure setpriv reports with the same exit codes.
 */
export function lookupFailure(program: string, path: string | undefined, workingDirectory: string, probe: FileProbe): LookupFailure | undefined {
  if (program === "") return { exitCode: 127, message: `exec: "": executable file not found in $PATH` };
  if (program.includes("/")) {
    const file = posix.resolve(workingDirectory, program);
    const kind = probe.kind(file);
    if (kind === undefined) return { exitCode: 127, message: `exec: "${program}": stat ${program}: no such file or directory` };
    if (kind === "directory") return { exitCode: 126, message: `exec: "${program}": is a directory` };
    return undefined;
  }
  // execvp's search: an empty PATH entry is the working directory; no PATH at all is the confstr default.
  const directories = (path ?? "/bin:/usr/bin").split(":");
  const found = directories.some((directory) => probe.kind(posix.resolve(workingDirectory, directory || ".", program)) === "file");
  return found ? undefined : { exitCode: 127, message: `exec: "${program}": executable file not found in $PATH` };
}
