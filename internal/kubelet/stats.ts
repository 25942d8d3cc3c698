/**
 * The kubelet's stats/v1alpha1 Summary (`/stats/summary`), built from what systemd and the host report:
 * every container is a unit, every pod the units of its containers.
 *
 * Collection (StatsCollector: the engine's pods, each unit's accounting, /proc, log file sizes) is kept
 * apart from building (buildSummary: a pure function of one snapshot), so the JSON can be checked
 * against fixtures. Field names and order follow k8s.io/kubelet/pkg/apis/stats/v1alpha1.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { readNodeStats, readOwnProcess, type FilesystemUsage, type NodeReading, type OwnProcessReading } from "../host/node-stats.ts";
import { containerLogFile } from "../logs/logs.ts";
import type { PodContainerUnits } from "../pod/engine.ts";
import type { UnitAccounting } from "../systemd/accounting.ts";
import type { UnitState } from "../systemd/types.ts";

/**
 * A metav1.Time: serialized as the kubelet does (RFC 3339 in UTC, whole seconds; null for the zero
 * time), while keeping the full reading time, which the resource metrics' timestamps need.
 */
export class WireTime {
  constructor(readonly date: Date | undefined) {}

  toJSON(): string | null {
    return this.date === undefined ? null : this.date.toISOString().replace(/\.\d{3}Z$/, "Z");
  }
}

export interface CPUStats {
  time: WireTime;
  usageNanoCores?: number;
  usageCoreNanoSeconds?: number;
}

export interface MemoryStats {
  time: WireTime;
  availableBytes?: number;
  usageBytes?: number;
  workingSetBytes?: number;
  rssBytes?: number;
  pageFaults?: number;
  majorPageFaults?: number;
}

export interface InterfaceStats {
  name: string;
  rxBytes?: number;
  rxErrors?: number;
  txBytes?: number;
  txErrors?: number;
}

/** The default interface's figures sit inline next to the list of all of them. */
export interface NetworkStats extends InterfaceStats {
  time: WireTime;
  interfaces?: InterfaceStats[];
}

export interface FsStats {
  time: WireTime;
  availableBytes?: number;
  capacityBytes?: number;
  usedBytes?: number;
  inodesFree?: number;
  inodes?: number;
  inodesUsed?: number;
}

export interface ContainerStats {
  name: string;
  startTime: WireTime;
  cpu?: CPUStats;
  memory?: MemoryStats;
  rootfs?: FsStats;
  logs?: FsStats;
}

export interface PodReference {
  name: string;
  namespace: string;
  uid: string;
}

export interface PodStats {
  podRef: PodReference;
  startTime: WireTime;
  containers: ContainerStats[];
  cpu?: CPUStats;
  memory?: MemoryStats;
  "ephemeral-storage"?: FsStats;
  process_stats?: { process_count?: number };
}

export interface NodeStats {
  nodeName: string;
  systemContainers?: ContainerStats[];
  startTime: WireTime;
  cpu?: CPUStats;
  memory?: MemoryStats;
  network?: NetworkStats;
  fs?: FsStats;
  runtime?: { imageFs?: FsStats };
  rlimit?: { time: WireTime; maxpid?: number; curproc?: number };
}

export interface Summary {
  node: NodeStats;
  pods: PodStats[];
}

/** One running container as measured. */
export interface ContainerSnapshot {
  name: string;
  unitName: string;
  /** When the unit's main process started; undefined when systemd never recorded it. */
  startTime: Date | undefined;
  accounting: UnitAccounting;
  /** Size of the container's log file, when it writes to one (file log mode). */
  logBytes?: number;
}

export interface PodSnapshot {
  namespace: string;
  name: string;
  uid: string;
  startTime: Date | undefined;
  containers: ContainerSnapshot[];
  /** The pod's log directory (file log mode): the only node storage vks knows a pod to use. */
  logDirectory?: { bytes: number; files: number };
}

/** Everything measured for one summary, at one moment. */
export interface StatsSnapshot {
  time: Date;
  nodeName: string;
  node: NodeReading;
  /** vks itself, reported as the node's "kubelet" system container. */
  kubelet?: OwnProcessReading;
  pods: PodSnapshot[];
}

/** CPU rates (nanocores) the sampler could compute for this snapshot; keys as in rateKeys(). */
export type CpuRates = ReadonlyMap<string, number>;

export const NODE_RATE_KEY = "node";
export const KUBELET_RATE_KEY = "kubelet";

/** A restarted container is a new container: its counter starts again, so its start time is in the key. */
export function containerRateKey(container: Pick<ContainerSnapshot, "unitName" | "startTime">): string {
  return `${container.unitName}@${container.startTime?.getTime() ?? "unknown"}`;
}

export function wireTime(date: Date | undefined): WireTime {
  return new WireTime(date);
}

