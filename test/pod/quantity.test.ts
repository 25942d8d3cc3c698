/**
 * Quantities parse exactly as apimachinery's ParseQuantity: the cases are Kubernetes' own
 * (staging/src/k8s.io/apimachinery/pkg/api/resource/quantity_test.go, TestQuantityParse and friends),
 * each written here as the exact value it must equal.
 */
import { describe, expect, test } from "bun:test";
import { addQuantities, compareQuantities, isWholeMilli, milliValue, parseQuantity, parseQuantityDetailed, wholeValue, type Quantity, type QuantityFormat } from "../../internal/pod/quantity.ts";

/** value × 10^exponent, as Kubernetes' decQuantity(value, exponent, format) builds it. */
function dec(value: bigint, exponent: number): Quantity {
  return exponent >= 0 ? { numerator: value * 10n ** BigInt(exponent), denominator: 1n } : { numerator: value, denominator: 10n ** BigInt(-exponent) };
}

const KI = 1024n;
const MAX_INT64 = (1n << 63n) - 1n;

/** [input, expected value, expected format] from TestQuantityParse. */
const VALID: [string, Quantity, QuantityFormat][] = [
  ["0", dec(0n, 0), "DecimalSI"],
  ["0n", dec(0n, 0), "DecimalSI"],
  ["0u", dec(0n, 0), "DecimalSI"],
  ["0m", dec(0n, 0), "DecimalSI"],
  ["0Ki", dec(0n, 0), "BinarySI"],
  ["0k", dec(0n, 0), "DecimalSI"],
  ["0Mi", dec(0n, 0), "BinarySI"],
  ["0M", dec(0n, 0), "DecimalSI"],
  ["0Gi", dec(0n, 0), "BinarySI"],
  ["0G", dec(0n, 0), "DecimalSI"],
  ["0Ti", dec(0n, 0), "BinarySI"],
  ["0T", dec(0n, 0), "DecimalSI"],
  ["1", dec(1n, 0), "DecimalSI"],
  ["1Ki", dec(KI, 0), "BinarySI"],
  ["8Ki", dec(8n * KI, 0), "BinarySI"],
  ["7Mi", dec(7n * KI ** 2n, 0), "BinarySI"],
  ["6Gi", dec(6n * KI ** 3n, 0), "BinarySI"],
  ["5Ti", dec(5n * KI ** 4n, 0), "BinarySI"],
  ["4Pi", dec(4n * KI ** 5n, 0), "BinarySI"],
  ["3Ei", dec(3n * KI ** 6n, 0), "BinarySI"],
  ["10Ti", dec(10n * KI ** 4n, 0), "BinarySI"],
  ["100Ti", dec(100n * KI ** 4n, 0), "BinarySI"],
  ["5n", dec(5n, -9), "DecimalSI"],
  ["4u", dec(4n, -6), "DecimalSI"],
  ["3m", dec(3n, -3), "DecimalSI"],
  ["9", dec(9n, 0), "DecimalSI"],
  ["8k", dec(8n, 3), "DecimalSI"],
  ["50k", dec(5n, 4), "DecimalSI"],
  ["7M", dec(7n, 6), "DecimalSI"],
  ["6G", dec(6n, 9), "DecimalSI"],
  ["5T", dec(5n, 12), "DecimalSI"],
  ["40T", dec(4n, 13), "DecimalSI"],
  ["300T", dec(3n, 14), "DecimalSI"],
  ["2P", dec(2n, 15), "DecimalSI"],
  ["1E", dec(1n, 18), "DecimalSI"],
  ["1E-3", dec(1n, -3), "DecimalExponent"],
  ["1e3", dec(1n, 3), "DecimalExponent"],
  ["1E6", dec(1n, 6), "DecimalExponent"],
  ["1e9", dec(1n, 9), "DecimalExponent"],
  ["1E12", dec(1n, 12), "DecimalExponent"],
  ["1e15", dec(1n, 15), "DecimalExponent"],
  ["1E18", dec(1n, 18), "DecimalExponent"],
  ["1e14", dec(1n, 14), "DecimalExponent"],
  ["1e13", dec(1n, 13), "DecimalExponent"],
  ["100.035k", dec(100035n, 0), "DecimalSI"],
  ["0.001", dec(1n, -3), "DecimalSI"],
  ["0.0005k", dec(5n, -1), "DecimalSI"],
  ["0.005", dec(5n, -3), "DecimalSI"],
  ["0.05", dec(5n, -2), "DecimalSI"],
  ["0.5", dec(5n, -1), "DecimalSI"],
  ["0.00050k", dec(5n, -1), "DecimalSI"],
  ["0.00500", dec(5n, -3), "DecimalSI"],
  ["0.05000", dec(5n, -2), "DecimalSI"],
  ["0.50000", dec(5n, -1), "DecimalSI"],
  ["0.5e0", dec(5n, -1), "DecimalExponent"],
  ["0.5e-1", dec(5n, -2), "DecimalExponent"],
  ["0.5e-2", dec(5n, -3), "DecimalExponent"],
  ["10.035M", dec(10035n, 3), "DecimalSI"],
  ["1.2e3", dec(12n, 2), "DecimalExponent"],
  ["1.3E+6", dec(13n, 5), "DecimalExponent"],
  ["1.40e9", dec(14n, 8), "DecimalExponent"],
  ["1.53E12", dec(153n, 10), "DecimalExponent"],
  ["1.6e15", dec(16n, 14), "DecimalExponent"],
  ["1.7E18", dec(17n, 17), "DecimalExponent"],
  ["9.01", dec(901n, -2), "DecimalSI"],
  ["8.1k", dec(81n, 2), "DecimalSI"],
  ["7.123456M", dec(7123456n, 0), "DecimalSI"],
  ["6.987654321G", dec(6987654321n, 0), "DecimalSI"],
  ["5.444T", dec(5444n, 9), "DecimalSI"],
  ["40.1T", dec(401n, 11), "DecimalSI"],
  ["300.2T", dec(3002n, 11), "DecimalSI"],
  ["2.5P", dec(25n, 14), "DecimalSI"],
  ["1.01E", dec(101n, 16), "DecimalSI"],
  // Things that saturate or round: up to whole nano-units, binary values capped at 2^63-1.
  ["3.001n", dec(4n, -9), "DecimalSI"],
  ["1.1E-9", dec(2n, -9), "DecimalExponent"],
  ["0.0000000001", dec(1n, -9), "DecimalSI"],
  ["0.0000000005", dec(1n, -9), "DecimalSI"],
  ["0.00000000050", dec(1n, -9), "DecimalSI"],
  ["0.5e-9", dec(1n, -9), "DecimalExponent"],
  ["0.9n", dec(1n, -9), "DecimalSI"],
  ["0.00000012345", dec(124n, -9), "DecimalSI"],
  ["0.00000012354", dec(124n, -9), "DecimalSI"],
  ["9Ei", dec(MAX_INT64, 0), "BinarySI"],
  ["9223372036854775807Ki", dec(MAX_INT64, 0), "BinarySI"],
  ["12E", dec(12n, 18), "DecimalSI"],
  ["100.035Ki", dec(10243584n, -2), "BinarySI"],
  ["0.5Mi", dec(KI * KI / 2n, 0), "BinarySI"],
  ["0.05Gi", dec(536870912n, -1), "BinarySI"],
  ["0.025Ti", dec(274877906944n, -1), "BinarySI"],
  // "Things written by trolls"
  ["0.000000000001Ki", dec(2n, -9), "DecimalSI"],
  [".001", dec(1n, -3), "DecimalSI"],
  [".0001k", dec(100n, -3), "DecimalSI"],
  ["1.", dec(1n, 0), "DecimalSI"],
  ["1.G", dec(1n, 9), "DecimalSI"],
];

