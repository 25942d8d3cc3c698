/**
 * The kernel's limits on what execve takes, checked before anything is created: past them systemd can
 * only fail the unit with 203/EXEC ("cannot execute the program"), long after `pod up` accepted the
 * manifest and with a message that blames the program instead of the field.
 */

/** MAX_ARG_STRLEN: one argument or one NAME=value environment entry, its terminating NUL included. */
const MAX_ARG_STRLEN = 32 * 4096;
/**
 * Room kept in each string for the launcher's variable name (VKS_EXEC_<slot>_<i>=), which carries an
 * argument in the environment when the command would not survive a daemon-reload (launcher.ts).
 */
const LAUNCHER_NAME_ROOM = 64;
export const MAX_EXEC_STRING_BYTES = MAX_ARG_STRLEN - 1 - LAUNCHER_NAME_ROOM;
/**
 * Arguments and environment together: a quarter of the stack limit, which is 8 MiB for services unless
 * LimitSTACK= says otherwise; 128 KiB of that is kept for what systemd and the launcher add.
 */
export const MAX_EXEC_TOTAL_BYTES = 2 * 1024 * 1024 - 128 * 1024;

type Add = (path: string, message: string) => void;

const bytes = (text: string): number => Buffer.byteLength(text, "utf8");
const kib = (count: number): string => `${Math.floor(count / 1024)} KiB`;

/** Checks the container's command, args and env values against the kernel's limits (as written, before $(VAR) expansion). */
export function checkExecSizes(container: Record<string, unknown>, path: string, add: Add): void {
  let total = 0;
  for (const field of ["command", "args"] as const) {
    const list = container[field];
    if (!Array.isArray(list)) continue;
    list.forEach((item: unknown, index) => {
      if (typeof item !== "string") return;
      const size = bytes(item);
      total += size + 1;
      if (size > MAX_EXEC_STRING_BYTES) {
        add(`${path}.${field}[${index}]`, `too long (${kib(size)}): Linux passes at most ${kib(MAX_EXEC_STRING_BYTES)} per argument to a program; pass it in a file (a volume) instead`);
      }
    });
  }
  const env = container["env"];
  if (Array.isArray(env)) {
    env.forEach((entry: unknown, index) => {
      if (typeof entry !== "object" || entry === null) return;
      const { name, value } = entry as Record<string, unknown>;
      if (typeof name !== "string" || typeof value !== "string") return;
      const size = bytes(name) + 1 + bytes(value);
      total += size + 1;
      if (size > MAX_EXEC_STRING_BYTES) {
        add(`${path}.env[${index}].value`, `too long (${kib(size)}): Linux passes at most ${kib(MAX_EXEC_STRING_BYTES)} per environment variable to a program; pass it in a file (a volume) instead`);
      }
    });
  }
  if (total > MAX_EXEC_TOTAL_BYTES) {
    add(path, `command, args and env take ${kib(total)} together: Linux passes at most ${kib(MAX_EXEC_TOTAL_BYTES)} to a program; pass the data in a file (a volume) instead`);
  }
}