const whole = (value: number | undefined): number | undefined => (value === undefined ? undefined : Math.max(0, Math.round(value)));

/** Drops undefined fields so the JSON carries only what was measured (Go's omitempty on pointers). */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as T;
}

function cpuStats(time: Date, usageNanoseconds: number | undefined, rate: number | undefined): CPUStats | undefined {
  if (usageNanoseconds === undefined) return undefined;
  return defined({ time: wireTime(time), usageNanoCores: whole(rate), usageCoreNanoSeconds: whole(usageNanoseconds) });
}

function containerMemory(time: Date, accounting: UnitAccounting): MemoryStats | undefined {
  if (accounting.memoryWorkingSetBytes === undefined && accounting.memoryUsageBytes === undefined) return undefined;
  // availableBytes is limit minus working set; vks sets no memory limit on units, so there is none.
  return defined({
    time: wireTime(time),
    usageBytes: whole(accounting.memoryUsageBytes),
    workingSetBytes: whole(accounting.memoryWorkingSetBytes),
    rssBytes: whole(accounting.memoryRssBytes),
    pageFaults: whole(accounting.pageFaults),
    majorPageFaults: whole(accounting.majorPageFaults),
  });
}

function fsStats(time: Date, filesystem: FilesystemUsage, used?: { bytes: number; inodes: number }): FsStats {
  return defined({
    time: wireTime(time),
    availableBytes: filesystem.availableBytes,
    capacityBytes: filesystem.capacityBytes,
    usedBytes: used ? used.bytes : filesystem.usedBytes,
    inodesFree: filesystem.inodesFree,
    inodes: filesystem.inodes,
    inodesUsed: used ? used.inodes : filesystem.inodesUsed,
  });
}

/** The sum of a figure over the containers, or undefined unless every container has it. */
function sumOf(values: (number | undefined)[]): number | undefined {
  if (values.length === 0 || values.some((value) => value === undefined)) return undefined;
  return values.reduce<number>((total, value) => total + (value ?? 0), 0);
}

function containerStats(snapshot: StatsSnapshot, container: ContainerSnapshot, rates: CpuRates, onlyCpuAndMemory: boolean): ContainerStats {
  const { time } = snapshot;
  const stats: ContainerStats = {
    name: container.name,
    startTime: wireTime(container.startTime),
    cpu: cpuStats(time, container.accounting.cpuUsageNanoseconds, rates.get(containerRateKey(container))),
    memory: containerMemory(time, container.accounting),
  };
  // Containers run on the host's filesystem: there is no writable layer to report as rootfs.
  if (!onlyCpuAndMemory && container.logBytes !== undefined) {
    stats.logs = fsStats(time, snapshot.node.filesystem, { bytes: container.logBytes, inodes: 1 });
  }
  return defined(stats);
}

function podStats(snapshot: StatsSnapshot, pod: PodSnapshot, rates: CpuRates, onlyCpuAndMemory: boolean): PodStats {
  const { time } = snapshot;
  const containers = pod.containers.map((container) => containerStats(snapshot, container, rates, onlyCpuAndMemory));
  const usage = pod.containers.map((container) => container.accounting);
  const podCpu = sumOf(usage.map((accounting) => accounting.cpuUsageNanoseconds));
  const podRate = sumOf(pod.containers.map((container) => rates.get(containerRateKey(container))));
  const workingSet = sumOf(usage.map((accounting) => accounting.memoryWorkingSetBytes));
  const stats: PodStats = {
    podRef: { name: pod.name, namespace: pod.namespace, uid: pod.uid },
    // A pod not yet started has no start time: null, metav1.Time's zero value.
    startTime: wireTime(pod.startTime),
    containers,
    // The pod cgroup's figures in the kubelet; here the sum of its units, which is all the pod runs.
    cpu: cpuStats(time, podCpu, podRate),
    memory:
      workingSet === undefined
        ? undefined
        : defined({
            time: wireTime(time),
            usageBytes: whole(sumOf(usage.map((accounting) => accounting.memoryUsageBytes))),
            workingSetBytes: whole(workingSet),
            rssBytes: whole(sumOf(usage.map((accounting) => accounting.memoryRssBytes))),
            pageFaults: whole(sumOf(usage.map((accounting) => accounting.pageFaults))),
            majorPageFaults: whole(sumOf(usage.map((accounting) => accounting.majorPageFaults))),
          }),
  };
  if (!onlyCpuAndMemory) {
    if (pod.logDirectory !== undefined) {
      stats["ephemeral-storage"] = fsStats(time, snapshot.node.filesystem, { bytes: pod.logDirectory.bytes, inodes: pod.logDirectory.files });
    }
    const processCount = sumOf(usage.map((accounting) => accounting.processCount));
    if (processCount !== undefined) stats.process_stats = { process_count: processCount };
  }
  return defined(stats);
}

