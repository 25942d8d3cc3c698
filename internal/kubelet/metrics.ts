/**
 * The kubelet's two Prometheus endpoints: `/metrics/resource`, the CPU and memory figures
 * metrics-server scrapes (names, help, stability prefixes and millisecond timestamps as the kubelet's
 * resource metrics collector writes them), and `/metrics`, vks' own counters.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { readOwnProcess } from "../host/node-stats.ts";
import { MetricsRegistry, renderFamilies, type MetricFamily, type ValueMetric } from "./prometheus.ts";
import type { Summary, WireTime } from "./stats.ts";

const NANOSECONDS_PER_SECOND = 1e9;

function timestampOf(time: WireTime): number | undefined {
  return time.date?.getTime();
}

type ResourceFamilyName =
  | "node_cpu_usage_seconds_total"
  | "node_memory_working_set_bytes"
  | "container_cpu_usage_seconds_total"
  | "container_memory_working_set_bytes"
  | "container_start_time_seconds"
  | "pod_cpu_usage_seconds_total"
  | "pod_memory_working_set_bytes"
  | "resource_scrape_error";

/** The kubelet's descriptions, each with the stability level component-base puts in front of it. */
const RESOURCE_FAMILIES: Record<ResourceFamilyName, { help: string; type: "counter" | "gauge" }> = {
  node_cpu_usage_seconds_total: { help: "[STABLE] Cumulative cpu time consumed by the node in core-seconds", type: "counter" },
  node_memory_working_set_bytes: { help: "[STABLE] Current working set of the node in bytes", type: "gauge" },
  container_cpu_usage_seconds_total: { help: "[STABLE] Cumulative cpu time consumed by the container in core-seconds", type: "counter" },
  container_memory_working_set_bytes: { help: "[STABLE] Current working set of the container in bytes", type: "gauge" },
  container_start_time_seconds: { help: "[STABLE] Start time of the container since unix epoch in seconds", type: "gauge" },
  pod_cpu_usage_seconds_total: { help: "[STABLE] Cumulative cpu time consumed by the pod in core-seconds", type: "counter" },
  pod_memory_working_set_bytes: { help: "[STABLE] Current working set of the pod in bytes", type: "gauge" },
  resource_scrape_error: { help: "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", type: "gauge" },
};

/**
 * `/metrics/resource` for a CPU-and-memory summary, or for a failed collection (undefined): then only
 * resource_scrape_error 1, as the kubelet answers. The kubelet's deprecated `scrape_error` twin is left
 * out: it is hidden in the kubelet versions vks reports itself as.
 */
export function renderResourceMetrics(summary: Summary | undefined): string {
  const metrics = new Map<ResourceFamilyName, ValueMetric[]>(Object.keys(RESOURCE_FAMILIES).map((name) => [name as ResourceFamilyName, []]));
  const add = (family: ResourceFamilyName, metric: ValueMetric): void => {
    metrics.get(family)?.push(metric);
  };
  add("resource_scrape_error", { labels: {}, value: summary === undefined ? 1 : 0 });

  if (summary !== undefined) {
    const node = summary.node;
    if (node.cpu?.usageCoreNanoSeconds !== undefined) {
      add("node_cpu_usage_seconds_total", {
        labels: {},
        value: node.cpu.usageCoreNanoSeconds / NANOSECONDS_PER_SECOND,
        timestampMs: timestampOf(node.cpu.time),
      });
    }
    if (node.memory?.workingSetBytes !== undefined) {
      add("node_memory_working_set_bytes", { labels: {}, value: node.memory.workingSetBytes, timestampMs: timestampOf(node.memory.time) });
    }
    for (const pod of summary.pods) {
      const podLabels = { pod: pod.podRef.name, namespace: pod.podRef.namespace };
      for (const container of pod.containers) {
        const labels = { container: container.name, ...podLabels };
        const started = container.startTime.date;
        // The kubelet skips start times at or before the epoch: they mean "unknown".
        if (started !== undefined && started.getTime() >= 1000) {
          add("container_start_time_seconds", { labels, value: started.getTime() / 1000 });
        }
        if (container.cpu?.usageCoreNanoSeconds !== undefined) {
          add("container_cpu_usage_seconds_total", {
            labels,
            value: container.cpu.usageCoreNanoSeconds / NANOSECONDS_PER_SECOND,
            timestampMs: timestampOf(container.cpu.time),
          });
        }
        if (container.memory?.workingSetBytes !== undefined) {
          add("container_memory_working_set_bytes", { labels, value: container.memory.workingSetBytes, timestampMs: timestampOf(container.memory.time) });
        }
      }
      if (pod.cpu?.usageCoreNanoSeconds !== undefined) {
        add("pod_cpu_usage_seconds_total", {
          labels: podLabels,
          value: pod.cpu.usageCoreNanoSeconds / NANOSECONDS_PER_SECOND,
          timestampMs: timestampOf(pod.cpu.time),
        });
      }
      if (pod.memory?.workingSetBytes !== undefined) {
        add("pod_memory_working_set_bytes", { labels: podLabels, value: pod.memory.workingSetBytes, timestampMs: timestampOf(pod.memory.time) });
      }
    }
  }

  const families: MetricFamily[] = [...metrics].map(([name, values]) => ({ name, ...RESOURCE_FAMILIES[name], metrics: values }));
  return renderFamilies(families);
}

