/**
 * Which of a pod's limits the manager cannot enforce, said in words. Pure.
 */
import type { V1Pod } from "@kubernetes/client-node";
import type { LimitController } from "../systemd/controllers.ts";
import type { ManagerScope } from "../systemd/types.ts";
import { containerCgroup, planPodSlice, type SliceOptions } from "./resources.ts";

/** undefined when every limit the pod asks for has its controller, else a warning naming what is lost. */
export function unenforcedLimits(pod: V1Pod, options: SliceOptions, controllers: ReadonlySet<LimitController>, scope: ManagerScope): string | undefined {
  const slice = planPodSlice(pod, options).cgroup;
  const units = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((container) => containerCgroup(pod, container) ?? {});
  const wants = new Set<string>();
  for (const cgroup of [slice, ...units]) {
    if (cgroup.memoryMax !== undefined) wants.add("memory");
    if (cgroup.cpuQuotaPerSecUSec !== undefined) wants.add("cpu");
    if (cgroup.tasksMax !== undefined) wants.add("pids");
  }
  const missing = [...wants].filter((controller) => !controllers.has(controller as LimitController)).sort();
  if (missing.length === 0) return undefined;
  const what = missing.map((controller) => (controller === "cpu" ? "CPU limits" : controller === "memory" ? "memory limits" : "the pid limit")).join(", ");
  const why =
    scope === "user"
      ? "the systemd user manager has no such controller here (on a cgroup v1 host only the system manager can enforce limits; on cgroup v2 the controllers must be delegated to user@.service)"
      : `the system manager has no ${missing.join(", ")} controller mounted`;
  return `${what} not enforced: ${why}; the units are created with them but nothing holds the containers to them`;
}
