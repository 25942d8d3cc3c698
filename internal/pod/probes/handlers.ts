/**
 * One run of a probe or hook handler, with the kubelet's outcomes and messages: httpGet (200-399 passes;
 * redirects followed on the same host, up to 10; a redirect elsewhere ends the chain and passes with a
 * warning), tcpSocket (a connection is enough), grpc (grpc.health.v1.Health/Check over HTTP/2, SERVING
 * passes) and exec (exit status 0 passes; run by the caller in the container's context).
 */
import { connect as connectHttp2, constants as http2Constants } from "node:http2";
import type { ProbeHandler } from "./spec.ts";

export type ProbeOutcome = "success" | "warning" | "failure";

export interface ProbeResult {
  outcome: ProbeOutcome;
  /** What the kubelet puts in the Unhealthy/ProbeWarning event after "… probe failed: ". */
  output: string;
}

/** Runs an exec handler's command in the container; exit code 0 passes. Output is stdout and stderr. */
export type ExecRunner = (command: string[], timeoutMs: number) => Promise<{ exitCode: number; output: string; timedOut: boolean }>;

export interface HandlerContext {
  /** The pod's address (vks pods share the host network: the host's). */
  podIP: string;
  timeoutMs: number;
  exec: ExecRunner;
  /** The kubelet sends "kube-probe/<major.minor>"; vks names itself. */
  userAgent?: string;
}

/** The kubelet keeps at most this much of a probe's output (maxProbeRespBodyLength / exec's limit). */
export const MAX_OUTPUT_BYTES = 10 * 1024;
const MAX_REDIRECTS = 10;
const DEFAULT_USER_AGENT = "kube-probe/vks";

export async function runHandler(handler: ProbeHandler, context: HandlerContext): Promise<ProbeResult> {
  switch (handler.type) {
    case "exec":
      return execProbe(handler.command, context);
    case "httpGet":
      return httpProbe(handler, context);
    case "tcpSocket":
      return tcpProbe(handler.host ?? context.podIP, handler.port, context.timeoutMs);
    case "grpc":
      return grpcProbe(context.podIP, handler.port, handler.service, context.timeoutMs);
    case "sleep":
      await Bun.sleep(handler.seconds * 1000);
      return { outcome: "success", output: "" };
  }
}

async function execProbe(command: string[], context: HandlerContext): Promise<ProbeResult> {
  const run = await context.exec(command, context.timeoutMs);
  if (run.timedOut) return { outcome: "failure", output: `command ${JSON.stringify(command.join(" "))} timed out` };
  return { outcome: run.exitCode === 0 ? "success" : "failure", output: truncate(run.output) };
}

function truncate(text: string): string {
  return text.length > MAX_OUTPUT_BYTES ? text.slice(0, MAX_OUTPUT_BYTES) : text;
}

/** An IPv6 literal goes in brackets in a URL and a host:port. */
function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

async function httpProbe(handler: Extract<ProbeHandler, { type: "httpGet" }>, context: HandlerContext): Promise<ProbeResult> {
  const host = handler.host ?? context.podIP;
  let url = new URL(`${handler.scheme.toLowerCase()}://${hostPort(host, handler.port)}${handler.path}`);
  const userAgent = context.userAgent ?? DEFAULT_USER_AGENT;
  const deadline = performance.now() + context.timeoutMs;
  const describe = (target: URL) => `Get ${JSON.stringify(target.href)}`;
  for (let redirects = 0; ; redirects++) {
    const response = await httpGet(url, requestText(url, handler.headers, userAgent), deadline - performance.now());
    if ("error" in response) return { outcome: "failure", output: `${describe(url)}: ${response.error}` };
    const { status, location, body } = response;
    if (status >= 300 && status < 400 && location !== undefined) {
      const next = new URL(location, url);
      if (redirects + 1 > MAX_REDIRECTS) return { outcome: "failure", output: `${describe(next)}: stopped after ${MAX_REDIRECTS} redirects` };
      // The kubelet follows redirects only to the same host; elsewhere it stops and uses this response.
      if (next.hostname !== url.hostname || (next.protocol !== "http:" && next.protocol !== "https:")) {
        return { outcome: "warning", output: `Probe terminated redirects, Response body: ${body}` };
      }
      url = next;
      continue;
    }
    if (status >= 200 && status < 400) return { outcome: "success", output: body };
    return { outcome: "failure", output: `HTTP probe failed with statuscode: ${status}` };
  }
}

