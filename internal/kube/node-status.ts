/**
 * The Node object vks registers and the status it reports, computed from host facts and readings.
 * Pure: the controller supplies the clock, the readings and the node as the API server has it.
 */
import { subtractReserved } from "../pod/admission.ts";
import type { V1Node, V1NodeCondition, V1NodeStatus, V1Taint } from "@kubernetes/client-node";
import type { HostFacts, HostReadings } from "./host.ts";
import { timeValue } from "./wire.ts";

export interface NodeSettings {
  name: string;
  internalIP: string;
  externalIP?: string;
  /** daemonEndpoints.kubeletEndpoint.port. */
  port: number;
  maxPods: number;
  /** Whether the manager can enforce pod limits (limitsCondition), reported with the other conditions. */
  limitsCondition?: V1NodeCondition;
  /** --system-reserved and --kube-reserved, taken off allocatable as the kubelet's node allocatable. */
  reserved?: Record<string, string>[];
  /** Whether to carry the virtual-kubelet NoSchedule taint (off with --disable-taint). */
  taint: boolean;
  kubeletVersion: string;
  /** From --node-labels, already checked against what NodeRestriction lets a node set. */
  extraLabels?: Record<string, string>;
}

export const VKS_TAINT: V1Taint = { key: "virtual-kubelet.io/provider", value: "vks", effect: "NoSchedule" };

/** The kubelet's default hard eviction thresholds: beyond them it reports pressure. */
export const PRESSURE_THRESHOLDS = {
  memoryAvailableBytes: 100 * 1024 * 1024,
  filesystemAvailableFraction: 0.1,
  inodesFreeFraction: 0.05,
  /** The kubelet has no default pid threshold; vks reports pressure when fewer than 10% of pids are left. */
  processesAvailableFraction: 0.1,
} as const;

/** The condition types vks owns; any other condition on the node belongs to someone else and is kept. */
export const OWN_CONDITION_TYPES = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] as const;

/**
 * Only labels NodeRestriction lets a node set on itself (see node-labels.ts): with a kubelet's credentials
 * any other `kubernetes.io` label makes the API server refuse the node. vks' own labels win over
 * --node-labels, as the kubelet's do.
 */
export function nodeLabels(settings: NodeSettings, facts: HostFacts): Record<string, string> {
  return {
    ...settings.extraLabels,
    "kubernetes.io/os": "linux",
    "kubernetes.io/arch": facts.architecture,
    "kubernetes.io/hostname": settings.name,
    "beta.kubernetes.io/os": "linux",
    "beta.kubernetes.io/arch": facts.architecture,
    type: "virtual-kubelet",
  };
}

/** `existing` with vks' taint added or removed; taints others put on the node stay. */
export function nodeTaints(existing: V1Taint[] | undefined, withTaint: boolean): V1Taint[] {
  const others = (existing ?? []).filter((taint) => !(taint.key === VKS_TAINT.key && taint.effect === VKS_TAINT.effect));
  return withTaint ? [...others, { ...VKS_TAINT }] : others;
}

function kibibytes(bytes: number): string {
  return `${Math.floor(bytes / 1024)}Ki`;
}

export interface HostCapacity {
  memoryBytes: number;
  ephemeralStorageBytes: number;
}

