/**
 * Where a pod with init containers stands, read from its units alone: which containers are due to start,
 * and which sidecars are due to stop. The engine asks after every unit change and when it adopts a pod,
 * so a vks restarted mid-sequence resumes where the units say the pod is, and never reruns init
 * containers of a pod whose app containers already have units. Pure: the answer depends on its input only.
 */
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import type { UnitState } from "../systemd/types.ts";
import { isRestartableInitContainer } from "./plan.ts";
import { appContainersFinished, containerStateOfUnit } from "./status.ts";

export type InitStep =
  /** Start these containers now: the next init container, or (initialization done) every app container. */
  | { kind: "start"; containers: string[] }
  /** An init container runs, restarts after a failure, or a sidecar has not started yet. */
  | { kind: "wait" }
  /** An init container failed under restartPolicy Never: the pod failed and nothing more starts. */
  | { kind: "failed"; container: string }
  /** App containers have units: initialization is over (whatever its init units show now). */
  | { kind: "initialized" };

type Units = Readonly<Record<string, UnitState | undefined>>;

/**
 * `notStarted`: sidecars whose startup probe has not passed yet for their current run (the prober's
 * results); the kubelet starts the next init container only once a sidecar has started. Without a
 * prober for the pod (pod up -d) a running sidecar counts as started, as its status shows.
 */
export function nextInitStep(pod: V1Pod, units: Units, notStarted: ReadonlySet<string> = new Set()): InitStep {
  const apps = pod.spec?.containers ?? [];
  if (apps.some((container) => units[container.name] !== undefined)) return { kind: "initialized" };
  for (const container of pod.spec?.initContainers ?? []) {
    const unit = units[container.name];
    if (unit === undefined) return { kind: "start", containers: [container.name] };
    const state = containerStateOfUnit(unit, pod, container.name);
    if (isRestartableInitContainer(container)) {
      // The next one starts once the sidecar runs and, with a startup probe, has started.
      if (state.running !== undefined && !notStarted.has(container.name)) continue;
      return { kind: "wait" };
    }
    const terminated = state.terminated;
    if (terminated?.exitCode === 0) continue;
    if (terminated !== undefined && pod.spec?.restartPolicy === "Never") return { kind: "failed", container: container.name };
    return { kind: "wait" };
  }
  return { kind: "start", containers: apps.map((container) => container.name) };
}

/**
 * The sidecars to stop, last first, once every app container has finished for good (restartPolicy Never,
 * or OnFailure with every one exited 0): the kubelet ends sidecars then so the pod can complete. Empty
 * while any app container runs or will run again, and always for restartPolicy Always.
 */
export function sidecarsToStop(pod: V1Pod, units: Units): string[] {
  if (!appContainersFinished(pod, units)) return [];
  return sidecars(pod)
    .filter((container) => units[container.name] !== undefined)
    .map((container) => container.name)
    .reverse();
}

/** The pod's sidecars (restartable init containers), in spec order. */
export function sidecars(pod: V1Pod): V1Container[] {
  return (pod.spec?.initContainers ?? []).filter(isRestartableInitContainer);
}