type HttpResponse = { status: number; location?: string; body: string } | { error: string };

/**
 * One GET on a connection of its own (the kubelet's prober disables keep-alive), HTTP/1.1 over Bun's
 * native sockets: a probe a second per pod for a hundred pods costs a quarter of what fetch() does. Reads
 * the status line, Location and at most MAX_OUTPUT_BYTES of body.
 */
/** The request's bytes, kept per URL and headers: the same probe sends the same request every period. */
const requests = new Map<string, string>();
const MAX_CACHED_REQUESTS = 4096;

function requestText(url: URL, extra: { name: string; value: string }[], userAgent: string): string {
  const key = `${url.href}\n${userAgent}\n${extra.map((header) => `${header.name}:${header.value}`).join("\n")}`;
  const cached = requests.get(key);
  if (cached !== undefined) return cached;
  const headers = new Map<string, [string, string]>([
    ["host", ["Host", url.host]],
    ["user-agent", ["User-Agent", userAgent]],
    ["accept", ["Accept", "*/*"]],
  ]);
  for (const header of extra) headers.set(header.name.toLowerCase(), [header.name, header.value]);
  headers.set("connection", ["Connection", "close"]);
  const request = `GET ${url.pathname}${url.search} HTTP/1.1\r\n${[...headers.values()].map(([name, value]) => `${name}: ${value}\r\n`).join("")}\r\n`;
  if (requests.size >= MAX_CACHED_REQUESTS) requests.clear();
  requests.set(key, request);
  return request;
}

function httpGet(url: URL, request: string, timeoutMs: number): Promise<HttpResponse> {
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    let socket: { end(): void } | undefined;
    const finish = (result: HttpResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.end();
      resolve(result);
    };
    const complete = () => {
      const response = parseResponse(Buffer.concat(chunks));
      finish(response ?? { error: "malformed HTTP response" });
    };
    const timer = setTimeout(() => finish({ error: "context deadline exceeded (Client.Timeout exceeded while awaiting headers)" }), Math.max(0, timeoutMs));
    Bun.connect({
      hostname,
      port,
      ...(url.protocol === "https:" ? { tls: { rejectUnauthorized: false, serverName: hostname } } : {}),
      socket: {
        open(opened) {
          socket = opened;
          opened.write(request);
        },
        data(_socket, data) {
          chunks.push(Buffer.from(data));
          size += data.length;
          // Enough for the headers and the body the kubelet keeps: no need to read a large body to its end.
          if (size > MAX_OUTPUT_BYTES + 16 * 1024) complete();
        },
        close() {
          complete();
        },
        error(_socket, err) {
          finish({ error: errorText(err) });
        },
        connectError(_socket, err) {
          finish({ error: connectErrorText(err, hostname, port) });
        },
      },
    }).catch((err: unknown) => finish({ error: connectErrorText(err, hostname, port) }));
  });
}

function connectErrorText(err: unknown, host: string, port: number): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  const target = hostPort(host, port);
  if (code === "ECONNREFUSED") return `dial tcp ${target}: connect: connection refused`;
  return `dial tcp ${target}: ${errorText(err)}`;
}

/** Status, Location and the (de-chunked) body of an HTTP/1.x response; undefined when it is none. */
export function parseResponse(raw: Buffer): { status: number; location?: string; body: string } | undefined {
  const end = raw.indexOf("\r\n\r\n");
  const head = raw.subarray(0, end === -1 ? raw.length : end).toString("latin1");
  const [statusLine, ...lines] = head.split("\r\n");
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "");
  if (match === null) return undefined;
  let location: string | undefined;
  let chunked = false;
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon === -1) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "location") location = value;
    if (name === "transfer-encoding" && value.toLowerCase().includes("chunked")) chunked = true;
  }
  let body = end === -1 ? Buffer.alloc(0) : raw.subarray(end + 4);
  if (chunked) body = dechunk(body);
  return { status: Number(match[1]), ...(location === undefined ? {} : { location }), body: body.subarray(0, MAX_OUTPUT_BYTES).toString("utf8") };
}

