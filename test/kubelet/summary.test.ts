/**
 * The Summary and /metrics/resource builders against golden files, the CPU rate sampler, and the
 * collector with fake sources. `UPDATE_GOLDEN=1 bun test test/kubelet/summary.test.ts` rewrites
 * testdata/stats-*; review the diff before committing.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NodeReading, OwnProcessReading } from "../../internal/host/node-stats.ts";
import { VksMetrics, collectResourceMetrics, renderResourceMetrics } from "../../internal/kubelet/metrics.ts";
import {
  CpuRateSampler,
  KUBELET_RATE_KEY,
  NODE_RATE_KEY,
  StatsCollector,
  buildSummary,
  containerRateKey,
  type StatsSnapshot,
} from "../../internal/kubelet/stats.ts";
import type { PodContainerUnits } from "../../internal/pod/engine.ts";
import type { UnitAccounting } from "../../internal/systemd/accounting.ts";
import type { UnitState } from "../../internal/systemd/types.ts";

const TESTDATA = join(import.meta.dir, "testdata");
const UPDATE = process.env.UPDATE_GOLDEN === "1";

function golden(name: string, actual: string): void {
  const path = join(TESTDATA, name);
  if (UPDATE) {
    mkdirSync(TESTDATA, { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  expect(actual).toBe(readFileSync(path, "utf8"));
}

/** The kubelet's own resource-metrics test uses this instant: 2021-06-23 05:11:18.302091597 +0800. */
const TIME = new Date(1624396278302);

const NODE: NodeReading = {
  time: TIME,
  bootTime: new Date("2021-06-20T08:00:00Z"),
  cpuUsageCoreNanoseconds: 6197005020000,
  memory: { totalBytes: 8_192_000_000, usageBytes: 6_000_000_000, workingSetBytes: 1_137_475_584, rssBytes: 900_000_000, pageFaults: 987654321, majorPageFaults: 4321 },
  network: {
    defaultInterface: "ens3",
    interfaces: [
      { name: "ens3", rxBytes: 9876543210, rxErrors: 3, txBytes: 1234567890, txErrors: 1 },
      { name: "ens4", rxBytes: 10, rxErrors: 0, txBytes: 20, txErrors: 0 },
    ],
  },
  filesystem: { path: "/var/lib/vks", capacityBytes: 100e9, availableBytes: 60e9, usedBytes: 35e9, inodes: 6_000_000, inodesFree: 5_000_000, inodesUsed: 1_000_000 },
  imageFilesystem: { path: "/usr", capacityBytes: 100e9, availableBytes: 60e9, usedBytes: 35e9, inodes: 6_000_000, inodesFree: 5_000_000, inodesUsed: 1_000_000 },
  maxPID: 4194304,
  taskCount: 1234,
};

const KUBELET: OwnProcessReading = {
  startTime: new Date("2021-06-22T21:00:00.250Z"),
  cpuNanoseconds: 12_340_000_000,
  residentBytes: 80_000_000,
  virtualBytes: 900_000_000,
};

function accounting(unitName: string, fields: Partial<UnitAccounting>): UnitAccounting {
  return { unitName, controlGroup: `/app.slice/${unitName}`, startedAt: new Date("2021-06-22T21:10:48.302Z"), sources: {}, ...fields };
}

const WEB = "vks.default.web.nginx.uid-web.service";
const SIDECAR = "vks.default.web.sidecar.uid-web.service";
const WORKER = "vks.jobs.worker.main.uid-worker.service";

