// The API server's way to kubelets: pods/log, exec, attach, portforward and nodes/proxy against a fake
// HTTPS kubelet, checking what reaches the kubelet, what comes back, and the real server's errors.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, connect as netConnect, type AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { createCertificateAuthority } from "./certs.ts";
import { startTestApiServer, type RunningTestApiServer } from "./client.ts";
import { everyByte, FakeKubelet } from "./fake-kubelet.ts";
import { isJsonObject, parseJson, type JsonObject } from "./json.ts";

let cluster: RunningTestApiServer;
let kubelet: FakeKubelet;
let deadPort: number;

/** An IPv4 address of this machine that the node proxy accepts (not loopback or link-local). */
const externalAddress = Object.values(networkInterfaces())
  .flat()
  .find((entry) => entry !== undefined && entry.family === "IPv4" && !entry.internal && !entry.address.startsWith("169.254."))?.address;

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A raw HTTP/1.1 connection, for upgrades and for checking bytes exactly. */
class RawConnection {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(readonly socket: Duplex) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake?.();
    });
    socket.on("end", () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on("error", () => undefined);
  }

  private async until(ready: () => boolean): Promise<void> {
    while (!ready()) {
      if (this.ended) throw new Error(`connection ended; had ${JSON.stringify(this.buffered.toString("latin1"))}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  async readHead(): Promise<string> {
    await this.until(() => this.buffered.includes("\r\n\r\n"));
    const end = this.buffered.indexOf("\r\n\r\n") + 4;
    const head = this.buffered.subarray(0, end).toString("latin1");
    this.buffered = this.buffered.subarray(end);
    return head;
  }

  async readBytes(count: number): Promise<Buffer> {
    await this.until(() => this.buffered.length >= count);
    const bytes = this.buffered.subarray(0, count);
    this.buffered = this.buffered.subarray(count);
    return Buffer.from(bytes);
  }

  async readToEnd(): Promise<Buffer> {
    await new Promise<void>((resolve) => {
      if (this.ended) resolve();
      else this.socket.once("close", () => resolve());
    });
    return this.buffered;
  }
}

/** Opens the admin port (plain HTTP, acting as a cluster admin) or the TLS port with a bearer token. */
function openRaw(via: "admin" | "tls"): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const adminPort = Number(new URL(cluster.adminUrl).port);
    const socket =
      via === "admin"
        ? netConnect({ host: "127.0.0.1", port: adminPort }, () => resolve(new RawConnection(socket)))
        : tlsConnect({ host: "127.0.0.1", port: cluster.port, ca: readFileSync(cluster.caCertPath), servername: "localhost" }, () => resolve(new RawConnection(socket)));
    socket.once("error", reject);
  });
}

function requestText(method: string, path: string, headers: Record<string, string>): string {
  const lines = [`${method} ${path} HTTP/1.1`, "Host: apiserver.test", ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)];
  return `${lines.join("\r\n")}\r\n\r\n`;
}

const spdyHeaders = { Connection: "Upgrade", Upgrade: "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io" };
const websocketHeaders = {
  Connection: "Upgrade",
  Upgrade: "websocket",
  "Sec-WebSocket-Version": "13",
  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
  "Sec-WebSocket-Protocol": "v5.channel.k8s.io",
};

function statusOf(text: string): JsonObject {
  const parsed = parseJson(text.slice(text.indexOf("\r\n\r\n") + 4));
  return isJsonObject(parsed) ? parsed : {};
}

async function adminGet(path: string): Promise<{ code: number; text: string; contentType: string | null }> {
  const response = await fetch(`${cluster.adminUrl}${path}`);
  return { code: response.status, text: await response.text(), contentType: response.headers.get("content-type") };
}

function lastKubeletRequest(): { method: string; url: string; headers: Record<string, string | string[] | undefined> } {
  const last = kubelet.requests[kubelet.requests.length - 1];
  if (last === undefined) throw new Error("the kubelet saw no request");
  return last;
}

async function setNodeStatus(name: string, status: JsonObject): Promise<void> {
  await cluster.admin.create("nodes", { metadata: { name } });
  await cluster.admin.patch("nodes", name, "", { status }, "merge", "status");
}

function pod(name: string, nodeName: string | undefined, containers: string[] = ["main"], initContainers: string[] = []): JsonObject {
  const container = (containerName: string): JsonObject => ({ name: containerName, image: "docker.io/library/busybox:1.36" });
  return {
    metadata: { name },
    spec: {
      ...(nodeName === undefined ? {} : { nodeName }),
      containers: containers.map(container),
      ...(initContainers.length > 0 ? { initContainers: initContainers.map(container) } : {}),
    },
  };
}

beforeAll(async () => {
  cluster = await startTestApiServer({
    nodeName: "node-a",
    tokens: [
      { token: "robot-token", user: "robot", groups: ["robots"] },
      { token: "boss-token", user: "boss", groups: ["system:masters"] },
    ],
  });
  kubelet = await FakeKubelet.start({ certPath: cluster.caCertPath, keyPath: join(cluster.dir, "ca.key") }, join(cluster.dir, "fake-kubelet"), [
    "127.0.0.1",
    "127.0.0.2",
    ...(externalAddress === undefined ? [] : [externalAddress]),
  ]);
  deadPort = await closedPort();
  const endpoint = (port: number): JsonObject => ({ kubeletEndpoint: { Port: port } });
  await setNodeStatus("node-a", {
    addresses: [
      { type: "Hostname", address: "127.0.0.2" },
      { type: "InternalIP", address: "127.0.0.1" },
    ],
    daemonEndpoints: endpoint(kubelet.listeningPort),
  });
  await setNodeStatus("dead", { addresses: [{ type: "InternalIP", address: "127.0.0.1" }], daemonEndpoints: endpoint(deadPort) });
  await setNodeStatus("no-address", { daemonEndpoints: endpoint(kubelet.listeningPort) });
  if (externalAddress !== undefined) {
    await setNodeStatus("public", { addresses: [{ type: "InternalIP", address: externalAddress }], daemonEndpoints: endpoint(kubelet.listeningPort) });
    await setNodeStatus("public-dead", { addresses: [{ type: "InternalIP", address: externalAddress }], daemonEndpoints: endpoint(deadPort) });
  }
  for (const name of ["web", "missing", "waiting", "broken", "refused"]) await cluster.admin.create("pods", pod(name, "node-a"));
  await cluster.admin.create("pods", pod("multi", "node-a", ["a", "b"], ["init"]));
  await cluster.admin.create("pods", pod("pending", undefined));
  await cluster.admin.create("pods", pod("on-dead", "dead"));
  await cluster.admin.create("pods", pod("on-no-address", "no-address"));
  await cluster.admin.create("pods", pod("on-ghost", "ghost"));
});

afterAll(async () => {
  await kubelet?.stop();
  await cluster?.stop();
});

describe("pods/log", () => {
  test("a followed log streams as the kubelet writes it; options map onto the kubelet's query", async () => {
    const response = await fetch(`${cluster.adminUrl}/api/v1/namespaces/default/pods/web/log?follow=true&tailLines=5&timestamps=true&sinceSeconds=10&limitBytes=100`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain");
    const reader = response.body?.getReader();
    if (reader === undefined) throw new Error("no body");
    const decoder = new TextDecoder();
    let received = "";
    const readUntil = async (text: string): Promise<void> => {
      while (!received.includes(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the log ended before ${JSON.stringify(text)}; got ${JSON.stringify(received)}`);
        received += decoder.decode(value, { stream: true });
      }
    };
    await readUntil("first line\n");
    const follower = await kubelet.nextFollower();
    follower.write("second line\n");
    await readUntil("second line\n");
    follower.end("last line\n");
    await readUntil("last line\n");
    expect((await reader.read()).done).toBe(true);
    expect(received).toBe("first line\nsecond line\nlast line\n");
    const seen = kubelet.requests.find((request) => request.url.startsWith("/containerLogs/default/web/main?follow"));
    expect(seen?.url).toBe("/containerLogs/default/web/main?follow=true&limitBytes=100&sinceSeconds=10&tailLines=5&timestamps=true");
    // The API server's own kubelet client certificate.
    expect(seen?.clientCommonName).toBe("kube-apiserver-kubelet-client");
    expect(seen?.clientOrganizations).toEqual(["system:masters"]);
  });

  test("the only container is the default; otherwise the container must be named and must exist", async () => {
    expect((await adminGet("/api/v1/namespaces/default/pods/web/log")).text).toBe("line 1\nline 2\n");
    const unnamed = await adminGet("/api/v1/namespaces/default/pods/multi/log");
    expect(unnamed.code).toBe(400);
    expect(parseJson(unnamed.text)).toMatchObject({ reason: "BadRequest", message: "a container name must be specified for pod multi, choose one of: [init a b]" });
    const unknown = await adminGet("/api/v1/namespaces/default/pods/web/log?container=nope");
    expect(parseJson(unknown.text)).toMatchObject({ code: 400, message: "container nope is not valid for pod web" });
    expect((await adminGet("/api/v1/namespaces/default/pods/multi/log?container=init&previous=true")).code).toBe(200);
    expect(lastKubeletRequest().url).toBe("/containerLogs/default/multi/init?previous=true");
  });

  test("an unscheduled pod has no logs yet (204); unknown pods are 404", async () => {
    const pending = await adminGet("/api/v1/namespaces/default/pods/pending/log");
    expect(pending.code).toBe(204);
    expect(pending.text).toBe("");
    const absent = await adminGet("/api/v1/namespaces/default/pods/nobody/log");
    expect(parseJson(absent.text)).toMatchObject({ code: 404, message: 'pods "nobody" not found' });
  });

  test("the kubelet's error answers become the real server's errors", async () => {
    const missing = await adminGet("/api/v1/namespaces/default/pods/missing/log");
    expect(missing.code).toBe(404);
    expect(parseJson(missing.text)).toMatchObject({ reason: "NotFound", message: "the server could not find the requested resource ( pods/log missing)" });
    const waiting = await adminGet("/api/v1/namespaces/default/pods/waiting/log");
    expect(parseJson(waiting.text)).toMatchObject({ code: 400, reason: "BadRequest", message: 'container "main" in pod "waiting" is waiting to start: ContainerCreating' });
    const broken = await adminGet("/api/v1/namespaces/default/pods/broken/log");
    expect(parseJson(broken.text)).toMatchObject({ code: 500, reason: "InternalError", message: "Internal error occurred: the journal is gone" });
  });

  test("invalid options are refused before any kubelet is asked", async () => {
    const before = kubelet.requests.length;
    const negative = await adminGet("/api/v1/namespaces/default/pods/web/log?tailLines=-1");
    expect(negative.code).toBe(422);
    expect(parseJson(negative.text)).toMatchObject({ message: 'PodLogOptions "web" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0' });
    const both = await adminGet("/api/v1/namespaces/default/pods/web/log?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z");
    expect(parseJson(both.text)).toMatchObject({ code: 422, message: 'PodLogOptions "web" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified' });
    expect(kubelet.requests.length).toBe(before);
  });

  test("an unreachable kubelet, a node without addresses, a missing node", async () => {
    const dead = await adminGet("/api/v1/namespaces/default/pods/on-dead/log");
    expect(dead.code).toBe(500);
    const deadStatus = parseJson(dead.text);
    expect(deadStatus).toMatchObject({
      message: `Get "https://127.0.0.1:${deadPort}/containerLogs/default/on-dead/main": dial tcp 127.0.0.1:${deadPort}: connect: connection refused`,
    });
    expect(isJsonObject(deadStatus) && "reason" in deadStatus).toBe(false);
    const noAddress = await adminGet("/api/v1/namespaces/default/pods/on-no-address/log");
    expect(parseJson(noAddress.text)).toMatchObject({ code: 500, message: "no preferred addresses found; known addresses: []" });
    const ghost = await adminGet("/api/v1/namespaces/default/pods/on-ghost/log");
    expect(parseJson(ghost.text)).toMatchObject({ code: 404, message: 'nodes "ghost" not found' });
  });
});

