/**
 * The kubelet API (HTTPS, port 10250 by default): what the API server proxies `kubectl logs`, `exec`,
 * `attach`, `port-forward` and `get --raw /api/v1/nodes/N/proxy/...` to, and what metrics-server scrapes.
 *
 * A node:tls server feeds a node:http server: under Bun only node:tls sockets carry the peer
 * certificate (a node:https server's do not), and the http server's `upgrade` event hands streaming
 * requests over with their raw socket, which SPDY and WebSocket need.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from "node:tls";
import { ExitCode, VksError, errorMessage } from "../errors.ts";
import { AccessDenied, nodeAccessFor, type KubeletAuth } from "./auth.ts";
import { parseContainerLogOptions, streamContainerInstanceLog } from "./container-logs.ts";
import { Query, RequestError } from "./query.ts";
import type { KubeletReadings, KubeletRuntime } from "./runtime.ts";
import { findTarget, handleStreamingUpgrade, runCommand, type StreamingCounters, type StreamingRoute } from "./streaming.ts";

/** What the TLS server needs of the serving certificate (internal/kubelet/certs/serving.ts). */
export interface ServingCertificateSource {
  /** Undefined until a requested certificate is issued. */
  current(): { certPem: string; keyPem: string } | undefined;
  onRotated(listener: (pair: { certPem: string; keyPem: string }) => void): void;
}

export interface KubeletApiOptions {
  address: string;
  port: number;
  nodeName: string;
  certificate: ServingCertificateSource;
  /** PEM bundle client certificates are verified against (--client-ca-file, default the cluster CA). */
  clientCaPem: string | undefined;
  auth: KubeletAuth;
  runtime: KubeletRuntime;
  readings: KubeletReadings;
  /** Counts requests for /metrics. */
  onRequest?: (pathClass: string, status: number) => void;
  counters?: StreamingCounters;
  onError?: (message: string) => void;
}


/**
 * The path's endpoint and its parts. exec/attach/portForward also have the kubelet's form with the pod
 * UID (`/exec/{ns}/{pod}/{uid}/{container}`); the UID must then match the pod vks runs.
 */
function routeOf(path: string): StreamingRoute {
  const parts = path.split("/").filter((part) => part !== "").map(decodeURIComponent);
  const [head = "", ...rest] = parts;
  switch (head) {
    case "healthz":
      return { kind: "healthz" };
    case "pods":
      return rest.length === 0 ? { kind: "pods" } : { kind: "notFound" };
    case "containerLogs":
      return rest.length === 3 ? { kind: "containerLogs", namespace: rest[0], pod: rest[1], container: rest[2] } : { kind: "notFound" };
    case "exec":
    case "attach":
    case "run":
      if (rest.length === 3) return { kind: head, namespace: rest[0], pod: rest[1], container: rest[2] };
      if (rest.length === 4) return { kind: head, namespace: rest[0], pod: rest[1], uid: rest[2], container: rest[3] };
      return { kind: "notFound" };
    case "portForward":
      if (rest.length === 2) return { kind: head, namespace: rest[0], pod: rest[1] };
      if (rest.length === 3) return { kind: head, namespace: rest[0], pod: rest[1], uid: rest[2] };
      return { kind: "notFound" };
    case "stats":
      return rest.length === 1 && rest[0] === "summary" ? { kind: "statsSummary" } : { kind: "notFound" };
    case "metrics":
      if (rest.length === 0) return { kind: "metrics" };
      return rest.length === 1 && rest[0] === "resource" ? { kind: "resourceMetrics" } : { kind: "notFound" };
    default:
      return { kind: "notFound" };
  }
}

const STREAMING_KINDS = new Set(["exec", "attach", "portForward"]);

function isUpgrade(request: IncomingMessage): boolean {
  return (request.headers.connection ?? "").toLowerCase().split(",").some((token) => token.trim() === "upgrade");
}

export class KubeletApiServer {
  private readonly http: HttpServer;
  private tls: TlsServer | undefined;
  private readonly sockets = new Set<Socket>();
  private listening = false;
  private boundPort = 0;

