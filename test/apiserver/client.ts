// For Bun tests: builds the test API server for Node, starts it in a fresh directory with its own PKI,
// and returns kubeconfigs plus an admin handle to seed, inspect and disturb it.
//
//   const cluster = await startTestApiServer({ nodeName: "n1" });
//   const kc = new KubeConfig(); kc.loadFromFile(cluster.kubeconfigPath);   // acts as system:node:n1
//   await cluster.admin.create("pods", { metadata: { name: "web" }, spec: { ... } });
//   await cluster.admin.waitFor("pods", "web", "default", (pod) => phaseOf(pod) === "Running");
//   await cluster.stop();
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BearerToken, DenyRule } from "./auth.ts";
import { issueClientCertificate, type ClientIdentity, type KeyPairFiles } from "./certs.ts";
import type { RequestRecord } from "./handler.ts";
import { isJsonObject, objectAt, parseJson, stringAt, type JsonObject, type JsonValue } from "./json.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { adminRoutes, type ReadyLine, type ServerState } from "./protocol.ts";
import type { AllowRule } from "./rbac.ts";
import { apiVersionOf, resourceTypeNamed, type ResourceType } from "./resources.ts";
import type { OutageMode } from "./server.ts";

export interface StartTestApiServerOptions {
  /** The node the node kubeconfig authenticates as (CN=system:node:<nodeName>); default "vks-test-node". */
  nodeName?: string;
  /** Bearer tokens; each also gets a kubeconfig in `tokenKubeconfigPaths`. */
  tokens?: BearerToken[];
  denyRules?: DenyRule[];
  historyLimit?: number;
  initialRevision?: number;
  namespaces?: string[];
  defaultWatchTimeoutSeconds?: number;
  /**
   * Limit the node kubeconfig's identity as a real cluster does (Node authorizer + NodeRestriction):
   * e.g. it may patch only its own Node and Lease and only pods/status of pods bound to it, and read
   * only the secrets and configmaps those pods reference. Off by default; see setNodeAuthorization.
   */
  nodeAuthorization?: boolean;
  /** What SubjectAccessReviews find granted (RBAC stand-ins); see setAllowRules. */
  allowRules?: AllowRule[];
  /** --kubelet-preferred-address-types; default Hostname, InternalDNS, InternalIP, ExternalDNS, ExternalIP. */
  kubeletPreferredAddressTypes?: string[];
  /** --kubelet-certificate-authority: a PEM file; without it kubelet serving certificates are not verified. */
  kubeletCertificateAuthorityPath?: string;
  /** Approve kubelet-serving CSRs a node makes for itself (CN and requester system:node:<name>). Off by default. */
  autoApproveKubeletServing?: boolean;
  /** --api-audiences; default https://kubernetes.default.svc.cluster.local. */
  apiAudiences?: string[];
  /** Keep the directory with certificates and kubeconfigs after stop(), e.g. to debug a failure. */
  keepDir?: boolean;
}

export type PatchType = "merge" | "strategic" | "json";

const patchMediaTypes: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  json: "application/json-patch+json",
};

/** A failed API call through the admin endpoint, with the Status the server answered. */
export class AdminApiError extends Error {
  constructor(
    readonly code: number,
    readonly status: JsonValue,
  ) {
    super(isJsonObject(status) && typeof status["message"] === "string" ? `${code}: ${status["message"]}` : `HTTP ${code}`);
  }
}

