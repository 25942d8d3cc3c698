/**
 * A pod's QoS class, computed as the API server does when it admits the pod. The class is immutable in
 * the API (a status update carrying another one is rejected), so vks must report exactly the same class,
 * even though it enforces no resources itself.
 */
import type { V1Container, V1Pod } from "@kubernetes/client-node";

export type QOSClass = "Guaranteed" | "Burstable" | "BestEffort";

/** An exact rational, so that `0.5` and `500m` compare equal and nothing is lost to floating point. */
interface Quantity {
  numerator: bigint;
  denominator: bigint;
}

const BINARY_SUFFIXES: Readonly<Record<string, bigint>> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};
const DECIMAL_EXPONENTS: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, "": 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const QUANTITY = /^([+-]?)(\d*)(?:\.(\d*))?(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/;

/** Parses a resource quantity ("100m", "1.5Gi", "2e3"); undefined when it is not one. */
export function parseQuantity(text: string): Quantity | undefined {
  const match = QUANTITY.exec(text.trim());
  if (match === null) return undefined;
  const [, sign = "", whole = "", fraction = "", exponent, suffix = ""] = match;
  if (whole === "" && fraction === "") return undefined;
  let numerator = BigInt(whole + fraction || "0");
  let denominator = 10n ** BigInt(fraction.length);
  const binary = BINARY_SUFFIXES[suffix];
  if (binary !== undefined) {
    numerator *= binary;
  } else {
    const power = exponent !== undefined ? Number(exponent.slice(1)) : (DECIMAL_EXPONENTS[suffix] ?? 0);
    if (power >= 0) numerator *= 10n ** BigInt(power);
    else denominator *= 10n ** BigInt(-power);
  }
  return { numerator: sign === "-" ? -numerator : numerator, denominator };
}

function add(a: Quantity, b: Quantity): Quantity {
  return { numerator: a.numerator * b.denominator + b.numerator * a.denominator, denominator: a.denominator * b.denominator };
}

function compare(a: Quantity, b: Quantity): number {
  const difference = a.numerator * b.denominator - b.numerator * a.denominator;
  return difference > 0n ? 1 : difference < 0n ? -1 : 0;
}

const ZERO: Quantity = { numerator: 0n, denominator: 1n };
/** Only these resources count towards QoS. */
const QOS_RESOURCES = new Set(["cpu", "memory"]);

/** The positive cpu/memory quantities of one requests or limits map. */
function positiveQuantities(values: Record<string, string> | undefined): Map<string, Quantity> {
  const quantities = new Map<string, Quantity>();
  for (const [resource, text] of Object.entries(values ?? {})) {
    if (!QOS_RESOURCES.has(resource)) continue;
    const quantity = parseQuantity(String(text));
    if (quantity !== undefined && compare(quantity, ZERO) > 0) quantities.set(resource, quantity);
  }
  return quantities;
}

function addInto(totals: Map<string, Quantity>, quantities: Map<string, Quantity>): void {
  for (const [resource, quantity] of quantities) totals.set(resource, add(totals.get(resource) ?? ZERO, quantity));
}

/**
 * Guaranteed: every container limits cpu and memory, and requests equal limits. BestEffort: nothing
 * requested or limited. Anything else is Burstable. A pod-level `spec.resources` takes precedence.
 */
export function podQOSClass(pod: V1Pod): QOSClass {
  const podResources = pod.spec?.resources;
  const containers: V1Container[] = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  const sources = podResources !== undefined && (podResources.limits !== undefined || podResources.requests !== undefined)
    ? [podResources]
    : containers.map((container) => container.resources ?? {});
  const requests = new Map<string, Quantity>();
  const limits = new Map<string, Quantity>();
  let guaranteed = true;
  for (const resources of sources) {
    // The API server defaults an unset request to its limit before computing the class.
    addInto(requests, positiveQuantities({ ...resources.limits, ...resources.requests }));
    const limited = positiveQuantities(resources.limits);
    addInto(limits, limited);
    if (!limited.has("cpu") || !limited.has("memory")) guaranteed = false;
  }
  if (requests.size === 0 && limits.size === 0) return "BestEffort";
  if (guaranteed) {
    for (const [resource, requested] of requests) {
      const limit = limits.get(resource);
      if (limit === undefined || compare(limit, requested) !== 0) guaranteed = false;
    }
  }
  return guaranteed && requests.size === limits.size ? "Guaranteed" : "Burstable";
}
