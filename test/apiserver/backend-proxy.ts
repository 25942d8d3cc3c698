// Talking to a kubelet on a client's behalf, the three ways kube-apiserver does it:
//  - upgrades (exec, attach, portforward, proxied websockets): the UpgradeAwareHandler dials the
//    kubelet, writes the request, relays the kubelet's 101 and then every byte both ways until either
//    side closes; a refusal (>= 400) is echoed to the client as is;
//  - plain proxying (nodes/proxy): a reverse proxy that drops hop-by-hop headers and streams the body;
//  - log streaming (pods/log): a GET whose body becomes the response, flushed as it arrives.
import { request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect as netConnect } from "node:net";
import type { Duplex, Readable } from "node:stream";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { createGunzip } from "node:zlib";
import { describeNetworkError, joinHostPort } from "./kubelet-client.ts";
import { ApiError, badRequest, genericServerResponse, internalError, unknownError, type GroupResource } from "./status.ts";

export interface BackendTarget {
  host: string;
  port: number;
  /** TLS options, or undefined for plain HTTP (a nodes/proxy request to another port without a scheme). */
  tls: ConnectionOptions | undefined;
}

/** The raw connection of an upgrade request, as the HTTP server's `upgrade` event hands it over. */
export interface UpgradeStream {
  socket: Duplex;
  head: Buffer;
  /** Releases the socket from the response that answers errors, before raw bytes are written to it. */
  detach: () => void;
}

// The kubelet client's dial timeout.
const dialTimeoutMs = 30_000;
// How long the handler waits to echo a backend's refusal of an upgrade.
const refusalEchoMs = 10_000;
// GenericHttpResponseChecker reads at most this much of an error body.
const maxErrorBodyBytes = 50_000;

const hopByHopHeaders = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
const corsHeaders = new Set(["access-control-allow-credentials", "access-control-allow-headers", "access-control-allow-methods", "access-control-allow-origin"]);

/** Whether a request asks for a protocol upgrade (httpstream.IsUpgradeRequest). */
export function isUpgradeRequest(request: IncomingMessage): boolean {
  const connection = request.headers.connection ?? "";
  return connection.split(",").some((token) => token.trim().toLowerCase() === "upgrade");
}

/** Go's CanonicalMIMEHeaderKey: `sec-websocket-key` becomes `Sec-Websocket-Key`. */
function canonicalHeaderKey(name: string): string {
  return name
    .split("-")
    .map((part) => (part === "" ? part : `${part[0]?.toUpperCase() ?? ""}${part.slice(1).toLowerCase()}`))
    .join("-");
}

/** The client's address appended to X-Forwarded-For, as utilnet.AppendForwardedForHeader does. */
function forwardedFor(request: IncomingMessage): string | undefined {
  const client = request.socket.remoteAddress?.replace(/^::ffff:/, "");
  if (client === undefined) return undefined;
  const prior = request.headers["x-forwarded-for"];
  return prior === undefined ? client : `${Array.isArray(prior) ? prior.join(", ") : prior}, ${client}`;
}

function dialBackend(target: BackendTarget): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = target.tls === undefined ? netConnect({ host: target.host, port: target.port }) : tlsConnect({ host: target.host, port: target.port, ...target.tls });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error("i/o timeout"), { code: "ETIMEDOUT" }));
    }, dialTimeoutMs);
    const onError = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    socket.once(target.tls === undefined ? "connect" : "secureConnect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      // As Go's dialer (kube-apiserver's): TCP_NODELAY, so streams' small frames are not held back by Nagle.
      socket.setNoDelay(true);
      // Later failures surface as 'close' to whoever relays; an unheard 'error' would end the process.
      socket.on("error", () => undefined);
      resolve(socket);
    });
    socket.once("error", onError);
  });
}