const SNAPSHOT: StatsSnapshot = {
  time: TIME,
  nodeName: "vks-node",
  node: NODE,
  kubelet: KUBELET,
  pods: [
    {
      namespace: "default",
      name: "web",
      uid: "uid-web",
      startTime: new Date("2021-06-22T21:10:40Z"),
      containers: [
        {
          name: "nginx",
          unitName: WEB,
          startTime: new Date("2021-06-22T21:10:48.302Z"),
          logBytes: 2048,
          accounting: accounting(WEB, {
            cpuUsageNanoseconds: 10_000_000_000,
            memoryUsageBytes: 30_000_000,
            memoryWorkingSetBytes: 17_391_616,
            memoryRssBytes: 12_000_000,
            pageFaults: 5000,
            majorPageFaults: 3,
            tasks: 5,
            processCount: 3,
            sources: { cpu: "systemd", memory: "systemd" },
          }),
        },
        {
          name: "sidecar",
          unitName: SIDECAR,
          startTime: new Date("2021-06-22T21:08:18.302Z"),
          logBytes: 100,
          accounting: accounting(SIDECAR, {
            cpuUsageNanoseconds: 384_910_049,
            memoryUsageBytes: 4_206_592,
            memoryWorkingSetBytes: 4_206_592,
            memoryRssBytes: 3_000_000,
            pageFaults: 700,
            majorPageFaults: 0,
            tasks: 1,
            processCount: 1,
            sources: { cpu: "cgroup", memory: "processes" },
          }),
        },
      ],
      logDirectory: { bytes: 2148, files: 2 },
    },
    {
      namespace: "jobs",
      name: "worker",
      uid: "uid-worker",
      startTime: new Date("2021-06-22T21:01:18Z"),
      containers: [
        {
          name: "main",
          unitName: WORKER,
          startTime: new Date("2021-06-22T21:01:18.302Z"),
          // Only a CPU figure: no memory reading, no log file (journal mode).
          accounting: accounting(WORKER, { cpuUsageNanoseconds: 753_998_393_487, processCount: 2, sources: { cpu: "cgroup" } }),
        },
      ],
    },
    { namespace: "default", name: "pending", uid: "uid-pending", startTime: undefined, containers: [] },
  ],
};

const RATES = new Map([
  [NODE_RATE_KEY, 1_250_000_000],
  [KUBELET_RATE_KEY, 2_000_000.4],
  [containerRateKey({ unitName: WEB, startTime: new Date("2021-06-22T21:10:48.302Z") }), 500_000_000],
  [containerRateKey({ unitName: SIDECAR, startTime: new Date("2021-06-22T21:08:18.302Z") }), 1_000_000],
]);

describe("buildSummary", () => {
  test("the full summary", () => {
    golden("stats-summary.json", JSON.stringify(buildSummary(SNAPSHOT, RATES), null, 2) + "\n");
  });

  test("only CPU and memory", () => {
    golden("stats-summary-cpu-memory.json", JSON.stringify(buildSummary(SNAPSHOT, RATES, { onlyCpuAndMemory: true }), null, 2) + "\n");
  });

  test("times are RFC 3339 in whole seconds, an unknown start time is null, as metav1.Time marshals", () => {
    const summary = JSON.parse(JSON.stringify(buildSummary(SNAPSHOT, RATES)));
    expect(summary.node.cpu.time).toBe("2021-06-22T21:11:18Z");
    expect(summary.pods[2].startTime).toBeNull();
    expect(summary.pods[2].containers).toEqual([]);
  });

  test("a pod's usageNanoCores needs every container's rate", () => {
    const summary = buildSummary(SNAPSHOT, RATES);
    expect(summary.pods[0]?.cpu?.usageNanoCores).toBe(501_000_000);
    expect(summary.pods[1]?.cpu?.usageNanoCores).toBeUndefined();
    expect(summary.pods[1]?.cpu?.usageCoreNanoSeconds).toBe(753_998_393_487);
  });
});

