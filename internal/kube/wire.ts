/**
 * Request bodies in the API server's own wire format. client-node sends patch bodies through
 * JSON.stringify, which writes every Date with milliseconds; metav1.Time is whole seconds and
 * metav1.MicroTime exactly six fractional digits, and a strict server rejects anything else.
 */
import { V1MicroTime } from "@kubernetes/client-node";

/** metav1.Time: `2006-01-02T15:04:05Z`. */
export function formatTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** metav1.MicroTime: `2006-01-02T15:04:05.000000Z`. */
export function microTimeNow(): V1MicroTime {
  return new V1MicroTime();
}

/** A deep copy with every Date written as metav1.Time and every V1MicroTime as MicroTime. */
export function toWire<T>(value: T): unknown {
  return JSON.parse(
    JSON.stringify(value, function (this: Record<string, unknown>, key: string, serialized: unknown) {
      const original = this[key];
      if (original instanceof V1MicroTime) return original.toISOString();
      if (original instanceof Date) return Number.isNaN(original.getTime()) ? undefined : formatTime(original);
      return serialized;
    }),
  );
}

/** Time fields arrive as Date from typed calls and as strings from records; compare them by instant. */
export function timeValue(value: Date | string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}