function kubeletContainer(snapshot: StatsSnapshot, kubelet: OwnProcessReading, rates: CpuRates): ContainerStats {
  return {
    name: "kubelet",
    startTime: wireTime(kubelet.startTime),
    cpu: cpuStats(snapshot.time, kubelet.cpuNanoseconds, rates.get(KUBELET_RATE_KEY)),
    memory: { time: wireTime(snapshot.time), usageBytes: kubelet.residentBytes, workingSetBytes: kubelet.residentBytes },
  };
}

function networkStats(time: Date, node: NodeReading): NetworkStats {
  const interfaces = node.network.interfaces.map((reading) => ({
    name: reading.name,
    rxBytes: reading.rxBytes,
    rxErrors: reading.rxErrors,
    txBytes: reading.txBytes,
    txErrors: reading.txErrors,
  }));
  const chosen = interfaces.find((reading) => reading.name === node.network.defaultInterface);
  // Go writes the inline default interface's name even when there is none: as "".
  return { time: wireTime(time), ...(chosen ?? { name: "" }), ...(interfaces.length > 0 ? { interfaces } : {}) };
}

/**
 * The Summary of one snapshot. With onlyCpuAndMemory, what the kubelet's `?only_cpu_and_memory=true`
 * (and its resource metrics) carry: CPU and memory of the node, its system containers, pods and containers.
 */
export function buildSummary(snapshot: StatsSnapshot, rates: CpuRates, options: { onlyCpuAndMemory?: boolean } = {}): Summary {
  const onlyCpuAndMemory = options.onlyCpuAndMemory ?? false;
  const { time, node } = snapshot;
  const memory = node.memory;
  const nodeStats: NodeStats = {
    nodeName: snapshot.nodeName,
    systemContainers: snapshot.kubelet ? [kubeletContainer(snapshot, snapshot.kubelet, rates)] : undefined,
    startTime: wireTime(node.bootTime),
    cpu: cpuStats(time, node.cpuUsageCoreNanoseconds, rates.get(NODE_RATE_KEY)),
    memory: defined({
      time: wireTime(time),
      availableBytes: Math.max(0, memory.totalBytes - memory.workingSetBytes),
      usageBytes: memory.usageBytes,
      workingSetBytes: memory.workingSetBytes,
      rssBytes: memory.rssBytes,
      pageFaults: memory.pageFaults,
      majorPageFaults: memory.majorPageFaults,
    }),
  };
  if (!onlyCpuAndMemory) {
    nodeStats.network = networkStats(time, node);
    nodeStats.fs = fsStats(time, node.filesystem);
    // What images take is not known (they are packages among the host's files): only the filesystem's room.
    const imageFs = fsStats(time, node.imageFilesystem);
    delete imageFs.usedBytes;
    delete imageFs.inodesUsed;
    nodeStats.runtime = { imageFs };
    nodeStats.rlimit = defined({ time: wireTime(time), maxpid: node.maxPID, curproc: node.taskCount });
  }
  return {
    node: defined(nodeStats),
    pods: snapshot.pods.map((pod) => podStats(snapshot, pod, rates, onlyCpuAndMemory)),
  };
}

/**
 * CPU usage rates from successive cumulative readings, as the kubelet's CRI stats provider keeps them:
 * sampled when a summary is requested, against the previous request's reading. Sampling on request
 * costs nothing while nobody asks (metrics-server reads the cumulative counters of /metrics/resource
 * and computes its own rates), where a periodic sampler would read every unit every few seconds for
 * nobody. Readings closer than minimumIntervalMs to the previous one do not replace it (a burst of
 * requests would otherwise measure noise over a few milliseconds): they get the last rate again.
 */
export class CpuRateSampler {
  private readonly previous = new Map<string, { usageNanoseconds: number; timeMs: number; rate?: number }>();

  constructor(private readonly minimumIntervalMs = 1000) {}

  /** Nanocores since the previous reading of `key`; undefined for its first reading or after a reset. */
  sample(key: string, usageNanoseconds: number, time: Date): number | undefined {
    const timeMs = time.getTime();
    const before = this.previous.get(key);
    if (before === undefined || usageNanoseconds < before.usageNanoseconds || timeMs <= before.timeMs) {
      this.previous.set(key, { usageNanoseconds, timeMs });
      return undefined;
    }
    if (timeMs - before.timeMs < this.minimumIntervalMs) return before.rate;
    const rate = ((usageNanoseconds - before.usageNanoseconds) / (timeMs - before.timeMs)) * 1000;
    this.previous.set(key, { usageNanoseconds, timeMs, rate });
    return rate;
  }

  /** The last rate computed for `key`, without taking a reading. */
  last(key: string): number | undefined {
    return this.previous.get(key)?.rate;
  }

