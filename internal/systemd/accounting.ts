/**
 * What a unit's processes use (CPU time, memory, tasks), from systemd's accounting properties and,
 * where systemd has none, from the unit's cgroup files and /proc.
 *
 * systemd answers "not available" (UINT64_MAX) whenever the controller behind a property is not
 * realized for the unit. On a cgroup v1 "hybrid" host the cpu, memory, pids and io controllers live in
 * v1 hierarchies that a user manager is never delegated, so every property comes back unavailable
 * there. What remains readable without any controller, and is read instead:
 *   - CPU: `cpu.stat` (usage_usec) in the unit's cgroup v2 directory, a core file of every v2 cgroup
 *     since Linux 4.15: exact, and it keeps counting processes that already exited.
 *   - memory: the sum over the unit's live processes (cgroup.procs) of /proc/PID/status VmRSS and
 *     RssAnon and the page faults in /proc/PID/stat. Shared pages count once per process, so this can
 *     exceed what a memory cgroup would charge, and there is no page cache figure. One small read per
 *     process: cheap next to a D-Bus round trip, and the only per-unit memory figure such a host has.
 *   - tasks: the lines of cgroup.threads.
 * Where systemd does account (the system manager, or cgroup v2 with delegation) its values win, and
 * memory.stat, when the unit has one, adds the working set (usage minus inactive file pages) as the
 * kubelet computes it.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { kilobyteField, NANOSECONDS_PER_TICK, parseFlatKeyed } from "../host/kernel-files.ts";
import { cgroupDirectory, cgroupMounts, type CgroupMounts } from "./cgroup-mounts.ts";
import { expectBigInt, expectString } from "./dbus-values.ts";

/** Where a figure came from: systemd's own accounting, the cgroup's files, or a sum over its processes. */
export type AccountingSource = "systemd" | "cgroup" | "processes";

export interface UnitAccounting {
  unitName: string;
  /** The unit's cgroup, relative to the hierarchy root; "" when it has none (not running). */
  controlGroup: string;
  /** When the main process last started (ExecMainStartTimestamp); undefined when it never did. */
  startedAt: Date | undefined;
  cpuUsageNanoseconds?: number;
  /** All memory charged to the unit (with page cache where the cgroup reports it). */
  memoryUsageBytes?: number;
  /** Usage minus inactive file pages: what the kubelet calls the working set. */
  memoryWorkingSetBytes?: number;
  /** Anonymous memory. */
  memoryRssBytes?: number;
  pageFaults?: number;
  majorPageFaults?: number;
  ioReadBytes?: number;
  ioWriteBytes?: number;
  tasks?: number;
  processCount?: number;
  sources: { cpu?: AccountingSource; memory?: AccountingSource };
}

/** The org.freedesktop.systemd1.Service properties an accounting read needs, each with one Get. */
export const ACCOUNTING_PROPERTIES = [
  "ControlGroup",
  "ExecMainStartTimestamp",
  "CPUUsageNSec",
  "MemoryCurrent",
  "IOReadBytes",
  "IOWriteBytes",
  "TasksCurrent",
] as const;

const UINT64_MAX = 0xffff_ffff_ffff_ffffn;
/** Nested cgroups under a service exist only with Delegate=; a bound keeps a pathological tree cheap. */
const MAX_CGROUP_DEPTH = 8;

/** An accounting property's value, or undefined for systemd's "not available" (UINT64_MAX). */
export function accountedValue(value: unknown, what: string): number | undefined {
  const raw = expectBigInt(value, what);
  return raw === UINT64_MAX ? undefined : Number(raw);
}

export interface ProcessStat {
  /** utime + stime + cutime + cstime: the process's CPU time and that of the children it reaped. */
  cpuNanoseconds: number;
  minorFaults: number;
  majorFaults: number;
}

/** /proc/PID/stat. The command name (field 2) may hold spaces and parentheses: fields count from its last ')'. */
export function parseProcessStat(text: string): ProcessStat | undefined {
  const end = text.lastIndexOf(")");
  if (end < 0) return undefined;
  // After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt(10) cminflt majflt(12) cmajflt
  // utime(14) stime cutime cstime(17).
  const fields = text.slice(end + 2).split(" ");
  const field = (number: number): number => Number(fields[number - 3]);
  const ticks = field(14) + field(15) + field(16) + field(17);
  const values = [ticks, field(10), field(12)];
  if (values.some((value) => !Number.isFinite(value))) return undefined;
  return { cpuNanoseconds: ticks * NANOSECONDS_PER_TICK, minorFaults: field(10), majorFaults: field(12) };
}

