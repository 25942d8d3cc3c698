// The kubelet API server without systemd or an API server: a fake runtime and fake review APIs, real
// TLS with a client certificate made by openssl, and the caches on an injected clock.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { V1Pod } from "@kubernetes/client-node";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NotFoundError } from "../../internal/errors.ts";
import { KubeletAuth, nodeAccessFor, type AccessVerdict, type KubeletUser, type NodeAccess, type ReviewClient, type TokenVerdict } from "../../internal/kubelet/auth.ts";
import { createSelfSignedPair } from "../../internal/kubelet/certs/self-signed.ts";
import { formatLogTimestamp, parseContainerLogOptions } from "../../internal/kubelet/container-logs.ts";
import { RequestError } from "../../internal/kubelet/query.ts";
import type { KubeletRuntime } from "../../internal/kubelet/runtime.ts";
import { KubeletApiServer } from "../../internal/kubelet/server.ts";

class FakeReviews implements ReviewClient {
  tokenCalls = 0;
  accessCalls = 0;
  allowed = new Set<string>();
  async reviewToken(token: string): Promise<TokenVerdict> {
    this.tokenCalls++;
    if (token === "alice-token") return { authenticated: true, user: { name: "alice", groups: ["devs"] } };
    if (token === "bob-token") return { authenticated: true, user: { name: "bob", groups: [] } };
    return { authenticated: false, error: "invalid bearer token" };
  }
  async reviewAccess(user: KubeletUser, access: NodeAccess): Promise<AccessVerdict> {
    this.accessCalls++;
    const allowed = this.allowed.has(`${user.name}:${access.verb}:${access.subresource}`);
    return { allowed, reason: allowed ? "" : "no RBAC policy matched" };
  }
}

const pod: V1Pod = {
  metadata: { name: "web", namespace: "default", uid: "u-1" },
  spec: { containers: [{ name: "main", image: "/bin/sleep" }] },
  status: { phase: "Running", containerStatuses: [{ name: "main", image: "/bin/sleep", imageID: "", ready: true, restartCount: 0, state: { running: { startedAt: new Date() } } }] },
};

const runtime: KubeletRuntime = {
  scope: "user",
  listPods: async () => [pod],
  getPod: async (namespace, name) => (namespace === "default" && name === "web" ? pod : undefined),
  logSource: (namespace, name) => (namespace === "default" && name === "web" ? { logs: { mode: "file", directory: "/nonexistent" }, units: [{ container: "main", unitName: "vks.default.web.main.u-1.service" }] } : undefined),
  exec: async () => {
    throw new NotFoundError("pod does not exist");
  },
  containerUnits: async () => [],
  getUnitAccounting: async () => new Map(),
};

const dir = mkdtempSync(join(tmpdir(), "vks-kubelet-server-"));
let now = 1_000_000;
const reviews = new FakeReviews();
let server: KubeletApiServer;
let base: string;
let clientCert: string;
let clientKey: string;
let caCert: string;
const untrusted: string[] = [];

beforeAll(async () => {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=test-ca", "-days", "2");
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=carol/O=ops/O=admins");
  openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "client.crt", "-days", "2");
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "stranger.key", "-out", "stranger.crt", "-subj", "/CN=kube-apiserver-kubelet-client/O=system:masters", "-days", "2");
  caCert = readFileSync(join(dir, "ca.crt"), "utf8");
  clientCert = readFileSync(join(dir, "client.crt"), "utf8");
  clientKey = readFileSync(join(dir, "client.key"), "utf8");
  const pair = createSelfSignedPair("test-host", { dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] }, Date.now());
  reviews.allowed.add("alice:get:proxy");
  reviews.allowed.add("alice:create:proxy");
  reviews.allowed.add("carol:get:stats");
  server = new KubeletApiServer({
    address: "127.0.0.1",
    port: 0,
    nodeName: "n1",
    certificate: { current: () => pair, onRotated: () => {} },
    clientCaPem: caCert,
    auth: new KubeletAuth(reviews, { anonymous: false, now: () => now, onUntrustedCertificate: (subject, reason) => untrusted.push(`${subject}: ${reason}`) }),
    runtime,
    readings: { statsSummary: async () => ({ node: { nodeName: "n1" }, pods: [] }), resourceMetrics: async () => "", metrics: async () => "" },
  });
  base = `https://127.0.0.1:${await server.start()}`;
});

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const tls = { rejectUnauthorized: false };
const asAlice = { tls, headers: { Authorization: "Bearer alice-token" } };

