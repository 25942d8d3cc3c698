import { consola } from "consola";
import { ExitCode, VksError } from "../errors.ts";

/** Prints an error the way every vks command does and returns the exit code it maps to. */
export function reportError(err: unknown): number {
  if (err instanceof VksError) {
    consola.error(err.message);
    if (err.hint) consola.info(`hint: ${err.hint}`);
    if (process.env.VKS_DEBUG && err.cause) consola.debug(err.cause);
    return err.exitCode;
  }
  consola.error(err instanceof Error ? (process.env.VKS_DEBUG ? err : err.message) : String(err));
  consola.info("this is a bug in vks; rerun with VKS_DEBUG=1 for the stack trace and report it");
  return ExitCode.software;
}

/** `--output` formats shared by listing commands. */
export type OutputFormat = "table" | "json" | "yaml";

/** Renders rows as an aligned plain-text table (no colours: it is often piped). */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** Human-readable age like kubectl's: 45s, 3m, 2h, 4d. */
export function formatAge(since: Date, now: Date = new Date()): string {
  const seconds = Math.max(0, Math.floor((now.getTime() - since.getTime()) / 1000));
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}
