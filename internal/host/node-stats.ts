/**
 * Resource readings of the whole host, as the kubelet reports them for its node: CPU time, memory,
 * network interfaces, the filesystems vks writes to, and how many tasks run against the pid limit.
 * Everything comes from /proc and statfs; the parsers are pure so fixtures can test them.
 */
import { readFileSync, readdirSync, statfsSync } from "node:fs";
import { kilobyteField, NANOSECONDS_PER_TICK, parseFlatKeyed } from "./kernel-files.ts";


/** Interfaces cAdvisor leaves out of a node's network stats: loopback and container plumbing. */
const IGNORED_INTERFACE_PREFIXES = ["lo", "veth", "docker", "nerdctl"];

export interface NodeMemoryReading {
  totalBytes: number;
  /** MemTotal - MemFree: everything in use, page cache included (the root cgroup's usage). */
  usageBytes: number;
  /** Usage minus inactive file pages; the kubelet's memory.available is total minus this. */
  workingSetBytes: number;
  /** Anonymous memory: Active(anon) + Inactive(anon). */
  rssBytes: number;
  pageFaults?: number;
  majorPageFaults?: number;
}

export interface InterfaceReading {
  name: string;
  rxBytes: number;
  rxErrors: number;
  txBytes: number;
  txErrors: number;
}

export interface NetworkReading {
  /** The interface of the default route, which the summary reports at the top level; undefined without one. */
  defaultInterface?: string;
  interfaces: InterfaceReading[];
}

export interface FilesystemUsage {
  path: string;
  capacityBytes: number;
  availableBytes: number;
  /** Bytes in use by anyone: capacity minus free blocks (root's reserve counts as used). */
  usedBytes: number;
  inodes: number;
  inodesFree: number;
  inodesUsed: number;
}

export interface NodeReading {
  time: Date;
  bootTime: Date;
  /** Non-idle CPU time of every core since boot. */
  cpuUsageCoreNanoseconds: number;
  memory: NodeMemoryReading;
  network: NetworkReading;
  /** Where vks keeps its state (records, log files): the kubelet's root filesystem. */
  filesystem: FilesystemUsage;
  /** Where images land: packages install under /usr. */
  imageFilesystem: FilesystemUsage;
  /** kernel.pid_max. */
  maxPID?: number;
  /** Tasks (threads included) on the host, as sysinfo(2)'s procs counts them. */
  taskCount?: number;
}

/** The summed non-idle time of the `cpu` line of /proc/stat, and the boot time (btime). */
export function parseProcStat(text: string): { cpuUsageCoreNanoseconds: number; bootTime: Date } | undefined {
  const cpuLine = /^cpu\s+(.*)$/m.exec(text)?.[1];
  const bootSeconds = /^btime\s+(\d+)$/m.exec(text)?.[1];
  if (cpuLine === undefined || bootSeconds === undefined) return undefined;
  // user nice system idle iowait irq softirq steal guest guest_nice: guest time is already in user and
  // nice, and idle and iowait are not use.
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpuLine.trim().split(/\s+/).map(Number);
  return {
    cpuUsageCoreNanoseconds: (user + nice + system + irq + softirq + steal) * NANOSECONDS_PER_TICK,
    bootTime: new Date(Number(bootSeconds) * 1000),
  };
}

/** /proc/meminfo and /proc/vmstat, read as runc reads the root cgroup's memory from them on cgroup v2. */
export function parseNodeMemory(meminfo: string, vmstat: string): NodeMemoryReading | undefined {
  const total = kilobyteField(meminfo, "MemTotal");
  const free = kilobyteField(meminfo, "MemFree");
  if (total === undefined || free === undefined) return undefined;
  const usage = total - free;
  const inactiveFile = kilobyteField(meminfo, "Inactive(file)") ?? 0;
  const events = parseFlatKeyed(vmstat);
  return {
    totalBytes: total,
    usageBytes: usage,
    workingSetBytes: Math.max(0, usage - inactiveFile),
    rssBytes: (kilobyteField(meminfo, "Active(anon)") ?? 0) + (kilobyteField(meminfo, "Inactive(anon)") ?? 0),
    pageFaults: events.get("pgfault"),
    majorPageFaults: events.get("pgmajfault"),
  };
}

