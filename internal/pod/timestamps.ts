/**
 * systemd timestamps (microseconds since the epoch, as bigint) as the Dates of Kubernetes status fields.
 * The API stores metav1.Time at whole seconds, so vks truncates to seconds too: a status vks computes
 * then equals the one read back from the API server, and an unchanged unit never looks changed.
 */

const MICROS_PER_SECOND = 1_000_000n;
const MILLIS_PER_SECOND = 1000n;
/** systemd's USEC_INFINITY and anything near it mean "not a time". */
const LARGEST_REAL_MICROS = 1n << 62n;

/** The Date for a systemd timestamp; undefined for 0 ("never happened") or infinity. Exact: no floats. */
export function dateFromMicros(micros: bigint): Date | undefined {
  if (micros <= 0n || micros >= LARGEST_REAL_MICROS) return undefined;
  return new Date(Number((micros / MICROS_PER_SECOND) * MILLIS_PER_SECOND));
}

/** The latest of some optional dates; undefined when there is none. */
export function latestDate(dates: (Date | undefined)[]): Date | undefined {
  let latest: Date | undefined;
  for (const date of dates) if (date !== undefined && (latest === undefined || date > latest)) latest = date;
  return latest;
}
