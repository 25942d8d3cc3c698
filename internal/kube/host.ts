/**
 * What the node reports about the machine: fixed facts (read once) and readings that change (read for
 * every status update). Everything comes from /proc, /sys, /etc and statfs; nothing here is invented.
 */
import { readFileSync, readdirSync } from "node:fs";
import { arch, availableParallelism, hostname, release } from "node:os";
import { kilobyteField } from "../host/kernel-files.ts";
import { readFilesystemUsage, type FilesystemUsage } from "../host/node-stats.ts";

export interface HostFacts {
  hostname: string;
  /** GOARCH spelling, as kubernetes.io/arch and nodeInfo.architecture use. */
  architecture: string;
  kernelVersion: string;
  osImage: string;
  machineID: string;
  systemUUID: string;
  bootID: string;
  cpuCount: number;
  memoryBytes: number;
}

export interface HostReadings {
  /** MemAvailable from /proc/meminfo. */
  memoryAvailableBytes: number;
  memoryTotalBytes: number;
  /** What the pressure conditions weigh: space and inodes left. */
  filesystem: Pick<FilesystemUsage, "path" | "capacityBytes" | "availableBytes" | "inodes" | "inodesFree">;
  processCount: number;
  /** The lower of kernel.pid_max and kernel.threads-max: whichever runs out first stops fork(). */
  processLimit: number;
}

const NODE_ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** PRETTY_NAME from os-release, as the kubelet reports osImage. */
export function osImageFrom(osRelease: string): string | undefined {
  for (const line of osRelease.split("\n")) {
    const match = /^PRETTY_NAME=(.*)$/.exec(line.trim());
    if (match?.[1] !== undefined) return match[1].replace(/^(["'])(.*)\1$/, "$2");
  }
  return undefined;
}

export function readHostFacts(): HostFacts {
  const meminfo = readTrimmed("/proc/meminfo") ?? "";
  const machineID = readTrimmed("/etc/machine-id") ?? readTrimmed("/var/lib/dbus/machine-id") ?? "";
  return {
    hostname: hostname(),
    architecture: NODE_ARCH[arch()] ?? arch(),
    kernelVersion: release(),
    osImage: osImageFrom(readTrimmed("/etc/os-release") ?? readTrimmed("/usr/lib/os-release") ?? "") ?? "Linux",
    machineID,
    // product_uuid is root-only and absent in many VMs and containers; the kubelet then reports it empty,
    // vks reports the machine id, which is just as stable and unique.
    systemUUID: (readTrimmed("/sys/class/dmi/id/product_uuid") ?? machineID).toLowerCase(),
    bootID: readTrimmed("/proc/sys/kernel/random/boot_id") ?? "",
    cpuCount: availableParallelism(),
    memoryBytes: kilobyteField(meminfo, "MemTotal") ?? 0,
  };
}

function countProcesses(): number {
  try {
    return readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).length;
  } catch {
    return 0;
  }
}

/** Current readings; throws when /proc or the state directory cannot be read (the caller reports Unknown). */
export function readHostReadings(stateDir: string): HostReadings {
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const pidMax = Number(readTrimmed("/proc/sys/kernel/pid_max") ?? "32768");
  const threadsMax = Number(readTrimmed("/proc/sys/kernel/threads-max") ?? String(pidMax));
  const total = kilobyteField(meminfo, "MemTotal");
  const available = kilobyteField(meminfo, "MemAvailable");
  if (total === undefined || available === undefined) throw new Error("/proc/meminfo has no MemTotal/MemAvailable");
  return {
    memoryAvailableBytes: available,
    memoryTotalBytes: total,
    filesystem: readFilesystemUsage(stateDir),
    processCount: countProcesses(),
    processLimit: Math.min(pidMax, threadsMax),
  };
}