describe("kubelet address preference", () => {
  test("the first address of the preferred types wins; Hostname comes first by default", async () => {
    await adminGet("/api/v1/namespaces/default/pods/web/log");
    expect(kubelet.requests[kubelet.requests.length - 1]?.localAddress).toBe("127.0.0.2");
    await cluster.admin.setKubeletPreferredAddressTypes(["InternalIP", "Hostname"]);
    try {
      await adminGet("/api/v1/namespaces/default/pods/web/log");
      expect(kubelet.requests[kubelet.requests.length - 1]?.localAddress).toBe("127.0.0.1");
      await cluster.admin.setKubeletPreferredAddressTypes(["ExternalIP"]);
      const none = await adminGet("/api/v1/namespaces/default/pods/web/log");
      expect(parseJson(none.text)).toMatchObject({ code: 500, message: "no preferred addresses found; known addresses: [{Hostname 127.0.0.2} {InternalIP 127.0.0.1}]" });
    } finally {
      await cluster.admin.setKubeletPreferredAddressTypes(["Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP"]);
    }
  });
});

describe("exec, attach and portforward", () => {
  test("SPDY exec is relayed byte for byte both ways, options mapped, the client's Authorization dropped", async () => {
    const connection = await openRaw("tls");
    connection.socket.write(
      requestText("POST", "/api/v1/namespaces/default/pods/web/exec?command=sh&command=-c&command=echo%20hi&stdin=true&stdout=1&stderr=false&tty=0", {
        ...spdyHeaders,
        Authorization: "Bearer boss-token",
      }),
    );
    expect(await connection.readHead()).toBe("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n");
    expect((await connection.readBytes(everyByte.length)).equals(everyByte)).toBe(true);
    const sent = Buffer.concat([everyByte, randomBytes(200_000)]);
    connection.socket.write(sent);
    expect((await connection.readBytes(sent.length)).equals(sent)).toBe(true);
    const session = kubelet.upgrades[kubelet.upgrades.length - 1];
    expect(Buffer.concat(session?.received ?? []).equals(sent)).toBe(true);
    expect(session?.request.method).toBe("POST");
    expect(session?.request.url).toBe("/exec/default/web/main?command=sh&command=-c&command=echo+hi&input=1&output=1");
    expect(session?.request.headers["authorization"]).toBeUndefined();
    expect(session?.request.headers["upgrade"]).toBe("SPDY/3.1");
    expect(session?.request.headers["x-stream-protocol-version"]).toBe("v4.channel.k8s.io");
    expect(session?.request.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(session?.request.clientCommonName).toBe("kube-apiserver-kubelet-client");
    connection.socket.end();
    await connection.readToEnd();
  });

  test("a websocket attach (GET) is relayed; the kubelet's handshake reaches the client unchanged", async () => {
    const connection = await openRaw("admin");
    connection.socket.write(requestText("GET", "/api/v1/namespaces/default/pods/web/attach?stdout=true&stderr=true&tty=true&container=main", websocketHeaders));
    const head = await connection.readHead();
    expect(head).toBe(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n",
    );
    expect((await connection.readBytes(256)).equals(everyByte)).toBe(true);
    expect(kubelet.upgrades[kubelet.upgrades.length - 1]?.request.url).toBe("/attach/default/web/main?error=1&output=1&tty=1");
    connection.socket.write("ping");
    expect((await connection.readBytes(4)).toString()).toBe("ping");
    kubelet.upgrades[kubelet.upgrades.length - 1]?.socket.end();
    await connection.readToEnd();
  });

  test("port-forward sends the ports as one comma-separated port parameter", async () => {
    const connection = await openRaw("admin");
    connection.socket.write(requestText("POST", "/api/v1/namespaces/default/pods/web/portforward?ports=8080&ports=9090,9091", spdyHeaders));
    expect(await connection.readHead()).toStartWith("HTTP/1.1 101 ");
    expect(kubelet.upgrades[kubelet.upgrades.length - 1]?.request.url).toBe("/portForward/default/web?port=8080%2C9090%2C9091");
    connection.socket.end();
  });

  test("refusals: no upgrade, no host, no container, the kubelet's own refusal, an unreachable kubelet", async () => {
    const exchange = async (method: string, path: string, headers: Record<string, string> = spdyHeaders): Promise<string> => {
      const connection = await openRaw("admin");
      connection.socket.write(requestText(method, path, headers));
      return (await connection.readToEnd()).toString("latin1");
    };
    const plain = await fetch(`${cluster.adminUrl}/api/v1/namespaces/default/pods/web/exec?command=ls&stdout=1`, { method: "POST" });
    expect(await plain.json()).toMatchObject({ code: 400, message: "Upgrade request required" });
    expect(statusOf(await exchange("POST", "/api/v1/namespaces/default/pods/pending/exec?command=ls"))).toMatchObject({ code: 400, message: "pod pending does not have a host assigned" });
    expect(statusOf(await exchange("POST", "/api/v1/namespaces/default/pods/multi/exec?command=ls"))).toMatchObject({
      code: 400,
      message: "a container name must be specified for pod multi, choose one of: [init a b]",
    });
    const refused = await exchange("POST", "/api/v1/namespaces/default/pods/refused/exec?command=ls&stdout=1");
    expect(refused).toBe("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 24\r\n\r\nexec refused by the test");
    const dead = await exchange("POST", "/api/v1/namespaces/default/pods/on-dead/exec?command=ls");
    expect(dead).toStartWith("HTTP/1.1 500 ");
    expect(statusOf(dead)).toMatchObject({ code: 500, message: `error dialing backend: dial tcp 127.0.0.1:${deadPort}: connect: connection refused` });
    expect(statusOf(await exchange("PUT", "/api/v1/namespaces/default/pods/web/exec?command=ls"))).toMatchObject({ code: 405 });
  });

  test("exec over POST is authorized as create, over a websocket GET as get; logs as get", async () => {
    await cluster.admin.setDenyRules([
      { users: ["robot"], verbs: ["create"], resources: ["pods/exec"] },
      { users: ["robot"], verbs: ["get"], resources: ["pods/log"] },
    ]);
    try {
      const post = await openRaw("tls");
      post.socket.write(requestText("POST", "/api/v1/namespaces/default/pods/web/exec?command=ls&stdout=1", { ...spdyHeaders, Authorization: "Bearer robot-token" }));
      const refused = (await post.readToEnd()).toString("latin1");
      expect(statusOf(refused)).toMatchObject({
        code: 403,
        message: 'pods "web" is forbidden: User "robot" cannot create resource "pods/exec" in API group "" in the namespace "default"',
      });
      const get = await openRaw("tls");
      get.socket.write(requestText("GET", "/api/v1/namespaces/default/pods/web/exec?command=ls&stdout=1", { ...websocketHeaders, Authorization: "Bearer robot-token" }));
      expect(await get.readHead()).toStartWith("HTTP/1.1 101 ");
      get.socket.end();
      const logs = await fetch(`${cluster.url}/api/v1/namespaces/default/pods/web/log`, {
        headers: { Authorization: "Bearer robot-token" },
        tls: { ca: readFileSync(cluster.caCertPath, "utf8") },
      });
      expect(await logs.json()).toMatchObject({ code: 403, message: 'pods "web" is forbidden: User "robot" cannot get resource "pods/log" in API group "" in the namespace "default"' });
    } finally {
      await cluster.admin.setDenyRules([]);
    }
  });
});

describe("nodes/proxy", () => {
  test.skipIf(externalAddress === undefined)("path, query and body go to the kubelet; its answer comes back without hop-by-hop and CORS headers", async () => {
    const get = await fetch(`${cluster.url}/api/v1/nodes/public/proxy/metrics/resource?a=1&b=two%20words`, {
      headers: { Authorization: "Bearer boss-token" },
      tls: { ca: readFileSync(cluster.caCertPath, "utf8") },
    });
    expect(get.status).toBe(200);
    expect(get.headers.get("x-kubelet")).toBe("fake");
    expect(get.headers.get("access-control-allow-origin")).toBeNull();
    expect(await get.json()).toMatchObject({ method: "GET", url: "/metrics/resource?a=1&b=two%20words" });
    const seen = lastKubeletRequest();
    expect(seen.headers["authorization"]).toBeUndefined();
    expect(seen.headers["x-forwarded-uri"]).toBe("/api/v1/nodes/public/proxy/metrics/resource");
    const post = await fetch(`${cluster.adminUrl}/api/v1/nodes/public/proxy/run/default/web/main`, { method: "POST", body: "cmd=ls" });
    expect(await post.json()).toMatchObject({ method: "POST", url: "/run/default/web/main", body: "cmd=ls" });
    const redirect = await fetch(`${cluster.adminUrl}/api/v1/nodes/public/proxy/redirect`, { redirect: "manual" });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get("location")).toBe("/api/v1/nodes/public/proxy/landing?from=redirect");
    const bare = await fetch(`${cluster.adminUrl}/api/v1/nodes/public/proxy?x=1`, { redirect: "manual" });
    expect(bare.status).toBe(301);
    expect(bare.headers.get("location")).toBe("/api/v1/nodes/public/proxy/?x=1");
  });

  test.skipIf(externalAddress === undefined)("an upgrade through nodes/proxy is relayed to the path (the real handler drops the query there)", async () => {
    const connection = await openRaw("admin");
    connection.socket.write(requestText("GET", "/api/v1/nodes/public/proxy/exec/default/web/main?command=ls&output=1", websocketHeaders));
    expect(await connection.readHead()).toStartWith("HTTP/1.1 101 ");
    expect((await connection.readBytes(256)).equals(everyByte)).toBe(true);
    expect(kubelet.upgrades[kubelet.upgrades.length - 1]?.request.url).toBe("/exec/default/web/main");
    connection.socket.end();
  });

  test.skipIf(externalAddress === undefined)("an unreachable kubelet is 503 'error trying to reach service'", async () => {
    const dead = await adminGet("/api/v1/nodes/public-dead/proxy/healthz");
    expect(dead.code).toBe(503);
    expect(parseJson(dead.text)).toMatchObject({ reason: "ServiceUnavailable", message: `error trying to reach service: dial tcp ${externalAddress}:${deadPort}: connect: connection refused` });
  });

  test("loopback node addresses are refused (CVE-2022-3294); the verb follows the method", async () => {
    const loopback = await adminGet("/api/v1/nodes/node-a/proxy/healthz");
    expect(loopback.code).toBe(400);
    expect(parseJson(loopback.text)).toMatchObject({ reason: "BadRequest", message: "address not allowed" });
    await cluster.admin.setDenyRules([{ users: ["robot"], verbs: ["create"], resources: ["nodes/proxy"] }]);
    try {
      const request = (method: string): Promise<Response> =>
        fetch(`${cluster.url}/api/v1/nodes/node-a/proxy/healthz`, { method, headers: { Authorization: "Bearer robot-token" }, tls: { ca: readFileSync(cluster.caCertPath, "utf8") } });
      expect(await (await request("POST")).json()).toMatchObject({
        code: 403,
        message: 'nodes "node-a" is forbidden: User "robot" cannot create resource "nodes/proxy" in API group "" at the cluster scope',
      });
      expect((await request("GET")).status).toBe(400);
    } finally {
      await cluster.admin.setDenyRules([]);
    }
    expect(parseJson((await adminGet("/api/v1/nodes/a:b:c:d/proxy/x")).text)).toMatchObject({ code: 400, message: 'invalid node request "a:b:c:d"' });
  });
});

