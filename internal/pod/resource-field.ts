/**
 * `resourceFieldRef` (downward API): a container's requests and limits as the kubelet reports them, for env
 * and for downwardAPI volumes alike. Pure.
 *
 * The kubelet's rules (pkg/api/v1/resource/helpers.go ExtractContainerResourceValue and
 * kubelet_pods.go defaultPodLimitsForDownwardAPI):
 * - A limit the container does not set is the node's allocatable amount of that resource.
 * - A request the container does not set is its limit when it sets one (the API server's defaulting,
 *   which `pod up` has no API server to do), else 0.
 * - cpu: ceil(milli-cores / divisor in milli-cores); memory and ephemeral-storage: ceil(bytes / divisor),
 *   bytes themselves rounded up to a whole byte. The divisor defaults to 1.
 */
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { parseQuantity } from "./qos.ts";

type Quantity = NonNullable<ReturnType<typeof parseQuantity>>;

/** The node's allocatable resources (the Node status field), as quantities: `{cpu: "4", memory: "8Gi"}`. */
export type Allocatable = Readonly<Record<string, string>>;

export const RESOURCE_FIELDS = [
  "limits.cpu",
  "limits.memory",
  "limits.ephemeral-storage",
  "requests.cpu",
  "requests.memory",
  "requests.ephemeral-storage",
] as const;
export type ResourceField = (typeof RESOURCE_FIELDS)[number];

export function isResourceField(resource: string): resource is ResourceField {
  return (RESOURCE_FIELDS as readonly string[]).includes(resource);
}

const CPU_DIVISORS = ["1m", "1"];
const BYTE_DIVISORS = ["1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"];

function equal(a: Quantity, b: Quantity): boolean {
  return a.numerator * b.denominator === b.numerator * a.denominator;
}

/** The divisors the API server accepts for a resource (by value: `1000m` is `1`). */
export function allowedDivisors(resource: ResourceField): string[] {
  return resource.endsWith(".cpu") ? CPU_DIVISORS : BYTE_DIVISORS;
}

/** Undefined when the divisor is fine, else the API server's message. */
export function divisorProblem(resource: ResourceField, divisor: string): string | undefined {
  const quantity = parseQuantity(divisor);
  const allowed = allowedDivisors(resource);
  if (quantity !== undefined && allowed.some((candidate) => equal(quantity, parseQuantity(candidate) as Quantity))) return undefined;
  const kind = resource.endsWith(".cpu") ? "cpu" : resource.endsWith(".memory") ? "memory" : "local ephemeral storage";
  return `only divisor's values ${allowed.join(", ")} are supported with the ${kind} resource`;
}

function ceilDiv(numerator: bigint, denominator: bigint): bigint {
  const quotient = numerator / denominator;
  return quotient * denominator === numerator || numerator < 0n ? quotient : quotient + 1n;
}

/** Thrown when a value cannot be computed (an unparsable quantity the validator should have refused). */
export class ResourceFieldError extends Error {}

function quantityOf(text: string | undefined, what: string): Quantity | undefined {
  if (text === undefined) return undefined;
  const quantity = parseQuantity(String(text));
  if (quantity === undefined) throw new ResourceFieldError(`${what}: ${JSON.stringify(text)} is not a quantity`);
  return quantity;
}

/**
 * The value the kubelet gives `resource` of `container` with `divisor` (default "1"). `allocatable` fills a
 * missing limit; without it, a missing limit throws ResourceFieldError.
 */
export function resourceFieldValue(container: V1Container, resource: ResourceField, divisor: string | undefined, allocatable: Allocatable | undefined): string {
  const [kind, name = ""] = resource.split(".") as ["limits" | "requests", string];
  const limits: Record<string, string> = container.resources?.limits ?? {};
  const requests: Record<string, string> = container.resources?.requests ?? {};
  const limitText = limits[name] !== undefined ? String(limits[name]) : undefined;
  let amount: Quantity | undefined;
  if (kind === "limits") {
    amount = quantityOf(limitText, `resources.limits.${name}`);
    if (amount === undefined) {
      const nodeAmount = allocatable?.[name];
      if (nodeAmount === undefined) throw new ResourceFieldError(`the node's allocatable ${name} is not known, and the container sets no limit`);
      amount = quantityOf(nodeAmount, `node allocatable ${name}`);
    }
  } else {
    const requestText = requests[name] !== undefined ? String(requests[name]) : undefined;
    amount = quantityOf(requestText ?? limitText ?? "0", `resources.requests.${name}`);
  }
  const by = quantityOf(divisor ?? "1", "divisor") as Quantity;
  if (by.numerator <= 0n) throw new ResourceFieldError(`divisor ${JSON.stringify(divisor)} must be positive`);
  const value = amount as Quantity;
  if (name === "cpu") {
    // MilliValue rounds up; so does the division.
    const milli = ceilDiv(value.numerator * 1000n, value.denominator);
    const divisorMilli = ceilDiv(by.numerator * 1000n, by.denominator);
    return ceilDiv(milli, divisorMilli).toString();
  }
  const bytes = ceilDiv(value.numerator, value.denominator);
  const divisorBytes = ceilDiv(by.numerator, by.denominator);
  return ceilDiv(bytes, divisorBytes).toString();
}

/** The container a resourceFieldRef means: `containerName` when given, else the one being configured. */
export function resourceFieldContainer(pod: V1Pod, own: V1Container, containerName: string | undefined): V1Container | undefined {
  if (containerName === undefined || containerName === "") return own;
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((container) => container.name === containerName);
}
