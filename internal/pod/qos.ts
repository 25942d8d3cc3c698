/**
 * A pod's QoS class, computed as the API server does when it admits the pod. The class is immutable in
 * the API (a status update carrying another one is rejected), so vks must report exactly the same class,
 * even though it enforces no resources itself.
 */
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { addQuantities, compareQuantities, parseQuantity, type Quantity } from "./quantity.ts";

export type QOSClass = "Guaranteed" | "Burstable" | "BestEffort";

/** Quantities are parsed by quantity.ts, exactly as the API server parses them. */
export { parseQuantity } from "./quantity.ts";
const add = addQuantities;
const compare = compareQuantities;

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