/** What the unit's cgroup files and processes say; every field undefined that could not be read. */
export interface CgroupReading {
  processIds: number[];
  threadCount?: number;
  cpuUsageNanoseconds?: number;
  /** From memory.current/usage_in_bytes and memory.stat. */
  cgroupMemory?: { usageBytes: number; inactiveFileBytes?: number; rssBytes?: number; pageFaults?: number; majorPageFaults?: number };
  /** Summed over the live processes. */
  processTotals?: { residentBytes: number; anonymousBytes: number; pageFaults: number; majorPageFaults: number; cpuNanoseconds: number };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    // Gone (the process exited, the unit stopped) or never there (no such controller): no reading.
    return undefined;
  }
}

function numberLines(text: string | undefined): number[] {
  if (text === undefined) return [];
  return text
    .split("\n")
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
}

/** `directory` and its descendant cgroups (a service has some only with Delegate=). */
function cgroupTree(directory: string, depth = 0): string[] {
  const found = [directory];
  if (depth >= MAX_CGROUP_DEPTH) return found;
  try {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      if (entry.isDirectory()) found.push(...cgroupTree(join(directory, entry.name), depth + 1));
    }
  } catch {
    // The cgroup went away while being read: what was found is all there is.
  }
  return found;
}

function sumOver(directories: string[], file: string): number[] {
  return directories.flatMap((directory) => numberLines(readText(join(directory, file))));
}

/** Which figures systemd did not have: only those are looked for in the files. */
export interface MissingFigures {
  cpu: boolean;
  memory: boolean;
}

/**
 * Reads what the files of a unit's cgroup say. The per-process sums cost two /proc reads per process and
 * are made only when a missing figure has no cgroup file to come from.
 */
export function readCgroupUsage(controlGroup: string, mounts: CgroupMounts, missing: MissingFigures): CgroupReading {
  const unified = cgroupDirectory(mounts.unified, controlGroup);
  const named = cgroupDirectory(mounts.systemd, controlGroup);
  const listing = unified ?? named;
  const tree = listing === undefined ? [] : cgroupTree(listing);
  const reading: CgroupReading = {
    processIds: sumOver(tree, "cgroup.procs"),
    threadCount: tree.length > 0 ? sumOver(tree, unified ? "cgroup.threads" : "tasks").length : undefined,
  };

  const cpuStat = unified === undefined ? undefined : readText(join(unified, "cpu.stat"));
  const usageMicroseconds = cpuStat === undefined ? undefined : parseFlatKeyed(cpuStat).get("usage_usec");
  if (usageMicroseconds !== undefined) reading.cpuUsageNanoseconds = usageMicroseconds * 1000;

  reading.cgroupMemory = readCgroupMemory(unified, cgroupDirectory(mounts.memory, controlGroup));

  const processesNeeded =
    (missing.memory && reading.cgroupMemory === undefined) || (missing.cpu && reading.cpuUsageNanoseconds === undefined);
  if (processesNeeded) reading.processTotals = sumProcesses(reading.processIds);
  return reading;
}

/** memory.current + memory.stat (v2), else memory.usage_in_bytes + memory.stat's total_* (v1). */
function readCgroupMemory(unified: string | undefined, memoryV1: string | undefined): CgroupReading["cgroupMemory"] {
  const current = unified === undefined ? undefined : readText(join(unified, "memory.current"));
  if (current !== undefined && unified !== undefined) {
    const stat = parseFlatKeyed(readText(join(unified, "memory.stat")) ?? "");
    return {
      usageBytes: Number(current.trim()),
      inactiveFileBytes: stat.get("inactive_file"),
      rssBytes: stat.get("anon"),
      pageFaults: stat.get("pgfault"),
      majorPageFaults: stat.get("pgmajfault"),
    };
  }
  const usage = memoryV1 === undefined ? undefined : readText(join(memoryV1, "memory.usage_in_bytes"));
  if (usage !== undefined && memoryV1 !== undefined) {
    const stat = parseFlatKeyed(readText(join(memoryV1, "memory.stat")) ?? "");
    return {
      usageBytes: Number(usage.trim()),
      inactiveFileBytes: stat.get("total_inactive_file"),
      rssBytes: stat.get("total_rss"),
      pageFaults: stat.get("total_pgfault"),
      majorPageFaults: stat.get("total_pgmajfault"),
    };
  }
  return undefined;
}

function sumProcesses(processIds: number[]): CgroupReading["processTotals"] {
  if (processIds.length === 0) return undefined;
  const total = { residentBytes: 0, anonymousBytes: 0, pageFaults: 0, majorPageFaults: 0, cpuNanoseconds: 0 };
  for (const pid of processIds) {
    const status = readText(`/proc/${pid}/status`);
    const stat = readText(`/proc/${pid}/stat`);
    const parsed = stat === undefined ? undefined : parseProcessStat(stat);
    // A process that exited between the listing and the read simply no longer counts.
    if (status === undefined || parsed === undefined) continue;
    // Kernel threads and zombies have no VmRSS line: they hold no user memory.
    total.residentBytes += kilobyteField(status, "VmRSS") ?? 0;
    total.anonymousBytes += kilobyteField(status, "RssAnon") ?? 0;
    total.pageFaults += parsed.minorFaults;
    total.majorPageFaults += parsed.majorFaults;
    total.cpuNanoseconds += parsed.cpuNanoseconds;
  }
  return total;
}