/** TestQuantityParse's invalid list, plus the issue's own. */
const INVALID = ["", "1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-", "1e4294967297", " 1", "1 ", "5x", "1K", "12 Mi", "1Kb", "1e", "1.5.2"];

const same = (a: Quantity | undefined, b: Quantity) => a !== undefined && compareQuantities(a, b) === 0;

describe("parseQuantity: Kubernetes' TestQuantityParse cases", () => {
  for (const [input, expected, format] of VALID) {
    test(input, () => {
      const parsed = parseQuantityDetailed(input);
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) return;
      expect(same(parsed.quantity, expected)).toBe(true);
      expect(parsed.format).toBe(format);
      // The negative and the explicitly positive forms, as Kubernetes' test tries them too.
      expect(same(parseQuantity(`-${input}`), { numerator: -expected.numerator, denominator: expected.denominator })).toBe(true);
      expect(same(parseQuantity(`+${input}`), expected)).toBe(true);
    });
  }
  for (const input of INVALID) {
    test(`refuses ${JSON.stringify(input)}`, () => expect(parseQuantity(input)).toBeUndefined());
  }
  test("a lone point is zero, signed or not (TestParseQuantityString)", () => {
    expect(parseQuantity(".")).toEqual({ numerator: 0n, denominator: 1n });
    expect(parseQuantity("-.")).toEqual({ numerator: 0n, denominator: 1n });
  });
  test("the format error quotes apimachinery's pattern; a bad suffix says so", () => {
    expect(parseQuantityDetailed("5x")).toEqual({ ok: false, reason: "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'" });
    expect(parseQuantityDetailed("1i")).toEqual({ ok: false, reason: "unable to parse quantity's suffix" });
  });
  test("exponents at the int32 edge: tiny values round up to 1n, huge ones are refused", () => {
    expect(same(parseQuantity("1e-2147483647"), dec(1n, -9))).toBe(true);
    expect(parseQuantity("0e2147483647")).toEqual({ numerator: 0n, denominator: 1n });
    expect(parseQuantity("1e2147483647")).toBeUndefined();
  });
});

describe("exact arithmetic", () => {
  test("no floating-point surprises: 0.1 + 0.2 is exactly 0.3, 500m equals 0.5", () => {
    const sum = addQuantities(parseQuantity("0.1") as Quantity, parseQuantity("0.2") as Quantity);
    expect(compareQuantities(sum, parseQuantity("0.3") as Quantity)).toBe(0);
    expect(compareQuantities(parseQuantity("500m") as Quantity, parseQuantity("0.5") as Quantity)).toBe(0);
    expect(compareQuantities(parseQuantity("10000T") as Quantity, parseQuantity("100Gi") as Quantity)).toBe(1);
  });
  test("MilliValue and Value round up, as apimachinery's do", () => {
    expect(milliValue(parseQuantity("0.0001") as Quantity)).toBe(1n);
    expect(milliValue(parseQuantity("1.5") as Quantity)).toBe(1500n);
    expect(wholeValue(parseQuantity("1.5Ki") as Quantity)).toBe(1536n);
    expect(wholeValue(parseQuantity("100m") as Quantity)).toBe(1n);
    expect(wholeValue(parseQuantity("64Mi") as Quantity)).toBe(67108864n);
  });
  test("whole millicores", () => {
    expect(isWholeMilli(parseQuantity("0.001") as Quantity)).toBe(true);
    expect(isWholeMilli(parseQuantity("250m") as Quantity)).toBe(true);
    expect(isWholeMilli(parseQuantity("0.0001") as Quantity)).toBe(false);
    expect(isWholeMilli(parseQuantity("1500u") as Quantity)).toBe(false);
  });
});
