/**
 * A tiny HTTPS API server for driving the machine's real kubectl against the streaming protocols: it
 * answers the pod GET (and minimal discovery) that kubectl does first, and hands the exec / attach /
 * portforward upgrades to the test's handlers, byte for byte, as an API server proxying to a kubelet
 * would. Served like the kubelet API: node:tls feeding a node:http server.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";

export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer, url: URL) => void | Promise<void>;

export interface FakeApiServer {
  url: string;
  dir: string;
  kubeconfig: string;
  /** What the last upgrade requests looked like (method, url, headers), for assertions. */
  upgrades: Array<{ method: string; url: string; headers: IncomingMessage["headers"] }>;
  close(): Promise<void>;
}

export const POD_NAME = "web";
export const KUBECTL = "/usr/bin/kubectl";

function podJson(name: string): object {
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata: { name, namespace: "default", uid: "1b4e28ba-2fa1-11d2-883f-0016d3cca427", resourceVersion: "1", creationTimestamp: "2025-01-01T00:00:00Z" },
    spec: { containers: [{ name: "main", image: "busybox" }], nodeName: "vks-test" },
    status: { phase: "Running", containerStatuses: [{ name: "main", ready: true, restartCount: 0, image: "busybox", imageID: "", state: { running: { startedAt: "2025-01-01T00:00:00Z" } } }] },
  };
}

const DISCOVERY: Record<string, object> = {
  "/version": { major: "1", minor: "32", gitVersion: "v1.32.0", platform: "linux/amd64" },
  "/api": { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: "127.0.0.1" }] },
  "/apis": { kind: "APIGroupList", apiVersion: "v1", groups: [] },
  "/api/v1": {
    kind: "APIResourceList",
    groupVersion: "v1",
    resources: [
      { name: "pods", singularName: "pod", namespaced: true, kind: "Pod", verbs: ["get", "list"], shortNames: ["po"] },
      { name: "pods/exec", singularName: "", namespaced: true, kind: "PodExecOptions", verbs: ["create", "get"] },
      { name: "pods/attach", singularName: "", namespaced: true, kind: "PodAttachOptions", verbs: ["create", "get"] },
      { name: "pods/portforward", singularName: "", namespaced: true, kind: "PodPortForwardOptions", verbs: ["create", "get"] },
    ],
  },
};

function answer(response: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  response.end(text);
}

export async function startFakeApiServer(handlers: { exec?: UpgradeHandler; attach?: UpgradeHandler; portforward?: UpgradeHandler }): Promise<FakeApiServer> {
  const dir = mkdtempSync(join(tmpdir(), "vks-streams-"));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ], { stdio: "ignore" });
  const upgrades: FakeApiServer["upgrades"] = [];
  const http = createHttpServer((request, response) => {
    const url = new URL(request.url ?? "/", "https://localhost");
    const discovery = DISCOVERY[url.pathname];
    if (discovery !== undefined) return answer(response, 200, discovery);
    const match = /^\/api\/v1\/namespaces\/default\/pods\/([^/]+)$/.exec(url.pathname);
    if (match?.[1] !== undefined && request.method === "GET") return answer(response, 200, podJson(match[1]));
    answer(response, 404, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `the server could not find ${url.pathname}`, reason: "NotFound", code: 404 });
  });
  http.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? "/", "https://localhost");
    upgrades.push({ method: request.method ?? "", url: request.url ?? "", headers: request.headers });
    const match = /^\/api\/v1\/namespaces\/default\/pods\/[^/]+\/(exec|attach|portforward)$/.exec(url.pathname);
    const handler = match?.[1] === "exec" ? handlers.exec : match?.[1] === "attach" ? handlers.attach : match?.[1] === "portforward" ? handlers.portforward : undefined;
    socket.on("error", () => undefined);
    if (handler === undefined) {
      socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    Promise.resolve(handler(request, socket, head, url)).catch(() => undefined);
  });
  const tls: TlsServer = createTlsServer({ key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) }, (tlsSocket) => {
    http.emit("connection", tlsSocket);
  });
  await new Promise<void>((resolve) => tls.listen(0, "127.0.0.1", resolve));
  const port = (tls.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}`;
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: fake",
      "  cluster:",
      `    server: ${url}`,
      "    insecure-skip-tls-verify: true",
      "users:",
      "- name: tester",
      "  user:",
      "    token: test-token",
      "contexts:",
      "- name: fake",
      "  context: {cluster: fake, user: tester, namespace: default}",
      "current-context: fake",
      "",
    ].join("\n"),
  );
  return {
    url,
    dir,
    kubeconfig,
    upgrades,
    async close(): Promise<void> {
      await new Promise<void>((resolve) => tls.close(() => resolve()));
      http.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface KubectlRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The environment kubectl runs in: its own HOME (discovery cache) and the given protocol switches. */
export function kubectlEnv(server: FakeApiServer, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: server.dir, KUBECONFIG: server.kubeconfig, ...extra };
}

export async function kubectl(server: FakeApiServer, args: string[], options: { stdin?: Uint8Array | string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<KubectlRun> {
  const child = Bun.spawn([KUBECTL, ...args], {
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
    env: kubectlEnv(server, options.env),
  });
  const timer = setTimeout(() => child.kill(), options.timeoutMs ?? 30_000);
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  clearTimeout(timer);
  return { exitCode, stdout, stderr };
}
