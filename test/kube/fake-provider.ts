// A stand-in for the pod engine: keeps pods in memory and reports status the way the engine does (through
// notifyPods), so serve's control loop can be tested against the API server without systemd.
import type { V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PodEvent } from "../../internal/pod/provider.ts";
import { NotFoundError } from "../../internal/errors.ts";
import type { ExecProcess, ExecRequest } from "../../internal/exec/exec.ts";
import type { PodLogs } from "../../internal/state/records.ts";
import type { PodContainerUnits } from "../../internal/pod/engine.ts";
import type { UnitAccounting } from "../../internal/systemd/accounting.ts";
import type { ServeProvider } from "../../internal/kube/serve.ts";
import { containerEnv, type ResolvedEnvVar } from "../../internal/pod/env.ts";
import { fetchEnvObjects } from "../../internal/pod/env-sources.ts";
import { NO_OBJECTS, type PodObjectSource } from "../../internal/pod/objects.ts";

const keyOf = (pod: V1Pod) => `${pod.metadata?.namespace || "default"}/${pod.metadata?.name ?? ""}`;

export class FakeProvider implements ServeProvider {
  readonly scope = "user" as const;
  readonly stateDir = mkdtempSync(join(tmpdir(), "vks-fake-provider-"));
  readonly pods = new Map<string, V1Pod>();
  /** Every call, in order, as "create ns/name", "delete ns/name", "update ns/name", "reconcile N". */
  readonly calls: string[] = [];
  reconciled: V1Pod[] | undefined;
  healthy = true;
  /** Makes createPod throw this (once per pod) when set. */
  failCreate: Error | undefined;
  /** Each created pod's resolved env per container, as the engine would compute it from serve's objects. */
  readonly resolvedEnv = new Map<string, Record<string, ResolvedEnvVar[]>>();
  private objects: PodObjectSource = NO_OBJECTS;
  private readonly podListeners: ((pod: V1Pod) => void)[] = [];
  private readonly eventListeners: ((pod: V1Pod, event: PodEvent) => void)[] = [];

  constructor(private readonly hostIP = "10.0.0.7") {}

  /** serve's PodObjectSource (the API server), which the engine resolves env sources from. */
  useObjects(objects: PodObjectSource): void {
    this.objects = objects;
  }

  async createPod(pod: V1Pod): Promise<void> {
    this.calls.push(`create ${keyOf(pod)}`);
    if (this.failCreate) throw this.failCreate;
    // As the engine does before planning: a missing required source throws EnvSourceError.
    const envObjects = await fetchEnvObjects(pod, this.objects);
    const env: Record<string, ResolvedEnvVar[]> = {};
    (pod.spec?.containers ?? []).forEach((container, index) => {
      env[container.name] = containerEnv(pod, container, `spec.containers[${index}]`, { mode: "strict", host: { hostIP: this.hostIP }, objects: envObjects });
    });
    this.resolvedEnv.set(keyOf(pod), env);
    const stored: V1Pod = structuredClone(pod);
    this.pods.set(keyOf(pod), stored);
    this.emitEvent(stored, { type: "Normal", reason: "Started", message: "Started container main", container: pod.spec?.containers[0]?.name });
    this.setStatus(keyOf(pod), this.runningStatus(stored));
  }

  async updatePod(pod: V1Pod): Promise<void> {
    this.calls.push(`update ${keyOf(pod)}`);
    const stored = this.pods.get(keyOf(pod));
    if (stored) stored.metadata = pod.metadata;
  }

  async deletePod(pod: V1Pod): Promise<void> {
    const stored = this.pods.get(keyOf(pod));
    if (!stored || (pod.metadata?.uid && stored.metadata?.uid !== pod.metadata.uid)) return;
    this.calls.push(`delete ${keyOf(pod)}`);
    this.pods.delete(keyOf(pod));
  }

  async getPod(namespace: string, name: string): Promise<V1Pod | undefined> {
    const pod = this.pods.get(`${namespace}/${name}`);
    return pod === undefined ? undefined : structuredClone(pod);
  }

  async getPodStatus(namespace: string, name: string): Promise<V1PodStatus | undefined> {
    return (await this.getPod(namespace, name))?.status;
  }

  async listPods(): Promise<V1Pod[]> {
    return [...this.pods.values()].map((pod) => structuredClone(pod));
  }

  notifyPods(onPodChanged: (pod: V1Pod) => void): void {
    this.podListeners.push(onPodChanged);
  }

