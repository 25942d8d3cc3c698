/**
 * Writes the provider's pod status to the pods/status subresource as soon as it changes: at most one
 * write in flight per pod, and whatever arrives meanwhile is coalesced into the next write. Every write is
 * a merge patch guarded by the pod's uid and resourceVersion, so it never lands on a newer pod of the same
 * name and never drops a condition another component added since vks last looked.
 */
import type { V1Pod, V1PodCondition, V1PodStatus } from "@kubernetes/client-node";
import { isConflict, isNotFound, type KubeApiError } from "./api-error.ts";
import { Backoff } from "./backoff.ts";
import type { KubeClient } from "./client.ts";
import { podKeyOf } from "./node-pods.ts";
import { toWire } from "./wire.ts";

/** The status fields a kubelet owns; anything else in a pod's status (nominatedNodeName, resize, …) is left alone. */
const OWNED_STATUS_FIELDS = [
  "phase",
  "conditions",
  "message",
  "reason",
  "hostIP",
  "hostIPs",
  "podIP",
  "podIPs",
  "startTime",
  "initContainerStatuses",
  "containerStatuses",
  "ephemeralContainerStatuses",
  "qosClass",
  "observedGeneration",
] as const;

const CONFLICT_RETRIES = 5;

export interface PodStatusSource {
  /** The pod as the API server last showed it (the watch cache). */
  get(key: string): V1Pod | undefined;
  /** Records the answer to a write. */
  observe(pod: V1Pod): void;
}

export interface StatusWriterHooks {
  /** After every successful write, with the time the status was handed over; for the benchmark and logs. */
  onWritten?(pod: V1Pod, queuedAt: number): void;
  onError?(pod: V1Pod, err: KubeApiError): void;
  /** No write is in flight any more (what waited for status writes may go: events.ts). */
  onIdle?(): void;
}

/** JSON with sorted keys: the server does not keep the key order vks sent. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const record = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(record).sort().map((k) => [k, record[k]]));
  });
}

/** `ours` plus every condition in `current` whose type the provider does not report (readiness gates, DisruptionTarget, …). */
export function mergePodConditions(current: V1PodCondition[] | undefined, ours: V1PodCondition[] | undefined): V1PodCondition[] | undefined {
  if (ours === undefined) return current;
  const ourTypes = new Set(ours.map((c) => c.type));
  return [...ours, ...(current ?? []).filter((c) => !ourTypes.has(c.type))];
}

/**
 * The status patch that makes `current` show `desired`, or undefined when it already does. Owned fields
 * the provider no longer reports are set to null (a merge patch only removes what it names).
 */
export function podStatusPatch(current: V1PodStatus | undefined, desired: V1PodStatus): Record<string, unknown> | undefined {
  const wantedStatus = toWire({ ...desired, conditions: mergePodConditions(current?.conditions, desired.conditions) }) as Record<string, unknown>;
  const currentStatus = (toWire(current ?? {}) ?? {}) as Record<string, unknown>;
  const patch: Record<string, unknown> = {};
  let changed = false;
  for (const field of OWNED_STATUS_FIELDS) {
    const wanted = wantedStatus[field];
    const have = currentStatus[field];
    if (wanted === undefined) {
      if (have !== undefined) {
        patch[field] = null;
        changed = true;
      }
      continue;
    }
    if (canonical(wanted) !== canonical(have)) changed = true;
    patch[field] = wanted;
  }
  return changed ? patch : undefined;
}

interface Pending {
  pod: V1Pod;
  queuedAt: number;
}

export class PodStatusWriter {
  private readonly pending = new Map<string, Pending>();
  private readonly writing = new Set<string>();
  private readonly retryTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly backoffs = new Map<string, Backoff>();
  private stopped = false;

  constructor(
    private readonly client: KubeClient,
    private readonly pods: PodStatusSource,
    private readonly hooks: StatusWriterHooks = {},
  ) {}

  /** Queues the provider's view of a pod (status filled in); written at once unless a write is in flight. */
  push(pod: V1Pod): void {
    if (this.stopped || pod.status === undefined) return;
    const key = podKeyOf(pod);
    const previous = this.pending.get(key);
    this.pending.set(key, { pod, queuedAt: previous?.queuedAt ?? performance.now() });
    if (!this.writing.has(key) && !this.retryTimers.has(key)) void this.drain(key);
  }

  /** Retries every pod waiting on a failed write now (the API server is back). */
  retryNow(): void {
    for (const [key, timer] of this.retryTimers) {
      clearTimeout(timer);
      this.retryTimers.delete(key);
      this.backoffs.delete(key);
      if (!this.writing.has(key)) void this.drain(key);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.retryTimers.values()) clearTimeout(timer);
    this.retryTimers.clear();
    this.pending.clear();
  }

  get backlog(): number {
    return this.pending.size;
  }

  /** A write is in flight: the API server is answering status now. */
  get busy(): boolean {
    return this.writing.size > 0;
  }

  private async drain(key: string): Promise<void> {
    this.writing.add(key);
    try {
      for (let next = this.pending.get(key); next !== undefined && !this.stopped; next = this.pending.get(key)) {
        this.pending.delete(key);
        try {
          await this.write(next);
          this.backoffs.delete(key);
        } catch (err) {
          this.hooks.onError?.(next.pod, err as KubeApiError);
          // Keep the newest status for the retry unless something newer arrived meanwhile.
          if (!this.pending.has(key)) this.pending.set(key, next);
          let backoff = this.backoffs.get(key);
          if (!backoff) this.backoffs.set(key, (backoff = new Backoff({ initialMs: 200, maxMs: 30_000 })));
          this.retryTimers.set(
            key,
            setTimeout(() => {
              this.retryTimers.delete(key);
              void this.drain(key);
            }, backoff.next()),
          );
          return;
        }
      }
    } finally {
      this.writing.delete(key);
      if (this.writing.size === 0) this.hooks.onIdle?.();
    }
  }

  private async write({ pod, queuedAt }: Pending): Promise<void> {
    const key = podKeyOf(pod);
    const uid = pod.metadata?.uid;
    const desired = pod.status as V1PodStatus;
    let current = this.pods.get(key);
    for (let attempt = 0; ; attempt++) {
      // Gone from the API server, or replaced by a newer pod of the same name: nothing to report to.
      if (current === undefined || current.metadata?.uid !== uid) return;
      const statusPatch = podStatusPatch(current.status, desired);
      if (statusPatch === undefined) return;
      const namespace = current.metadata?.namespace ?? "default";
      const name = current.metadata?.name ?? "";
      try {
        const written = await this.client.patchPodStatus(namespace, name, {
          metadata: { uid, resourceVersion: current.metadata?.resourceVersion },
          status: statusPatch,
        });
        this.pods.observe(written);
        this.hooks.onWritten?.(written, queuedAt);
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (!isConflict(err) || attempt >= CONFLICT_RETRIES) throw err;
        // Someone else wrote the pod since the cache saw it: read it fresh and merge again.
        current = await this.client.getPod(namespace, name);
        if (current !== undefined) this.pods.observe(current);
      }
    }
  }
}
