/**
 * Where a process' cgroup is on the filesystem, so an exec'd command can be started inside it.
 *
 * systemd tracks a unit's processes in the unified (cgroup v2) hierarchy, mounted at /sys/fs/cgroup or,
 * on "hybrid" hosts, at /sys/fs/cgroup/unified; only a host with no cgroup v2 at all ("legacy") uses the
 * v1 name=systemd hierarchy. systemd 252 refuses AttachProcessesToUnit for units without Delegate=yes
 * ("Process migration not available on non-delegated units", which vks units are), so the command is
 * placed by joining the main process' cgroup directly, as runc does for `runc exec`. Pure.
 */
import { cgroupDirectory, parseMountInfo } from "../systemd/cgroup-mounts.ts";

/** One line of /proc/PID/cgroup: `hierarchy-id:controllers:path`. */
interface Membership {
  controllers: string[];
  path: string;
}

function parseMemberships(text: string): Membership[] {
  return text.split("\n").flatMap((line) => {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) return [];
    const controllers = line.slice(first + 1, second);
    return [{ controllers: controllers === "" ? [] : controllers.split(","), path: line.slice(second + 1) }];
  });
}

/**
 * The directory, in this process' view of the filesystem, of the cgroup systemd tracks the process of
 * `procCgroup` (the text of /proc/PID/cgroup) in; undefined when no visible mount shows it.
 */
export function trackingCgroupDirectory(procCgroup: string, mountInfo: string): string | undefined {
  const memberships = parseMemberships(procCgroup);
  const mounts = parseMountInfo(mountInfo);
  const unified = memberships.find((membership) => membership.controllers.length === 0);
  const inUnified = unified === undefined ? undefined : cgroupDirectory(mounts.unified, unified.path);
  if (inUnified !== undefined) return inUnified;
  const legacy = memberships.find((membership) => membership.controllers.includes("name=systemd"));
  return legacy === undefined ? undefined : cgroupDirectory(mounts.systemd, legacy.path);
}