  /** Forgets every key not in `live`, so stopped and restarted containers do not pile up. */
  retain(live: ReadonlySet<string>): void {
    for (const key of this.previous.keys()) if (!live.has(key)) this.previous.delete(key);
  }
}

/** Every cumulative CPU reading in a snapshot, by rate key. */
export function cpuReadings(snapshot: StatsSnapshot): Map<string, number> {
  const readings = new Map<string, number>([[NODE_RATE_KEY, snapshot.node.cpuUsageCoreNanoseconds]]);
  if (snapshot.kubelet) readings.set(KUBELET_RATE_KEY, snapshot.kubelet.cpuNanoseconds);
  for (const pod of snapshot.pods) {
    for (const container of pod.containers) {
      const usage = container.accounting.cpuUsageNanoseconds;
      if (usage !== undefined) readings.set(containerRateKey(container), usage);
    }
  }
  return readings;
}

export interface StatsSources {
  nodeName: string;
  /** vks' state directory: the node filesystem, and where file-mode logs live. */
  stateDir: string;
  /** The pod engine. */
  pods: { containerUnits(): Promise<PodContainerUnits[]> };
  /** The systemd manager. */
  accounting: { getUnitAccounting(unitNames: string[]): Promise<Map<string, UnitAccounting>> };
  readNode?: (stateDir: string, now: Date) => NodeReading;
  readOwnProcess?: () => OwnProcessReading;
  now?: () => Date;
}

/** A unit with processes: started and not yet (or no longer) just a recorded exit. */
function isRunning(unit: UnitState | undefined, accounting: UnitAccounting): boolean {
  if ((accounting.processCount ?? 0) > 0) return true;
  return unit?.activeState === "active" && unit.subState === "running";
}

function fileSize(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

/** Total size and number of the files in a pod's log directory. */
function directoryUsage(directory: string): { bytes: number; files: number } | undefined {
  try {
    let bytes = 0;
    let files = 0;
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      files++;
      if (entry.isFile()) bytes += fileSize(join(directory, entry.name)) ?? 0;
    }
    return { bytes, files };
  } catch {
    return undefined;
  }
}

function podStartTime(pod: V1Pod): Date | undefined {
  const start = pod.status?.startTime;
  if (start === undefined || start === null) return undefined;
  const date = new Date(start);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Gathers snapshots from the engine, systemd and the host, and keeps the CPU sampler between them. */
export class StatsCollector {
  private readonly sampler = new CpuRateSampler();

  constructor(private readonly sources: StatsSources) {}

  async snapshot(): Promise<StatsSnapshot> {
    const listed = await this.sources.pods.containerUnits();
    const unitNames = listed.flatMap((entry) => entry.containers.map((container) => container.unitName));
    const accounting = await this.sources.accounting.getUnitAccounting(unitNames);
    const time = (this.sources.now ?? (() => new Date()))();
    const node = (this.sources.readNode ?? readNodeStats)(this.sources.stateDir, time);
    const pods = listed.map((entry): PodSnapshot => {
      const logDirectory = entry.logs.mode === "file" ? entry.logs.directory : undefined;
      const containers = entry.containers.flatMap((container): ContainerSnapshot[] => {
        const usage = accounting.get(container.unitName);
        if (usage === undefined || !isRunning(container.unit, usage)) return [];
        return [
          {
            name: container.name,
            unitName: container.unitName,
            startTime: usage.startedAt,
            accounting: usage,
            logBytes: logDirectory === undefined ? undefined : fileSize(containerLogFile(logDirectory, container.name)),
          },
        ];
      });
      return {
        namespace: entry.pod.metadata?.namespace || "default",
        name: entry.pod.metadata?.name ?? "",
        uid: entry.pod.metadata?.uid ?? "",
        startTime: podStartTime(entry.pod),
        containers,
        logDirectory: logDirectory === undefined ? undefined : directoryUsage(logDirectory),
      };
    });
    return { time, nodeName: this.sources.nodeName, node, kubelet: (this.sources.readOwnProcess ?? readOwnProcess)(), pods };
  }

  /**
   * The Summary as `/stats/summary` serves it. A full summary takes a CPU reading for the rates (as the
   * kubelet's summary handler does); only_cpu_and_memory reuses the last rates, as the kubelet's does.
   */
  async summary(options: { onlyCpuAndMemory?: boolean } = {}): Promise<Summary> {
    const snapshot = await this.snapshot();
    const readings = cpuReadings(snapshot);
    const rates = new Map<string, number>();
    for (const [key, usage] of readings) {
      const rate = options.onlyCpuAndMemory ? this.sampler.last(key) : this.sampler.sample(key, usage, snapshot.time);
      if (rate !== undefined) rates.set(key, rate);
    }
    if (!options.onlyCpuAndMemory) this.sampler.retain(new Set(readings.keys()));
    return buildSummary(snapshot, rates, options);
  }
}
