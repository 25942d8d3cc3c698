/**
 * Narrowing for values dbus-next hands back. Its typings say `any`; what arrives depends on the signature
 * (`s`/`o` string, `u`/`i` number, `t`/`x` bigint, `b` boolean, `ay` Buffer, `a{sv}` a plain object of
 * Variants, structs and other arrays as arrays). Every read goes through here so a surprise in the wire
 * format becomes a clear error instead of a wrong value further on.
 */
import { Variant } from "dbus-next";

export class UnexpectedDbusValue extends Error {
  override readonly name = "UnexpectedDbusValue";
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

export function expectString(value: unknown, what: string): string {
  if (typeof value !== "string") throw new UnexpectedDbusValue(`${what}: expected a string, got ${describe(value)}`);
  return value;
}

export function expectNumber(value: unknown, what: string): number {
  if (typeof value !== "number") throw new UnexpectedDbusValue(`${what}: expected a number, got ${describe(value)}`);
  return value;
}

export function expectBigInt(value: unknown, what: string): bigint {
  // dbus-next gives `t`/`x` as BigInt; a number would only come from a different build option (JSBI compat).
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  throw new UnexpectedDbusValue(`${what}: expected a 64-bit integer, got ${describe(value)}`);
}

export function expectBoolean(value: unknown, what: string): boolean {
  if (typeof value !== "boolean") throw new UnexpectedDbusValue(`${what}: expected a boolean, got ${describe(value)}`);
  return value;
}

export function expectArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new UnexpectedDbusValue(`${what}: expected an array, got ${describe(value)}`);
  return value;
}

export function expectStringArray(value: unknown, what: string): string[] {
  return expectArray(value, what).map((item, i) => expectString(item, `${what}[${i}]`));
}

/** An `a{sv}` as received: property name → the Variant's inner value. */
export function expectVariantDict(value: unknown, what: string): Map<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UnexpectedDbusValue(`${what}: expected a{sv}, got ${describe(value)}`);
  }
  const entries = new Map<string, unknown>();
  for (const [key, item] of Object.entries(value)) {
    if (!(item instanceof Variant)) throw new UnexpectedDbusValue(`${what}.${key}: expected a Variant`);
    const inner: unknown = item.value;
    entries.set(key, inner);
  }
  return entries;
}

export function expectVariantValue(value: unknown, what: string): unknown {
  if (!(value instanceof Variant)) throw new UnexpectedDbusValue(`${what}: expected a Variant, got ${describe(value)}`);
  const inner: unknown = value.value;
  return inner;
}
