/**
 * Which resource controllers the manager vks talks to can enforce: what decides whether a pod's limits
 * mean anything. Pure but for reading /proc/self/mountinfo and cgroup.controllers.
 *
 * - cgroup v2 (unified) host: the controllers enabled for the manager's own cgroup, i.e. listed in its
 *   cgroup.controllers (for a user manager, the ones delegated to user@.service).
 * - cgroup v1 / hybrid host: the system manager uses the v1 hierarchies mounted (memory, cpu, pids); a
 *   user manager never manages v1 controllers, and the hybrid cgroup2 mount carries none, so it can
 *   enforce nothing there.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { mountInfoEntries } from "./cgroup-mounts.ts";
import type { ManagerScope } from "./types.ts";

/** The controllers pod limits need: MemoryMax, CPUQuota/CPUWeight, TasksMax. */
export const LIMIT_CONTROLLERS = ["cpu", "memory", "pids"] as const;
export type LimitController = (typeof LIMIT_CONTROLLERS)[number];

export interface ControllerView {
  /** Where cgroup2 is mounted, with the cgroup it shows as root. */
  unified?: { mountPoint: string; root: string };
  /** The v1 controllers with a hierarchy mounted. */
  v1: Set<string>;
}

export function parseControllerMounts(mountinfo: string): ControllerView {
  const view: ControllerView = { v1: new Set() };
  for (const { fsType, superOptions, root, mountPoint } of mountInfoEntries(mountinfo)) {
    if (fsType === "cgroup2") view.unified = { mountPoint, root };
    else if (fsType === "cgroup") for (const option of superOptions) if ((LIMIT_CONTROLLERS as readonly string[]).includes(option)) view.v1.add(option);
  }
  return view;
}

/**
 * The limit controllers the manager can enforce. `controlGroup` is the manager's own cgroup (its
 * ControlGroup property); `readControllers` reads a cgroup.controllers file (undefined when missing).
 */
export function enforceableControllers(
  scope: ManagerScope,
  controlGroup: string,
  view: ControllerView,
  readControllers: (path: string) => string | undefined,
): Set<LimitController> {
  const found = new Set<LimitController>();
  const hybridOrLegacy = view.v1.size > 0;
  if (hybridOrLegacy && scope === "system") for (const controller of LIMIT_CONTROLLERS) if (view.v1.has(controller)) found.add(controller);
  if (view.unified !== undefined) {
    const root = view.unified.root === "/" ? "" : view.unified.root;
    const group = controlGroup === "" ? "/" : controlGroup;
    if (root === "" || group === root || group.startsWith(`${root}/`)) {
      const text = readControllers(join(view.unified.mountPoint, group.slice(root.length), "cgroup.controllers")) ?? "";
      for (const controller of text.trim().split(/\s+/)) {
        // On a hybrid host a v1 hierarchy owns the controller; cgroup2 cannot have it as well.
        if ((LIMIT_CONTROLLERS as readonly string[]).includes(controller) && !view.v1.has(controller)) found.add(controller as LimitController);
      }
    }
  }
  return found;
}

export function readControllersFile(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

export function readMountInfo(): string {
  try {
    return readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return "";
  }
}
