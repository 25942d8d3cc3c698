/**
 * Where a process' cgroup is on the filesystem, so an exec'd command can be started inside it.
 *
 * systemd tracks a unit's processes in the unified (cgroup v2) hierarchy, mounted at /sys/fs/cgroup or,
 * on "hybrid" hosts, at /sys/fs/cgroup/unified; only a host with no cgroup v2 at all ("legacy") uses the
 * v1 name=systemd hierarchy. systemd 252 refuses AttachProcessesToUnit for units without Delegate=yes
 * ("Process migration not available on non-delegated units", which vks units are), so the command is
 * placed by joining the main process' cgroup directly, as runc does for `runc exec`. Pure.
 */
import { posix } from "node:path";

interface Mount {
  id: number;
  parent: number;
  /** The directory of the hierarchy this mount shows, relative to the hierarchy's root. */
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash in paths as octal. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function parseMountInfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    const separator = fields.indexOf("-");
    if (separator < 6 || fields.length < separator + 4) continue;
    mounts.push({
      id: Number(fields[0]),
      parent: Number(fields[1]),
      root: unescapeMountPath(fields[3] ?? ""),
      mountPoint: unescapeMountPath(fields[4] ?? ""),
      fsType: fields[separator + 1] ?? "",
      superOptions: (fields[separator + 3] ?? "").split(","),
    });
  }
  return mounts;
}

/**
 * Mounts nothing later was mounted over, whose parents are visible too. A mount stacked on another at
 * the same mount point has that one as its parent: the path it hangs from is the parent's parent.
 */
function visibleMounts(mounts: Mount[]): Mount[] {
  const top = new Map<string, Mount>();
  for (const mount of mounts) top.set(mount.mountPoint, mount);
  const byId = new Map(mounts.map((mount) => [mount.id, mount]));
  const visible = (mount: Mount, depth: number): boolean => {
    if (top.get(mount.mountPoint) !== mount || depth > mounts.length) return false;
    let parent = byId.get(mount.parent);
    for (let steps = 0; parent !== undefined && parent.mountPoint === mount.mountPoint && steps <= mounts.length; steps++) {
      parent = byId.get(parent.parent);
    }
    return parent === undefined || parent === mount || visible(parent, depth + 1);
  };
  return mounts.filter((mount) => visible(mount, 0));
}

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

function directoryIn(mount: Mount, path: string): string | undefined {
  const relative = posix.relative(mount.root, path);
  if (relative.startsWith("..")) return undefined;
  return relative === "" ? mount.mountPoint : posix.join(mount.mountPoint, relative);
}

/**
 * The directory, in this process' view of the filesystem, of the cgroup systemd tracks the process of
 * `procCgroup` (the text of /proc/PID/cgroup) in; undefined when no visible mount shows it.
 */
export function trackingCgroupDirectory(procCgroup: string, mountInfo: string): string | undefined {
  const memberships = parseMemberships(procCgroup);
  const mounts = visibleMounts(parseMountInfo(mountInfo));
  const unified = memberships.find((membership) => membership.controllers.length === 0);
  if (unified !== undefined) {
    for (const mount of mounts.filter((m) => m.fsType === "cgroup2")) {
      const directory = directoryIn(mount, unified.path);
      if (directory !== undefined) return directory;
    }
  }
  const legacy = memberships.find((membership) => membership.controllers.includes("name=systemd"));
  if (legacy !== undefined) {
    for (const mount of mounts.filter((m) => m.fsType === "cgroup" && m.superOptions.includes("name=systemd"))) {
      const directory = directoryIn(mount, legacy.path);
      if (directory !== undefined) return directory;
    }
  }
  return undefined;
}