function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset < data.length) {
    const lineEnd = data.indexOf("\r\n", offset);
    if (lineEnd === -1) break;
    const length = Number.parseInt(data.subarray(offset, lineEnd).toString("latin1"), 16);
    if (!Number.isFinite(length) || length <= 0) break;
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + length));
    offset = lineEnd + 2 + length + 2;
  }
  return Buffer.concat(parts);
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: ProbeResult, socket?: { end(): void }) => {
      socket?.end();
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => finish({ outcome: "failure", output: `dial tcp ${hostPort(host, port)}: i/o timeout` }), timeoutMs);
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open: (socket) => finish({ outcome: "success", output: "" }, socket),
        data: () => undefined,
        error: (_socket, err) => finish({ outcome: "failure", output: connectErrorText(err, host, port) }),
        connectError: (_socket, err) => finish({ outcome: "failure", output: connectErrorText(err, host, port) }),
      },
    }).catch((err: unknown) => finish({ outcome: "failure", output: connectErrorText(err, host, port) }));
  });
}

/** grpc.health.v1.HealthCheckResponse.ServingStatus names, as the kubelet quotes them. */
const SERVING_STATUS = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/** A protobuf HealthCheckRequest { string service = 1; } in a gRPC length-prefixed message. */
export function healthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, "utf8");
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]);
  const frame = Buffer.alloc(5);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  return Buffer.concat([frame, message]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** The `status` (field 1, varint) of a HealthCheckResponse message body; 0 (UNKNOWN) when absent. */
export function servingStatus(message: Buffer): number {
  let offset = 0;
  while (offset < message.length) {
    const key = message[offset++] ?? 0;
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) {
      let value = 0;
      let shift = 0;
      for (;;) {
        const byte = message[offset++] ?? 0;
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if ((byte & 0x80) === 0 || offset >= message.length) break;
      }
      if (field === 1) return value;
    } else if (wire === 2) {
      let length = 0;
      let shift = 0;
      for (;;) {
        const byte = message[offset++] ?? 0;
        length += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if ((byte & 0x80) === 0 || offset >= message.length) break;
      }
      offset += length;
    } else {
      return 0;
    }
  }
  return 0;
}

function grpcProbe(host: string, port: number, service: string, timeoutMs: number): Promise<ProbeResult> {
  const target = hostPort(host, port);
  return new Promise((resolve) => {
    let settled = false;
    const session = connectHttp2(`http://${target}`);
    const finish = (result: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(result);
    };
    const timer = setTimeout(
      () => finish({ outcome: "failure", output: `timeout: health rpc did not complete within ${timeoutMs / 1000}s` }),
      timeoutMs,
    );
    session.once("error", (err) => finish({ outcome: "failure", output: `timeout: failed to connect service ${JSON.stringify(target)} within ${timeoutMs / 1000}s: ${errorText(err)}` }));
    const request = session.request({
      [http2Constants.HTTP2_HEADER_METHOD]: "POST",
      [http2Constants.HTTP2_HEADER_PATH]: "/grpc.health.v1.Health/Check",
      [http2Constants.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
      te: "trailers",
      "user-agent": "kube-probe/vks",
    });
    const chunks: Buffer[] = [];
    let grpcStatus: string | undefined;
    let grpcMessage = "";
    request.on("response", (headers) => {
      if (headers["grpc-status"] !== undefined) grpcStatus = String(headers["grpc-status"]);
    });
    request.on("trailers", (trailers) => {
      if (trailers["grpc-status"] !== undefined) grpcStatus = String(trailers["grpc-status"]);
      if (trailers["grpc-message"] !== undefined) grpcMessage = decodeURIComponent(String(trailers["grpc-message"]));
    });
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("error", (err) => finish({ outcome: "failure", output: `rpc error: ${errorText(err)}` }));
    request.on("end", () => {
      if (grpcStatus !== undefined && grpcStatus !== "0") {
        finish({ outcome: "failure", output: `rpc error: code = ${grpcCodeName(grpcStatus)} desc = ${grpcMessage}` });
        return;
      }
      const body = Buffer.concat(chunks);
      const length = body.length >= 5 ? body.readUInt32BE(1) : 0;
      const status = servingStatus(body.subarray(5, 5 + length));
      if (status === 1) finish({ outcome: "success", output: "" });
      else finish({ outcome: "failure", output: `service unhealthy (responded with ${JSON.stringify(SERVING_STATUS[status] ?? String(status))})` });
    });
    request.end(healthCheckRequest(service));
  });
}

const GRPC_CODES = [
  "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists", "PermissionDenied",
  "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
];

function grpcCodeName(code: string): string {
  return GRPC_CODES[Number(code)] ?? `Code(${code})`;
}
