/**
 * Kubernetes resource quantities ("100m", "1.5Gi", "1e3"), parsed exactly as apimachinery's
 * ParseQuantity does: the same grammar (its hand-written scanner, not the looser regular expression it
 * prints in errors), values rounded up to whole nano-units away from zero, binary values capped at
 * 2^63-1. Values are exact rationals over bigint: `0.1 + 0.2` is `3/10`, never 0.30000000000000004.
 */

/** An exact value: numerator / denominator, denominator > 0. */
export interface Quantity {
  numerator: bigint;
  denominator: bigint;
}

export type QuantityFormat = "DecimalSI" | "BinarySI" | "DecimalExponent";

export type ParsedQuantity = { ok: true; quantity: Quantity; format: QuantityFormat } | { ok: false; reason: string };

/** The pattern apimachinery names in its format error; kubectl users know this message. */
export const QUANTITY_PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";
const FORMAT_WRONG = `quantities must match the regular expression '${QUANTITY_PATTERN}'`;
const SUFFIX_WRONG = "unable to parse quantity's suffix";

const BINARY_EXPONENTS: Readonly<Record<string, number>> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL_EXPONENTS: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, "": 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
/** apimachinery keeps the exponent in an int32 that it negates, so ±(2^31-1). */
const MAX_EXPONENT = 2_147_483_647;
/**
 * Past this many decimal digits a value is astronomically beyond anything a node has; apimachinery
 * would carry it, vks refuses it rather than build a bigint with two billion digits.
 */
const MAX_DIGITS = 1000;
const NANO = 1_000_000_000n;
/** apimachinery's maxAllowed: binary quantities above it are capped to it. */
export const MAX_INT64 = (1n << 63n) - 1n;
const SUFFIX_CHARS = "eEinumkKMGTP";

function isDigit(char: string | undefined): boolean {
  return char !== undefined && char >= "0" && char <= "9";
}

/** apimachinery's parseQuantityString: sign, numerator digits, fraction digits, suffix. */
function scan(text: string): { positive: boolean; whole: string; fraction: string; suffix: string } | undefined {
  let position = 0;
  let positive = true;
  if (text[0] === "-" || text[0] === "+") {
    positive = text[0] === "+";
    position = 1;
  }
  let start = position;
  while (isDigit(text[position])) position += 1;
  const whole = text.slice(start, position);
  let fraction = "";
  if (text[position] === ".") {
    position += 1;
    start = position;
    while (isDigit(text[position])) position += 1;
    fraction = text.slice(start, position);
  }
  const suffixStart = position;
  while (position < text.length && SUFFIX_CHARS.includes(text[position] as string)) position += 1;
  if (text[position] === "-" || text[position] === "+") position += 1;
  while (isDigit(text[position])) position += 1;
  // Anything left is not part of a suffix: "5x", "1 ", "1.1.M".
  if (position !== text.length) return undefined;
  return { positive, whole, fraction, suffix: text.slice(suffixStart) };
}

/** A suffix as apimachinery's suffixer interprets it: base, exponent and the format it implies. */
function interpretSuffix(suffix: string): { base: 2 | 10; exponent: number; format: QuantityFormat } | undefined {
  const binary = BINARY_EXPONENTS[suffix];
  if (binary !== undefined) return { base: 2, exponent: binary, format: "BinarySI" };
  const decimal = DECIMAL_EXPONENTS[suffix];
  if (decimal !== undefined) return { base: 10, exponent: decimal, format: "DecimalSI" };
  if (suffix.length > 1 && (suffix[0] === "e" || suffix[0] === "E")) {
    const digits = suffix.slice(1);
    if (!/^[+-]?\d+$/.test(digits)) return undefined;
    const exponent = Number(digits);
    if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > MAX_EXPONENT) return undefined;
    return { base: 10, exponent, format: "DecimalExponent" };
  }
  return undefined;
}

function ceilDivide(numerator: bigint, denominator: bigint): bigint {
  const quotient = numerator / denominator;
  return quotient * denominator < numerator ? quotient + 1n : quotient;
}

