/**
 * What the kubelet API needs of the node: the seam between the HTTP face (this directory) and the pod
 * engine, in the spirit of virtual-kubelet's provider interface. The engine implements it; tests can
 * substitute a fake.
 */
import type { V1Pod } from "@kubernetes/client-node";
import type { ExecProcess, ExecRequest } from "../exec/exec.ts";
import type { PodContainerUnits } from "../pod/engine.ts";
import type { UnitAccounting } from "../systemd/accounting.ts";
import type { PodLogs } from "../state/records.ts";
import type { ManagerScope } from "../systemd/types.ts";

export interface KubeletRuntime {
  readonly scope: ManagerScope;
  listPods(): Promise<V1Pod[]>;
  /** The pod with its current status; undefined when this node runs no such pod. */
  getPod(namespace: string, name: string): Promise<V1Pod | undefined>;
  logSource(namespace: string, name: string): { logs: PodLogs; units: { container: string; unitName: string }[] } | undefined;
  exec(namespace: string, pod: string, container: string, request: ExecRequest): Promise<ExecProcess>;
  /** For stats: every pod with its containers' units. */
  containerUnits(): Promise<PodContainerUnits[]>;
  getUnitAccounting(unitNames: string[]): Promise<Map<string, UnitAccounting>>;
}

/** The readings behind /stats and /metrics; built by internal/kubelet/stats.ts and metrics.ts. */
export interface KubeletReadings {
  statsSummary(onlyCpuAndMemory: boolean): Promise<unknown>;
  resourceMetrics(): Promise<string>;
  /** vks' own counters in Prometheus text. */
  metrics(): Promise<string>;
}