export interface DeleteRequestOptions {
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface ListRequestOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface TestApiServerAdmin {
  /** The object, or undefined if it does not exist. `namespace` is ignored for cluster-scoped types. */
  get(resource: string, name: string, namespace?: string): Promise<JsonObject | undefined>;
  /** Items come back with kind and apiVersion filled in, unlike the wire format of a list. */
  list(resource: string, options?: ListRequestOptions): Promise<JsonObject[]>;
  /** Creates through the API (validated, defaulted); the namespace comes from metadata, else "default". */
  create(resource: string, object: JsonObject): Promise<JsonObject>;
  update(resource: string, object: JsonObject, subresource?: "status"): Promise<JsonObject>;
  patch(resource: string, name: string, namespace: string, patch: JsonValue, type?: PatchType, subresource?: "status"): Promise<JsonObject>;
  delete(resource: string, name: string, namespace?: string, options?: DeleteRequestOptions): Promise<JsonObject>;
  /** Stores an object verbatim, skipping validation and lifecycle rules. */
  put(object: JsonObject): Promise<JsonObject>;
  /** Removes an object at once, ignoring grace periods and finalizers. */
  remove(resource: string, name: string, namespace?: string): Promise<void>;
  /** Drops watch history: watches from older resourceVersions get 410; `expireWatches` also ends open ones with 410. */
  compact(options?: { expireWatches?: boolean }): Promise<void>;
  /** Takes the server down (`refuse` by default) until restore(). */
  outage(mode?: OutageMode): Promise<void>;
  restore(): Promise<void>;
  sendBookmarks(): Promise<void>;
  closeWatches(): Promise<void>;
  state(): Promise<ServerState>;
  /** Requests served so far (admin-endpoint requests included, as user vks-test-admin), after sequence `since`. */
  requests(since?: number): Promise<RequestRecord[]>;
  setDenyRules(rules: DenyRule[]): Promise<void>;
  setTokens(tokens: BearerToken[]): Promise<void>;
  setHistoryLimit(limit: number): Promise<void>;
  setNodeAuthorization(enabled: boolean): Promise<void>;
  /** Replaces the allow rules SubjectAccessReviews are answered with (RBAC bindings stand-ins). */
  setAllowRules(rules: AllowRule[]): Promise<void>;
  setKubeletPreferredAddressTypes(types: string[]): Promise<void>;
  setAutoApproveKubeletServing(enabled: boolean): Promise<void>;
  /** `kubectl certificate approve` as a cluster admin; the signer then issues the certificate if it handles the signer name. */
  approveCertificateSigningRequest(name: string, options?: { reason?: string; message?: string }): Promise<JsonObject>;
  /** `kubectl certificate deny` as a cluster admin. */
  denyCertificateSigningRequest(name: string, options?: { reason?: string; message?: string }): Promise<JsonObject>;
  /**
   * Resolves with the object (or undefined once it is gone) as soon as `predicate` holds, watching
   * for changes in between; it never gives up by itself, so the test's own timeout bounds it.
   */
  waitFor(resource: string, name: string, namespace: string, predicate: (object: JsonObject | undefined) => boolean): Promise<JsonObject | undefined>;
}

export interface RunningTestApiServer {
  url: string;
  port: number;
  adminUrl: string;
  dir: string;
  nodeName: string;
  caCertPath: string;
  /** The API server's client certificate for kubelets: CN=kube-apiserver-kubelet-client, O=system:masters. */
  kubeletClient: KeyPairFiles;
  /** Authenticates as system:node:<nodeName> in group system:nodes, the way a kubelet does. */
  kubeconfigPath: string;
  /** Authenticates as vks-test-admin in group system:masters. */
  adminKubeconfigPath: string;
  tokenKubeconfigPaths: Record<string, string>;
  admin: TestApiServerAdmin;
  /** Issues another client certificate from the test CA and writes a kubeconfig for it. */
  addClient(stem: string, identity: ClientIdentity): KeyPairFiles & { kubeconfigPath: string };
  stop(): Promise<void>;
}

/** Builds main.ts for Node into `dir`, which stop() removes with everything else of this server. */
async function buildServerBundle(dir: string): Promise<string> {
  const result = await Bun.build({ entrypoints: [join(import.meta.dir, "main.ts")], target: "node", outdir: dir, naming: "apiserver.mjs" });
  if (!result.success) throw new Error(`building the test API server failed:\n${result.logs.map(String).join("\n")}`);
  return join(dir, "apiserver.mjs");
}

function typeNamed(resource: string): ResourceType {
  const type = resourceTypeNamed(resource);
  if (type === undefined) throw new Error(`unknown resource ${resource}`);
  return type;
}

function collectionPath(type: ResourceType, namespace: string | undefined): string {
  const base = type.group === "" ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  return type.namespaced && namespace !== undefined && namespace !== "" ? `${base}/namespaces/${namespace}/${type.resource}` : `${base}/${type.resource}`;
}

function objectPath(type: ResourceType, name: string, namespace: string, subresource?: string): string {
  const path = `${collectionPath(type, type.namespaced ? namespace : undefined)}/${encodeURIComponent(name)}`;
  return subresource === undefined ? path : `${path}/${subresource}`;
}

function isReadyLine(value: JsonValue | undefined): value is JsonValue & ReadyLine {
  return isJsonObject(value) && value["event"] === "ready" && typeof value["url"] === "string" && typeof value["adminUrl"] === "string";
}

async function readReadyLine(process: Bun.Subprocess<"pipe", "pipe", "pipe">): Promise<ReadyLine> {
  const reader = process.stdout.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    const newline = buffered.indexOf("\n");
    if (newline !== -1) {
      reader.releaseLock();
      const parsed = parseJson(buffered.slice(0, newline));
      if (isReadyLine(parsed)) return parsed;
      throw new Error(`test API server printed an unexpected first line: ${buffered.slice(0, newline)}`);
    }
  }
  const exitCode = await process.exited;
  const errorOutput = await new Response(process.stderr).text();
  throw new Error(`test API server exited with ${exitCode} before it was ready:\n${errorOutput}`);
}