  notifyEvents(onEvent: (pod: V1Pod, event: PodEvent) => void): void {
    this.eventListeners.push(onEvent);
  }

  async reconcile(desired: V1Pod[]): Promise<void> {
    this.calls.push(`reconcile ${desired.length}`);
    this.reconciled = desired;
    const wanted = new Set(desired.map(keyOf));
    for (const key of [...this.pods.keys()]) if (!wanted.has(key)) this.pods.delete(key);
  }

  async systemdVersion(): Promise<string> {
    return "252";
  }

  async isHealthy(): Promise<boolean> {
    return this.healthy;
  }

  async close(): Promise<void> {}

  async containerUnits(): Promise<PodContainerUnits[]> {
    return [];
  }

  async getUnitAccounting(_unitNames: string[]): Promise<Map<string, UnitAccounting>> {
    return new Map();
  }

  /** The fake runs no processes: there is no output to read and nothing to exec into. */
  logSource(_namespace: string, _name: string): { logs: PodLogs; units: { container: string; unitName: string }[] } | undefined {
    return undefined;
  }

  async exec(namespace: string, pod: string, _container: string, _request: ExecRequest): Promise<ExecProcess> {
    throw new NotFoundError(`pod "${pod}" in namespace "${namespace}" runs no processes in the fake provider`);
  }

  /** Puts a pod in place as if it had been running before serve started (adoption). */
  adopt(pod: V1Pod): void {
    const stored = structuredClone(pod);
    stored.status = this.runningStatus(stored);
    this.pods.set(keyOf(pod), stored);
  }

  /** The container exits: Succeeded for 0, Failed otherwise (restartPolicy Never). */
  exit(namespace: string, name: string, exitCode: number): void {
    const pod = this.pods.get(`${namespace}/${name}`);
    if (!pod) throw new Error(`no pod ${namespace}/${name}`);
    const container = pod.spec?.containers[0]?.name ?? "main";
    const startedAt = new Date(Date.now() - 1000);
    this.setStatus(`${namespace}/${name}`, {
      ...this.baseStatus(pod),
      phase: exitCode === 0 ? "Succeeded" : "Failed",
      conditions: [
        { type: "PodScheduled", status: "True", lastTransitionTime: startedAt },
        { type: "Ready", status: "False", reason: "PodCompleted", lastTransitionTime: new Date() },
      ],
      containerStatuses: [
        {
          name: container,
          image: pod.spec?.containers[0]?.image ?? "",
          imageID: "path:/bin/true",
          containerID: `systemd://vks.${namespace}.${name}.${container}.x.service`,
          ready: false,
          restartCount: 0,
          started: false,
          state: { terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", startedAt, finishedAt: new Date() } },
        },
      ],
    });
  }

  emit(key: string): void {
    const pod = this.pods.get(key);
    if (pod) for (const listener of this.podListeners) listener(structuredClone(pod));
  }

  private setStatus(key: string, status: V1PodStatus): void {
    const pod = this.pods.get(key);
    if (!pod) return;
    pod.status = status;
    this.emit(key);
  }

  private emitEvent(pod: V1Pod, event: PodEvent): void {
    for (const listener of this.eventListeners) listener(pod, event);
  }

  private baseStatus(pod: V1Pod): V1PodStatus {
    return { hostIP: this.hostIP, hostIPs: [{ ip: this.hostIP }], podIP: this.hostIP, podIPs: [{ ip: this.hostIP }], startTime: new Date(), qosClass: "BestEffort", ...(pod.status?.startTime ? { startTime: pod.status.startTime } : {}) };
  }

  private runningStatus(pod: V1Pod): V1PodStatus {
    const container = pod.spec?.containers[0]?.name ?? "main";
    const now = new Date();
    return {
      ...this.baseStatus(pod),
      phase: "Running",
      conditions: [
        { type: "PodReadyToStartContainers", status: "True", lastTransitionTime: now },
        { type: "Initialized", status: "True", lastTransitionTime: now },
        { type: "Ready", status: "True", lastTransitionTime: now },
        { type: "ContainersReady", status: "True", lastTransitionTime: now },
        { type: "PodScheduled", status: "True", lastTransitionTime: now },
      ],
      containerStatuses: [
        {
          name: container,
          image: pod.spec?.containers[0]?.image ?? "",
          imageID: "path:/bin/sleep",
          containerID: `systemd://vks.x.service`,
          ready: true,
          restartCount: 0,
          started: true,
          state: { running: { startedAt: now } },
        },
      ],
    };
  }
}