describe("renderResourceMetrics", () => {
  test("the kubelet's families, names, help and millisecond timestamps", () => {
    golden("stats-resource-metrics.txt", renderResourceMetrics(buildSummary(SNAPSHOT, RATES, { onlyCpuAndMemory: true })));
  });

  test("collectResourceMetrics turns a failed collection into resource_scrape_error 1", async () => {
    const errors: unknown[] = [];
    const failing = { summary: () => Promise.reject(new Error("systemd is gone")) };
    expect(await collectResourceMetrics(failing, (err) => errors.push(err))).toEndWith("resource_scrape_error 1\n");
    expect(errors).toHaveLength(1);
    const working = { summary: async () => buildSummary(SNAPSHOT, RATES, { onlyCpuAndMemory: true }) };
    expect(await collectResourceMetrics(working)).toContain("resource_scrape_error 0\n");
  });

  test("a failed collection reports only resource_scrape_error 1", () => {
    expect(renderResourceMetrics(undefined)).toBe(
      [
        "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        "# TYPE resource_scrape_error gauge",
        "resource_scrape_error 1",
        "",
      ].join("\n"),
    );
  });
});

describe("CpuRateSampler", () => {
  const at = (ms: number) => new Date(1_700_000_000_000 + ms);

  test("no rate from a first reading; nanocores from the next one", () => {
    const sampler = new CpuRateSampler(1000);
    expect(sampler.sample("a", 1e9, at(0))).toBeUndefined();
    expect(sampler.sample("a", 3e9, at(2000))).toBe(1e9);
    expect(sampler.last("a")).toBe(1e9);
  });

  test("a reading too soon after the last keeps the last rate and the old baseline", () => {
    const sampler = new CpuRateSampler(1000);
    sampler.sample("a", 0, at(0));
    expect(sampler.sample("a", 2e9, at(2000))).toBe(1e9);
    expect(sampler.sample("a", 2.1e9, at(2100))).toBe(1e9);
    // Measured against the reading at 2000 ms, not the skipped one at 2100 ms.
    expect(sampler.sample("a", 2.5e9, at(3000))).toBe(0.5e9);
  });

  test("a counter that went back (a restart) starts over", () => {
    const sampler = new CpuRateSampler(1000);
    sampler.sample("a", 5e9, at(0));
    expect(sampler.sample("a", 1e9, at(2000))).toBeUndefined();
    expect(sampler.sample("a", 2e9, at(3000))).toBe(1e9);
  });

  test("retain forgets keys that are gone", () => {
    const sampler = new CpuRateSampler(1000);
    sampler.sample("a", 0, at(0));
    sampler.sample("b", 0, at(0));
    sampler.retain(new Set(["b"]));
    expect(sampler.sample("a", 1e9, at(2000))).toBeUndefined();
    expect(sampler.sample("b", 1e9, at(2000))).toBe(0.5e9);
  });
});

function unitState(name: string, activeState: string, subState: string): UnitState {
  return {
    name,
    description: "",
    loadState: "loaded",
    activeState,
    subState,
    result: "success",
    mainPID: 0,
    execMainCode: 0,
    execMainStatus: 0,
    execMainStartTimestamp: 1_624_396_248_302_000n,
    execMainExitTimestamp: 0n,
    activeEnterTimestamp: 0n,
    inactiveEnterTimestamp: 0n,
    stateChangeTimestamp: 0n,
    nRestarts: 0,
  };
}