type WatchOutcome = { satisfied: true; object: JsonObject | undefined } | { satisfied: false };

/** Watches one object from `revision` until `predicate` holds or the stream ends. */
async function watchOnce(
  collectionUrl: string,
  name: string,
  revision: string,
  predicate: (object: JsonObject | undefined) => boolean,
): Promise<WatchOutcome> {
  const query = new URLSearchParams({ watch: "1", fieldSelector: `metadata.name=${name}`, resourceVersion: revision });
  const abort = new AbortController();
  const response = await fetch(`${collectionUrl}?${query}`, { signal: abort.signal });
  if (response.status !== 200 || response.body === null) {
    throw new AdminApiError(response.status, parseJson(await response.text()) ?? null);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { satisfied: false };
      buffered += decoder.decode(value, { stream: true });
      let newline = buffered.indexOf("\n");
      while (newline !== -1) {
        const event = parseJson(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf("\n");
        if (!isJsonObject(event) || !isJsonObject(event["object"])) continue;
        if (event["type"] === "ERROR") return { satisfied: false };
        if (event["type"] === "BOOKMARK") continue;
        const object = event["type"] === "DELETED" ? undefined : event["object"];
        if (predicate(object)) return { satisfied: true, object };
      }
    }
  } finally {
    abort.abort();
  }
}