describe("authentication", () => {
  test("no credentials → 401", async () => {
    const answer = await fetch(`${base}/healthz`, { tls });
    expect(answer.status).toBe(401);
    expect(await answer.text()).toBe("Unauthorized\n");
  });

  test("an unknown token → 401, and the verdict is cached for 30 s", async () => {
    const before = reviews.tokenCalls;
    expect((await fetch(`${base}/healthz`, { tls, headers: { Authorization: "Bearer nope" } })).status).toBe(401);
    expect((await fetch(`${base}/healthz`, { tls, headers: { Authorization: "Bearer nope" } })).status).toBe(401);
    expect(reviews.tokenCalls).toBe(before + 1);
    now += 31_000;
    await fetch(`${base}/healthz`, { tls, headers: { Authorization: "Bearer nope" } });
    expect(reviews.tokenCalls).toBe(before + 2);
  });

  test("a valid token is cached for 2 minutes", async () => {
    const before = reviews.tokenCalls;
    expect((await fetch(`${base}/healthz`, asAlice)).status).toBe(200);
    expect((await fetch(`${base}/healthz`, asAlice)).status).toBe(200);
    expect(reviews.tokenCalls).toBe(before + 1);
    now += 121_000;
    expect((await fetch(`${base}/healthz`, asAlice)).status).toBe(200);
    expect(reviews.tokenCalls).toBe(before + 2);
  });

  test("a client certificate from the client CA names the user (CN) and groups (O)", async () => {
    const answer = await fetch(`${base}/stats/summary`, { tls: { rejectUnauthorized: false, cert: clientCert, key: clientKey } });
    expect(answer.status).toBe(200);
    const denied = await fetch(`${base}/pods`, { tls: { rejectUnauthorized: false, cert: clientCert, key: clientKey } });
    expect(denied.status).toBe(403);
    expect(await denied.text()).toContain("user=carol, verb=get, resource=nodes, subresource=proxy");
  });
});

test("a certificate from another CA is not a user: 401, and the cause is reported once", async () => {
  const stranger = { rejectUnauthorized: false, cert: readFileSync(join(dir, "stranger.crt"), "utf8"), key: readFileSync(join(dir, "stranger.key"), "utf8") };
  expect((await fetch(`${base}/pods`, { tls: stranger })).status).toBe(401);
  expect((await fetch(`${base}/pods`, { tls: stranger, keepalive: false })).status).toBe(401);
  expect(untrusted).toHaveLength(1);
  expect(untrusted[0]).toStartWith("CN=kube-apiserver-kubelet-client: ");
});

describe("authorization", () => {
  test("denied → 403 naming user, verb and subresource; cached 30 s, allowed cached 5 min", async () => {
    const asBob = { tls, headers: { Authorization: "Bearer bob-token" } };
    const before = reviews.accessCalls;
    const answer = await fetch(`${base}/pods`, asBob);
    expect(answer.status).toBe(403);
    expect(await answer.text()).toBe("Forbidden (user=bob, verb=get, resource=nodes, subresource=proxy): no RBAC policy matched\n");
    await fetch(`${base}/pods`, asBob);
    expect(reviews.accessCalls).toBe(before + 1);
    reviews.allowed.add("bob:get:proxy");
    now += 31_000;
    expect((await fetch(`${base}/pods`, asBob)).status).toBe(200);
    reviews.allowed.delete("bob:get:proxy");
    now += 4 * 60_000;
    expect((await fetch(`${base}/pods`, asBob)).status).toBe(200);
  });

  test("paths map to the kubelet's subresources and methods to verbs", () => {
    expect(nodeAccessFor("GET", "/stats/summary", "n")).toEqual({ verb: "get", subresource: "stats", nodeName: "n" });
    expect(nodeAccessFor("GET", "/metrics/resource", "n").subresource).toBe("metrics");
    expect(nodeAccessFor("GET", "/logs/syslog", "n").subresource).toBe("log");
    expect(nodeAccessFor("GET", "/spec/", "n").subresource).toBe("spec");
    expect(nodeAccessFor("POST", "/exec/a/b/c", "n")).toEqual({ verb: "create", subresource: "proxy", nodeName: "n" });
    expect(nodeAccessFor("GET", "/containerLogs/a/b/c", "n").subresource).toBe("proxy");
    expect(nodeAccessFor("GET", "/statsx", "n").subresource).toBe("proxy");
  });
});