/** The request Go's Request.Write sends: Host and User-Agent first, then the other headers sorted. */
function upgradeRequestHead(request: IncomingMessage, pathWithQuery: string): string {
  const skipped = new Set(["host", "user-agent", "content-length", "transfer-encoding", "trailer", "authorization", "x-forwarded-for"]);
  const headers = new Map<string, string[]>();
  const raw = request.rawHeaders;
  for (let index = 0; index + 1 < raw.length; index += 2) {
    const name = raw[index] ?? "";
    if (skipped.has(name.toLowerCase())) continue;
    const key = canonicalHeaderKey(name);
    headers.set(key, [...(headers.get(key) ?? []), raw[index + 1] ?? ""]);
  }
  const clientAddress = forwardedFor(request);
  if (clientAddress !== undefined) headers.set("X-Forwarded-For", [clientAddress]);
  const lines = [`${request.method ?? "GET"} ${pathWithQuery} HTTP/1.1`, `Host: ${request.headers.host ?? ""}`, `User-Agent: ${request.headers["user-agent"] ?? "Go-http-client/1.1"}`];
  if (["POST", "PUT", "PATCH"].includes(request.method ?? "")) lines.push("Content-Length: 0");
  for (const key of [...headers.keys()].sort()) for (const value of headers.get(key) ?? []) lines.push(`${key}: ${value}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

interface ResponseHead {
  statusCode: number;
  headers: Map<string, string>;
  /** The head's bytes and whatever followed them in the same reads. */
  bytes: Buffer;
  headLength: number;
}

/** Reads the backend's response head off the raw connection, keeping every byte for the relay. */
function readResponseHead(backend: Duplex): Promise<ResponseHead> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const cleanup = (): void => {
      backend.off("data", onData);
      backend.off("end", onEnd);
      backend.off("error", onError);
      backend.pause();
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end === -1) {
        if (buffered.length > 1 << 20) {
          cleanup();
          reject(new Error("net/http: response header too large"));
        }
        return;
      }
      cleanup();
      const lines = buffered.subarray(0, end).toString("latin1").split("\r\n");
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
      if (match === null) {
        reject(new Error(`malformed HTTP response ${JSON.stringify(lines[0] ?? "")}`));
        return;
      }
      const headers = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      resolve({ statusCode: Number(match[1]), headers, bytes: buffered, headLength: end + 4 });
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error(buffered.length === 0 ? "EOF" : "unexpected EOF"));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    backend.on("data", onData);
    backend.once("end", onEnd);
    backend.once("error", onError);
  });
}

/** Echoes a backend's refusal of an upgrade (head and body) to the client, then closes both. */
function echoRefusal(backend: Duplex, client: Duplex, head: ResponseHead): void {
  const closeBoth = (): void => {
    clearTimeout(timer);
    backend.destroy();
    client.end();
  };
  const timer = setTimeout(closeBoth, refusalEchoMs);
  const declared = head.headers.get("content-length");
  const chunked = (head.headers.get("transfer-encoding") ?? "").toLowerCase().includes("chunked");
  let remaining = declared === undefined ? Number.POSITIVE_INFINITY : Number(declared) - (head.bytes.length - head.headLength);
  let tail = head.bytes.subarray(Math.max(head.headLength, head.bytes.length - 5)).toString("latin1");
  const finished = (): boolean => remaining <= 0 || (chunked && tail.endsWith("0\r\n\r\n"));
  client.write(head.bytes);
  if (finished()) {
    closeBoth();
    return;
  }
  backend.on("data", (chunk: Buffer) => {
    client.write(chunk);
    remaining -= chunk.length;
    tail = (tail + chunk.toString("latin1")).slice(-5);
    if (finished()) closeBoth();
  });
  backend.once("end", closeBoth);
  backend.once("error", closeBoth);
  backend.resume();
}

/** Once upgraded, every byte goes both ways; when either side is done, both connections close. */
function pipeBothWays(backend: Duplex, client: Duplex): void {
  let closed = false;
  const closeBoth = (): void => {
    if (closed) return;
    closed = true;
    backend.destroy();
    client.destroy();
  };
  const afterFlush = (writable: Duplex): void => {
    if (writable.writableFinished) closeBoth();
    else writable.once("finish", closeBoth);
  };
  backend.once("end", () => afterFlush(client));
  client.once("end", () => afterFlush(backend));
  for (const socket of [backend, client]) {
    socket.once("error", closeBoth);
    socket.once("close", closeBoth);
  }
  backend.pipe(client);
  client.pipe(backend);
}

/**
 * Relays an upgrade request to `pathWithQuery` on the backend. Failures before the backend answers
 * throw the ApiError the real server sends (500 `error dialing backend: ...`); afterwards the client
 * gets the backend's own answer. Resolves with the backend's status code.
 */
export async function relayUpgrade(target: BackendTarget, pathWithQuery: string, request: IncomingMessage, upgrade: UpgradeStream): Promise<number> {
  let backend: Duplex;
  try {
    backend = await dialBackend(target);
  } catch (error) {
    throw unknownError(`error dialing backend: ${describeNetworkError(error, target.host, target.port)}`);
  }
  backend.write(upgradeRequestHead(request, pathWithQuery));
  if (upgrade.head.length > 0) backend.write(upgrade.head);
  let head: ResponseHead;
  try {
    head = await readResponseHead(backend);
  } catch (error) {
    backend.destroy();
    throw unknownError(error instanceof Error ? error.message : String(error));
  }
  if (head.statusCode !== 101 && head.statusCode < 400) {
    backend.destroy();
    throw unknownError(`invalid upgrade response: status code ${head.statusCode}`);
  }
  upgrade.detach();
  if (head.statusCode !== 101) {
    echoRefusal(backend, upgrade.socket, head);
    return head.statusCode;
  }
  upgrade.socket.write(head.bytes);
  pipeBothWays(backend, upgrade.socket);
  return 101;
}

function sendRequest(target: BackendTarget, options: { method: string; path: string; headers: OutgoingHttpHeaders }): ReturnType<typeof httpRequest> {
  const common = { host: target.host, port: target.port, method: options.method, path: options.path, headers: options.headers, agent: false as const };
  return target.tls === undefined ? httpRequest(common) : httpsRequest({ ...common, ...target.tls });
}

/** A message's headers minus the hop-by-hop ones (fixed and Connection-listed) and `alsoDropped`. */
function endToEndHeaders(message: IncomingMessage, alsoDropped: ReadonlySet<string>): OutgoingHttpHeaders {
  const connectionListed = new Set((message.headers.connection ?? "").split(",").map((token) => token.trim().toLowerCase()));
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(message.headers)) {
    if (value === undefined || hopByHopHeaders.has(name) || connectionListed.has(name) || alsoDropped.has(name)) continue;
    headers[name] = value;
  }
  return headers;
}

/** Hands the backend's answer to the client: writes the head, flushes it, then streams `body` through. */
type RelayBody = (statusCode: number, headers: OutgoingHttpHeaders, body: Readable) => void;

/**
 * The response side both proxy paths share. `answer` looks at the backend's response and either relays a
 * body or refuses with the API error the client should get; a request that fails before any answer rejects
 * with `unreachable(error)`. Once the client has headers, a failure can only cut the body short, so the
 * client's response is destroyed (the real proxy aborts the stream) and the promise still resolves.
 */
function relayBackendResponse(
  outgoing: ClientRequest,
  response: ServerResponse,
  answer: (incoming: IncomingMessage, relay: RelayBody, refuse: (error: ApiError) => void) => void,
  unreachable: (error: Error) => ApiError,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const relay: RelayBody = (statusCode, headers, body) => {
      response.writeHead(statusCode, headers);
      response.flushHeaders();
      body.pipe(response);
      body.once("end", () => resolve());
      body.once("error", () => {
        response.destroy();
        resolve();
      });
    };
    outgoing.on("response", (incoming) => answer(incoming, relay, reject));
    outgoing.once("error", (error) => {
      if (response.headersSent) {
        response.destroy();
        resolve();
        return;
      }
      reject(unreachable(error));
    });
    response.once("close", () => outgoing.destroy());
  });
}

export interface HttpProxyOptions {
  /** The path of the proxy itself (`/api/v1/nodes/n1/proxy`), which rewritten redirects get in front. */
  pathPrepend: string;
}

/** proxy.Transport's rewriteURL for a redirect from the backend: same-host absolute paths go through the proxy. */
function rewriteLocation(location: string, target: BackendTarget, requestHost: string, pathPrepend: string): string {
  let url: URL;
  try {
    url = new URL(location, "http://relative.invalid");
  } catch {
    return location;
  }
  const relativeForm = url.host === "relative.invalid";
  const sameHost = relativeForm || url.host === joinHostPort(target.host, target.port) || url.host === requestHost;
  if (!sameHost || !(relativeForm ? location.startsWith("/") : true)) return location;
  if (url.pathname.startsWith(pathPrepend)) return `${url.pathname}${url.search}${url.hash}`;
  const joined = `${pathPrepend}${url.pathname}`.replace(/\/+/g, "/");
  return `${joined}${url.search}${url.hash}`;
}

/**
 * Proxies a plain (non-upgrade) request, body streaming both ways. Failing to reach the backend throws
 * 503 `error trying to reach service: ...`, as the proxy transport reports it.
 */
export function proxyHttp(target: BackendTarget, pathWithQuery: string, request: IncomingMessage, response: ServerResponse, options: HttpProxyOptions): Promise<void> {
  // The client's credentials are for the API server; the backend gets the API server's own.
  const headers = endToEndHeaders(request, new Set(["authorization"]));
  const clientAddress = forwardedFor(request);
  if (clientAddress !== undefined) headers["x-forwarded-for"] = clientAddress;
  headers["x-forwarded-uri"] = `${options.pathPrepend}${pathWithQuery.split("?")[0] ?? ""}`.replace(/\/+/g, "/");
  const outgoing = sendRequest(target, { method: request.method ?? "GET", path: pathWithQuery, headers });
  const relayed = relayBackendResponse(
    outgoing,
    response,
    (incoming, relay) => {
      const responseHeaders = endToEndHeaders(incoming, corsHeaders);
      const location = incoming.headers.location;
      if (location !== undefined) responseHeaders["location"] = rewriteLocation(location, target, request.headers.host ?? "", options.pathPrepend);
      relay(incoming.statusCode ?? 502, responseHeaders, incoming);
    },
    (error) => new ApiError(503, "ServiceUnavailable", `error trying to reach service: ${describeNetworkError(error, target.host, target.port)}`),
  );
  request.pipe(outgoing);
  return relayed;
}

/** GenericHttpResponseChecker: a non-2xx answer from the backend, as the API error the client gets. */
function checkedError(statusCode: number, body: string, target: GroupResource, name: string): ApiError {
  if (statusCode === 500) return internalError(body);
  if (statusCode === 400) return badRequest(body);
  return genericServerResponse(statusCode, target, name, body);
}

/**
 * LocationStreamer: GETs `pathWithQuery` and streams the body as text/plain (flushing as it arrives).
 * Errors before any output throw the real server's error; `subject` names the object for them.
 */
export function streamFromBackend(target: BackendTarget, pathWithQuery: string, response: ServerResponse, subject: { resource: GroupResource; name: string }): Promise<void> {
  const url = `https://${joinHostPort(target.host, target.port)}${pathWithQuery}`;
  const outgoing = sendRequest(target, {
    method: "GET",
    path: pathWithQuery,
    headers: { host: joinHostPort(target.host, target.port), "user-agent": "Go-http-client/1.1", "accept-encoding": "gzip" },
  });
  const relayed = relayBackendResponse(
    outgoing,
    response,
    (incoming, relay, refuse) => {
      const statusCode = incoming.statusCode ?? 500;
      if (statusCode < 200 || statusCode > 206) {
        const chunks: Buffer[] = [];
        let size = 0;
        incoming.on("data", (chunk: Buffer) => {
          if (size < maxErrorBodyBytes) chunks.push(chunk.subarray(0, maxErrorBodyBytes - size));
          size += chunk.length;
        });
        incoming.once("end", () => refuse(checkedError(statusCode, Buffer.concat(chunks).toString("utf8"), subject.resource, subject.name)));
        incoming.once("error", (error) => refuse(internalError(error.message)));
        return;
      }
      const body = (incoming.headers["content-encoding"] ?? "").toLowerCase() === "gzip" ? incoming.pipe(createGunzip()) : incoming;
      relay(200, { "Content-Type": "text/plain" }, body);
    },
    (error) => unknownError(`Get ${JSON.stringify(url)}: ${describeNetworkError(error, target.host, target.port)}`),
  );
  outgoing.end();
  return relayed;
}