describe("kubelet serving certificates", () => {
  test("with --kubelet-certificate-authority the kubelet's certificate must chain to it, unless the logs request skips the check", async () => {
    const strangerDir = join(cluster.dir, "stranger");
    const stranger = createCertificateAuthority(strangerDir, "stranger-ca");
    const strict = await startTestApiServer({ nodeName: "node-a", kubeletCertificateAuthorityPath: stranger.certPath });
    try {
      await strict.admin.create("nodes", { metadata: { name: "node-a" } });
      await strict.admin.patch(
        "nodes",
        "node-a",
        "",
        { status: { addresses: [{ type: "InternalIP", address: "127.0.0.1" }], daemonEndpoints: { kubeletEndpoint: { Port: kubelet.listeningPort } } } },
        "merge",
        "status",
      );
      await strict.admin.create("pods", pod("web", "node-a"));
      const verified = await fetch(`${strict.adminUrl}/api/v1/namespaces/default/pods/web/log`);
      expect(await verified.json()).toMatchObject({
        code: 500,
        message: `Get "https://127.0.0.1:${kubelet.listeningPort}/containerLogs/default/web/main": tls: failed to verify certificate: x509: certificate signed by unknown authority`,
      });
      const skipped = await fetch(`${strict.adminUrl}/api/v1/namespaces/default/pods/web/log?insecureSkipTLSVerifyBackend=true`);
      expect(await skipped.text()).toBe("line 1\nline 2\n");
      expect(lastKubeletRequest().url).toBe("/containerLogs/default/web/main");
    } finally {
      await strict.stop();
    }
  });
});
