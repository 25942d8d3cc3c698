/**
 * Registers the Node and keeps its status true. Status is checked every `statusIntervalMs` and written
 * when a condition changes, and at least every `reportIntervalMs` otherwise (the lease is the heartbeat,
 * as with the kubelet). Every write is a merge patch of the status subresource guarded by the node's
 * resourceVersion, retried on conflict from a fresh read, carrying along conditions others own.
 */
import type { V1Node } from "@kubernetes/client-node";
import { errorMessage } from "../errors.ts";
import { readFilesystemUsage } from "../host/node-stats.ts";
import { isConflict, isNotFound, type KubeApiError } from "./api-error.ts";
import { Backoff, sleep } from "./backoff.ts";
import type { KubeClient } from "./client.ts";
import { readHostReadings, type HostFacts } from "./host.ts";
import type { NodeReference } from "./lease.ts";
import {
  mergeNodeConditions,
  newNode,
  nodeLabels,
  nodeStatusFields,
  nodeTaints,
  observedConditions,
  sameConditions,
  type NodeHealth,
  type NodeSettings,
} from "./node-status.ts";
import { toWire } from "./wire.ts";

/** What the node controller needs from the pod engine. */
export interface NodeRuntime {
  systemdVersion(): Promise<string>;
  isHealthy(): Promise<boolean>;
  /** Why systemd is unreachable while the runtime reconnects to it; undefined when it is reachable. */
  systemdOutage?(): string | undefined;
  /** Calls `listener` when systemd becomes unreachable or reachable again, so Ready follows at once. */
  onSystemdAvailability?(listener: () => void): void;
}

export interface NodeControllerOptions {
  statusIntervalMs: number;
  reportIntervalMs: number;
  /** Where pod state and logs live: its filesystem is the node's ephemeral storage. */
  stateDir: string;
}

export interface NodeControllerHooks {
  onStatusWritten?(node: V1Node, changed: boolean): void;
  /** Every completed check, written or not (the service watchdog counts these). */
  onChecked?(): void;
  onError?(err: KubeApiError): void;
  onRegistered?(node: V1Node, created: boolean): void;
}

const CONFLICT_RETRIES = 5;

export class NodeController {
  private node: V1Node | undefined;
  private lastWrite = 0;
  private systemdVersion = "unknown";

  constructor(
    private readonly client: KubeClient,
    private readonly runtime: NodeRuntime,
    private readonly settings: NodeSettings,
    private readonly facts: HostFacts,
    private readonly options: NodeControllerOptions,
    private readonly hooks: NodeControllerHooks = {},
  ) {}

  /** The node as registered, for the lease's owner reference. */
  reference(): NodeReference | undefined {
    const uid = this.node?.metadata?.uid;
    return uid === undefined ? undefined : { name: this.settings.name, uid };
  }

  /**
   * Creates the node, or brings an existing one's labels and vks taint in line (other labels and taints
   * stay), then writes its status. Throws the API error.
   */
  async register(): Promise<V1Node> {
    this.systemdVersion = await this.runtime.systemdVersion().catch(() => this.systemdVersion);
    const name = this.settings.name;
    for (let attempt = 0; ; attempt++) {
      const existing = await this.client.getNode(name);
      try {
        if (existing === undefined) {
          this.node = await this.client.createNode(newNode(this.settings, this.facts));
          this.hooks.onRegistered?.(this.node, true);
        } else {
          this.node = await this.client.patchNode(name, {
            metadata: { resourceVersion: existing.metadata?.resourceVersion, labels: nodeLabels(this.settings, this.facts) },
            spec: { taints: nodeTaints(existing.spec?.taints, this.settings.taint) },
          });
          this.hooks.onRegistered?.(this.node, false);
        }
        break;
      } catch (err) {
        // Created by someone else meanwhile, or changed under us: read again.
        if (attempt >= CONFLICT_RETRIES || !isConflict(err)) throw err;
      }
    }
    await this.updateStatus(true);
    return this.node;
  }

  /** Measures and, when something changed or `force`, writes the status. Throws the API error. */
  async updateStatus(force = false): Promise<void> {
    const health = await this.health();
    let node = this.node;
    for (let attempt = 0; ; attempt++) {
      if (node === undefined) {
        // The node was deleted while vks ran: register it again, as the kubelet does on restart.
        await this.register();
        return;
      }
      const now = new Date();
      const observed = observedConditions(health, this.settings);
      const due = force || now.getTime() - this.lastWrite >= this.options.reportIntervalMs;
      if (!due && sameConditions(node.status?.conditions, observed)) return;
      const conditions = mergeNodeConditions(node.status?.conditions, observed, now);
      const status = { ...nodeStatusFields(this.settings, this.facts, this.capacity(), this.systemdVersion), conditions };
      try {
        const changed = !sameConditions(node.status?.conditions, observed);
        this.node = await this.client.patchNodeStatus(this.settings.name, {
          metadata: { resourceVersion: node.metadata?.resourceVersion },
          status: toWire(status),
        });
        this.lastWrite = now.getTime();
        this.hooks.onStatusWritten?.(this.node, changed);
        return;
      } catch (err) {
        if (isNotFound(err)) {
          this.node = undefined;
          node = undefined;
          continue;
        }
        if (!isConflict(err) || attempt >= CONFLICT_RETRIES) throw err;
        node = await this.client.getNode(this.settings.name);
        this.node = node;
      }
    }
  }

  /** Keeps the status current until `signal` aborts; never throws. */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 500, maxMs: this.options.statusIntervalMs });
    // A change of systemd's availability is checked at once, not at the next interval; one that comes
    // while a check is under way gets a check of its own right after.
    let changed = false;
    let wakeUp: (() => void) | undefined;
    this.runtime.onSystemdAvailability?.(() => {
      changed = true;
      wakeUp?.();
    });
    while (!signal.aborted) {
      changed = false;
      try {
        await this.updateStatus();
        backoff.reset();
        this.hooks.onChecked?.();
        if (changed) continue;
        await new Promise<void>((resolve) => {
          wakeUp = resolve;
          void sleep(this.options.statusIntervalMs, signal).then(resolve);
        });
        wakeUp = undefined;
      } catch (err) {
        this.hooks.onError?.(err as KubeApiError);
        await sleep(backoff.next(), signal);
      }
    }
  }

  private async health(): Promise<NodeHealth> {
    const systemdHealthy = await this.runtime.isHealthy();
    if (systemdHealthy && this.systemdVersion === "unknown") {
      this.systemdVersion = await this.runtime.systemdVersion().catch(() => "unknown");
    }
    let readings: NodeHealth["readings"];
    try {
      readings = readHostReadings(this.options.stateDir);
    } catch (err) {
      readings = { error: errorMessage(err) };
    }
    const systemdProblem = systemdHealthy ? undefined : this.runtime.systemdOutage?.();
    return { systemdHealthy, ...(systemdProblem === undefined ? {} : { systemdProblem }), readings };
  }

  private capacity(): { memoryBytes: number; ephemeralStorageBytes: number } {
    let ephemeralStorageBytes = 0;
    try {
      ephemeralStorageBytes = readFilesystemUsage(this.options.stateDir).capacityBytes;
    } catch {
      // Unknown storage is reported as none rather than invented; DiskPressure says why.
    }
    return { memoryBytes: this.facts.memoryBytes, ephemeralStorageBytes };
  }
}
