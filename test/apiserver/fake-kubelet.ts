// A stand-in kubelet for the proxy tests: HTTPS with a serving certificate from the test CA, reading
// the API server's client certificate (node:tls feeding node:http, which works under Bun), recording
// what arrives, and answering logs, upgrades and proxied paths in ways the tests can steer.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import { issueServerCertificate, type KeyPairFiles } from "./certs.ts";

export interface KubeletRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The client certificate's CN and O, as the kubelet's x509 authenticator would read them. */
  clientCommonName: string | undefined;
  clientOrganizations: string[];
  /** The address the connection arrived at, which tells which node address the API server chose. */
  localAddress: string | undefined;
  body: string;
}

export interface UpgradeSession {
  request: KubeletRequest;
  /** Everything the client sent after the upgrade, in order. */
  received: Buffer[];
  socket: Duplex;
}

/** Bytes 0..255: binary that any text re-encoding along the way would damage. */
export const everyByte = Buffer.from(Array.from({ length: 256 }, (_, index) => index));

function asList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function describe(request: IncomingMessage, body: string): KubeletRequest {
  const socket = request.socket as TLSSocket;
  const subject = typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate()?.subject : undefined;
  return {
    method: request.method ?? "",
    url: request.url ?? "",
    headers: request.headers,
    clientCommonName: asList(subject?.CN)[0],
    clientOrganizations: asList(subject?.O),
    localAddress: socket.localAddress?.replace(/^::ffff:/, ""),
    body,
  };
}

export class FakeKubelet {
  readonly requests: KubeletRequest[] = [];
  readonly upgrades: UpgradeSession[] = [];
  private readonly followers: ServerResponse[] = [];
  private readonly followerWaiters: ((response: ServerResponse) => void)[] = [];
  private readonly sockets = new Set<Socket>();
  private port = 0;

  private constructor(private readonly tls: ReturnType<typeof createTlsServer>) {}

  /** Starts on all IPv4 interfaces with a certificate for `hosts`, signed by `ca`. */
  static async start(ca: KeyPairFiles, dir: string, hosts: readonly string[]): Promise<FakeKubelet> {
    const serving = issueServerCertificate(ca, dir, hosts);
    const http = createHttpServer();
    const tls = createTlsServer(
      { key: readFileSync(serving.keyPath), cert: readFileSync(serving.certPath), ca: readFileSync(ca.certPath), requestCert: true, rejectUnauthorized: false },
      (socket) => http.emit("connection", socket),
    );
    const kubelet = new FakeKubelet(tls);
    http.on("request", (request: IncomingMessage, response: ServerResponse) => kubelet.serve(request, response));
    http.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => kubelet.upgrade(request, socket, head));
    tls.on("secureConnection", (socket: Socket) => {
      kubelet.sockets.add(socket);
      socket.on("close", () => kubelet.sockets.delete(socket));
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => tls.listen(0, "0.0.0.0", resolve));
    kubelet.port = (tls.address() as AddressInfo).port;
    return kubelet;
  }

  get listeningPort(): number {
    return this.port;
  }

  /** The next `follow=true` log response, left open for the test to write lines to and end. */
  nextFollower(): Promise<ServerResponse> {
    const ready = this.followers.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve) => this.followerWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.tls.close(() => resolve()));
  }

  private serve(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const record = describe(request, Buffer.concat(chunks).toString("utf8"));
      this.requests.push(record);
      const url = new URL(record.url, "https://kubelet.invalid");
      const logs = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
      if (logs !== null) {
        this.serveLogs(logs[2] ?? "", url, response);
        return;
      }
      if (url.pathname === "/redirect") {
        response.writeHead(302, { Location: "/landing?from=redirect" });
        response.end();
        return;
      }
      const body = JSON.stringify({ method: record.method, url: record.url, body: record.body });
      response.writeHead(200, {
        "Content-Type": "application/json",
        "X-Kubelet": "fake",
        "Access-Control-Allow-Origin": "*",
        "Content-Length": Buffer.byteLength(body),
      });
      response.end(body);
    });
  }

  private serveLogs(pod: string, url: URL, response: ServerResponse): void {
    if (pod === "missing") {
      response.writeHead(404, { "Content-Type": "text/plain" });
      response.end(`pod "missing" not found`);
      return;
    }
    if (pod === "waiting") {
      response.writeHead(400, { "Content-Type": "text/plain" });
      response.end(`container "main" in pod "waiting" is waiting to start: ContainerCreating`);
      return;
    }
    if (pod === "broken") {
      response.writeHead(500, { "Content-Type": "text/plain" });
      response.end("the journal is gone");
      return;
    }
    response.writeHead(200, { "Content-Type": "text/plain" });
    if (url.searchParams.get("follow") !== "true") {
      response.end("line 1\nline 2\n");
      return;
    }
    response.write("first line\n");
    const waiter = this.followerWaiters.shift();
    if (waiter === undefined) this.followers.push(response);
    else waiter(response);
  }

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => undefined);
    const record = describe(request, "");
    this.requests.push(record);
    if (record.url.includes("/refused/")) {
      socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 24\r\n\r\nexec refused by the test");
      return;
    }
    const session: UpgradeSession = { request: record, received: head.length > 0 ? [Buffer.from(head)] : [], socket };
    this.upgrades.push(session);
    const websocketKey = request.headers["sec-websocket-key"];
    const accept = typeof websocketKey === "string" ? createHash("sha1").update(`${websocketKey}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64") : undefined;
    const headLines =
      accept === undefined
        ? ["HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", "Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: v4.channel.k8s.io"]
        : ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", `Sec-WebSocket-Accept: ${accept}`, "Sec-WebSocket-Protocol: v5.channel.k8s.io"];
    socket.write(`${headLines.join("\r\n")}\r\n\r\n`);
    // Speaks first, in binary, then echoes whatever arrives.
    socket.write(everyByte);
    socket.on("data", (chunk: Buffer) => {
      session.received.push(Buffer.from(chunk));
      socket.write(chunk);
    });
    socket.on("end", () => socket.end());
  }
}
