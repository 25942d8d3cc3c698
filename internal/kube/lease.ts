/**
 * The node heartbeat: a Lease named after the node in kube-node-lease, renewed every quarter of its
 * duration (the kubelet's 10 s for 40 s), owned by the Node so that deleting the node deletes the lease.
 * The node lifecycle controller marks the node unreachable when renewals stop.
 */
import type { V1Lease, V1OwnerReference } from "@kubernetes/client-node";
import { isConflict, isNotFound, type KubeApiError } from "./api-error.ts";
import { Backoff, sleep } from "./backoff.ts";
import type { KubeClient } from "./client.ts";
import { microTimeNow } from "./wire.ts";

export const NODE_LEASE_NAMESPACE = "kube-node-lease";

export interface NodeReference {
  name: string;
  uid: string;
}

export interface LeaseHooks {
  onRenewed?(lease: V1Lease): void;
  onError?(err: KubeApiError): void;
}

function ownerReference(node: NodeReference): V1OwnerReference {
  return { apiVersion: "v1", kind: "Node", name: node.name, uid: node.uid };
}

export class NodeLease {
  private current: V1Lease | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly nodeName: string,
    private readonly durationSeconds: number,
    /** The node as registered; undefined while it is not (the lease then waits for it). */
    private readonly node: () => NodeReference | undefined,
    private readonly hooks: LeaseHooks = {},
  ) {}

  get renewIntervalMs(): number {
    return (this.durationSeconds * 1000) / 4;
  }

  /** Creates or renews the lease once. Throws the API error. */
  async renew(): Promise<V1Lease> {
    const node = this.node();
    for (let attempt = 0; ; attempt++) {
      this.current ??= await this.client.getLease(NODE_LEASE_NAMESPACE, this.nodeName);
      try {
        this.current = this.current === undefined ? await this.client.createLease(this.fresh(node)) : await this.client.replaceLease(this.renewed(this.current, node));
        return this.current;
      } catch (err) {
        // Someone changed or deleted the lease (or created it first): read it again and retry once.
        this.current = undefined;
        if (attempt >= 1 || !(isConflict(err) || isNotFound(err))) throw err;
      }
    }
  }

  /** Renews until `signal` aborts; failures are retried with back-off well within the lease's duration. */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: Math.max(200, this.renewIntervalMs / 2) });
    while (!signal.aborted) {
      try {
        const lease = await this.renew();
        backoff.reset();
        this.hooks.onRenewed?.(lease);
        await sleep(this.renewIntervalMs, signal);
      } catch (err) {
        this.hooks.onError?.(err as KubeApiError);
        await sleep(backoff.next(), signal);
      }
    }
  }

  private fresh(node: NodeReference | undefined): V1Lease {
    const now = microTimeNow();
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name: this.nodeName,
        namespace: NODE_LEASE_NAMESPACE,
        ...(node === undefined ? {} : { ownerReferences: [ownerReference(node)] }),
      },
      spec: { holderIdentity: this.nodeName, leaseDurationSeconds: this.durationSeconds, acquireTime: now, renewTime: now },
    };
  }

  private renewed(lease: V1Lease, node: NodeReference | undefined): V1Lease {
    const owners = (lease.metadata?.ownerReferences ?? []).filter((ref) => !(ref.kind === "Node" && ref.apiVersion === "v1"));
    return {
      ...lease,
      metadata: {
        ...lease.metadata,
        // A node re-created under the same name has a new uid; the lease follows it.
        ownerReferences: node === undefined ? lease.metadata?.ownerReferences : [...owners, ownerReference(node)],
      },
      spec: {
        ...lease.spec,
        holderIdentity: this.nodeName,
        leaseDurationSeconds: this.durationSeconds,
        renewTime: microTimeNow(),
      },
    };
  }
}