/**
 * `/metrics/resource` from a fresh CPU-and-memory summary. A collection that fails (systemd gone, /proc
 * unreadable) is still a valid answer, as the kubelet gives it: resource_scrape_error 1.
 */
export async function collectResourceMetrics(
  collector: { summary(options: { onlyCpuAndMemory: boolean }): Promise<Summary> },
  onError?: (err: unknown) => void,
): Promise<string> {
  try {
    return renderResourceMetrics(await collector.summary({ onlyCpuAndMemory: true }));
  } catch (err) {
    onError?.(err);
    return renderResourceMetrics(undefined);
  }
}

/** The process_* families every Prometheus client exports, from vks' own /proc entries. */
function processFamilies(): MetricFamily[] {
  const own = readOwnProcess();
  const gauge = (name: string, help: string, value: number | undefined): MetricFamily => ({
    name,
    help,
    type: "gauge",
    metrics: value === undefined ? [] : [{ labels: {}, value }],
  });
  return [
    { name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", type: "counter", metrics: [{ labels: {}, value: own.cpuNanoseconds / NANOSECONDS_PER_SECOND }] },
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.", own.residentBytes),
    gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", own.virtualBytes),
    gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", own.startTime.getTime() / 1000),
    gauge("process_open_fds", "Number of open file descriptors.", own.openFileDescriptors),
    gauge("process_max_fds", "Maximum number of open file descriptors.", own.maxFileDescriptors),
  ];
}

/**
 * vks' own metrics for `/metrics`. The kubelet API server counts requests and streaming sessions into
 * them; pod and unit counts are set from the engine before each scrape (observePods / observeUnits).
 */
export class VksMetrics {
  readonly registry = new MetricsRegistry();
  readonly httpRequests = this.registry.counter("vks_http_requests_total", "Requests to the kubelet API, by kind of path and status code.", ["path_class", "code"]);
  readonly httpRequestDuration = this.registry.histogram("vks_http_request_duration_seconds", "Time to answer kubelet API requests (streams: until the upgrade), by kind of path.", ["path_class"]);
  readonly streamingSessions = this.registry.gauge("vks_streaming_sessions_active", "exec, attach and port-forward sessions open now, by kind.", ["kind"]);
  readonly pods = this.registry.gauge("vks_pods", "Pods vks runs, by phase.", ["phase"]);
  readonly units = this.registry.gauge("vks_units", "Units of vks' pods, by systemd active state.", ["active_state"]);

  /** Plugs into the kubelet API server's StreamingCounters. */
  readonly streamingCounters = {
    sessionOpened: (kind: string): void => this.streamingSessions.inc({ kind }),
    sessionClosed: (kind: string): void => this.streamingSessions.dec({ kind }),
  };

  constructor(readOwnProcessFamilies: () => MetricFamily[] = processFamilies) {
    this.registry.addCollector(readOwnProcessFamilies);
  }

  countRequest(pathClass: string, status: number, durationSeconds?: number): void {
    this.httpRequests.inc({ path_class: pathClass, code: String(status) });
    if (durationSeconds !== undefined) this.httpRequestDuration.observe({ path_class: pathClass }, durationSeconds);
  }

  observePods(pods: readonly V1Pod[]): void {
    const byPhase = new Map<string, number>();
    for (const pod of pods) {
      const phase = pod.status?.phase ?? "Unknown";
      byPhase.set(phase, (byPhase.get(phase) ?? 0) + 1);
    }
    this.pods.replaceAll([...byPhase].map(([phase, value]) => ({ labels: { phase }, value })));
  }

  observeUnits(activeStates: readonly string[]): void {
    const byState = new Map<string, number>();
    for (const state of activeStates) byState.set(state, (byState.get(state) ?? 0) + 1);
    this.units.replaceAll([...byState].map(([state, value]) => ({ labels: { active_state: state }, value })));
  }

  render(): string {
    return this.registry.render();
  }
}