/** Parses a quantity, or says why it is not one (apimachinery's error texts). */
export function parseQuantityDetailed(text: string): ParsedQuantity {
  if (text === "") return { ok: false, reason: FORMAT_WRONG };
  const scanned = scan(text);
  if (scanned === undefined) return { ok: false, reason: FORMAT_WRONG };
  const interpreted = interpretSuffix(scanned.suffix);
  if (interpreted === undefined) return { ok: false, reason: SUFFIX_WRONG };
  const { base, exponent } = interpreted;
  let format = interpreted.format;
  const digits = (scanned.whole + scanned.fraction).replace(/^0+/, "");
  if (digits === "") return { ok: true, quantity: { numerator: 0n, denominator: 1n }, format };
  // The magnitude, computed without building it: a value past MAX_DIGITS is refused, one far below a
  // nano-unit rounds up to exactly 1n, as apimachinery's rounding would.
  const decimalPlaces = scanned.fraction.length - (base === 10 ? exponent : 0);
  const integerDigits = digits.length - decimalPlaces + (base === 2 ? Math.ceil((exponent * 3) / 10) : 0);
  if (integerDigits > MAX_DIGITS) return { ok: false, reason: `out of range: more than ${MAX_DIGITS} digits` };
  let magnitude: Quantity;
  if (integerDigits < -MAX_DIGITS) {
    magnitude = { numerator: 1n, denominator: NANO };
  } else {
    let numerator = BigInt(digits);
    let denominator = 1n;
    if (base === 2) numerator <<= BigInt(exponent);
    if (decimalPlaces >= 0) denominator = 10n ** BigInt(decimalPlaces);
    else numerator *= 10n ** BigInt(-decimalPlaces);
    // Round up to whole nano-units, away from zero ("if you want some resources, you get some").
    const nanos = ceilDivide(numerator * NANO, denominator);
    magnitude = reduce({ numerator: nanos, denominator: NANO });
  }
  if (format === "BinarySI" && compareQuantities(magnitude, { numerator: MAX_INT64, denominator: 1n }) > 0) {
    magnitude = { numerator: MAX_INT64, denominator: 1n };
  }
  // A binary amount below one (0.000000000001Ki) is shown in decimal, as apimachinery does.
  if (format === "BinarySI" && magnitude.numerator < magnitude.denominator) format = "DecimalSI";
  const quantity = scanned.positive ? magnitude : { numerator: -magnitude.numerator, denominator: magnitude.denominator };
  return { ok: true, quantity, format };
}

/** Parses a quantity; undefined when it is not one. */
export function parseQuantity(text: string): Quantity | undefined {
  const parsed = parseQuantityDetailed(text);
  return parsed.ok ? parsed.quantity : undefined;
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

function reduce(quantity: Quantity): Quantity {
  const divisor = gcd(quantity.numerator, quantity.denominator);
  return divisor <= 1n ? quantity : { numerator: quantity.numerator / divisor, denominator: quantity.denominator / divisor };
}

export function addQuantities(a: Quantity, b: Quantity): Quantity {
  return reduce({ numerator: a.numerator * b.denominator + b.numerator * a.denominator, denominator: a.denominator * b.denominator });
}

export function compareQuantities(a: Quantity, b: Quantity): number {
  const difference = a.numerator * b.denominator - b.numerator * a.denominator;
  return difference > 0n ? 1 : difference < 0n ? -1 : 0;
}

export const ZERO_QUANTITY: Quantity = { numerator: 0n, denominator: 1n };

/** apimachinery's MilliValue: thousandths, rounded up (a CPU amount in millicores). */
export function milliValue(quantity: Quantity): bigint {
  return ceilDivide(quantity.numerator * 1000n, quantity.denominator);
}

/** apimachinery's Value: whole units, rounded up (an amount of bytes). */
export function wholeValue(quantity: Quantity): bigint {
  return ceilDivide(quantity.numerator, quantity.denominator);
}

/** True when the amount is a whole number of thousandths (what a CPU amount must be for vks). */
export function isWholeMilli(quantity: Quantity): boolean {
  return (quantity.numerator * 1000n) % quantity.denominator === 0n;
}