/** /proc/net/dev: two header lines, then `name: rx_bytes rx_packets rx_errs … tx_bytes tx_packets tx_errs …`. */
export function parseNetDev(text: string): InterfaceReading[] {
  const interfaces: InterfaceReading[] = [];
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const counters = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (counters.length < 16 || counters.some((value) => !Number.isFinite(value))) continue;
    if (IGNORED_INTERFACE_PREFIXES.some((prefix) => name.startsWith(prefix))) continue;
    interfaces.push({ name, rxBytes: counters[0] ?? 0, rxErrors: counters[2] ?? 0, txBytes: counters[8] ?? 0, txErrors: counters[10] ?? 0 });
  }
  return interfaces;
}

/** The interface of the IPv4 default route in /proc/net/route. */
export function defaultRouteInterface(routes: string): string | undefined {
  for (const line of routes.split("\n").slice(1)) {
    const [iface, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (iface && destination === "00000000" && (mask === undefined || mask === "00000000")) return iface;
  }
  return undefined;
}

/** The total task count of /proc/loadavg (`0.00 0.01 0.05 1/123 4567`): sysinfo(2)'s procs, which the kubelet reports. */
export function parseLoadavgTasks(text: string): number | undefined {
  const total = /\s\d+\/(\d+)\s/.exec(text)?.[1];
  return total === undefined ? undefined : Number(total);
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

export function readFilesystemUsage(path: string): FilesystemUsage {
  const stats = statfsSync(path);
  return {
    path,
    capacityBytes: stats.blocks * stats.bsize,
    availableBytes: stats.bavail * stats.bsize,
    usedBytes: (stats.blocks - stats.bfree) * stats.bsize,
    inodes: stats.files,
    inodesFree: stats.ffree,
    inodesUsed: stats.files - stats.ffree,
  };
}

/** Where packages put their files, which is what an image is on this node. */
export const IMAGE_FILESYSTEM_PATH = "/usr";

/**
 * Reads the node's resources now. Throws when /proc/stat, /proc/meminfo or the state directory cannot
 * be read: without them there is no node reading worth reporting.
 */
export function readNodeStats(stateDir: string, now: Date = new Date()): NodeReading {
  const cpu = parseProcStat(read("/proc/stat") ?? "");
  if (cpu === undefined) throw new Error("/proc/stat has no cpu or btime line");
  const memory = parseNodeMemory(read("/proc/meminfo") ?? "", read("/proc/vmstat") ?? "");
  if (memory === undefined) throw new Error("/proc/meminfo has no MemTotal/MemFree");
  const interfaces = parseNetDev(read("/proc/net/dev") ?? "");
  const routed = defaultRouteInterface(read("/proc/net/route") ?? "");
  const pidMax = Number(read("/proc/sys/kernel/pid_max")?.trim());
  return {
    time: now,
    bootTime: cpu.bootTime,
    cpuUsageCoreNanoseconds: cpu.cpuUsageCoreNanoseconds,
    memory,
    // The kubelet picks "eth0" by name; hosts name their NICs after the hardware (ens3, enp0s1), so the
    // default route's interface is the one that means the same thing here.
    network: { defaultInterface: interfaces.some((i) => i.name === routed) ? routed : undefined, interfaces },
    filesystem: readFilesystemUsage(stateDir),
    imageFilesystem: readFilesystemUsage(IMAGE_FILESYSTEM_PATH),
    maxPID: Number.isFinite(pidMax) ? pidMax : undefined,
    taskCount: parseLoadavgTasks(read("/proc/loadavg") ?? ""),
  };
}

/** vks' own process, for the node's "kubelet" system container and the process_* metrics. */
export interface OwnProcessReading {
  startTime: Date;
  cpuNanoseconds: number;
  residentBytes: number;
  virtualBytes: number;
  openFileDescriptors?: number;
  maxFileDescriptors?: number;
}

/** The soft `Max open files` limit of /proc/PID/limits. */
export function parseMaxOpenFiles(limits: string): number | undefined {
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1];
  return soft === undefined || soft === "unlimited" ? undefined : Number(soft);
}

export function readOwnProcess(): OwnProcessReading {
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  let openFileDescriptors: number | undefined;
  try {
    openFileDescriptors = readdirSync("/proc/self/fd").length;
  } catch {
    openFileDescriptors = undefined;
  }
  const status = read("/proc/self/status") ?? "";
  return {
    startTime: new Date(Math.round(performance.timeOrigin)),
    cpuNanoseconds: (cpu.user + cpu.system) * 1000,
    residentBytes: memory.rss,
    virtualBytes: kilobyteField(status, "VmSize") ?? 0,
    openFileDescriptors,
    maxFileDescriptors: parseMaxOpenFiles(read("/proc/self/limits") ?? ""),
  };
}
