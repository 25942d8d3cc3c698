/**
 * The environment a command exec'd in a container gets: the one systemd gives the container's own
 * process (systemd.exec(5) "Environment variables in spawned processes"), rebuilt from the unit's
 * configuration the way a container runtime uses the container's configured environment rather than
 * whatever the running process did to its own. Pure.
 *
 * Measured against systemd 252 (test/e2e/exec.test.ts compares the two):
 * - the manager's environment block first, then HOME, USER, LOGNAME and SHELL for a unit with User=
 *   (HOME left out for a home of "/" or /nonexistent, SHELL for nologin-style shells), INVOCATION_ID and
 *   RUNTIME_DIRECTORY, then Environment=, then EnvironmentFile= contents; a later assignment wins;
 *   UnsetEnvironment= last.
 * - Variables that describe the container's own process (SYSTEMD_EXEC_PID, JOURNAL_STREAM, LISTEN_*,
 *   NOTIFY_SOCKET, WATCHDOG_*, MANAGERPID) are not the exec'd process' and are not set.
 * - vks' launcher (internal/pod/launcher.ts) keeps a command's argv in VKS_EXEC_* variables and removes
 *   them before the container's program runs, and drops a PWD that only the manager's own environment
 *   supplied; both are done here too, whether or not the container's unit uses the launcher, so that
 *   a stale PWD never claims a directory the command is not in.
 * - With a terminal, TERM=xterm, as containerd and CRI-O set for a tty exec.
 */
import { LAUNCHER_SCRIPT_VARIABLE, LAUNCHER_VARIABLE_PREFIX } from "../unit/launcher-variables.ts";

/** Placeholders systemd does not turn into HOME= / SHELL= (user-util.c, USER_CREDS_CLEAN). */
const PLACEHOLDER_HOMES = new Set(["", "/", "/nonexistent"]);
const NOLOGIN_SHELLS = new Set([
  "/bin/nologin",
  "/sbin/nologin",
  "/usr/bin/nologin",
  "/usr/sbin/nologin",
  "/bin/true",
  "/usr/bin/true",
  "/bin/false",
  "/usr/bin/false",
]);

export interface Account {
  name: string;
  home: string;
  shell: string;
}

export interface ExecEnvironmentInput {
  managerEnvironment: readonly string[];
  /** The passwd entry of the unit's User=; undefined when the unit sets none. */
  account: Account | undefined;
  invocationID: string;
  /** Absolute paths of the unit's RuntimeDirectory= entries. */
  runtimeDirectories: readonly string[];
  unitEnvironment: readonly string[];
  /** The assignments of each EnvironmentFile= that could be read, in order. */
  environmentFiles: readonly (readonly string[])[];
  unsetEnvironment: readonly string[];
  tty: boolean;
}

function split(assignment: string): [string, string] | undefined {
  const equals = assignment.indexOf("=");
  return equals <= 0 ? undefined : [assignment.slice(0, equals), assignment.slice(equals + 1)];
}

function assign(environment: Map<string, string>, assignments: readonly string[]): void {
  for (const assignment of assignments) {
    const entry = split(assignment);
    if (entry === undefined) continue;
    // Re-inserting moves a reassigned variable to where systemd's merge puts it: after the others.
    environment.delete(entry[0]);
    environment.set(entry[0], entry[1]);
  }
}

export function execEnvironment(input: ExecEnvironmentInput): Record<string, string> {
  const environment = new Map<string, string>();
  assign(environment, input.managerEnvironment);
  const builtIn: string[] = [];
  if (input.account !== undefined) {
    const { name, home, shell } = input.account;
    if (!PLACEHOLDER_HOMES.has(home) && home.startsWith("/")) builtIn.push(`HOME=${home}`);
    builtIn.push(`LOGNAME=${name}`, `USER=${name}`);
    if (shell.startsWith("/") && !NOLOGIN_SHELLS.has(shell)) builtIn.push(`SHELL=${shell}`);
  }
  if (input.invocationID !== "") builtIn.push(`INVOCATION_ID=${input.invocationID}`);
  if (input.runtimeDirectories.length > 0) builtIn.push(`RUNTIME_DIRECTORY=${input.runtimeDirectories.join(":")}`);
  assign(environment, builtIn);

  const configured = [...input.unitEnvironment, ...input.environmentFiles.flat()];
  const configuredPWD = configured.some((assignment) => split(assignment)?.[0] === "PWD");
  const launched = input.unitEnvironment.some((assignment) => split(assignment)?.[0] === LAUNCHER_SCRIPT_VARIABLE);
  assign(environment, configured);
  if (launched) {
    for (const name of [...environment.keys()]) if (name.startsWith(LAUNCHER_VARIABLE_PREFIX)) environment.delete(name);
  }
  if (!configuredPWD) environment.delete("PWD");

  for (const unset of input.unsetEnvironment) {
    const entry = split(unset);
    // "NAME" removes the variable; "NAME=value" only that exact assignment.
    if (entry === undefined) environment.delete(unset);
    else if (environment.get(entry[0]) === entry[1]) environment.delete(entry[0]);
  }
  if (input.tty) {
    environment.delete("TERM");
    environment.set("TERM", "xterm");
  }
  return Object.fromEntries(environment);
}