/** systemd's figures as read from the unit's properties (undefined: not available). */
export interface SystemdAccountingValues {
  controlGroup: string;
  startedAtMicroseconds: number;
  cpuUsageNanoseconds?: number;
  memoryCurrentBytes?: number;
  ioReadBytes?: number;
  ioWriteBytes?: number;
  tasksCurrent?: number;
}

export function systemdAccountingValues(unitName: string, properties: ReadonlyMap<string, unknown>): SystemdAccountingValues {
  const value = (property: (typeof ACCOUNTING_PROPERTIES)[number]): number | undefined =>
    accountedValue(properties.get(property), `${unitName} ${property}`);
  return {
    controlGroup: expectString(properties.get("ControlGroup"), `${unitName} ControlGroup`),
    startedAtMicroseconds: Number(expectBigInt(properties.get("ExecMainStartTimestamp"), `${unitName} ExecMainStartTimestamp`)),
    cpuUsageNanoseconds: value("CPUUsageNSec"),
    memoryCurrentBytes: value("MemoryCurrent"),
    ioReadBytes: value("IOReadBytes"),
    ioWriteBytes: value("IOWriteBytes"),
    tasksCurrent: value("TasksCurrent"),
  };
}

/** systemd's figures where it has them, the cgroup's files next, sums over the processes last. */
export function combineAccounting(unitName: string, systemd: SystemdAccountingValues, cgroup: CgroupReading): UnitAccounting {
  const accounting: UnitAccounting = {
    unitName,
    controlGroup: systemd.controlGroup,
    startedAt: systemd.startedAtMicroseconds > 0 ? new Date(Math.floor(systemd.startedAtMicroseconds / 1000)) : undefined,
    ioReadBytes: systemd.ioReadBytes,
    ioWriteBytes: systemd.ioWriteBytes,
    tasks: systemd.tasksCurrent ?? cgroup.threadCount,
    processCount: systemd.controlGroup === "" ? undefined : cgroup.processIds.length,
    sources: {},
  };

  if (systemd.cpuUsageNanoseconds !== undefined) {
    accounting.cpuUsageNanoseconds = systemd.cpuUsageNanoseconds;
    accounting.sources.cpu = "systemd";
  } else if (cgroup.cpuUsageNanoseconds !== undefined) {
    accounting.cpuUsageNanoseconds = cgroup.cpuUsageNanoseconds;
    accounting.sources.cpu = "cgroup";
  } else if (cgroup.processTotals !== undefined) {
    accounting.cpuUsageNanoseconds = cgroup.processTotals.cpuNanoseconds;
    accounting.sources.cpu = "processes";
  }

  const cgroupMemory = cgroup.cgroupMemory;
  const usage = systemd.memoryCurrentBytes ?? cgroupMemory?.usageBytes;
  if (usage !== undefined) {
    accounting.memoryUsageBytes = usage;
    const inactiveFile = cgroupMemory?.inactiveFileBytes;
    accounting.memoryWorkingSetBytes = inactiveFile === undefined ? usage : Math.max(0, usage - inactiveFile);
    accounting.memoryRssBytes = cgroupMemory?.rssBytes;
    accounting.pageFaults = cgroupMemory?.pageFaults;
    accounting.majorPageFaults = cgroupMemory?.majorPageFaults;
    accounting.sources.memory = systemd.memoryCurrentBytes !== undefined ? "systemd" : "cgroup";
  } else if (cgroup.processTotals !== undefined) {
    // Resident pages are all the process-level view has: they are the working set and the usage.
    accounting.memoryUsageBytes = cgroup.processTotals.residentBytes;
    accounting.memoryWorkingSetBytes = cgroup.processTotals.residentBytes;
    accounting.memoryRssBytes = cgroup.processTotals.anonymousBytes;
    accounting.pageFaults = cgroup.processTotals.pageFaults;
    accounting.majorPageFaults = cgroup.processTotals.majorPageFaults;
    accounting.sources.memory = "processes";
  }
  return accounting;
}

/** One unit's accounting from its Service properties plus whatever its cgroup files add. */
export function unitAccounting(unitName: string, properties: ReadonlyMap<string, unknown>, mounts: CgroupMounts = cgroupMounts()): UnitAccounting {
  const systemd = systemdAccountingValues(unitName, properties);
  const missing = { cpu: systemd.cpuUsageNanoseconds === undefined, memory: systemd.memoryCurrentBytes === undefined };
  const cgroup = systemd.controlGroup === "" ? { processIds: [] } : readCgroupUsage(systemd.controlGroup, mounts, missing);
  return combineAccounting(unitName, systemd, cgroup);
}