/** Everything in the status except conditions. */
export function nodeStatusFields(settings: NodeSettings, facts: HostFacts, capacity: HostCapacity, systemdVersion: string): V1NodeStatus {
  const addresses = [{ type: "InternalIP", address: settings.internalIP }];
  if (settings.externalIP) addresses.push({ type: "ExternalIP", address: settings.externalIP });
  addresses.push({ type: "Hostname", address: settings.name });
  return {
    capacity: {
      cpu: String(facts.cpuCount),
      memory: kibibytes(capacity.memoryBytes),
      "ephemeral-storage": kibibytes(capacity.ephemeralStorageBytes),
      pods: String(settings.maxPods),
    },
    // As the kubelet does: allocatable leaves out what eviction would reclaim anyway.
    allocatable: subtractReserved(
      {
        cpu: String(facts.cpuCount),
        memory: kibibytes(Math.max(0, capacity.memoryBytes - PRESSURE_THRESHOLDS.memoryAvailableBytes)),
        "ephemeral-storage": kibibytes(capacity.ephemeralStorageBytes * (1 - PRESSURE_THRESHOLDS.filesystemAvailableFraction)),
        pods: String(settings.maxPods),
      },
      settings.reserved ?? [],
    ),
    addresses,
    daemonEndpoints: { kubeletEndpoint: { Port: settings.port } },
    nodeInfo: {
      machineID: facts.machineID,
      systemUUID: facts.systemUUID,
      bootID: facts.bootID,
      kernelVersion: facts.kernelVersion,
      osImage: facts.osImage,
      containerRuntimeVersion: `systemd://${systemdVersion}`,
      kubeletVersion: settings.kubeletVersion,
      kubeProxyVersion: "",
      operatingSystem: "linux",
      architecture: facts.architecture,
    },
  };
}

/** The truth as observed: whether systemd answered, and the readings (or why they could not be taken). */
export interface NodeHealth {
  systemdHealthy: boolean;
  /** Why systemd cannot be reached, when the runtime knows (the bus was lost and vks is reconnecting). */
  systemdProblem?: string;
  readings: HostReadings | { error: string };
}

type ConditionStatus = "True" | "False" | "Unknown";

