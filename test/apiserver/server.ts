// TestApiServer: the HTTPS endpoint clients talk to, plus the in-process control surface tests use to
// seed and inspect objects, force history loss, and simulate outages. Runs under Node, whose TLS
// server exposes client certificates (Bun's does not).
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { BearerToken, DenyRule, UserInfo } from "./auth.ts";
import { handleRequest, type HandlerContext, type RequestRecord } from "./handler.ts";
import { cloneJson, objectAt, stringAt, type JsonObject } from "./json.ts";
import { nodeRestriction } from "./node-authorization.ts";
import { Registry } from "./registry.ts";
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
}

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
  private denyRules: DenyRule[];
  private nodeAuthorization: boolean;
  private outage: OutageMode | undefined;
  private listening = false;
  readonly context: HandlerContext;

  constructor(options: TestApiServerOptions) {
    this.host = options.host ?? "127.0.0.1";
    this.port = options.port ?? 0;
    this.tokens = [...(options.tokens ?? [])];
    this.denyRules = [...(options.denyRules ?? [])];
    this.nodeAuthorization = options.nodeAuthorization ?? false;
    this.store = new ObjectStore(options.historyLimit ?? 1000, options.initialRevision ?? 1000);
    const admitNodeWrites = nodeRestriction((name) => this.getObject("nodes", "", name));
    this.registry = new Registry(this.store, (request) => {
      if (this.nodeAuthorization) admitNodeWrites(request);
    });
    this.watches = new WatchHub(this.store);
    this.context = {
      registry: this.registry,
      watches: this.watches,
      tokens: () => this.tokens,
      denyRules: () => this.denyRules,
      nodeAuthorization: () => this.nodeAuthorization,
      boundPods: (nodeName, namespace) =>
        this.listObjects("pods", namespace).filter((pod) => stringAt(objectAt(pod, "spec"), "nodeName") === nodeName),
      defaultWatchTimeoutSeconds: options.defaultWatchTimeoutSeconds,
      serverAddress: () => `${this.host}:${this.port}`,
      record: (entry) => {
        const record = { sequence: this.requestLog.length + 1, ...entry };
        this.requestLog.push(record);
        for (const listener of this.requestListeners) listener(record);
      },
    };
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
