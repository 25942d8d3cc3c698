/**
 * `resources` as cgroup settings, computed as the kubelet computes them (pkg/kubelet/cm, kuberuntime),
 * and checked as the API server checks them. Pure.
 *
 * - A container: limits.memory → MemoryMax (and MemorySwapMax=0: the kubelet runs without swap),
 *   limits.cpu → CPUQuota over the kubelet's 100 ms period (at least 1 ms of it, as the kubelet's
 *   MilliCPUToQuota), requests.cpu → CPUWeight by the kubelet's cpu.shares → cgroup v2 weight formula.
 * - The pod's slice: CPUWeight from the pod's effective CPU request; MemoryMax and CPUQuota from
 *   `spec.resources.limits`, else from the containers' limits when every container declares one (the
 *   kubelet's ResourceConfigForPod); TasksMax from `--pod-max-pids`.
 */
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import type { CgroupProperties, SlicePlan } from "../systemd/types.ts";
import { podSliceName } from "../unit/slice.ts";
import { podQOSClass } from "./qos.ts";
import { MAX_INT64, ZERO_QUANTITY, addQuantities, compareQuantities, isWholeMilli, milliValue, parseQuantityDetailed, parseQuantity, wholeValue, type Quantity } from "./quantity.ts";

/** The kubelet's CFS period (cm.QuotaPeriod) and smallest quota (cm.MinQuotaPeriod), in microseconds. */
export const CPU_QUOTA_PERIOD_USEC = 100_000n;
const MIN_QUOTA_USEC = 1_000n;
const MIN_SHARES = 2n;
const MAX_SHARES = 262_144n;
const USEC_PER_SECOND = 1_000_000n;

type Report = (path: string, message: string) => void;
type Fields = Record<string, unknown>;

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const ENFORCED = new Set(["cpu", "memory"]);

/** What vks says about a resource name it does not turn into a cgroup setting; undefined for cpu and memory. */
function resourceNameProblem(name: string, podLevel: boolean): { refuse: boolean; message: string } | undefined {
  if (ENFORCED.has(name)) return undefined;
  if (podLevel) return { refuse: true, message: `Unsupported value: "${name}": supported values: "cpu", "memory"` };
  if (name === "ephemeral-storage") return { refuse: false, message: "not enforced: vks sets no disk quota (the node's ephemeral-storage is reported, not limited)" };
  if (name.startsWith("hugepages-")) return { refuse: true, message: "not supported: vks reserves no huge pages" };
  if (name.includes("/")) return { refuse: true, message: `not supported: this node offers no extended resource "${name}"` };
  return { refuse: true, message: "must be a standard resource type or fully qualified" };
}

function quantityText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return undefined;
}

/**
 * Checks `resources` of a container (`podLevel` false) or `spec.resources`: names, quantities as the API
 * server parses them, no negative amount, CPU in whole millicores (vks cannot apply less: a quota has
 * 1 ms granularity per 100 ms period), and no request above its limit.
 */
