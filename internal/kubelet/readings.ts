/**
 * The readings behind /stats/summary, /metrics/resource and /metrics, for one node: the stats collector
 * (which keeps the previous CPU sample for rates) and vks' own counters.
 */
import { collectResourceMetrics, VksMetrics } from "./metrics.ts";
import type { KubeletReadings, KubeletRuntime } from "./runtime.ts";
import { StatsCollector } from "./stats.ts";
import type { StreamingCounters } from "./streaming.ts";

export interface NodeReadings extends KubeletReadings {
  countRequest(pathClass: string, status: number): void;
  readonly streamingCounters: StreamingCounters;
}

export function createKubeletReadings(options: { runtime: KubeletRuntime; nodeName: string; stateDir: string; onError?: (message: string) => void }): NodeReadings {
  const collector = new StatsCollector({ nodeName: options.nodeName, stateDir: options.stateDir, pods: options.runtime, accounting: options.runtime });
  const metrics = new VksMetrics();
  return {
    statsSummary: (onlyCpuAndMemory) => collector.summary({ onlyCpuAndMemory }),
    resourceMetrics: () => collectResourceMetrics(collector, (err) => options.onError?.(`kubelet API: /metrics/resource: ${String(err)}`)),
    async metrics() {
      const pods = await options.runtime.listPods();
      metrics.observePods(pods);
      return metrics.render();
    },
    countRequest: (pathClass, status) => metrics.countRequest(pathClass, status),
    streamingCounters: metrics.streamingCounters,
  };
}
