/**
 * The API calls vks makes, and nothing else: every call is scoped (one node, one lease, pods of one node,
 * ConfigMaps and Secrets by name), has a deadline, and fails with a KubeApiError naming the request.
 */
import {
  ApiException,
  AuthenticationV1Api,
  type AuthenticationV1TokenRequest,
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  Observable,
  PatchStrategy,
  ResponseContext,
  Watch,
  type ConfigurationOptions,
  type HttpLibrary,
  type CoreV1Event,
  type KubeConfig,
  type ObservableMiddleware,
  type RequestContext,
  type V1ConfigMap,
  type V1Lease,
  type V1Node,
  type V1Pod,
  type V1PodList,
  type V1Secret,
  type V1SubjectAccessReview,
  type V1TokenReview,
} from "@kubernetes/client-node";
// The serializer is not re-exported by the package index; watch events arrive as plain JSON and must be
// turned into the same typed objects (Date fields) that the generated list/get calls return.
import type https from "node:https";
import { ObjectSerializer } from "@kubernetes/client-node/dist/serializer.js";
import { toKubeApiError, watchStatusError, type ApiRequest } from "./api-error.ts";

/** Long enough for a loaded API server, short enough that a black-holed connection does not stall a loop. */
const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK";

export interface PodWatchEvent {
  type: WatchEventType;
  pod: V1Pod;
}

/** Pods as the generated client returns them, from the JSON a watch stream carries. */
export function podFromJson(json: unknown): V1Pod {
  return ObjectSerializer.deserialize(json, "V1Pod") as V1Pod;
}

type TlsOptions = {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  passphrase?: string;
  rejectUnauthorized?: boolean;
  serverName?: string;
};

const sameMaterial = (a: string | Buffer | undefined, b: string | Buffer | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b)));

/**
 * Sends requests with Bun's fetch instead of client-node's node-fetch, which builds a new https.Agent
 * (and so a new TLS connection, handshake included) for every request: under a burst of status writes
 * those handshakes ran on the event loop and delayed every write by tens to hundreds of milliseconds.
 * Bun's fetch keeps connections alive and pools them. TLS settings come from the agent client-node
 * prepared for the request (the kubeconfig's CA, client certificate and key), headers (tokens) as set.
 *
 * Each request's deadline is a timer cleared as soon as its answer is read. (AbortSignal.timeout, used
 * before, kept every finished request's signal, timer and whatever fetch hung on it alive for the whole
 * 15 s: with 100 pods starting at once that was hundreds of requests' worth of memory.)
 */
export class PooledFetchHttpLibrary implements HttpLibrary {
  /**
   * client-node reads the kubeconfig's files again for every request; the TLS options object is kept while
   * the material is unchanged, so every request presents fetch the same one (and a rotated certificate is
   * still picked up).
   */
  private tls: TlsOptions | undefined;

  constructor(private readonly timeoutMs: number = DEFAULT_REQUEST_TIMEOUT_MS) {}

  send(request: RequestContext): Observable<ResponseContext> {
    const agent = request.getAgent() as https.Agent | undefined;
    const tls = agent === undefined ? undefined : this.tlsOptions(agent.options);
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DOMException("The operation timed out.", "TimeoutError")), this.timeoutMs);
    const callerSignal = request.getSignal();
    const signal = callerSignal === undefined ? deadline.signal : AbortSignal.any([deadline.signal, callerSignal]);
    const response = fetch(request.getUrl(), {
      method: request.getHttpMethod().toString(),
      headers: request.getHeaders(),
      body: request.getBody(),
      signal,
      tls,
    }).then(
      (answer) => {
        const headers: Record<string, string> = {};
        answer.headers.forEach((value, name) => {
          headers[name] = value;
        });
        const done = <T>(read: Promise<T>): Promise<T> => read.finally(() => clearTimeout(timer));
        return new ResponseContext(answer.status, headers, {
          text: () => done(answer.text()),
          binary: async () => Buffer.from(await done(answer.arrayBuffer())),
        });
      },
      (err: unknown) => {
        clearTimeout(timer);
        throw err;
      },
    );
    return new Observable(response);
  }

  private tlsOptions(options: https.AgentOptions): TlsOptions {
    const wanted: TlsOptions = {
      ca: options.ca as string | Buffer | undefined,
      cert: options.cert as string | Buffer | undefined,
      key: options.key as string | Buffer | undefined,
      passphrase: options.passphrase,
      rejectUnauthorized: options.rejectUnauthorized,
      serverName: options.servername,
    };
    const kept = this.tls;
    if (
      kept !== undefined &&
      kept.passphrase === wanted.passphrase &&
      kept.rejectUnauthorized === wanted.rejectUnauthorized &&
      kept.serverName === wanted.serverName &&
      sameMaterial(kept.ca, wanted.ca) &&
      sameMaterial(kept.cert, wanted.cert) &&
      sameMaterial(kept.key, wanted.key)
    ) {
      return kept;
    }
    this.tls = wanted;
    return wanted;
  }
}