describe("StatsCollector", () => {
  test("running units only, log sizes from the pod's directory, rates from the second summary on", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "vks-stats-"));
    const logDirectory = join(stateDir, "logs", "default_web_uid-web");
    mkdirSync(logDirectory, { recursive: true });
    writeFileSync(join(logDirectory, "nginx.log"), "x".repeat(300));
    writeFileSync(join(logDirectory, "done.log"), "y".repeat(50));
    const pod: V1Pod = { metadata: { name: "web", namespace: "default", uid: "uid-web" }, status: { phase: "Running", startTime: new Date("2021-06-22T21:10:40Z") } };
    const listing: PodContainerUnits[] = [
      {
        pod,
        logs: { mode: "file", directory: logDirectory },
        containers: [
          { name: "nginx", unitName: WEB, unit: unitState(WEB, "active", "running") },
          { name: "done", unitName: SIDECAR, unit: unitState(SIDECAR, "active", "exited") },
          { name: "gone", unitName: "vks.default.web.gone.uid-web.service", unit: undefined },
        ],
      },
    ];
    let cpu = 1e9;
    let clock = TIME.getTime();
    const requested: string[][] = [];
    const collector = new StatsCollector({
      nodeName: "vks-node",
      stateDir,
      pods: { containerUnits: async () => listing },
      accounting: {
        getUnitAccounting: async (names) => {
          requested.push(names);
          return new Map([
            [WEB, accounting(WEB, { cpuUsageNanoseconds: cpu, memoryWorkingSetBytes: 1000, memoryUsageBytes: 1000, processCount: 2 })],
            [SIDECAR, accounting(SIDECAR, { processCount: 0 })],
          ]);
        },
      },
      readNode: (_dir, now) => ({ ...NODE, time: now, cpuUsageCoreNanoseconds: cpu * 10 }),
      readOwnProcess: () => KUBELET,
      now: () => new Date(clock),
    });

    const first = await collector.summary();
    expect(requested).toEqual([[WEB, SIDECAR, "vks.default.web.gone.uid-web.service"]]);
    const [webStats] = first.pods;
    expect(webStats?.containers.map((container) => container.name)).toEqual(["nginx"]);
    expect(webStats?.containers[0]?.cpu).toEqual({ time: expect.anything(), usageCoreNanoSeconds: 1e9 });
    expect(webStats?.containers[0]?.logs?.usedBytes).toBe(300);
    expect(webStats?.["ephemeral-storage"]).toMatchObject({ usedBytes: 350, inodesUsed: 2 });
    expect(webStats?.process_stats).toEqual({ process_count: 2 });
    expect(first.node.cpu?.usageNanoCores).toBeUndefined();

    cpu = 3e9;
    clock += 4000;
    const second = await collector.summary();
    expect(second.pods[0]?.containers[0]?.cpu?.usageNanoCores).toBe(500_000_000);
    expect(second.node.cpu?.usageNanoCores).toBe(5_000_000_000);
    // only_cpu_and_memory reuses the rates without taking a reading of its own.
    clock += 4000;
    const cpuAndMemory = await collector.summary({ onlyCpuAndMemory: true });
    expect(cpuAndMemory.pods[0]?.containers[0]?.cpu?.usageNanoCores).toBe(500_000_000);
    expect(cpuAndMemory.node.fs).toBeUndefined();
  });
});

describe("VksMetrics", () => {
  test("requests, sessions, pods and units, with process figures", () => {
    const metrics = new VksMetrics(() => [{ name: "process_resident_memory_bytes", help: "Resident memory size in bytes.", type: "gauge", metrics: [{ labels: {}, value: 8e7 }] }]);
    metrics.countRequest("stats", 200, 0.02);
    metrics.countRequest("exec", 101);
    metrics.streamingCounters.sessionOpened("exec");
    metrics.observePods([{ status: { phase: "Running" } }, { status: { phase: "Running" } }, { status: { phase: "Pending" } }]);
    metrics.observeUnits(["active", "active", "failed"]);
    const text = metrics.render();
    expect(text).toContain('vks_http_requests_total{code="200",path_class="stats"} 1');
    expect(text).toContain('vks_http_requests_total{code="101",path_class="exec"} 1');
    expect(text).toContain('vks_http_request_duration_seconds_bucket{path_class="stats",le="0.025"} 1');
    expect(text).toContain('vks_streaming_sessions_active{kind="exec"} 1');
    expect(text).toContain('vks_pods{phase="Running"} 2');
    expect(text).toContain('vks_units{active_state="failed"} 1');
    expect(text).toContain("process_resident_memory_bytes 8e+07");
  });

  test("the real process collector", () => {
    const text = new VksMetrics().render();
    expect(text).toMatch(/^process_resident_memory_bytes \d/m);
    expect(text).toMatch(/^process_start_time_seconds 1\.\d+e\+09$/m);
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
  });
});