export function checkResources(resources: unknown, path: string, podLevel: boolean, refuse: Report, warn: Report = () => undefined): void {
  if (resources === undefined || resources === null) return;
  if (!isFields(resources)) {
    refuse(path, "must be a mapping with limits and requests");
    return;
  }
  if (Array.isArray(resources.claims) && resources.claims.length > 0) refuse(`${path}.claims`, "not supported: vks allocates no dynamic resources");
  const parsed: Record<"limits" | "requests", Map<string, { quantity: Quantity; text: string }>> = { limits: new Map(), requests: new Map() };
  for (const kind of ["limits", "requests"] as const) {
    const list = resources[kind];
    if (list === undefined || list === null) continue;
    if (!isFields(list)) {
      refuse(`${path}.${kind}`, "must be a mapping of resource names to quantities");
      continue;
    }
    for (const [name, value] of Object.entries(list)) {
      const fieldPath = `${path}.${kind}.${name}`;
      const nameProblem = resourceNameProblem(name, podLevel);
      if (nameProblem?.refuse === true) {
        refuse(fieldPath, nameProblem.message);
        continue;
      }
      const text = quantityText(value);
      const result = text === undefined ? undefined : parseQuantityDetailed(text);
      if (text === undefined || result === undefined || !result.ok) {
        refuse(fieldPath, `Invalid value: ${JSON.stringify(value)}: ${result !== undefined && !result.ok ? result.reason : "must be a quantity such as 500m or 64Mi"}`);
        continue;
      }
      if (result.quantity.numerator < 0n) {
        refuse(fieldPath, `Invalid value: "${text}": must be greater than or equal to 0`);
        continue;
      }
      if (name === "cpu" && !isWholeMilli(result.quantity)) {
        refuse(fieldPath, `Invalid value: "${text}": vks applies CPU in whole millicores (1m = 0.001 CPU); write at least 1m`);
        continue;
      }
      if (name === "memory" && compareQuantities(result.quantity, { numerator: MAX_INT64, denominator: 1n }) > 0) {
        refuse(fieldPath, `Invalid value: "${text}": more memory than a cgroup limit can hold`);
        continue;
      }
      if (nameProblem !== undefined) warn(fieldPath, nameProblem.message);
      parsed[kind].set(name, { quantity: result.quantity, text });
    }
  }
  for (const [name, request] of parsed.requests) {
    const limit = parsed.limits.get(name);
    if (limit !== undefined && compareQuantities(request.quantity, limit.quantity) > 0) {
      refuse(`${path}.requests.${name}`, `Invalid value: "${request.text}": must be less than or equal to ${name} limit of ${limit.text}`);
    }
  }
}

function amountOf(list: Record<string, string> | undefined, name: string): Quantity | undefined {
  const text = list?.[name];
  if (text === undefined) return undefined;
  const quantity = parseQuantity(String(text));
  return quantity === undefined || quantity.numerator <= 0n ? undefined : quantity;
}

/** A container's request, defaulted from its limit as the API server does (pod up has no API server). */
function requestOf(container: V1Container, name: string): Quantity | undefined {
  return amountOf(container.resources?.requests, name) ?? amountOf(container.resources?.limits, name);
}

function limitOf(container: V1Container, name: string): Quantity | undefined {
  return amountOf(container.resources?.limits, name);
}

function maxQuantity(a: Quantity, b: Quantity): Quantity {
  return compareQuantities(a, b) >= 0 ? a : b;
}

/**
 * The kubelet's aggregation over a pod's containers (component-helpers resource.PodRequests/PodLimits):
 * app containers and sidecars add up; a run-to-completion init container runs alone next to the
 * sidecars started before it, so the pod needs the larger of the two.
 */
function aggregate(pod: V1Pod, amount: (container: V1Container) => Quantity | undefined): { total: Quantity; everyContainer: boolean } {
  let everyContainer = true;
  const of = (container: V1Container) => {
    const value = amount(container);
    if (value === undefined) everyContainer = false;
    return value ?? ZERO_QUANTITY;
  };
  let sidecars = ZERO_QUANTITY;
  let initPeak = ZERO_QUANTITY;
  for (const container of pod.spec?.initContainers ?? []) {
    if (container.restartPolicy === "Always") sidecars = addQuantities(sidecars, of(container));
    else initPeak = maxQuantity(initPeak, addQuantities(of(container), sidecars));
  }
  let apps = ZERO_QUANTITY;
  for (const container of pod.spec?.containers ?? []) apps = addQuantities(apps, of(container));
  return { total: maxQuantity(addQuantities(apps, sidecars), initPeak), everyContainer };
}