function requestOptions(timeoutMs: number, httpApi: HttpLibrary | undefined, contentType?: string): ConfigurationOptions<ObservableMiddleware> {
  const middleware: ObservableMiddleware = {
    pre: (context: RequestContext) => {
      // The pooled library keeps its own deadline, released with the answer (see PooledFetchHttpLibrary).
      if (httpApi === undefined) context.setSignal(AbortSignal.timeout(timeoutMs));
      // The generated patch calls default to JSON Patch; vks sends merge patches.
      if (contentType !== undefined) context.setHeaderParam("Content-Type", contentType);
      return new Observable(Promise.resolve(context));
    },
    post: (context: ResponseContext) => new Observable(Promise.resolve(context)),
  };
  return { ...(httpApi === undefined ? {} : { httpApi }), middleware: [middleware], middlewareMergeStrategy: "append" };
}

export class KubeClient {
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly authentication: AuthenticationV1Api;
  private readonly authorization: AuthorizationV1Api;
  private readonly plain: ConfigurationOptions<ObservableMiddleware>;
  private readonly mergePatch: ConfigurationOptions<ObservableMiddleware>;

  constructor(
    readonly config: KubeConfig,
    /** The API server URL, for messages. */
    readonly server: string,
    requestTimeoutMs: number = DEFAULT_REQUEST_TIMEOUT_MS,
  ) {
    this.core = config.makeApiClient(CoreV1Api);
    this.coordination = config.makeApiClient(CoordinationV1Api);
    this.authentication = config.makeApiClient(AuthenticationV1Api);
    this.authorization = config.makeApiClient(AuthorizationV1Api);
    // A proxy (kubeconfig proxy-url) needs client-node's own proxy agent; only direct connections are pooled.
    const httpApi = config.getCurrentCluster()?.proxyUrl ? undefined : new PooledFetchHttpLibrary(requestTimeoutMs);
    this.plain = requestOptions(requestTimeoutMs, httpApi);
    this.mergePatch = requestOptions(requestTimeoutMs, httpApi, PatchStrategy.MergePatch);
  }

