import type { V1Pod, V1PodStatus } from "@kubernetes/client-node";

/**
 * The seam between a control loop (`serve`'s API watch, `pod up`'s manifest) and the pod engine, after
 * virtual-kubelet's PodLifecycleHandler: the loop says what should exist, the provider makes it so and
 * reports status. Neither side knows how the other gets its pods or where status goes.
 */
export interface PodProvider {
  /** Creates the pod's units. Resolves once every unit has been handed to systemd (not once they run). */
  createPod(pod: V1Pod): Promise<void>;
  /** Applies what Kubernetes lets change on a running pod (today: nothing that needs new units). */
  updatePod(pod: V1Pod): Promise<void>;
  /** Stops the pod's units honouring its grace period, then forgets the pod. Missing pods are not an error. */
  deletePod(pod: V1Pod): Promise<void>;
  /** The pod as recorded, with its current status; undefined when vks has no such pod. */
  getPod(namespace: string, name: string): Promise<V1Pod | undefined>;
  getPodStatus(namespace: string, name: string): Promise<V1PodStatus | undefined>;
  listPods(): Promise<V1Pod[]>;
  /** Called with the pod (status filled in) whenever systemd reports a change to one of its units. */
  notifyPods(onPodChanged: (pod: V1Pod) => void): void;
  /** Called with kubelet-style lifecycle events (Pulling, Pulled, Created, Started, Killing, Failed, BackOff). */
  notifyEvents(onEvent: (pod: V1Pod, event: PodEvent) => void): void;
}

/** A lifecycle event as the kubelet records it; `serve` turns these into Event objects. */
export interface PodEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  /** The container it concerns (the event's involvedObject.fieldPath is spec.containers{name}). */
  container?: string;
}
