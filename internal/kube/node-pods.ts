/**
 * The pods the API server assigns to one node, and a cache of them kept current by list + watch
 * (the reflector pattern): watch from the list's resourceVersion, re-list when the server says the
 * version is gone (410), and after any other failure watch again with back-off. Only `spec.nodeName=<node>`
 * is ever asked for: a node never lists or watches a whole cluster's pods.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { hostname } from "node:os";
import { ExitCode, VksError } from "../errors.ts";
import { isDns1123Subdomain } from "../unit/name.ts";
import { isAccessDenied, isGone, type KubeApiError } from "./api-error.ts";
import { Backoff, sleep } from "./backoff.ts";
import { KubeClient, type PodWatchEvent } from "./client.ts";
import { loadKubeConfig } from "./kubeconfig.ts";

export function nodePodSelector(nodeName: string): string {
  return `spec.nodeName=${nodeName}`;
}

export function podKeyOf(pod: V1Pod): string {
  return `${pod.metadata?.namespace || "default"}/${pod.metadata?.name ?? ""}`;
}

/** The node name vks uses when --nodename is not given: the host name, lowercased as node names must be. */
export function defaultNodeName(): string {
  return hostname().toLowerCase();
}

export function checkNodeName(name: string): string {
  if (!isDns1123Subdomain(name)) {
    throw new VksError(`node name ${JSON.stringify(name)} is not a valid Kubernetes node name (a DNS-1123 subdomain)`, {
      exitCode: ExitCode.usage,
      hint: "pass --nodename with lowercase letters, digits, '-' and '.'",
    });
  }
  return name;
}

export interface NodePodList {
  pods: V1Pod[];
  resourceVersion: string;
}

/** Every pod bound to `nodeName`, with the list's resourceVersion (to watch from). */
export async function listPodsForNode(client: KubeClient, nodeName: string): Promise<NodePodList> {
  const list = await client.listPods(nodePodSelector(nodeName));
  return { pods: list.items, resourceVersion: list.metadata?.resourceVersion ?? "" };
}

/**
 * For commands other than serve (`vks units gc --kubeconfig F`): the pods the cluster assigns to this
 * host's node, using the same kubeconfig rules and node name default as serve.
 */
export async function listPodsForThisNode(options: { kubeconfig?: string; nodeName?: string }): Promise<V1Pod[]> {
  const { config, server } = loadKubeConfig(options.kubeconfig);
  const nodeName = checkNodeName(options.nodeName ?? defaultNodeName());
  return (await listPodsForNode(new KubeClient(config, server), nodeName)).pods;
}

export interface NodePodHandlers {
  /** A pod appeared or changed. */
  onUpsert(pod: V1Pod): void;
  /** A pod is gone from the API server (deleted, or no longer bound here). */
  onDelete(pod: V1Pod): void;
  /** A full list replaced the cache (at start and after every re-list): a chance to resync everything. */
  onResync(pods: V1Pod[]): void;
  /** The connection state changed; for logs. */
  onConnectivity?(connected: boolean, err?: KubeApiError): void;
}

const WATCH_TIMEOUT_MIN_SECONDS = 300;
const WATCH_TIMEOUT_MAX_SECONDS = 600;

function resourceVersionNumber(pod: V1Pod): bigint | undefined {
  const version = pod.metadata?.resourceVersion;
  return version !== undefined && /^\d+$/.test(version) ? BigInt(version) : undefined;
}

export class NodePodCache {
  private readonly pods = new Map<string, V1Pod>();
  private resourceVersion = "";

  constructor(
    private readonly client: KubeClient,
    readonly nodeName: string,
    private readonly handlers: NodePodHandlers,
    private readonly retry = { initialMs: 500, maxMs: 30_000 },
  ) {}

  get(key: string): V1Pod | undefined {
    return this.pods.get(key);
  }

  list(): V1Pod[] {
    return [...this.pods.values()];
  }

  /**
   * Records a pod this process just wrote (the answer to a status patch) so the next write starts from
   * it. Ignored when the cache already holds something newer; resourceVersions are compared as numbers
   * only when both are numbers (etcd revisions), which is all they are in practice.
   */
  observe(pod: V1Pod): void {
    const key = podKeyOf(pod);
    const cached = this.pods.get(key);
    if (cached === undefined || cached.metadata?.uid !== pod.metadata?.uid) return;
    const cachedVersion = resourceVersionNumber(cached);
    const version = resourceVersionNumber(pod);
    if (cachedVersion !== undefined && version !== undefined && version <= cachedVersion) return;
    this.pods.set(key, pod);
  }

  /** Lists and replaces the cache, reporting disappeared pods as deletions. Throws the API error. */
  async relist(): Promise<V1Pod[]> {
    const { pods, resourceVersion } = await listPodsForNode(this.client, this.nodeName);
    const listed = new Map(pods.map((pod) => [podKeyOf(pod), pod]));
    const gone = [...this.pods.entries()].filter(([key]) => !listed.has(key)).map(([, pod]) => pod);
    this.pods.clear();
    for (const [key, pod] of listed) this.pods.set(key, pod);
    this.resourceVersion = resourceVersion;
    for (const pod of gone) this.handlers.onDelete(pod);
    this.handlers.onResync(pods);
    return pods;
  }

  /** Watches until `signal` aborts; never throws. Call after a successful relist(). */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.retry);
    let needsRelist = this.resourceVersion === "";
    let connected = true;
    while (!signal.aborted) {
      try {
        const reconnected = () => {
          if (connected) return;
          connected = true;
          this.handlers.onConnectivity?.(true);
        };
        if (needsRelist) {
          await this.relist();
          needsRelist = false;
          reconnected();
        }
        const timeoutSeconds = WATCH_TIMEOUT_MIN_SECONDS + Math.floor(Math.random() * (WATCH_TIMEOUT_MAX_SECONDS - WATCH_TIMEOUT_MIN_SECONDS));
        let sawEvent = false;
        await this.client.watchPods({
          fieldSelector: nodePodSelector(this.nodeName),
          resourceVersion: this.resourceVersion,
          timeoutSeconds,
          signal,
          onEvent: (event) => {
            sawEvent = true;
            this.apply(event);
          },
          onProgress: (version) => {
            this.resourceVersion = version;
          },
          onOpen: reconnected,
        });
        if (sawEvent) backoff.reset();
        // A normal end of stream (server timeout) is routine: watch again from where it stopped.
      } catch (err) {
        if (signal.aborted) break;
        const apiError = err as KubeApiError;
        if (isGone(err)) {
          // The server no longer has our version; only a fresh list brings the cache back in line.
          needsRelist = true;
          continue;
        }
        if (connected || isAccessDenied(err)) {
          connected = false;
          this.handlers.onConnectivity?.(false, apiError);
        }
        // After an outage the server may have compacted past our version; it will say so with a 410.
        await sleep(backoff.next(), signal);
      }
    }
  }

  private apply(event: PodWatchEvent): void {
    const key = podKeyOf(event.pod);
    if (event.type === "DELETED") {
      this.pods.delete(key);
      this.handlers.onDelete(event.pod);
      return;
    }
    this.pods.set(key, event.pod);
    this.handlers.onUpsert(event.pod);
  }
}
