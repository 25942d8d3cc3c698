/**
 * Names for the exit statuses systemd itself uses when it could not even start a service's process
 * (EXIT_* in systemd's exit-status.h). A start that fails with one of these is a setup problem (no such
 * binary, no such user, …), not the program's own failure, and the message should say so.
 */
const SYSTEMD_EXIT_STATUS: ReadonlyMap<number, string> = new Map([
  [200, "CHDIR: cannot change to the working directory"],
  [203, "EXEC: cannot execute the program (missing, not executable, or wrong format)"],
  [209, "STDOUT: cannot open the output file"],
  [216, "GROUP: no such group"],
  [217, "USER: no such user"],
  [222, "STDERR: cannot open the error output file"],
  [226, "NAMESPACE: cannot set up the mount namespace"],
  [233, "RUNTIME_DIRECTORY: cannot create the runtime directory"],
]);

export function describeSystemdExitStatus(status: number): string | undefined {
  return SYSTEMD_EXIT_STATUS.get(status);
}
