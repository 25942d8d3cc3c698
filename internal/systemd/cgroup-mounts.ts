/**
 * Where the cgroup hierarchies are mounted in this process' view of the filesystem, and where a cgroup's
 * directory is under them: what unit accounting reads files from and what `vks pod exec` joins. Pure but
 * for the one cached read of /proc/self/mountinfo.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** Where the cgroup hierarchies are mounted, as found in /proc/self/mountinfo. */
export interface CgroupMounts {
  /** The cgroup v2 hierarchy: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one. */
  unified?: CgroupMount;
  /** The v1 name=systemd hierarchy (hybrid and legacy hosts): lists a unit's processes when v2 is absent. */
  systemd?: CgroupMount;
  /** The v1 memory controller, where the system manager of a v1 host charges units' memory. */
  memory?: CgroupMount;
}

export interface CgroupMount {
  mountPoint: string;
  /** The cgroup the mount shows as its root ("/" unless mounted from inside a cgroup namespace). */
  root: string;
}

/** mountinfo escapes space, tab, newline and backslash in paths as octal. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** One line of /proc/self/mountinfo: the fields cgroup code needs, paths unescaped. */
export interface MountInfoEntry {
  fsType: string;
  /** Super-block options: for cgroup v1 the controllers (and name=…) of the hierarchy. */
  superOptions: string[];
  root: string;
  mountPoint: string;
}

/** The lines of a mountinfo text, in mount order; malformed lines are skipped. */
export function* mountInfoEntries(mountinfo: string): Generator<MountInfoEntry> {
  for (const line of mountinfo.split("\n")) {
    const separator = line.indexOf(" - ");
    if (separator < 0) continue;
    const before = line.slice(0, separator).split(" ");
    const [fsType = "", , superOptions = ""] = line.slice(separator + 3).split(" ");
    const root = before[3];
    const mountPoint = before[4];
    if (root === undefined || mountPoint === undefined) continue;
    yield { fsType, superOptions: superOptions.split(","), root: unescapeMountPath(root), mountPoint: unescapeMountPath(mountPoint) };
  }
}

/**
 * The cgroup mounts visible to this process. Lines come in mount order, so a later mount on the same
 * path or a parent (a tmpfs over /sys/fs/cgroup, as in test/sandbox.sh) hides the earlier ones; a root
 * starting with "/.." lies outside this process' cgroup namespace and cannot be mapped to its paths.
 */
export function parseMountInfo(mountinfo: string): CgroupMounts {
  const mounts: CgroupMounts = {};
  const kinds = ["unified", "systemd", "memory"] as const;
  for (const { fsType, superOptions: options, root, mountPoint } of mountInfoEntries(mountinfo)) {
    const mount = { mountPoint, root };
    for (const kind of kinds) {
      const earlier = mounts[kind]?.mountPoint;
      if (earlier !== undefined && (earlier === mount.mountPoint || earlier.startsWith(`${mount.mountPoint.replace(/\/$/, "")}/`))) delete mounts[kind];
    }
    if (mount.root.startsWith("/..")) continue;
    if (fsType === "cgroup2") mounts.unified = mount;
    else if (fsType === "cgroup" && options.includes("name=systemd")) mounts.systemd = mount;
    else if (fsType === "cgroup" && options.includes("memory")) mounts.memory = mount;
  }
  return mounts;
}

/** The directory of `controlGroup` under `mount`, or undefined when the mount does not show it. */
export function cgroupDirectory(mount: CgroupMount | undefined, controlGroup: string): string | undefined {
  if (mount === undefined || controlGroup === "") return undefined;
  const root = mount.root === "/" ? "" : mount.root;
  if (root !== "" && controlGroup !== root && !controlGroup.startsWith(`${root}/`)) return undefined;
  return join(mount.mountPoint, controlGroup.slice(root.length));
}

let mountsRead: CgroupMounts | undefined;

/** The host's cgroup mounts, read once: they do not change while vks runs. */
export function cgroupMounts(): CgroupMounts {
  if (mountsRead === undefined) {
    let mountinfo = "";
    try {
      mountinfo = readFileSync("/proc/self/mountinfo", "utf8");
    } catch {
      // No /proc: no cgroup files to read either, and accounting keeps systemd's figures alone.
    }
    mountsRead = parseMountInfo(mountinfo);
  }
  return mountsRead;
}
