// TestApiServer: the HTTPS endpoint clients talk to, plus the in-process control surface tests use to
// seed and inspect objects, force history loss, and simulate outages. Runs under Node, whose TLS
// server exposes client certificates (Bun's does not).
import { createServer, type Server } from "node:https";
import { ServerResponse, type IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { BearerToken, DenyRule, UserInfo } from "./auth.ts";
import { authorizeRequest, type AuthorizationPolicy } from "./authorizer.ts";
import { CertificateController, type ApprovalDecision } from "./certificate-controller.ts";
import { certificateAdmission } from "./certificate-requests.ts";
import { handleRequest, type HandlerContext, type RequestRecord } from "./handler.ts";
import { cloneJson, objectAt, stringAt, type JsonObject } from "./json.ts";
import { defaultPreferredAddressTypes } from "./kubelet-client.ts";
import { nodeRestriction } from "./node-authorization.ts";
import type { AllowRule } from "./rbac.ts";
import { Registry } from "./registry.ts";
import { bindingHolds, type IssuedToken } from "./token-request.ts";
import { resourceTypeNamed, resourceTypes, type ResourceType } from "./resources.ts";
import { ObjectStore, type ChangeType } from "./store.ts";
import { ApiError, serviceUnavailable } from "./status.ts";
import { formatTime } from "./time.ts";
import { WatchHub } from "./watch.ts";

export interface TlsMaterial {
  /** PEM of the CA that signs client certificates (and, in tests, the server's own). */
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** The CA's key: the CSR signer and service account tokens sign with it. Without it nothing is signed. */
  caKey?: string;
  /** The API server's client certificate and key for kubelets (--kubelet-client-certificate/-key). */
  kubeletClientCert?: string;
  kubeletClientKey?: string;
}

/** --service-account-issuer, which also becomes the default --api-audiences. */
export const serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local";

export interface TestApiServerOptions {
  tls: TlsMaterial;
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  tokens?: BearerToken[];
  denyRules?: DenyRule[];
  /** How many changes watches can replay; older resourceVersions get 410 Gone. */
  historyLimit?: number;
  /** Where the resourceVersion counter starts, so tests never rely on small numbers. */
  initialRevision?: number;
  /** Namespaces created at start besides default, kube-system, kube-public and kube-node-lease. */
  namespaces?: string[];
  /** Applied to watches that send no timeoutSeconds; by default such watches stay open. */
  defaultWatchTimeoutSeconds?: number;
  /**
   * Limit node identities (system:node:<name>, group system:nodes) as a real cluster does, with the
   * Node authorizer and the NodeRestriction admission plugin. Off by default.
   */
  nodeAuthorization?: boolean;
  /** What SubjectAccessReviews find granted, like RBAC bindings (the server's own requests ignore them). */
  allowRules?: AllowRule[];
  /** --kubelet-preferred-address-types; default Hostname, InternalDNS, InternalIP, ExternalDNS, ExternalIP. */
  kubeletPreferredAddressTypes?: string[];
  /** --kubelet-certificate-authority (PEM); without it kubelet serving certificates are not verified. */
  kubeletCertificateAuthority?: string;
  /** Approve kubelet-serving CSRs a node makes for itself, as kubelet-csr-approver would. Off by default. */
  autoApproveKubeletServing?: boolean;
  /** --api-audiences; default the service account issuer. */
  apiAudiences?: string[];
}

/**
 * How the server is unavailable: `refuse` stops listening (ECONNREFUSED), `reset` accepts and drops
 * connections, `unavailable` answers every request with 503.
 */
export type OutageMode = "refuse" | "reset" | "unavailable";

export interface ChangeNotice {
  type: ChangeType;
  resourceVersion: string;
  resource: string;
  object: JsonObject;
}

const defaultNamespaces = ["default", "kube-system", "kube-public", "kube-node-lease"];

export class TestApiServer {
  private readonly store: ObjectStore;
  private readonly registry: Registry;
  private readonly watches: WatchHub;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly requestLog: RequestRecord[] = [];
  private readonly requestListeners = new Set<(record: RequestRecord) => void>();
  private readonly host: string;
  private port: number;
  private tokens: BearerToken[];
  private issuedTokens: IssuedToken[] = [];
  private denyRules: DenyRule[];
  private allowRules: AllowRule[];
  private nodeAuthorization: boolean;
  private preferredAddressTypes: string[];
  private readonly apiAudiences: string[];
  private readonly certificates: CertificateController;
  private outage: OutageMode | undefined;
  private listening = false;
  readonly context: HandlerContext;

  constructor(options: TestApiServerOptions) {
    this.host = options.host ?? "127.0.0.1";
    this.port = options.port ?? 0;
    this.tokens = [...(options.tokens ?? [])];
    this.denyRules = [...(options.denyRules ?? [])];
    this.allowRules = [...(options.allowRules ?? [])];
    this.nodeAuthorization = options.nodeAuthorization ?? false;
    this.preferredAddressTypes = [...(options.kubeletPreferredAddressTypes ?? defaultPreferredAddressTypes)];
    this.apiAudiences = [...(options.apiAudiences ?? [serviceAccountIssuer])];
    this.store = new ObjectStore(options.historyLimit ?? 1000, options.initialRevision ?? 1000);
    const lookup = (resource: string, namespace: string, name: string): JsonObject | undefined => this.getObject(resource, namespace, name);
    const policy: AuthorizationPolicy = {
      denyRules: () => this.denyRules,
      allowRules: () => this.allowRules,
      nodeAuthorization: () => this.nodeAuthorization,
      graph: {
        boundPods: (nodeName, namespace) =>
          this.listObjects("pods", namespace).filter((pod) => stringAt(objectAt(pod, "spec"), "nodeName") === nodeName),
        persistentVolume: (name) => this.getObject("persistentvolumes", "", name),
      },
    };
    const admitNodeWrites = nodeRestriction(lookup);
    const admitCertificates = certificateAdmission((user, attributes) => authorizeRequest(policy, user, attributes) === undefined);
    this.registry = new Registry(this.store, (request) => {
      if (this.nodeAuthorization) admitNodeWrites(request);
      admitCertificates(request);
    });
    this.watches = new WatchHub(this.store);
    const caKey = options.tls.caKey;
    this.certificates = new CertificateController(
      this.registry,
      caKey === undefined ? undefined : { certificatePem: options.tls.caCert, privateKeyPem: caKey },
      { autoApproveKubeletServing: options.autoApproveKubeletServing ?? false },
    );
    this.store.onChange((change) => this.certificates.observe(change));
    this.context = {
      registry: this.registry,
      watches: this.watches,
      tokens: () => [...this.tokens, ...this.validIssuedTokens()],
      apiAudiences: () => this.apiAudiences,
      policy,
      connect: {
        lookup,
        kubelet: {
          preferredAddressTypes: () => this.preferredAddressTypes,
          clientCertificate: options.tls.kubeletClientCert ?? "",
          clientKey: options.tls.kubeletClientKey ?? "",
          certificateAuthority: options.kubeletCertificateAuthority,
        },
      },
      tokenIssuer:
        caKey === undefined
          ? undefined
          : {
              lookup,
              admit: (request) => {
                if (this.nodeAuthorization) admitNodeWrites(request);
              },
              apiAudiences: () => this.apiAudiences,
              issuer: serviceAccountIssuer,
              signingKeyPem: caKey,
              register: (token) => {
                this.issuedTokens.push(token);
              },
              now: () => new Date(),
            },
      defaultWatchTimeoutSeconds: options.defaultWatchTimeoutSeconds,
      serverAddress: () => `${this.host}:${this.port}`,
      record: (entry) => {
        const record = { sequence: this.requestLog.length + 1, ...entry };
        this.requestLog.push(record);
        for (const listener of this.requestListeners) listener(record);
      },
    };
    // What kube-controller-manager's service account and root-CA publisher controllers give every
    // namespace: a "default" ServiceAccount and the kube-root-ca.crt ConfigMap that the default projected
    // kube-api-access volume of every pod reads.
    const serviceAccounts = resourceTypeNamed("serviceaccounts");
    const configMaps = resourceTypeNamed("configmaps");
    this.store.onChange((change) => {
      if (change.type !== "ADDED" || change.resourceType.resource !== "namespaces") return;
      const namespace = stringAt(objectAt(change.object, "metadata"), "name") ?? "";
      queueMicrotask(() => {
        if (serviceAccounts !== undefined && this.store.get(serviceAccounts, namespace, "default") === undefined) {
          this.registry.create(serviceAccounts, namespace, { metadata: { name: "default", namespace } });
        }
        if (configMaps !== undefined && this.store.get(configMaps, namespace, "kube-root-ca.crt") === undefined) {
          this.registry.create(configMaps, namespace, { metadata: { name: "kube-root-ca.crt", namespace }, data: { "ca.crt": options.tls.caCert } });
        }
      });
    });
    const namespaces = resourceTypeNamed("namespaces");
    for (const name of [...defaultNamespaces, ...(options.namespaces ?? [])]) {
      if (namespaces !== undefined) this.registry.create(namespaces, "", { metadata: { name } });
    }
    this.server = createServer(
      {
        key: options.tls.serverKey,
        cert: options.tls.serverCert,
        ca: options.tls.caCert,
        requestCert: true,
        // Certificates that fail verification leave the request to token auth (then 401), as in the real server.
        rejectUnauthorized: false,
      },
      (request, response) => this.serve(request, response, undefined),
    );
    this.server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => this.serveUpgrade(request, socket, head, undefined));
    this.server.on("connection", (socket: Socket) => {
      if (this.outage === "reset") {
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  async start(): Promise<{ url: string; port: number }> {
    await this.listen();
    return { url: this.url(), port: this.port };
  }

  url(): string {
    return `https://${this.host}:${this.port}`;
  }

  async stop(): Promise<void> {
    this.watches.dispose();
    for (const socket of this.sockets) socket.destroy();
    if (this.listening) {
      this.listening = false;
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }
  }

  /** Handles one request; the admin endpoint passes its user to skip authentication and authorization. */
  serve(request: IncomingMessage, response: ServerResponse, asUser: UserInfo | undefined): void {
    if (asUser === undefined && this.outage === "unavailable") {
      const error = serviceUnavailable();
      response.writeHead(error.code, { "Content-Type": "application/json" });
      response.end(JSON.stringify(error.status));
      return;
    }
    handleRequest(this.context, request, response, asUser).catch((error: unknown) => {
      process.stderr.write(`apiserver: internal error on ${request.method} ${request.url}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      const failure = new ApiError(500, "InternalError", `Internal error occurred: ${error instanceof Error ? error.message : String(error)}`);
      if (!response.headersSent) {
        response.writeHead(500, { "Content-Type": "application/json" });
        response.end(JSON.stringify(failure.status));
      } else {
        response.destroy();
      }
    });
  }

  /**
   * Handles an HTTP upgrade request (exec, attach, port-forward, proxied websockets) on its raw
   * connection; errors before the upgrade are answered as ordinary responses, then the connection closes.
   */
  serveUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, asUser: UserInfo | undefined): void {
    // A client that resets the connection must not take the server down with an unheard 'error'.
    socket.on("error", () => undefined);
    const response = new ServerResponse(request);
    response.assignSocket(socket as Socket);
    response.shouldKeepAlive = false;
    response.on("finish", () => {
      response.detachSocket(socket as Socket);
      socket.end();
    });
    const detach = (): void => {
      if (response.socket !== null) response.detachSocket(socket as Socket);
    };
    if (asUser === undefined && this.outage === "unavailable") {
      const error = serviceUnavailable();
      response.writeHead(error.code, { "Content-Type": "application/json" });
      response.end(JSON.stringify(error.status));
      return;
    }
    handleRequest(this.context, request, response, asUser, { socket, head, detach }).catch((error: unknown) => {
      process.stderr.write(`apiserver: internal error on upgrade ${request.method} ${request.url}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      socket.destroy();
    });
  }

  /** Makes the server unreachable (see OutageMode) or, with `available`, reachable again on the same port. */
  async setAvailable(available: boolean, mode: OutageMode = "refuse"): Promise<void> {
    if (available) {
      this.outage = undefined;
      if (!this.listening) await this.listen();
      return;
    }
    this.outage = mode;
    if (mode === "unavailable") {
      this.watches.closeAll();
      return;
    }
    this.watches.destroyAll();
    for (const socket of this.sockets) socket.destroy();
    if (mode === "refuse" && this.listening) {
      this.listening = false;
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }
  }

  isAvailable(): boolean {
    return this.outage === undefined;
  }

  /**
   * Drops all watch history, so watches from any earlier resourceVersion get 410 Gone. With
   * `expireWatches`, open watches also get the 410 ERROR event and end, like etcd compaction under them.
   */
  compactHistory(options: { expireWatches?: boolean } = {}): void {
    this.store.compact();
    if (options.expireWatches === true) this.watches.expireAll();
  }

  setHistoryLimit(limit: number): void {
    this.store.setHistoryLimit(limit);
  }

  /** Sends a BOOKMARK to every open watch that allows them (the real server does so about once a minute). */
  sendBookmarks(): void {
    this.watches.bookmarkAll();
  }

  /** Ends every open watch cleanly, as the server does when a watch's timeout elapses. */
  closeWatches(): void {
    this.watches.closeAll();
  }

  openWatchCount(): number {
    return this.watches.count();
  }

  revision(): number {
    return this.store.revision();
  }

  setDenyRules(rules: DenyRule[]): void {
    this.denyRules = [...rules];
  }

  setNodeAuthorization(enabled: boolean): void {
    this.nodeAuthorization = enabled;
  }

  setTokens(tokens: BearerToken[]): void {
    this.tokens = [...tokens];
  }

  setAllowRules(rules: AllowRule[]): void {
    this.allowRules = [...rules];
  }

  setKubeletPreferredAddressTypes(types: string[]): void {
    this.preferredAddressTypes = [...types];
  }

  setAutoApproveKubeletServing(enabled: boolean): void {
    this.certificates.setAutoApproveKubeletServing(enabled);
  }

  /** Approves or denies a CSR through /approval, as `kubectl certificate approve|deny` by a cluster admin. */
  decideCertificateRequest(name: string, decision: ApprovalDecision, user: UserInfo, reason?: string, message?: string): JsonObject {
    return this.certificates.decide(name, decision, user, reason, message);
  }

  /** Service account tokens whose bound object still exists; expiry is checked at authentication. */
  private validIssuedTokens(): IssuedToken[] {
    const lookup = (resource: string, namespace: string, name: string): JsonObject | undefined => this.getObject(resource, namespace, name);
    this.issuedTokens = this.issuedTokens.filter((token) => token.expiresAt === undefined || token.expiresAt > Date.now());
    return this.issuedTokens.filter((token) => bindingHolds(token.binding, lookup));
  }

  requests(): RequestRecord[] {
    return this.requestLog.map((record) => ({ ...record }));
  }

  onRequest(listener: (record: RequestRecord) => void): () => void {
    this.requestListeners.add(listener);
    return () => this.requestListeners.delete(listener);
  }

  onChange(listener: (change: ChangeNotice) => void): () => void {
    return this.store.onChange((change) =>
      listener({ type: change.type, resourceVersion: String(change.revision), resource: change.resourceType.resource, object: cloneJson(change.object) }),
    );
  }

  /** Reads an object directly; `namespace` is ignored for cluster-scoped resources. */
  getObject(resource: string, namespace: string, name: string): JsonObject | undefined {
    const type = this.typeNamed(resource);
    return this.store.get(type, type.namespaced ? namespace : "", name);
  }

  listObjects(resource: string, namespace?: string): JsonObject[] {
    const type = this.typeNamed(resource);
    return this.store.list(type, type.namespaced ? namespace : undefined);
  }

  /**
   * Stores an object as given, bypassing validation and every lifecycle rule (only uid and
   * creationTimestamp are filled in if missing); watchers see it as ADDED or MODIFIED.
   */
  putObject(object: JsonObject): JsonObject {
    const kind = stringAt(object, "kind");
    const type = resourceTypes.find((candidate) => candidate.kind === kind);
    if (type === undefined) throw new Error(`putObject: unknown kind ${String(kind)}`);
    const stored = cloneJson(object);
    const metadata = { ...objectAt(stored, "metadata") };
    if (typeof metadata["name"] !== "string" || metadata["name"] === "") throw new Error("putObject: metadata.name is required");
    if (type.namespaced && typeof metadata["namespace"] !== "string") metadata["namespace"] = "default";
    if (!type.namespaced) delete metadata["namespace"];
    metadata["uid"] ??= randomUUID();
    metadata["creationTimestamp"] ??= formatTime(new Date());
    stored["metadata"] = metadata;
    return this.store.update(type, stored);
  }

  /** Removes an object at once, ignoring grace periods and finalizers; watchers see DELETED. */
  removeObject(resource: string, namespace: string, name: string): JsonObject | undefined {
    const type = this.typeNamed(resource);
    return this.store.remove(type, type.namespaced ? namespace : "", name);
  }

  private typeNamed(resource: string): ResourceType {
    const type = resourceTypeNamed(resource);
    if (type === undefined) throw new Error(`unknown resource ${resource}`);
    return type;
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.server.once("error", onError);
      this.server.listen(this.port, this.host, () => {
        this.server.off("error", onError);
        this.listening = true;
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }
}