  private async call<T>(request: ApiRequest, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw toKubeApiError(err, request, this.server);
    }
  }

  /** The node, or undefined when it does not exist. */
  async getNode(name: string): Promise<V1Node | undefined> {
    try {
      return await this.call({ verb: "get", resource: "nodes", name }, () => this.core.readNode({ name }, this.plain));
    } catch (err) {
      if ((err as { status?: number }).status === 404) return undefined;
      throw err;
    }
  }

  createNode(node: V1Node): Promise<V1Node> {
    return this.call({ verb: "create", resource: "nodes", name: node.metadata?.name }, () => this.core.createNode({ body: node }, this.plain));
  }

  patchNode(name: string, patch: object): Promise<V1Node> {
    return this.call({ verb: "patch", resource: "nodes", name }, () => this.core.patchNode({ name, body: patch }, this.mergePatch));
  }

  patchNodeStatus(name: string, patch: object): Promise<V1Node> {
    return this.call({ verb: "patch", resource: "nodes/status", name }, () => this.core.patchNodeStatus({ name, body: patch }, this.mergePatch));
  }

  async getLease(namespace: string, name: string): Promise<V1Lease | undefined> {
    const request: ApiRequest = { verb: "get", resource: "leases", group: "coordination.k8s.io", namespace, name };
    try {
      return await this.call(request, () => this.coordination.readNamespacedLease({ namespace, name }, this.plain));
    } catch (err) {
      if ((err as { status?: number }).status === 404) return undefined;
      throw err;
    }
  }

  createLease(lease: V1Lease): Promise<V1Lease> {
    const namespace = lease.metadata?.namespace ?? "";
    const request: ApiRequest = { verb: "create", resource: "leases", group: "coordination.k8s.io", namespace, name: lease.metadata?.name };
    return this.call(request, () => this.coordination.createNamespacedLease({ namespace, body: lease }, this.plain));
  }

  replaceLease(lease: V1Lease): Promise<V1Lease> {
    const namespace = lease.metadata?.namespace ?? "";
    const name = lease.metadata?.name ?? "";
    const request: ApiRequest = { verb: "update", resource: "leases", group: "coordination.k8s.io", namespace, name };
    return this.call(request, () => this.coordination.replaceNamespacedLease({ namespace, name, body: lease }, this.plain));
  }

  /** Pods of every namespace matching `fieldSelector` (always a spec.nodeName selector: vks never lists a cluster's pods). */
  listPods(fieldSelector: string): Promise<V1PodList> {
    return this.call({ verb: "list", resource: "pods" }, () => this.core.listPodForAllNamespaces({ fieldSelector }, this.plain));
  }

  async getPod(namespace: string, name: string): Promise<V1Pod | undefined> {
    try {
      return await this.call({ verb: "get", resource: "pods", namespace, name }, () => this.core.readNamespacedPod({ namespace, name }, this.plain));
    } catch (err) {
      if ((err as { status?: number }).status === 404) return undefined;
      throw err;
    }
  }

  /** Creates a pod object; vks creates only mirror pods (NodeRestriction lets a node create nothing else). */
  createPod(namespace: string, pod: V1Pod): Promise<V1Pod> {
    return this.call({ verb: "create", resource: "pods", namespace }, () => this.core.createNamespacedPod({ namespace, body: pod }, this.plain));
  }

  patchPodStatus(namespace: string, name: string, patch: object): Promise<V1Pod> {
    return this.call({ verb: "patch", resource: "pods/status", namespace, name }, () =>
      this.core.patchNamespacedPodStatus({ namespace, name, body: patch }, this.mergePatch),
    );
  }

  /**
   * Removes the pod object at once (its units are already gone) but only if it is still the pod with `uid`:
   * a pod re-created under the same name in the meantime must survive.
   */
  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    await this.call({ verb: "delete", resource: "pods", namespace, name }, () =>
      this.core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0, body: { gracePeriodSeconds: 0, preconditions: { uid } } }, this.plain),
    );
  }

  createEvent(event: CoreV1Event): Promise<CoreV1Event> {
    const namespace = event.metadata.namespace ?? "default";
    return this.call({ verb: "create", resource: "events", namespace }, () => this.core.createNamespacedEvent({ namespace, body: event }, this.plain));
  }

  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap> {
    return this.call({ verb: "get", resource: "configmaps", namespace, name }, () => this.core.readNamespacedConfigMap({ namespace, name }, this.plain));
  }

  getSecret(namespace: string, name: string): Promise<V1Secret> {
    return this.call({ verb: "get", resource: "secrets", namespace, name }, () => this.core.readNamespacedSecret({ namespace, name }, this.plain));
  }

  /** A service account token bound to a pod (TokenRequest), for its projected serviceAccountToken volume. */
  createServiceAccountToken(namespace: string, serviceAccount: string, request: AuthenticationV1TokenRequest): Promise<AuthenticationV1TokenRequest> {
    return this.call({ verb: "create", resource: "serviceaccounts/token", namespace, name: serviceAccount }, () =>
      this.core.createNamespacedServiceAccountToken({ namespace, name: serviceAccount, body: request }, this.plain),
    );
  }

  /** Asks the API server who a bearer token belongs to (the kubelet API's webhook authentication). */
  createTokenReview(review: V1TokenReview): Promise<V1TokenReview> {
    return this.call({ verb: "create", resource: "tokenreviews", group: "authentication.k8s.io" }, () =>
      this.authentication.createTokenReview({ body: review }, this.plain),
    );
  }

  /** Asks the API server whether a user may do something (the kubelet API's webhook authorization). */
  createSubjectAccessReview(review: V1SubjectAccessReview): Promise<V1SubjectAccessReview> {
    return this.call({ verb: "create", resource: "subjectaccessreviews", group: "authorization.k8s.io" }, () =>
      this.authorization.createSubjectAccessReview({ body: review }, this.plain),
    );
  }

  /**
   * Streams pod events matching `fieldSelector` from `resourceVersion` until the server ends the stream
   * (resolves) or something fails (rejects with a KubeApiError; status 410 means the version is too old).
   * Aborting `signal` ends the stream quietly.
   */
  watchPods(options: {
    fieldSelector: string;
    resourceVersion: string;
    timeoutSeconds: number;
    onEvent: (event: PodWatchEvent) => void;
    /** Called for every event including bookmarks, with the resourceVersion reached. */
    onProgress: (resourceVersion: string) => void;
    /** Called once the server has accepted the watch (HTTP 200), before any event. */
    onOpen?: () => void;
    signal: AbortSignal;
  }): Promise<void> {
    const request: ApiRequest = { verb: "watch", resource: "pods" };
    return new Promise<void>((resolve, reject) => {
      let controller: AbortController | undefined;
      let settled = false;
      // The server ends the stream after timeoutSeconds; silence well past that means a dead connection.
      const idleLimitMs = (options.timeoutSeconds + 30) * 1000;
      let idleTimer: ReturnType<typeof setTimeout> | undefined;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(idleTimer);
        options.signal.removeEventListener("abort", onAbort);
        controller?.abort();
        if (err === undefined || options.signal.aborted) resolve();
        else reject(toKubeApiError(err, request, this.server));
      };
      const armIdleTimer = () => {
        clearTimeout(idleTimer);
        idleTimer = setTimeout(() => finish(new Error(`no data for ${idleLimitMs / 1000}s on the watch connection`)), idleLimitMs);
      };
      const onAbort = () => finish();
      options.signal.addEventListener("abort", onAbort);
      armIdleTimer();

      const onLine = (type: string, object: unknown) => {
        if (settled) return;
        armIdleTimer();
        if (type === "ERROR") {
          const status = (object ?? {}) as { code?: number; reason?: string; message?: string };
          finish(watchStatusError(request, status));
          return;
        }
        if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED" && type !== "BOOKMARK") return;
        const pod = podFromJson(object);
        const version = pod.metadata?.resourceVersion;
        if (type !== "BOOKMARK") options.onEvent({ type, pod });
        if (version) options.onProgress(version);
      };
      const onDone = (err: unknown) => {
        if (err === null || err === undefined) finish();
        else finish(normalizeWatchFailure(err));
      };
      new Watch(this.config)
        .watch(
          "/api/v1/pods",
          {
            fieldSelector: options.fieldSelector,
            resourceVersion: options.resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds: options.timeoutSeconds,
          },
          onLine,
          onDone,
        )
        .then((started) => {
          controller = started;
          if (settled) started.abort();
          else options.onOpen?.();
        }, finish);
    });
  }
}

/** Watch reports HTTP failures as an Error with statusCode; give them the shape of the generated calls' errors. */
function normalizeWatchFailure(err: unknown): unknown {
  const statusCode = (err as { statusCode?: unknown }).statusCode;
  if (typeof statusCode !== "number") return err;
  return new ApiException<undefined>(statusCode, err instanceof Error ? err.message : String(err), undefined, {});
}
