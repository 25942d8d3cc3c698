/**
 * Lifecycle events (Pulling, Started, Killing, …) as core/v1 Events, shaped like the kubelet's so that
 * `kubectl describe pod` and `kubectl get events` show them. Events are best effort: they are sent in the
 * background with bounded concurrency and dropped (with a warning) rather than allowed to pile up while
 * the API server is away.
 */
import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import type { PodEvent } from "../pod/provider.ts";
import type { KubeApiError } from "./api-error.ts";
import type { KubeClient } from "./client.ts";

const MAX_IN_FLIGHT = 4;
const MAX_QUEUED = 1000;
/** The longest an event waits for status writes to finish; beyond it, events go anyway. */
export const EVENT_MAX_HOLD_MS = 2_000;

export const EVENT_SOURCE_COMPONENT = "vks";

/** The Event the kubelet would record for `event` on `pod`. */
/** Where the container sits in the pod spec, as the kubelet's event references name it. */
function containerFieldPath(pod: V1Pod, container: string): string {
  const isInit = (pod.spec?.initContainers ?? []).some((candidate) => candidate.name === container);
  return `spec.${isInit ? "initContainers" : "containers"}{${container}}`;
}

export function podEventObject(pod: V1Pod, event: PodEvent, nodeName: string, now: Date, sequence: number): CoreV1Event {
  const namespace = pod.metadata?.namespace || "default";
  const podName = pod.metadata?.name ?? "";
  // The kubelet names events <object>.<hex nanoseconds>; the sequence keeps two in one millisecond apart.
  const nanos = BigInt(now.getTime()) * 1_000_000n + BigInt(sequence % 1_000_000);
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: `${podName}.${nanos.toString(16)}`, namespace },
    involvedObject: {
      apiVersion: "v1",
      kind: "Pod",
      namespace,
      name: podName,
      uid: pod.metadata?.uid,
      ...(event.container === undefined ? {} : { fieldPath: containerFieldPath(pod, event.container) }),
    },
    type: event.type,
    reason: event.reason,
    message: event.message,
    source: { component: EVENT_SOURCE_COMPONENT, host: nodeName },
    reportingComponent: EVENT_SOURCE_COMPONENT,
    reportingInstance: nodeName,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

export interface EventRecorderOptions {
  onError?(err: KubeApiError): void;
  onDropped?(count: number): void;
  /**
   * Status writes under way: events wait for them (at most EVENT_MAX_HOLD_MS; call resume() when they
   * end). Both go to the same API server, and in a burst of pod starts its answers to status writes are
   * what `kubectl get pods` waits for; an event a moment late changes nothing.
   */
  statusWritesBusy?(): boolean;
}

interface QueuedEvent {
  event: CoreV1Event;
  queuedAt: number;
}

export class EventRecorder {
  private readonly queue: QueuedEvent[] = [];
  private inFlight = 0;
  private sequence = 0;
  private dropped = 0;
  private stopped = false;
  private holdTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly client: Pick<KubeClient, "createEvent">,
    private readonly nodeName: string,
    private readonly hooks: EventRecorderOptions = {},
  ) {}

  record(pod: V1Pod, event: PodEvent): void {
    if (this.stopped) return;
    if (this.queue.length >= MAX_QUEUED) {
      this.queue.shift();
      if (++this.dropped % 100 === 1) this.hooks.onDropped?.(this.dropped);
    }
    this.queue.push({ event: podEventObject(pod, event, this.nodeName, new Date(), this.sequence++), queuedAt: performance.now() });
    this.pump();
  }

  /** Status writes ended: send what waited for them. */
  resume(): void {
    this.pump();
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    if (this.holdTimer !== undefined) clearTimeout(this.holdTimer);
  }

  /** How long the oldest event may still wait for status writes; 0 when it may go now. */
  private holdLeftMs(): number {
    const oldest = this.queue[0];
    if (oldest === undefined || this.hooks.statusWritesBusy?.() !== true) return 0;
    return Math.max(0, oldest.queuedAt + EVENT_MAX_HOLD_MS - performance.now());
  }

  private pump(): void {
    if (this.holdTimer !== undefined) {
      clearTimeout(this.holdTimer);
      this.holdTimer = undefined;
    }
    while (!this.stopped && this.inFlight < MAX_IN_FLIGHT && this.queue.length > 0) {
      const holdMs = this.holdLeftMs();
      if (holdMs > 0) {
        this.holdTimer = setTimeout(() => this.pump(), holdMs);
        return;
      }
      const { event } = this.queue.shift() as QueuedEvent;
      this.inFlight++;
      this.client
        .createEvent(event)
        .catch((err: KubeApiError) => this.hooks.onError?.(err))
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}
