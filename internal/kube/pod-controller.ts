/**
 * Makes the provider run what the API server assigns to this node, one pod key at a time (virtual-kubelet's
 * PodController): create what is missing, pass on changes, stop what is being deleted and then remove the
 * pod object, and never start a pod the API server already shows as finished. Every sync looks at the
 * latest state on both sides, so a burst of watch events for one pod costs one sync, and a failed sync
 * is retried with back-off.
 */
import type { V1ContainerStatus, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { ValidationError, errorMessage } from "../errors.ts";
import type { PodEvent, PodProvider } from "../pod/provider.ts";
import { isConflict, isNotFound, type KubeApiError } from "./api-error.ts";
import type { KubeClient } from "./client.ts";
import { EnvSourceError } from "../pod/env-sources.ts";
import { podKeyOf } from "./node-pods.ts";
import { isMirrorPod, isStaticPod } from "./static-pods.ts";
import { KeyedWorkQueue } from "./work-queue.ts";

export interface PodSource {
  get(key: string): V1Pod | undefined;
}

export interface PodStatusSink {
  push(pod: V1Pod): void;
}

export interface PodEventSink {
  record(pod: V1Pod, event: PodEvent): void;
}

export interface PodControllerHooks {
  onCreated?(pod: V1Pod): void;
  onDeleted?(pod: V1Pod): void;
  onSyncError?(key: string, err: unknown, retryInMs: number): void;
}

export interface PodControllerOptions {
  /** Pods synced in parallel; the engine and systemd pace the real work. */
  concurrency: number;
  /** The node's address, for the status vks writes itself (pods share the host network). */
  hostIP: string;
}

export function isTerminalPhase(phase: string | undefined): boolean {
  return phase === "Succeeded" || phase === "Failed";
}

/** What a change must touch for the provider to hear about it: labels, annotations and the spec. */
function fingerprint(pod: V1Pod): string {
  return JSON.stringify([pod.metadata?.labels ?? {}, pod.metadata?.annotations ?? {}, pod.spec ?? {}]);
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf("/");
  return [key.slice(0, slash), key.slice(slash + 1)];
}

export class PodController {
  private readonly queue: KeyedWorkQueue;
  /** Per pod key, the uid and fingerprint last handed to the provider, so status-only changes cost nothing. */
  private readonly applied = new Map<string, { uid: string; fingerprint: string }>();
  /**
   * Per pod key, the uid of the pod the provider last reported finished. A create can fail after the
   * container already ran and exited (a start job fails when the process exits at once); such a pod is
   * finished, not retried, even before its status reaches the API server.
   */
  private readonly finished = new Map<string, string>();
  /** The last create failure reported per key, so a pod retrying the same failure does not flood events. */
  private readonly reportedFailures = new Map<string, string>();

  constructor(
    private readonly client: KubeClient,
    private readonly provider: PodProvider,
    private readonly pods: PodSource,
    private readonly status: PodStatusSink,
    private readonly events: PodEventSink,
    private readonly options: PodControllerOptions,
    private readonly hooks: PodControllerHooks = {},
  ) {
    this.queue = new KeyedWorkQueue((key) => this.sync(key), {
      concurrency: options.concurrency,
      retry: { initialMs: 1000, maxMs: 60_000 },
      onError: (key, err, retryInMs) => this.hooks.onSyncError?.(key, err, retryInMs),
    });
  }

  /** Sees every status the provider reports (serve wires notifyPods here as well as to the status writer). */
  observeProviderStatus(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (uid && isTerminalPhase(pod.status?.phase)) this.finished.set(podKeyOf(pod), uid);
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Starts processing what has been queued; serve calls it once the provider has reconciled. */
  start(): void {
    this.queue.start();
  }

  stop(): void {
    this.queue.stop();
  }

  /** Resolves when no sync is queued or running; for tests and the benchmark. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  private async sync(key: string): Promise<void> {
    const [namespace, name] = splitKey(key);
    const desired = this.pods.get(key);
    let running = await this.provider.getPod(namespace, name);
    // Static pods come from files, not from the API server (static-pods.ts): their mirror pods are never
    // run, and the API server's view never stops them.
    if (isMirrorPod(desired) || isStaticPod(running)) return;

    if (desired === undefined) {
      // Gone from the API server (deleted with grace 0, or never ours): only the units are left to stop.
      if (running !== undefined) {
        await this.provider.deletePod(running);
        this.hooks.onDeleted?.(running);
      }
      this.forget(key);
      return;
    }

    const uid = desired.metadata?.uid ?? "";
    if (running !== undefined && running.metadata?.uid !== uid) {
      // A pod of the same name replaced the one vks runs: the old one's units go first.
      await this.provider.deletePod(running);
      this.hooks.onDeleted?.(running);
      this.forget(key);
      running = undefined;
    }

    if (desired.metadata?.deletionTimestamp) {
      if (running !== undefined) await this.provider.deletePod(desired);
      this.forget(key);
      const removed = await this.removeFromApi(desired);
      if (running !== undefined || removed) this.hooks.onDeleted?.(desired);
      return;
    }

    // A finished pod stays finished: the API server's word on that outlives any local state.
    if (running === undefined && (isTerminalPhase(desired.status?.phase) || this.finished.get(key) === uid)) return;

    const print = fingerprint(desired);
    if (running === undefined) {
      await this.create(key, desired, uid, print);
      return;
    }
    const last = this.applied.get(key);
    if (last?.uid === uid && last.fingerprint === print) return;
    await this.provider.updatePod(desired);
    this.applied.set(key, { uid, fingerprint: print });
  }

  private async create(key: string, desired: V1Pod, uid: string, print: string): Promise<void> {
    try {
      // The provider resolves ConfigMap/Secret env sources itself (through serve's PodObjectSource), so
      // Secret values never travel in the pod and reach only the container's root-only env file.
      await this.provider.createPod(desired);
    } catch (err) {
      if (this.finished.get(key) === uid) return;
      if (err instanceof EnvSourceError) {
        this.reportConfigError(desired, err);
        throw err;
      }
      const message = errorMessage(err);
      if (this.reportedFailures.get(key) !== message) {
        this.reportedFailures.set(key, message);
        this.events.record(desired, { type: "Warning", reason: "ProviderCreateFailed", message });
      }
      if (err instanceof ValidationError) {
        // The spec asks for something vks cannot do, and a pod's spec cannot change: fail the pod instead
        // of retrying forever. (Image problems are different: the image field may be updated, so those
        // stay Pending with the engine's waiting reason and are retried, as the kubelet does.)
        this.status.push({ ...desired, status: this.failedStatus(desired, message) });
        return;
      }
      throw err;
    }
    this.reportedFailures.delete(key);
    this.applied.set(key, { uid, fingerprint: print });
    this.hooks.onCreated?.(desired);
  }

  /** A missing env source is reported on the pod as the kubelet does (the caller then retries). */
  private reportConfigError(desired: V1Pod, err: EnvSourceError): void {
    const key = podKeyOf(desired);
    if (this.reportedFailures.get(key) !== err.message) {
      this.reportedFailures.set(key, err.message);
      this.events.record(desired, { type: "Warning", reason: "Failed", message: `Error: ${err.message}`, container: err.container });
    }
    this.status.push({ ...desired, status: this.waitingStatus(desired, err) });
  }

  /** Deletes the pod object; false when it was already gone or the name now belongs to a newer pod. */
  private async removeFromApi(pod: V1Pod): Promise<boolean> {
    try {
      await this.client.deletePod(pod.metadata?.namespace || "default", pod.metadata?.name ?? "", pod.metadata?.uid ?? "");
      return true;
    } catch (err) {
      // A failed uid precondition is a 409: the pod of that name is a newer one and must stay.
      if (isNotFound(err) || isConflict(err)) return false;
      throw err as KubeApiError;
    }
  }

  private forget(key: string): void {
    this.applied.delete(key);
    this.finished.delete(key);
    this.reportedFailures.delete(key);
    this.queue.forget(key);
  }

  private baseStatus(): V1PodStatus {
    return {
      hostIP: this.options.hostIP,
      hostIPs: [{ ip: this.options.hostIP }],
      conditions: [{ type: "PodScheduled", status: "True" }],
    };
  }

  /** The kubelet's view of a pod whose container cannot be configured: Pending, waiting with the reason. */
  private waitingStatus(pod: V1Pod, err: EnvSourceError): V1PodStatus {
    const containerStatus = (container: { name: string; image?: string }): V1ContainerStatus => ({
      name: container.name,
      image: container.image ?? "",
      imageID: "",
      ready: false,
      restartCount: 0,
      started: false,
      state: { waiting: { reason: err.reason, ...(container.name === err.container ? { message: err.message } : {}) } },
    });
    const base = this.baseStatus();
    return {
      ...base,
      phase: "Pending",
      conditions: [
        ...(base.conditions ?? []),
        { type: "Ready", status: "False", reason: "ContainersNotReady", message: `containers with unready status: [${err.container}]` },
        { type: "ContainersReady", status: "False", reason: "ContainersNotReady", message: `containers with unready status: [${err.container}]` },
      ],
      containerStatuses: (pod.spec?.containers ?? []).map(containerStatus),
    };
  }

  private failedStatus(pod: V1Pod, message: string): V1PodStatus {
    return { ...this.baseStatus(), phase: "Failed", reason: "ProviderFailed", message };
  }
}