/** The pod's effective requests (what admission and the scheduler count): cpu in millicores, memory in bytes. */
export function podRequests(pod: V1Pod): { cpuMilli: bigint; memoryBytes: bigint } {
  const podLevel = pod.spec?.resources;
  const cpu = amountOf(podLevel?.requests, "cpu") ?? amountOf(podLevel?.limits, "cpu") ?? aggregate(pod, (c) => requestOf(c, "cpu")).total;
  const memory = amountOf(podLevel?.requests, "memory") ?? amountOf(podLevel?.limits, "memory") ?? aggregate(pod, (c) => requestOf(c, "memory")).total;
  return { cpuMilli: milliValue(cpu), memoryBytes: wholeValue(memory) };
}

/** The pod's limits for its slice: pod-level first, else the containers' when all of them declare one. */
function podLimits(pod: V1Pod): { cpu?: Quantity; memory?: Quantity } {
  const podLevel = pod.spec?.resources?.limits;
  const limits: { cpu?: Quantity; memory?: Quantity } = {};
  for (const name of ["cpu", "memory"] as const) {
    const own = amountOf(podLevel, name);
    if (own !== undefined) {
      limits[name] = own;
      continue;
    }
    const summed = aggregate(pod, (container) => limitOf(container, name));
    if (summed.everyContainer) limits[name] = summed.total;
  }
  return limits;
}

/** The kubelet's MilliCPUToShares: 1024 shares per CPU, at least 2, at most 262144. */
export function milliCPUToShares(milli: bigint): bigint {
  const shares = (milli * 1024n) / 1000n;
  return shares < MIN_SHARES ? MIN_SHARES : shares > MAX_SHARES ? MAX_SHARES : shares;
}

/** cpu.shares → cgroup v2 cpu.weight, the conversion the kubelet's runtimes use. */
export function sharesToWeight(shares: bigint): bigint {
  return 1n + ((shares - 2n) * 9999n) / 262_142n;
}

/** CPUQuota= per second for a CPU limit: the kubelet's quota per 100 ms period (at least 1 ms), ×10. */
export function cpuQuotaPerSecond(milli: bigint): bigint {
  const perPeriod = (milli * CPU_QUOTA_PERIOD_USEC) / 1000n;
  const quota = perPeriod < MIN_QUOTA_USEC ? MIN_QUOTA_USEC : perPeriod;
  return (quota * USEC_PER_SECOND) / CPU_QUOTA_PERIOD_USEC;
}

function limitProperties(cpu: Quantity | undefined, memory: Quantity | undefined): CgroupProperties {
  return {
    ...(cpu === undefined ? {} : { cpuQuotaPerSecUSec: cpuQuotaPerSecond(milliValue(cpu)), cpuQuotaPeriodUSec: CPU_QUOTA_PERIOD_USEC }),
    ...(memory === undefined ? {} : { memoryMax: wholeValue(memory), memorySwapMax: 0n }),
  };
}

/** True when any container of the pod asks for CPU: only then do the containers' weights differ. */
function podWeighsCPU(pod: V1Pod): boolean {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].some((container) => requestOf(container, "cpu") !== undefined);
}

/** The cgroup settings of one container's unit; undefined when it has none. */
export function containerCgroup(pod: V1Pod, container: V1Container): CgroupProperties | undefined {
  const request = requestOf(container, "cpu");
  const properties: CgroupProperties = {
    ...(podWeighsCPU(pod) ? { cpuWeight: sharesToWeight(milliCPUToShares(request === undefined ? 0n : milliValue(request))) } : {}),
    ...limitProperties(limitOf(container, "cpu"), limitOf(container, "memory")),
  };
  return Object.keys(properties).length === 0 ? undefined : properties;
}

export interface SliceOptions {
  /** `--pod-max-pids`: TasksMax of every pod's slice; absent or ≤ 0: no limit. */
  podMaxPids?: number;
}

