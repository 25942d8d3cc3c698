/**
 * The kubelet's resource admission and the statuses of pods the node fails itself (rejected at admission,
 * or past activeDeadlineSeconds). Pure.
 */
import type { V1Pod, V1PodStatus } from "@kubernetes/client-node";
import type { V1ContainerStateTerminated } from "@kubernetes/client-node";
import { podRequests } from "./resources.ts";
import { milliValue, parseQuantity, wholeValue } from "./quantity.ts";
import type { Allocatable } from "./resource-field.ts";

/** Why the node failed a pod, as the kubelet words it in the pod's status. */
export interface PodFailure {
  reason: string;
  message: string;
  /** Rejected pods never ran: the kubelet reports no container statuses for them. */
  rejected: boolean;
}

export const DEADLINE_EXCEEDED: Omit<PodFailure, "rejected"> = {
  reason: "DeadlineExceeded",
  message: "Pod was active on the node longer than the specified deadline",
};

/** `--system-reserved` and `--kube-reserved` taken off allocatable, as the kubelet's node allocatable. */
export function subtractReserved(allocatable: Allocatable, reserved: readonly Allocatable[]): Allocatable {
  const result: Record<string, string> = { ...allocatable };
  for (const [name, kind] of [["cpu", "milli"], ["memory", "bytes"], ["ephemeral-storage", "bytes"]] as const) {
    const total = parseQuantity(allocatable[name] ?? "0");
    if (total === undefined) continue;
    const measure = (text: string | undefined) => {
      const quantity = parseQuantity(text ?? "0");
      return quantity === undefined ? 0n : kind === "milli" ? milliValue(quantity) : wholeValue(quantity);
    };
    const taken = reserved.reduce((sum, list) => sum + measure(list[name]), 0n);
    if (taken === 0n) continue;
    const left = (kind === "milli" ? milliValue(total) : wholeValue(total)) - taken;
    const clamped = left < 0n ? 0n : left;
    result[name] = kind === "milli" ? `${clamped}m` : String(clamped);
  }
  return result;
}

/**
 * The kubelet's admission of a pod against the node's allocatable and the requests of the pods already
 * on it (not finished): undefined to admit, else the failure (reason OutOfcpu / OutOfmemory, the
 * kubelet's "Pod was rejected: Node didn't have enough resource: …" message).
 */
export function admissionFailure(pod: V1Pod, allocatable: Allocatable, running: readonly V1Pod[] | (() => readonly V1Pod[])): PodFailure | undefined {
  const wanted = podRequests(pod);
  // A pod asking for nothing always fits: the other pods need not even be looked at.
  if (wanted.cpuMilli === 0n && wanted.memoryBytes === 0n) return undefined;
  const others = typeof running === "function" ? running() : running;
  const used = others.reduce(
    (sum, other) => {
      const requests = podRequests(other);
      return { cpuMilli: sum.cpuMilli + requests.cpuMilli, memoryBytes: sum.memoryBytes + requests.memoryBytes };
    },
    { cpuMilli: 0n, memoryBytes: 0n },
  );
  const capacity = {
    cpu: milliValue(parseQuantity(allocatable.cpu ?? "0") ?? { numerator: 0n, denominator: 1n }),
    memory: wholeValue(parseQuantity(allocatable.memory ?? "0") ?? { numerator: 0n, denominator: 1n }),
  };
  const checks = [
    { name: "cpu", requested: wanted.cpuMilli, used: used.cpuMilli, capacity: capacity.cpu },
    { name: "memory", requested: wanted.memoryBytes, used: used.memoryBytes, capacity: capacity.memory },
  ];
  for (const check of checks) {
    // A pod asking for none of a resource fits whatever is left, as in the scheduler's fit check.
    if (check.requested === 0n || check.used + check.requested <= check.capacity) continue;
    return {
      reason: `OutOf${check.name}`,
      message: `Pod was rejected: Node didn't have enough resource: ${check.name}, requested: ${check.requested}, used: ${check.used}, capacity: ${check.capacity}`,
      rejected: true,
    };
  }
  return undefined;
}

/**
 * A pod the node failed: phase Failed with the reason; containers still shown running are shown as the
 * kill left them (their last exit, else the kubelet's 137).
 */
export function failedPodStatus(status: V1PodStatus, failure: PodFailure, lastTerminated: Record<string, V1ContainerStateTerminated>): V1PodStatus {
  const ready = (status.conditions ?? []).map((condition) =>
    condition.type === "Ready" || condition.type === "ContainersReady" ? { ...condition, status: "False", reason: "PodFailed" } : condition,
  );
  if (failure.rejected) {
    const { containerStatuses: _containers, initContainerStatuses: _init, ...rest } = status;
    return { ...rest, phase: "Failed", reason: failure.reason, message: failure.message, conditions: ready };
  }
  const stop = (statuses: V1PodStatus["containerStatuses"]) =>
    statuses?.map((container) =>
      container.state?.terminated !== undefined
        ? container
        : {
            ...container,
            ready: false,
            ...(container.started === undefined ? {} : { started: false }),
            state: { terminated: lastTerminated[container.name] ?? { exitCode: 137, reason: "Error", message: failure.message } },
          },
    );
  return {
    ...status,
    phase: "Failed",
    reason: failure.reason,
    message: failure.message,
    conditions: ready,
    ...(status.containerStatuses === undefined ? {} : { containerStatuses: stop(status.containerStatuses) }),
    ...(status.initContainerStatuses === undefined ? {} : { initContainerStatuses: stop(status.initContainerStatuses) }),
  };
}