  constructor(private readonly options: KubeletApiOptions) {
    this.http = createHttpServer((request, response) => {
      this.handle(request, response).catch((err: unknown) => this.fail(response, err));
    });
    this.http.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.handleUpgrade(request, socket, head).catch((err: unknown) => {
        options.onError?.(`kubelet API: ${request.url ?? ""}: ${errorMessage(err)}`);
        socket.destroy();
      });
    });
  }

  /**
   * Starts listening with the serving certificate there is now (a requested one must have been issued:
   * see ServingCertificate.ready); resolves with the port actually bound (the one the node advertises).
   */
  async start(): Promise<number> {
    const certificate = this.options.certificate.current();
    if (certificate === undefined) throw new VksError("kubelet API: no serving certificate yet", { exitCode: ExitCode.software });
    const clientCa = this.options.clientCaPem === undefined ? {} : { ca: this.options.clientCaPem };
    const tls = createTlsServer({
      key: certificate.keyPem,
      cert: certificate.certPem,
      ...clientCa,
      requestCert: true,
      // A certificate that fails verification leaves the request to token authentication (then 401).
      rejectUnauthorized: false,
    });
    this.tls = tls;
    tls.on("secureConnection", (socket: TLSSocket) => {
      // Streams are chatty (SPDY opens each stream with a request and a reply): Nagle plus delayed ACKs
      // would hold each small frame back for tens of milliseconds.
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      this.http.emit("connection", socket);
    });
    // A client that fails the handshake (wrong CA, plain HTTP) is its own problem, not vks'.
    tls.on("tlsClientError", () => {});
    // New connections get the new certificate; open ones keep theirs, as with the kubelet.
    this.options.certificate.onRotated((next) => tls.setSecureContext({ key: next.keyPem, cert: next.certPem, ...clientCa }));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const inUse = err.code === "EADDRINUSE";
        reject(
          new VksError(`kubelet API: cannot listen on ${this.options.address}:${this.options.port}: ${err.message}`, {
            exitCode: inUse ? ExitCode.unavailable : ExitCode.permission,
            hint: inUse ? "another kubelet (or vks) holds the port; stop it or pass --kubelet-port" : "pass --kubelet-address/--kubelet-port that this user may bind",
          }),
        );
      };
      tls.once("error", onError);
      tls.listen(this.options.port, this.options.address, () => {
        tls.off("error", onError);
        resolve();
      });
    });
    this.listening = true;
    this.boundPort = (tls.address() as AddressInfo).port;
    return this.boundPort;
  }

  get port(): number {
    return this.boundPort;
  }

  async stop(): Promise<void> {
    const tls = this.tls;
    if (!this.listening || tls === undefined) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => tls.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async admit(request: IncomingMessage, path: string): Promise<void> {
    const user = await this.options.auth.authenticate(request);
    await this.options.auth.authorize(user, nodeAccessFor(request.method ?? "GET", path, this.options.nodeName));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "https://kubelet");
    const route = routeOf(url.pathname);
    response.on("finish", () => this.options.onRequest?.(route.kind, response.statusCode));
    await this.admit(request, url.pathname);
    const method = request.method ?? "GET";
    const reading = method === "GET" || method === "HEAD";
    switch (route.kind) {
      case "healthz":
        new Query(url.searchParams, ["verbose"]);
        return this.send(response, 200, "text/plain; charset=utf-8", "ok");
      case "pods": {
        if (!reading) throw new RequestError(405, `${method} is not allowed on /pods`);
        new Query(url.searchParams, []);
        const items = await this.options.runtime.listPods();
        return this.send(response, 200, "application/json", JSON.stringify({ kind: "PodList", apiVersion: "v1", metadata: {}, items }));
      }
      case "containerLogs":
        if (!reading) throw new RequestError(405, `${method} is not allowed on /containerLogs`);
        return this.containerLogs(response, route, url.searchParams);
      case "run": {
        if (method !== "POST" && method !== "GET") throw new RequestError(405, `${method} is not allowed on /run`);
        const { output, exitCode } = await runCommand(this.options.runtime, route, url.searchParams);
        return this.send(response, exitCode === 0 ? 200 : 500, "text/plain; charset=utf-8", output);
      }
      case "exec":
      case "attach":
      case "portForward":
        throw new RequestError(400, `${route.kind} needs a streaming upgrade (SPDY/3.1 or WebSocket); use kubectl ${route.kind === "portForward" ? "port-forward" : route.kind}`);
      case "statsSummary": {
        const query = new Query(url.searchParams, ["only_cpu_and_memory"]);
        const summary = await this.options.readings.statsSummary(query.bool("only_cpu_and_memory"));
        return this.send(response, 200, "application/json", JSON.stringify(summary));
      }
      case "resourceMetrics":
        new Query(url.searchParams, []);
        return this.send(response, 200, "text/plain; version=0.0.4; charset=utf-8", await this.options.readings.resourceMetrics());
      case "metrics":
        new Query(url.searchParams, []);
        return this.send(response, 200, "text/plain; version=0.0.4; charset=utf-8", await this.options.readings.metrics());
      default:
        return this.send(response, 404, "text/plain; charset=utf-8", "404 page not found\n");
    }
  }

  private async containerLogs(response: ServerResponse, route: StreamingRoute, params: URLSearchParams): Promise<void> {
    const options = parseContainerLogOptions(params);
    const name = route.pod ?? "";
    const pod = await findTarget(this.options.runtime, route);
    const source = this.options.runtime.logSource(route.namespace ?? "", name);
    if (source === undefined) throw new RequestError(404, `pod "${name}" does not exist`);
    const container = route.container ?? "";

    const abort = new AbortController();
    const onClose = (): void => abort.abort();
    response.on("close", onClose);
    let started = false;
    const startBody = (): void => {
      if (started) return;
      started = true;
      response.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff" });
      response.flushHeaders();
    };
    // With follow the headers go at once, so a client sees the stream open before the first line.
    if (options.follow) startBody();
    try {
      await streamContainerInstanceLog(
        { pod, ...source },
        container,
        options,
        this.options.runtime.scope,
        (chunk) => {
          startBody();
          // A slow client must not make vks buffer the whole log: the reader waits until the socket drains.
          if (response.write(chunk) || response.destroyed) return;
          return new Promise<void>((resolve) => {
            const done = (): void => {
              response.off("drain", done);
              response.off("close", done);
              resolve();
            };
            response.on("drain", done);
            response.on("close", done);
          });
        },
        abort.signal,
      );
      startBody();
      response.end();
    } catch (err) {
      if (!started) throw err;
      response.end();
    } finally {
      response.off("close", onClose);
    }
  }

  private async handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(request.url ?? "/", "https://kubelet");
    const route = routeOf(url.pathname);
    try {
      await this.admit(request, url.pathname);
      if (!STREAMING_KINDS.has(route.kind) || !isUpgrade(request)) throw new RequestError(404, "404 page not found");
      await handleStreamingUpgrade(this.options.runtime, route, url.searchParams, request, socket, head, this.options.counters);
      this.options.onRequest?.(route.kind, 101);
    } catch (err) {
      const { status, message } = describeFailure(err);
      this.options.onRequest?.(route.kind, status);
      if (status === 500) this.options.onError?.(`kubelet API: ${url.pathname}: ${message}`);
      if (!socket.destroyed && socket.writable) {
        const body = `${message}\n`;
        socket.end(`HTTP/1.1 ${status} ${statusText(status)}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      }
    }
  }

  private send(response: ServerResponse, status: number, contentType: string, body: string): void {
    response.writeHead(status, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(body), "X-Content-Type-Options": "nosniff" });
    response.end(body);
  }

  private fail(response: ServerResponse, err: unknown): void {
    const { status, message } = describeFailure(err);
    if (status === 500) this.options.onError?.(`kubelet API: ${message}`);
    if (response.headersSent) {
      response.destroy();
      return;
    }
    this.send(response, status, "text/plain; charset=utf-8", `${message}\n`);
  }
}

/** Maps a failure to the status and plain-text body the kubelet would send. */
export function describeFailure(err: unknown): { status: number; message: string } {
  if (err instanceof AccessDenied) return { status: err.status, message: err.message };
  if (err instanceof RequestError) return { status: err.status, message: err.message };
  if (err instanceof VksError && err.exitCode === ExitCode.notFound) return { status: 404, message: err.message };
  if (err instanceof VksError && err.exitCode === ExitCode.invalidInput) return { status: 400, message: err.message };
  return { status: 500, message: errorMessage(err) };
}

function statusText(status: number): string {
  const texts: Record<number, string> = { 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error" };
  return texts[status] ?? "Error";
}
