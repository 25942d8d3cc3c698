/** The node readings' parsers against /proc fixtures, and one real reading of this host. */
import { describe, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import {
  defaultRouteInterface,
  parseLoadavgTasks,
  parseMaxOpenFiles,
  parseNetDev,
  parseNodeMemory,
  parseProcStat,
  readNodeStats,
  readOwnProcess,
} from "../../internal/host/node-stats.ts";

const PROC_STAT = `cpu  10132153 290696 3084719 46828483 16683 0 25195 175 0 0
cpu0 1393280 32966 572056 13343292 6130 0 17875 0 0 0
intr 199292829 27 2 0 0 0 0 0 0 1 0
ctxt 272519925
btime 1700000000
processes 1049104
procs_running 1
procs_blocked 0
`;

const MEMINFO = `MemTotal:        8000000 kB
MemFree:         2000000 kB
MemAvailable:    5000000 kB
Buffers:          100000 kB
Cached:          2500000 kB
Active(anon):    1500000 kB
Inactive(anon):   300000 kB
Active(file):    1200000 kB
Inactive(file):  1000000 kB
`;

const VMSTAT = "nr_free_pages 500000\npgfault 987654321\npgmajfault 4321\n";

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  ens3: 9876543210 7000000 3    0    0     0          0         0 1234567890 5000000 1    0    0     0       0          0
veth12ab: 500      5    0    0    0     0          0         0      600       6    0    0    0     0       0          0
docker0: 1       1    0    0    0     0          0         0        1       1    0    0    0     0       0          0
`;

const ROUTES = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
ens3\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
ens3\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
`;

describe("node reading parsers", () => {
  test("/proc/stat: non-idle jiffies in nanoseconds, and the boot time", () => {
    const parsed = parseProcStat(PROC_STAT);
    // user nice system irq softirq steal; idle and iowait excluded.
    expect(parsed?.cpuUsageCoreNanoseconds).toBe((10132153 + 290696 + 3084719 + 0 + 25195 + 175) * 10_000_000);
    expect(parsed?.bootTime.toISOString()).toBe("2023-11-14T22:13:20.000Z");
    expect(parseProcStat("nothing here")).toBeUndefined();
  });

  test("/proc/meminfo: usage is total minus free, the working set leaves out inactive file pages", () => {
    expect(parseNodeMemory(MEMINFO, VMSTAT)).toEqual({
      totalBytes: 8000000 * 1024,
      usageBytes: 6000000 * 1024,
      workingSetBytes: 5000000 * 1024,
      rssBytes: 1800000 * 1024,
      pageFaults: 987654321,
      majorPageFaults: 4321,
    });
    expect(parseNodeMemory("MemTotal: 1 kB\n", "")).toBeUndefined();
  });

  test("/proc/net/dev: loopback and container plumbing are left out", () => {
    expect(parseNetDev(NET_DEV)).toEqual([{ name: "ens3", rxBytes: 9876543210, rxErrors: 3, txBytes: 1234567890, txErrors: 1 }]);
  });

  test("the default route's interface", () => {
    expect(defaultRouteInterface(ROUTES)).toBe("ens3");
    expect(defaultRouteInterface(ROUTES.split("\n").slice(0, 2).join("\n"))).toBeUndefined();
  });

  test("tasks from /proc/loadavg and the open-files limit", () => {
    expect(parseLoadavgTasks("0.52 0.58 0.59 2/1234 56789\n")).toBe(1234);
    expect(parseMaxOpenFiles("Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n")).toBe(1024);
  });
});

describe("this host", () => {
  test("a reading has CPU time, memory, a filesystem and a pid limit", () => {
    const now = new Date();
    const reading = readNodeStats(tmpdir(), now);
    expect(reading.time).toBe(now);
    expect(reading.cpuUsageCoreNanoseconds).toBeGreaterThan(0);
    expect(reading.bootTime.getTime()).toBeLessThan(now.getTime());
    expect(reading.memory.workingSetBytes).toBeGreaterThan(0);
    expect(reading.memory.workingSetBytes).toBeLessThanOrEqual(reading.memory.totalBytes);
    expect(reading.filesystem.capacityBytes).toBeGreaterThan(0);
    expect(reading.filesystem.usedBytes + reading.filesystem.availableBytes).toBeLessThanOrEqual(reading.filesystem.capacityBytes);
    expect(reading.maxPID).toBeGreaterThan(0);
    expect(reading.taskCount).toBeGreaterThan(0);
  });

  test("vks' own process", () => {
    const own = readOwnProcess();
    expect(own.residentBytes).toBeGreaterThan(0);
    expect(own.cpuNanoseconds).toBeGreaterThan(0);
    expect(Math.abs(own.startTime.getTime() - (Date.now() - process.uptime() * 1000))).toBeLessThan(2000);
    expect(own.openFileDescriptors).toBeGreaterThan(2);
  });
});
