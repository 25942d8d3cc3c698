/**
 * The stats pipeline against a real systemd (test/sandbox.sh node_modules/.bin/bun test
 * test/kubelet/stats.test.ts): a pod whose container burns CPU and holds memory runs through the
 * engine; its unit's accounting, the Summary and /metrics/resource must show both.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderResourceMetrics } from "../../internal/kubelet/metrics.ts";
import { StatsCollector, type Summary } from "../../internal/kubelet/stats.ts";
import { PodEngine } from "../../internal/pod/engine.ts";
import { noSystemd, testScope } from "../systemd/harness.ts";

const HELD_BYTES = 48 * 1024 * 1024;
/** Touches every page of its buffer (so it is resident), then spins. */
const BURNER = `const held = Buffer.alloc(${HELD_BYTES}, 1); let spins = 0; for (;;) { spins += held[spins % ${HELD_BYTES}]; }`;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

/** A minimal text-format parser: enough to check what a scraper would read. Throws on any other line. */
function parsePrometheusText(text: string): { samples: Sample[]; types: Map<string, string>; helps: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (comment) {
      const [, kind, name = "", rest = ""] = comment;
      if (kind === "TYPE") types.set(name, rest);
      else helps.set(name, rest);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!sample) throw new Error(`not a Prometheus text line: ${line}`);
    const [, name = "", labelText = "", value = "", timestamp] = sample;
    const labels: Record<string, string> = {};
    for (const pair of labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] ?? ""] = (pair[2] ?? "").replace(/\\(.)/g, (_, escaped: string) => (escaped === "n" ? "\n" : escaped));
    }
    const parsed = value === "+Inf" ? Infinity : value === "-Inf" ? -Infinity : Number(value);
    if (Number.isNaN(parsed) && value !== "NaN") throw new Error(`bad value in: ${line}`);
    if (!types.has(name)) throw new Error(`sample before its TYPE line: ${line}`);
    samples.push({ name, labels, value: parsed, timestampMs: timestamp === undefined ? undefined : Number(timestamp) });
  }
  return { samples, types, helps };
}

describe.skipIf(noSystemd)("stats from a real unit", () => {
  let stateDir: string;
  let engine: PodEngine;
  let collector: StatsCollector;
  const pod: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "stats-burner", namespace: "default" },
    spec: {
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 1,
      containers: [{ name: "burn", image: process.execPath, args: ["-e", BURNER] }],
    },
  };

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), "vks-stats-"));
    engine = await PodEngine.open({ scope: testScope, stateDir, logMode: "file", hostIP: "127.0.0.1" });
    await engine.createPod(pod);
    collector = new StatsCollector({ nodeName: "sandbox-node", stateDir, pods: engine, accounting: engine.systemd });
  });

  afterAll(async () => {
    await engine?.deletePod(pod).catch(() => undefined);
    await engine?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  async function burnerStats(summary: Summary) {
    return summary.pods.find((entry) => entry.podRef.name === "stats-burner")?.containers.find((container) => container.name === "burn");
  }

  test(
    "the summary reports the container's CPU time, working set and rate",
    async () => {
      let summary = await collector.summary();
      for (let attempt = 0; attempt < 100; attempt++) {
        const burner = await burnerStats(summary);
        if ((burner?.cpu?.usageCoreNanoSeconds ?? 0) > 200_000_000 && (burner?.memory?.workingSetBytes ?? 0) > HELD_BYTES) break;
        await Bun.sleep(100);
        summary = await collector.summary();
      }
      const burner = await burnerStats(summary);
      expect(burner?.cpu?.usageCoreNanoSeconds).toBeGreaterThan(200_000_000);
      expect(burner?.memory?.workingSetBytes).toBeGreaterThan(HELD_BYTES);
      expect(burner?.logs?.capacityBytes).toBeGreaterThan(0);

      const podStats = summary.pods.find((entry) => entry.podRef.name === "stats-burner");
      expect(podStats?.podRef.uid).toMatch(/^[0-9a-f-]{36}$/);
      expect(podStats?.process_stats?.process_count).toBeGreaterThanOrEqual(1);
      expect(summary.node.cpu?.usageCoreNanoSeconds).toBeGreaterThan(0);
      expect(summary.node.memory?.workingSetBytes).toBeGreaterThan(0);
      expect(summary.node.fs?.capacityBytes).toBeGreaterThan(0);

      // A rate needs two readings at least a second apart.
      await Bun.sleep(1100);
      const later = await burnerStats(await collector.summary());
      expect(later?.cpu?.usageNanoCores).toBeGreaterThan(100_000_000);
      expect(JSON.parse(JSON.stringify(summary)).node.cpu.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    },
    60_000,
  );

  test(
    "unit accounting says where each figure came from; an unknown unit is left out",
    async () => {
      const unitName = (await engine.containerUnits()).find((entry) => entry.pod.metadata?.name === "stats-burner")?.containers[0]?.unitName ?? "";
      const missing = "vks.default.nothing.here.0000.service";
      const readings = await engine.systemd.getUnitAccounting([unitName, missing]);
      expect([...readings.keys()]).toEqual([unitName]);
      const accounting = readings.get(unitName);
      expect(accounting?.controlGroup).toContain(unitName);
      expect(accounting?.sources.cpu).toBeDefined();
      expect(accounting?.sources.memory).toBeDefined();
      expect(accounting?.startedAt?.getTime()).toBeGreaterThan(Date.now() - 120_000);
      console.info(`accounting sources here: cpu from ${accounting?.sources.cpu}, memory from ${accounting?.sources.memory}`);
    },
    30_000,
  );

  test(
    "/metrics/resource parses and carries the container's counters",
    async () => {
      const text = renderResourceMetrics(await collector.summary({ onlyCpuAndMemory: true }));
      const { samples, types, helps } = parsePrometheusText(text);
      const ofBurner = (sample: Sample): boolean =>
        sample.labels.namespace === "default" && sample.labels.pod === "stats-burner" && (sample.name.startsWith("pod_") || sample.labels.container === "burn");
      const find = (name: string) => samples.find((sample) => sample.name === name && ofBurner(sample));

      expect(types.get("container_cpu_usage_seconds_total")).toBe("counter");
      expect(helps.get("container_cpu_usage_seconds_total")).toStartWith("[STABLE] ");
      const cpu = find("container_cpu_usage_seconds_total");
      expect(cpu?.value).toBeGreaterThan(0.2);
      expect(Math.abs((cpu?.timestampMs ?? 0) - Date.now())).toBeLessThan(60_000);
      expect(find("container_memory_working_set_bytes")?.value).toBeGreaterThan(HELD_BYTES);
      expect(find("pod_cpu_usage_seconds_total")?.value).toBeGreaterThan(0.2);
      expect(find("container_start_time_seconds")?.value).toBeGreaterThan(Date.now() / 1000 - 120);
      expect(samples.find((sample) => sample.name === "node_cpu_usage_seconds_total")?.value).toBeGreaterThan(0);
      expect(samples.find((sample) => sample.name === "resource_scrape_error")?.value).toBe(0);
    },
    30_000,
  );
});