describe("endpoints", () => {
  test("/healthz, /pods", async () => {
    expect(await (await fetch(`${base}/healthz`, asAlice)).text()).toBe("ok");
    const list = (await (await fetch(`${base}/pods`, asAlice)).json()) as { kind: string; items: V1Pod[] };
    expect(list.kind).toBe("PodList");
    expect(list.items.map((item) => item.metadata?.name)).toEqual(["web"]);
  });

  test("unknown query parameters and malformed values → 400 naming them", async () => {
    const typo = await fetch(`${base}/containerLogs/default/web/main?tailLine=5`, asAlice);
    expect(typo.status).toBe(400);
    expect(await typo.text()).toContain('unknown query parameter "tailLine"');
    expect((await fetch(`${base}/containerLogs/default/web/main?tailLines=x`, asAlice)).status).toBe(400);
    expect((await fetch(`${base}/containerLogs/default/web/main?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z`, asAlice)).status).toBe(400);
    expect((await fetch(`${base}/pods?watch=1`, asAlice)).status).toBe(400);
  });

  test("missing pods and containers → 404 with the kubelet's messages", async () => {
    const pod404 = await fetch(`${base}/containerLogs/default/nobody/main`, asAlice);
    expect(pod404.status).toBe(404);
    expect(await pod404.text()).toBe('pod "nobody" does not exist\n');
    const container404 = await fetch(`${base}/containerLogs/default/web/other`, asAlice);
    expect(await container404.text()).toBe('container "other" not found in pod "web"\n');
    expect((await fetch(`${base}/nothing/here`, asAlice)).status).toBe(404);
  });

  test("file-mode logs refuse what needs times, saying why", async () => {
    const answer = await fetch(`${base}/containerLogs/default/web/main?timestamps=true`, asAlice);
    expect(answer.status).toBe(400);
    expect(await answer.text()).toContain("--log-mode journal");
  });

  test("streaming endpoints without an upgrade → 400", async () => {
    const answer = await fetch(`${base}/exec/default/web/main?command=true&output=1`, { ...asAlice, method: "POST" });
    expect(answer.status).toBe(400);
    expect(await answer.text()).toContain("streaming upgrade");
  });
});

describe("container log options", () => {
  test("parse as the kubelet's", () => {
    const now = new Date("2024-05-01T12:00:00Z");
    expect(parseContainerLogOptions(new URLSearchParams("follow=true&tailLines=0&timestamps=1&sinceSeconds=60&limitBytes=10"), now)).toEqual({
      follow: true,
      timestamps: true,
      previous: false,
      tailLines: 0,
      limitBytes: 10,
      since: new Date("2024-05-01T11:59:00Z"),
    });
    expect(() => parseContainerLogOptions(new URLSearchParams("limitBytes=0"))).toThrow(RequestError);
    expect(() => parseContainerLogOptions(new URLSearchParams("sinceTime=yesterday"))).toThrow("RFC 3339");
    expect(() => parseContainerLogOptions(new URLSearchParams("follow=maybe"))).toThrow("not a boolean");
    expect(() => parseContainerLogOptions(new URLSearchParams("tailLines=1&tailLines=2"))).toThrow("given 2 times");
  });

  test("timestamps print as Go's RFC3339Nano", () => {
    expect(formatLogTimestamp(1714564800123456n)).toBe("2024-05-01T12:00:00.123456Z");
    expect(formatLogTimestamp(1714564800120000n)).toBe("2024-05-01T12:00:00.12Z");
    expect(formatLogTimestamp(1714564800000000n)).toBe("2024-05-01T12:00:00Z");
  });
});
