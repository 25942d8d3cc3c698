/**
 * The file that carries a container's secret environment variables: systemd reads it (EnvironmentFile=)
 * as the manager, before it drops privileges, so it can be private to the manager's user (root for the
 * system manager) and never appears in a unit property, where any local user could read it over D-Bus.
 *
 * systemd's EnvironmentFile= syntax (env-file.c parse_env_file_internal): inside double quotes every byte
 * is literal, newlines included, except that a backslash escapes `"`, `\`, `` ` `` and `$` and a
 * backslash before a newline joins lines. So each value is written double-quoted with exactly those four
 * escaped: any value systemd can pass at all (valid UTF-8, no NUL) comes back byte for byte.
 */
import { join } from "node:path";

const NEEDS_ESCAPE = /["\\`$]/g;

/** One `NAME="value"` line per assignment (`NAME=value` strings, as in Environment=). */
export function formatEnvironmentFile(assignments: readonly string[]): string {
  return assignments
    .map((assignment) => {
      const separator = assignment.indexOf("=");
      const name = assignment.slice(0, separator);
      const value = assignment.slice(separator + 1);
      return `${name}="${value.replace(NEEDS_ESCAPE, (char) => `\\${char}`)}"\n`;
    })
    .join("");
}

/** Where a pod's secret env files live: one directory per pod UID, removed with the pod. */
export function podSecretEnvDirectory(stateDir: string, podUid: string): string {
  return join(stateDir, "secret-env", podUid);
}

/** The env file of one container of the pod. */
export function secretEnvFile(directory: string, containerName: string): string {
  return join(directory, `${containerName}.env`);
}