/** The pod's slice: its name (by QoS class) and cgroup settings. */
export function planPodSlice(pod: V1Pod, options: SliceOptions = {}): SlicePlan {
  const namespace = pod.metadata?.namespace || "default";
  const name = pod.metadata?.name ?? "";
  const uid = pod.metadata?.uid ?? "";
  const limits = podLimits(pod);
  const cgroup: CgroupProperties = {
    cpuWeight: sharesToWeight(milliCPUToShares(podRequests(pod).cpuMilli)),
    ...limitProperties(limits.cpu, limits.memory),
    ...(options.podMaxPids !== undefined && options.podMaxPids > 0 ? { tasksMax: BigInt(options.podMaxPids) } : {}),
  };
  return { unitName: podSliceName({ namespace, pod: name, uid, qos: podQOSClass(pod) }), description: `vks pod ${namespace}/${name}`, cgroup };
}

/** Whether the pod asks for any limit a cgroup would enforce (for the enforceability warning). */
export function podHasLimits(pod: V1Pod, options: SliceOptions = {}): boolean {
  const slice = planPodSlice(pod, options).cgroup;
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  return (
    slice.memoryMax !== undefined ||
    slice.cpuQuotaPerSecUSec !== undefined ||
    slice.tasksMax !== undefined ||
    containers.some((container) => limitOf(container, "cpu") !== undefined || limitOf(container, "memory") !== undefined)
  );
}

/**
 * The QoS slices' CPU weights, as the kubelet sets its QoS cgroups' cpu.shares: BestEffort the minimum
 * (2 shares), Burstable the sum of its pods' CPU requests; Guaranteed pods sit in vks.slice itself.
 */
export function qosSliceWeights(pods: readonly V1Pod[]): { burstable: bigint; besteffort: bigint } {
  let burstable = 0n;
  for (const pod of pods) if (podQOSClass(pod) === "Burstable") burstable += podRequests(pod).cpuMilli;
  return { burstable: sharesToWeight(milliCPUToShares(burstable)), besteffort: sharesToWeight(MIN_SHARES) };
}

/**
 * vks.slice as the kubelet's kubepods cgroup under enforce-node-allocatable=pods: with reservations
 * given, pods together may use at most capacity less what is reserved.
 */
export function nodeSliceCgroup(memoryCapacityBytes: bigint, reservedMemoryBytes: bigint): CgroupProperties | undefined {
  if (reservedMemoryBytes <= 0n) return undefined;
  const left = memoryCapacityBytes - reservedMemoryBytes;
  return { memoryMax: left > 0n ? left : 0n };
}

const GUARANTEED_OOM_SCORE_ADJ = -997;
const BESTEFFORT_OOM_SCORE_ADJ = 1000;

/**
 * The kubelet's GetContainerOOMScoreAdjust: under memory pressure the kernel kills BestEffort containers
 * first (1000), Guaranteed and node-critical ones last (-997), Burstable ones by how much of the node's
 * memory they request (1000 - 1000 × request / capacity, within 3 … 999).
 */
export function containerOomScoreAdjust(pod: V1Pod, container: V1Container, memoryCapacityBytes: bigint): number {
  if (pod.spec?.priorityClassName === "system-node-critical") return GUARANTEED_OOM_SCORE_ADJ;
  const qos = podQOSClass(pod);
  if (qos === "Guaranteed") return GUARANTEED_OOM_SCORE_ADJ;
  if (qos === "BestEffort") return BESTEFFORT_OOM_SCORE_ADJ;
  const request = requestOf(container, "memory");
  const bytes = request === undefined ? 0n : wholeValue(request);
  const adjust = memoryCapacityBytes > 0n ? 1000n - (1000n * bytes) / memoryCapacityBytes : 1000n;
  if (adjust < BigInt(1000 + GUARANTEED_OOM_SCORE_ADJ)) return 1000 + GUARANTEED_OOM_SCORE_ADJ;
  if (adjust === BigInt(BESTEFFORT_OOM_SCORE_ADJ)) return BESTEFFORT_OOM_SCORE_ADJ - 1;
  return Number(adjust);
}