function condition(type: string, status: ConditionStatus, reason: string, message: string): V1NodeCondition {
  return { type, status, reason, message };
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${((part / whole) * 100).toFixed(1)}%` : "?";
}

function mebibytes(bytes: number): string {
  return `${Math.round(bytes / (1024 * 1024))}Mi`;
}

/** The condition type saying whether pods' resource limits are enforced on this node. */
export const LIMITS_CONDITION = "vks.io/LimitsEnforced";

/**
 * Whether the manager can enforce pods' cpu, memory and pid limits: a node whose pods' limits would be
 * only written down says so in its status, not just in each pod's events.
 */
export function limitsCondition(scope: "system" | "user", controllers: ReadonlySet<string>): V1NodeCondition {
  const missing = ["cpu", "memory", "pids"].filter((controller) => !controllers.has(controller));
  const manager = `the systemd ${scope} manager`;
  if (missing.length === 0) return condition(LIMITS_CONDITION, "True", "CgroupControllersAvailable", `${manager} enforces cpu, memory and pids limits`);
  const why =
    scope === "user"
      ? "a user manager on a cgroup v1 host has no controllers; on cgroup v2 they must be delegated to user@.service"
      : "those hierarchies are not mounted";
  return condition(LIMITS_CONDITION, "False", "CgroupControllersMissing", `${manager} cannot enforce ${missing.join(", ")} limits of pods (${why}): they are set on the units but not enforced`);
}

/** vks' four conditions, without times. Reasons are the kubelet's, which tools and people look for. */
export function observedConditions(health: NodeHealth, settings?: Pick<NodeSettings, "limitsCondition">): V1NodeCondition[] {
  const conditions = healthConditions(health);
  return settings?.limitsCondition === undefined ? conditions : [...conditions, settings.limitsCondition];
}

function healthConditions(health: NodeHealth): V1NodeCondition[] {
  const ready = health.systemdHealthy
    ? condition("Ready", "True", "KubeletReady", "vks is posting ready status; systemd answers on D-Bus")
    : condition(
        "Ready",
        "False",
        "SystemdUnavailable",
        health.systemdProblem === undefined
          ? "systemd does not answer on D-Bus: vks cannot start or watch pods"
          : `${health.systemdProblem}: vks cannot start or watch pods until systemd answers again (it reconnects by itself); running pods keep running`,
      );
  if ("error" in health.readings) {
    const message = `vks cannot read host state: ${health.readings.error}`;
    return [
      ready,
      condition("MemoryPressure", "Unknown", "NodeStatusUnknown", message),
      condition("DiskPressure", "Unknown", "NodeStatusUnknown", message),
      condition("PIDPressure", "Unknown", "NodeStatusUnknown", message),
    ];
  }
  const r = health.readings;
  const memoryLow = r.memoryAvailableBytes < PRESSURE_THRESHOLDS.memoryAvailableBytes;
  const memoryDetail = `${mebibytes(r.memoryAvailableBytes)} of ${mebibytes(r.memoryTotalBytes)} available`;
  const fs = r.filesystem;
  const spaceLow = fs.capacityBytes > 0 && fs.availableBytes / fs.capacityBytes < PRESSURE_THRESHOLDS.filesystemAvailableFraction;
  const inodesLow = fs.inodes > 0 && fs.inodesFree / fs.inodes < PRESSURE_THRESHOLDS.inodesFreeFraction;
  const diskDetail = `${fs.path}: ${percent(fs.availableBytes, fs.capacityBytes)} space and ${fs.inodes > 0 ? percent(fs.inodesFree, fs.inodes) : "unlimited"} inodes free`;
  const pidsLow = r.processLimit > 0 && (r.processLimit - r.processCount) / r.processLimit < PRESSURE_THRESHOLDS.processesAvailableFraction;
  const pidDetail = `${r.processCount} processes of at most ${r.processLimit}`;
  return [
    ready,
    memoryLow
      ? condition("MemoryPressure", "True", "KubeletHasInsufficientMemory", `memory is low: ${memoryDetail}`)
      : condition("MemoryPressure", "False", "KubeletHasSufficientMemory", `sufficient memory: ${memoryDetail}`),
    spaceLow || inodesLow
      ? condition("DiskPressure", "True", "KubeletHasDiskPressure", `disk is low: ${diskDetail}`)
      : condition("DiskPressure", "False", "KubeletHasNoDiskPressure", `no disk pressure: ${diskDetail}`),
    pidsLow
      ? condition("PIDPressure", "True", "KubeletHasInsufficientPID", `pids are low: ${pidDetail}`)
      : condition("PIDPressure", "False", "KubeletHasSufficientPID", `sufficient pids: ${pidDetail}`),
  ];
}

/**
 * The node's full condition list: vks' conditions stamped with `now` as heartbeat (keeping the previous
 * transition time when the status did not change), followed by every condition another component owns.
 */
export function mergeNodeConditions(existing: V1NodeCondition[] | undefined, observed: V1NodeCondition[], now: Date): V1NodeCondition[] {
  const previous = new Map((existing ?? []).map((c) => [c.type, c]));
  const own = observed.map((c) => {
    const before = previous.get(c.type);
    const unchanged = before !== undefined && before.status === c.status && timeValue(before.lastTransitionTime) !== undefined;
    return {
      ...c,
      lastHeartbeatTime: now,
      lastTransitionTime: unchanged ? new Date(timeValue(before.lastTransitionTime) ?? now.getTime()) : now,
    };
  });
  const ownTypes = new Set(observed.map((c) => c.type));
  return [...own, ...(existing ?? []).filter((c) => !ownTypes.has(c.type))];
}

/**
 * Whether `current` already says what `observed` says (status and reason of each observed type), so an
 * unchanged status can wait for the next report. Messages carry readings and change all the time.
 */
export function sameConditions(current: V1NodeCondition[] | undefined, observed: V1NodeCondition[]): boolean {
  const byType = new Map((current ?? []).map((c) => [c.type, c]));
  return observed.every((c) => byType.get(c.type)?.status === c.status && byType.get(c.type)?.reason === c.reason);
}

/** The Node object as first created: metadata and spec; status is written through the status subresource. */
export function newNode(settings: NodeSettings, facts: HostFacts): V1Node {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: settings.name,
      labels: nodeLabels(settings, facts),
      annotations: { "node.alpha.kubernetes.io/ttl": "0" },
    },
    spec: { taints: nodeTaints(undefined, settings.taint) },
  };
}
