/**
 * Making ExecStart arguments reach the process exactly as given.
 *
 * Measured on systemd 252 with ExecStart set over D-Bus (test/systemd/escaping.test.ts keeps it true):
 * - `$VAR` and `${VAR}` are expanded at exec time in every argv element, argv[0] included, and `$$`
 *   yields a literal `$`. So `$` must be doubled.
 * - `%` specifiers are NOT expanded for D-Bus-set values: systemd escapes `%` to `%%` itself when it writes
 *   the transient unit file, so doubling it here would reach the process as `%%`.
 * - Quotes, backslashes, `;`, newlines, non-ASCII text and empty strings pass through untouched (systemd
 *   quotes them in the transient file and they survive a daemon-reload).
 * - The executable path (the `s` in `a(sasb)`) is not expanded and must not be escaped.
 * - Environment=, WorkingDirectory= and StandardOutput paths are not expanded either: they need nothing.
 *
 * Known systemd 252 limitation, not fixable here: after a daemon-reload systemd rebuilds transient units
 * from the file it wrote, where it put `$` and `;` inside quoted arguments as `\$` and `\;`, which its own
 * parser keeps verbatim. A unit restarted after a reload would then get `\$\$x` for `$x`. The plan routes
 * such commands through a launcher whose argv travels in the environment (internal/pod/launcher.ts), and
 * test/systemd/reload.test.ts pins down which bytes survive a reload.
 */
export function escapeExecArgument(argument: string): string {
  return argument.replaceAll("$", () => "$$");
}
