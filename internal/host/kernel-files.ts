/**
 * Text formats the kernel uses in more than one file, read by both the node's readings and unit
 * accounting: `Name:   123 kB` fields, `key value` lines, and clock ticks. Pure; imports nothing of
 * vks, so any layer may use it.
 */

/** USER_HZ, the unit of /proc/stat and /proc/PID/stat times: 100 by the kernel's ABI on every architecture vks builds for. */
const CLOCK_TICKS_PER_SECOND = 100;
export const NANOSECONDS_PER_TICK = 1e9 / CLOCK_TICKS_PER_SECOND;

/** A `Name:   123 kB` field of /proc/PID/status or /proc/meminfo, in bytes (the files say kB and mean KiB). */
export function kilobyteField(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name.replace(/[()]/g, "\\$&")}:\\s+(\\d+)\\s*kB`, "m").exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
}

/** `key value` lines (cpu.stat, memory.stat, /proc/vmstat) as numbers. */
export function parseFlatKeyed(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^\d+$/.test(value)) values.set(key, Number(value));
  }
  return values;
}