function createAdmin(adminUrl: string): TestApiServerAdmin {
  const call = async (method: string, path: string, body?: JsonValue, contentType = "application/json"): Promise<{ code: number; body: JsonValue }> => {
    const response = await fetch(`${adminUrl}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "Content-Type": contentType } }),
    });
    const text = await response.text();
    return { code: response.status, body: text === "" ? null : (parseJson(text) ?? text) };
  };
  const expectObject = async (method: string, path: string, body?: JsonValue, contentType?: string): Promise<JsonObject> => {
    const result = await call(method, path, body, contentType);
    if (result.code >= 300 || !isJsonObject(result.body)) throw new AdminApiError(result.code, result.body);
    return result.body;
  };
  const expectOk = async (method: string, path: string, body?: JsonValue): Promise<JsonValue> => {
    const result = await call(method, path, body);
    if (result.code >= 300) throw new AdminApiError(result.code, result.body);
    return result.body;
  };

  const admin: TestApiServerAdmin = {
    async get(resource, name, namespace = "default") {
      const result = await call("GET", objectPath(typeNamed(resource), name, namespace));
      if (result.code === 404) return undefined;
      if (result.code >= 300 || !isJsonObject(result.body)) throw new AdminApiError(result.code, result.body);
      return result.body;
    },
    async list(resource, options = {}) {
      const type = typeNamed(resource);
      const query = new URLSearchParams();
      if (options.labelSelector !== undefined) query.set("labelSelector", options.labelSelector);
      if (options.fieldSelector !== undefined) query.set("fieldSelector", options.fieldSelector);
      const list = await expectObject("GET", `${collectionPath(type, options.namespace)}?${query}`);
      const items = Array.isArray(list["items"]) ? list["items"] : [];
      return items.filter(isJsonObject).map((item) => ({ apiVersion: apiVersionOf(type), kind: type.kind, ...item }));
    },
    create(resource, object) {
      const type = typeNamed(resource);
      const namespace = stringAt(objectAt(object, "metadata"), "namespace") ?? "default";
      return expectObject("POST", collectionPath(type, type.namespaced ? namespace : undefined), { apiVersion: apiVersionOf(type), kind: type.kind, ...object });
    },
    update(resource, object, subresource) {
      const type = typeNamed(resource);
      const metadata = objectAt(object, "metadata");
      const path = objectPath(type, stringAt(metadata, "name") ?? "", stringAt(metadata, "namespace") ?? "default", subresource);
      return expectObject("PUT", path, object);
    },
    patch(resource, name, namespace, patch, type = "merge", subresource) {
      return expectObject("PATCH", objectPath(typeNamed(resource), name, namespace, subresource), patch, patchMediaTypes[type]);
    },
    delete(resource, name, namespace = "default", options = {}) {
      return expectObject("DELETE", objectPath(typeNamed(resource), name, namespace), { apiVersion: "v1", kind: "DeleteOptions", ...options });
    },
    put(object) {
      return expectObject("PUT", adminRoutes.objects, object);
    },
    async remove(resource, name, namespace = "default") {
      const query = new URLSearchParams({ resource, name, namespace });
      await expectOk("DELETE", `${adminRoutes.objects}?${query}`);
    },
    async compact(options = {}) {
      await expectOk("POST", adminRoutes.compact, { expireWatches: options.expireWatches === true });
    },
    async outage(mode = "refuse") {
      await expectOk("POST", adminRoutes.availability, { available: false, mode });
    },
    async restore() {
      await expectOk("POST", adminRoutes.availability, { available: true });
    },
    async sendBookmarks() {
      await expectOk("POST", adminRoutes.bookmarks);
    },
    async closeWatches() {
      await expectOk("POST", adminRoutes.closeWatches);
    },
    async state() {
      return (await expectObject("GET", adminRoutes.state)) as JsonObject & ServerState;
    },
    async requests(since = 0) {
      const records = await expectOk("GET", `${adminRoutes.requests}?since=${since}`);
      return (Array.isArray(records) ? records : []) as unknown as RequestRecord[];
    },
    async setDenyRules(rules) {
      await expectOk("PUT", adminRoutes.denyRules, rules as unknown as JsonValue);
    },
    async setTokens(tokens) {
      await expectOk("PUT", adminRoutes.tokens, tokens as unknown as JsonValue);
    },
    async setHistoryLimit(limit) {
      await expectOk("PUT", adminRoutes.historyLimit, { limit });
    },
    async setNodeAuthorization(enabled) {
      await expectOk("PUT", adminRoutes.nodeAuthorization, { enabled });
    },
    async setAllowRules(rules) {
      await expectOk("PUT", adminRoutes.allowRules, rules as unknown as JsonValue);
    },
    async setKubeletPreferredAddressTypes(types) {
      await expectOk("PUT", adminRoutes.kubeletPreferredAddressTypes, { types });
    },
    async setAutoApproveKubeletServing(enabled) {
      await expectOk("PUT", adminRoutes.autoApproveKubeletServing, { enabled });
    },
    approveCertificateSigningRequest(name, options = {}) {
      return expectObject("POST", adminRoutes.certificateApproval, { name, decision: "Approved", ...options });
    },
    denyCertificateSigningRequest(name, options = {}) {
      return expectObject("POST", adminRoutes.certificateApproval, { name, decision: "Denied", ...options });
    },
    async waitFor(resource, name, namespace, predicate) {
      const type = typeNamed(resource);
      // Each round reads the current state, then watches from it; a watch that ends or expires
      // (timeouts, closeWatches, compaction) simply starts the next round.
      for (;;) {
        const read = await call("GET", objectPath(type, name, namespace));
        if (read.code !== 404 && (read.code >= 300 || !isJsonObject(read.body))) throw new AdminApiError(read.code, read.body);
        const current = read.code === 404 ? undefined : (read.body as JsonObject);
        if (predicate(current)) return current;
        // A missing object has no revision of its own; the list's says where to watch from.
        const revision =
          current === undefined
            ? stringAt(objectAt(await expectObject("GET", `${collectionPath(type, namespace)}?limit=1`), "metadata"), "resourceVersion")
            : stringAt(objectAt(current, "metadata"), "resourceVersion");
        const outcome = await watchOnce(`${adminUrl}${collectionPath(type, type.namespaced ? namespace : undefined)}`, name, revision ?? "", predicate);
        if (outcome.satisfied) return outcome.object;
      }
    },
  };
  return admin;
}

export async function startTestApiServer(options: StartTestApiServerOptions = {}): Promise<RunningTestApiServer> {
  const dir = mkdtempSync(join(tmpdir(), "vks-apiserver-"));
  const bundle = await buildServerBundle(dir);
  const args = ["--dir", dir, "--exit-on-stdin-close"];
  if (options.nodeName !== undefined) args.push("--node-name", options.nodeName);
  for (const token of options.tokens ?? []) args.push("--token", `${token.token}:${token.user}:${(token.groups ?? []).join(",")}`);
  if (options.denyRules !== undefined) args.push("--deny-rules", JSON.stringify(options.denyRules));
  if (options.historyLimit !== undefined) args.push("--history-limit", String(options.historyLimit));
  if (options.initialRevision !== undefined) args.push("--initial-revision", String(options.initialRevision));
  if (options.defaultWatchTimeoutSeconds !== undefined) args.push("--watch-timeout-seconds", String(options.defaultWatchTimeoutSeconds));
  for (const namespace of options.namespaces ?? []) args.push("--namespace", namespace);
  if (options.nodeAuthorization === true) args.push("--node-authorization");
  if (options.allowRules !== undefined) args.push("--allow-rules", JSON.stringify(options.allowRules));
  if (options.kubeletPreferredAddressTypes !== undefined) args.push("--kubelet-preferred-address-types", options.kubeletPreferredAddressTypes.join(","));
  if (options.kubeletCertificateAuthorityPath !== undefined) args.push("--kubelet-certificate-authority", options.kubeletCertificateAuthorityPath);
  if (options.autoApproveKubeletServing === true) args.push("--auto-approve-kubelet-serving");
  if (options.apiAudiences !== undefined) args.push("--api-audiences", options.apiAudiences.join(","));

  const child = Bun.spawn(["node", bundle, ...args], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  let ready: ReadyLine;
  try {
    ready = await readReadyLine(child);
  } catch (error) {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  // Pass the server's complaints (internal errors only) through to the test output.
  void child.stderr.pipeTo(
    new WritableStream({
      write(chunk) {
        process.stderr.write(chunk);
      },
    }),
  ).catch(() => undefined);

  const ca: KeyPairFiles = { certPath: ready.caCertPath, keyPath: join(dir, "ca.key") };
  let stopped = false;
  return {
    url: ready.url,
    port: ready.port,
    adminUrl: ready.adminUrl,
    dir,
    nodeName: ready.nodeName,
    caCertPath: ready.caCertPath,
    kubeletClient: ready.kubeletClient,
    kubeconfigPath: ready.kubeconfigs.node,
    adminKubeconfigPath: ready.kubeconfigs.admin,
    tokenKubeconfigPaths: ready.kubeconfigs.tokens,
    admin: createAdmin(ready.adminUrl),
    addClient(stem, identity) {
      const files = issueClientCertificate(ca, dir, stem, identity);
      const kubeconfigPath = writeKubeconfig(join(dir, `${stem}.kubeconfig`), {
        server: ready.url,
        caCertPath: ready.caCertPath,
        credentials: files,
        userName: identity.commonName,
      });
      return { ...files, kubeconfigPath };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      child.kill("SIGTERM");
      await child.exited;
      if (options.keepDir !== true) rmSync(dir, { recursive: true, force: true });
    },
  };
}
