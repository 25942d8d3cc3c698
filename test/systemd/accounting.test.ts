/**
 * The unit accounting reader's pure parts: systemd's "not available", /proc/PID/stat and the
 * order in which systemd's figures, cgroup files and per-process sums are preferred.
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  accountedValue,
  combineAccounting,
  parseProcessStat,
  readCgroupUsage,
  systemdAccountingValues,
  type CgroupReading,
} from "../../internal/systemd/accounting.ts";

describe("systemd's accounting values", () => {
  test("UINT64_MAX means not available", () => {
    expect(accountedValue(0xffff_ffff_ffff_ffffn, "x")).toBeUndefined();
    expect(accountedValue(1_575_888_000n, "x")).toBe(1_575_888_000);
    expect(accountedValue(0n, "x")).toBe(0);
  });

  test("properties decode into numbers, start time in microseconds", () => {
    const values = systemdAccountingValues(
      "vks.a.service",
      new Map<string, unknown>([
        ["ControlGroup", "/app.slice/vks.a.service"],
        ["ExecMainStartTimestamp", 1_700_000_000_123_456n],
        ["CPUUsageNSec", 0xffff_ffff_ffff_ffffn],
        ["MemoryCurrent", 4096n],
        ["IOReadBytes", 0xffff_ffff_ffff_ffffn],
        ["IOWriteBytes", 0xffff_ffff_ffff_ffffn],
        ["TasksCurrent", 3n],
      ]),
    );
    expect(values).toEqual({
      controlGroup: "/app.slice/vks.a.service",
      startedAtMicroseconds: 1_700_000_000_123_456,
      cpuUsageNanoseconds: undefined,
      memoryCurrentBytes: 4096,
      ioReadBytes: undefined,
      ioWriteBytes: undefined,
      tasksCurrent: 3,
    });
  });
});

describe("/proc parsing", () => {
  test("stat fields count from the last ')' of the command name", () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime …
    const stat = "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 1500 20 7 1 250 50 30 20 20 0 1 0 100 0 0";
    expect(parseProcessStat(stat)).toEqual({ cpuNanoseconds: (250 + 50 + 30 + 20) * 10_000_000, minorFaults: 1500, majorFaults: 7 });
    expect(parseProcessStat("garbage")).toBeUndefined();
  });
});

describe("which figure wins", () => {
  const systemdNothing = { controlGroup: "/app.slice/x.service", startedAtMicroseconds: 1_700_000_000_000_000 };

  test("systemd's figures first; memory.stat still gives the working set", () => {
    const cgroup: CgroupReading = {
      processIds: [10, 11],
      threadCount: 5,
      cpuUsageNanoseconds: 1,
      cgroupMemory: { usageBytes: 1, inactiveFileBytes: 1000, rssBytes: 3000, pageFaults: 9, majorPageFaults: 1 },
    };
    const accounting = combineAccounting("x.service", { ...systemdNothing, cpuUsageNanoseconds: 5e9, memoryCurrentBytes: 10_000, tasksCurrent: 4 }, cgroup);
    expect(accounting).toMatchObject({
      cpuUsageNanoseconds: 5e9,
      memoryUsageBytes: 10_000,
      memoryWorkingSetBytes: 9000,
      memoryRssBytes: 3000,
      tasks: 4,
      processCount: 2,
      sources: { cpu: "systemd", memory: "systemd" },
    });
    expect(accounting.startedAt?.toISOString()).toBe("2023-11-14T22:13:20.000Z");
  });

  test("a hybrid host's user manager: cpu.stat for CPU, the processes for memory", () => {
    const cgroup: CgroupReading = {
      processIds: [10],
      threadCount: 1,
      cpuUsageNanoseconds: 1_575_888_000,
      processTotals: { residentBytes: 70_000_000, anonymousBytes: 65_000_000, pageFaults: 17_000, majorPageFaults: 2, cpuNanoseconds: 1_500_000_000 },
    };
    expect(combineAccounting("x.service", systemdNothing, cgroup)).toMatchObject({
      cpuUsageNanoseconds: 1_575_888_000,
      memoryUsageBytes: 70_000_000,
      memoryWorkingSetBytes: 70_000_000,
      memoryRssBytes: 65_000_000,
      pageFaults: 17_000,
      tasks: 1,
      sources: { cpu: "cgroup", memory: "processes" },
    });
  });

  test("no v2 hierarchy at all: CPU summed over the processes", () => {
    const cgroup: CgroupReading = {
      processIds: [10],
      processTotals: { residentBytes: 1, anonymousBytes: 1, pageFaults: 0, majorPageFaults: 0, cpuNanoseconds: 42 },
    };
    expect(combineAccounting("x.service", systemdNothing, cgroup).sources).toEqual({ cpu: "processes", memory: "processes" });
  });

  test("a unit without a cgroup (not running) has no figures", () => {
    const accounting = combineAccounting("x.service", { controlGroup: "", startedAtMicroseconds: 0 }, { processIds: [] });
    expect(accounting).toEqual({
      unitName: "x.service",
      controlGroup: "",
      startedAt: undefined,
      ioReadBytes: undefined,
      ioWriteBytes: undefined,
      tasks: undefined,
      processCount: undefined,
      sources: {},
    });
  });
});

describe("reading a cgroup directory", () => {
  test("processes of nested cgroups count, cpu.stat and memory.stat are read, /proc is left alone when not needed", () => {
    const root = mkdtempSync(join(tmpdir(), "vks-cgroup-"));
    const unit = join(root, "app.slice", "x.service");
    mkdirSync(join(unit, "child"), { recursive: true });
    writeFileSync(join(unit, "cgroup.procs"), "");
    writeFileSync(join(unit, "cgroup.threads"), "");
    writeFileSync(join(unit, "child", "cgroup.procs"), `${process.pid}\n`);
    writeFileSync(join(unit, "child", "cgroup.threads"), `${process.pid}\n${process.pid + 1}\n`);
    writeFileSync(join(unit, "cpu.stat"), "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n");
    writeFileSync(join(unit, "memory.current"), "8192\n");
    writeFileSync(join(unit, "memory.stat"), "anon 4096\nfile 4096\ninactive_file 1024\npgfault 12\npgmajfault 1\n");
    const reading = readCgroupUsage("/app.slice/x.service", { unified: { mountPoint: root, root: "/" } }, { cpu: true, memory: true });
    expect(reading).toEqual({
      processIds: [process.pid],
      threadCount: 2,
      cpuUsageNanoseconds: 2_500_000,
      cgroupMemory: { usageBytes: 8192, inactiveFileBytes: 1024, rssBytes: 4096, pageFaults: 12, majorPageFaults: 1 },
    });
  });

  test("without memory files the live processes are summed (this test's own process)", () => {
    const root = mkdtempSync(join(tmpdir(), "vks-cgroup-"));
    mkdirSync(join(root, "x.service"));
    writeFileSync(join(root, "x.service", "cgroup.procs"), `${process.pid}\n999999999\n`);
    const reading = readCgroupUsage("/x.service", { unified: { mountPoint: root, root: "/" } }, { cpu: false, memory: true });
    expect(reading.processIds).toEqual([process.pid, 999999999]);
    expect(reading.processTotals?.residentBytes).toBeGreaterThan(1024 * 1024);
    expect(reading.processTotals?.cpuNanoseconds).toBeGreaterThan(0);
  });
});
