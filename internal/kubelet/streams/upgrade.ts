/**
 * The HTTP side of a streaming upgrade: reading the request's upgrade headers, negotiating the
 * `X-Stream-Protocol-Version` as the kubelet's httpstream.Handshake does, and refusing an upgrade with a
 * Kubernetes Status before the connection is given up.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { VksError } from "../../errors.ts";

/** An upgrade that was answered with an HTTP error; the socket has been told and closed. */
export class UpgradeRefused extends VksError {
  override readonly name = "UpgradeRefused";
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message, { hint: "the client asked for a streaming upgrade this kubelet does not accept; the response said why" });
  }
}

const REASONS: Record<number, string> = { 400: "BadRequest", 403: "Forbidden", 500: "InternalError" };
const STATUS_TEXT: Record<number, string> = { 400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error" };

/** Values of a header that may be repeated or comma-joined (`X-Stream-Protocol-Version`, `Sec-WebSocket-Protocol`). */
export function headerTokens(request: IncomingMessage, name: string): string[] {
  const raw = request.headers[name.toLowerCase()];
  const joined = Array.isArray(raw) ? raw.join(",") : (raw ?? "");
  return joined
    .split(",")
    .map((token) => token.trim())
    .filter((token) => token !== "");
}

function connectionHasUpgrade(request: IncomingMessage): boolean {
  return headerTokens(request, "connection").some((token) => token.toLowerCase() === "upgrade");
}

export function isWebSocketRequest(request: IncomingMessage): boolean {
  return (request.headers.upgrade ?? "").toLowerCase() === "websocket" && connectionHasUpgrade(request);
}

export function isSpdyRequest(request: IncomingMessage): boolean {
  return (request.headers.upgrade ?? "").toLowerCase().includes("spdy/3.1") && connectionHasUpgrade(request);
}

/**
 * Writes a Kubernetes Status as the HTTP response on a socket that was never upgraded, closes it and
 * throws UpgradeRefused. Extra headers tell the client what the server would have accepted.
 */
export function refuseUpgrade(socket: Duplex, statusCode: number, message: string, extraHeaders: Record<string, string[]> = {}): never {
  const body = JSON.stringify({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason: REASONS[statusCode] ?? "Unknown",
    code: statusCode,
  });
  const lines = [`HTTP/1.1 ${statusCode} ${STATUS_TEXT[statusCode] ?? "Error"}`, "Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`, "Connection: close"];
  for (const [name, values] of Object.entries(extraHeaders)) for (const value of values) lines.push(`${name}: ${value}`);
  if (!socket.destroyed && socket.writable) socket.end(lines.join("\r\n") + "\r\n\r\n" + body);
  else socket.destroy();
  throw new UpgradeRefused(statusCode, message);
}

/**
 * The kubelet's negotiation: the first protocol in the client's order that the server speaks. No
 * header at all is refused as httpstream.Handshake refuses it (400); no common protocol is a 403 that
 * lists what the server accepts.
 */
export function negotiateStreamProtocol(request: IncomingMessage, socket: Duplex, serverProtocols: readonly string[]): string {
  const clientProtocols = headerTokens(request, "x-stream-protocol-version");
  if (clientProtocols.length === 0) refuseUpgrade(socket, 400, "unable to upgrade: X-Stream-Protocol-Version is required");
  const chosen = clientProtocols.find((protocol) => serverProtocols.includes(protocol));
  if (chosen === undefined) {
    refuseUpgrade(
      socket,
      403,
      `unable to upgrade: unable to negotiate protocol: client supports [${clientProtocols.join(" ")}], server accepts [${serverProtocols.join(" ")}]`,
      { "X-Accepted-Stream-Protocol-Versions": [...serverProtocols] },
    );
  }
  return chosen;
}

/** Refuses anything that is neither a SPDY/3.1 nor a WebSocket upgrade, in the kubelet's words. */
export function refuseNonUpgrade(request: IncomingMessage, socket: Duplex): never {
  const shown = ["Connection", "Upgrade"].map((name) => `${name}: ${request.headers[name.toLowerCase()] ?? ""}`).join(", ");
  refuseUpgrade(socket, 400, `unable to upgrade: missing upgrade headers in request (${shown}); SPDY/3.1 or websocket expected`);
}

/** The 101 the kubelet's SPDY response upgrader writes. */
export function spdyUpgradeResponse(protocol: string): string {
  const lines = ["HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", "Upgrade: SPDY/3.1"];
  if (protocol !== "") lines.push(`X-Stream-Protocol-Version: ${protocol}`);
  return lines.join("\r\n") + "\r\n\r\n";
}
