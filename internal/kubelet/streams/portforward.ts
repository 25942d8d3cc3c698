/**
 * The port-forward protocols, server side, as the kubelet speaks them (k8s.io/kubelet
 * cri/streaming/portforward):
 * - SPDY/3.1 with `portforward.k8s.io`: each forwarded connection is a pair of client streams, `data` and
 *   `error`, carrying `port` and `requestID` headers, paired by requestID;
 * - WebSocket (`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, none): the ports come from the query, two
 *   channels per port (data, error), and the first message on each carries the port, little-endian;
 * - the tunnel kubectl >= 1.31 uses: the same SPDY session inside WebSocket binary messages
 *   (`SPDY/3.1+portforward.k8s.io`), which an API server passes through to the kubelet untouched.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { SpdySession, type SpdyStream } from "./spdy.ts";
import { RstStatus } from "./spdy-frames.ts";
import { headerTokens, isSpdyRequest, isWebSocketRequest, negotiateStreamProtocol, refuseNonUpgrade, refuseUpgrade, spdyUpgradeResponse } from "./upgrade.ts";
import { acceptWebSocket, CloseCode } from "./websocket.ts";
import { ChannelMux, type ChannelStream } from "./ws-channels.ts";
import { WebSocketByteStream } from "./ws-tunnel.ts";

export interface PortForwardStream {
  readonly port: number;
  /** The forwarded connection: read what the client sends, write what the port answers; end() when the port closed. */
  readonly data: Duplex;
  /** Tells the client why forwarding failed (the kubelet's error stream), and ends this connection. */
  reportError(message: string): void;
}

export interface PortForwardSession {
  /** Every forwarded connection; those that arrived before a handler was set are handed to it. */
  onStream(handler: (stream: PortForwardStream) => void): void;
  readonly aborted: AbortSignal;
  close(): void;
}

export interface PortForwardOptions {
  /** The `port` query parameters: required for the WebSocket channel protocol, unused by SPDY. */
  ports: number[];
  /** How long the second stream of a SPDY pair may take; the kubelet's default is 30 s. */
  streamCreationTimeoutMs?: number;
}

export const PORT_FORWARD_PROTOCOL = "portforward.k8s.io";
export const PORT_FORWARD_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io";
/** The kubelet's port-forward WebSocket subprotocols ("" accepts a client that offers none). */
export const WEBSOCKET_PORT_FORWARD_PROTOCOLS: readonly string[] = ["v4.channel.k8s.io", "v4.base64.channel.k8s.io", ""];

const DEFAULT_STREAM_CREATION_TIMEOUT_MS = 30_000;

class Session implements PortForwardSession {
  private handler: ((stream: PortForwardStream) => void) | undefined;
  private readonly waiting: PortForwardStream[] = [];

  constructor(
    readonly aborted: AbortSignal,
    private readonly closer: () => void,
  ) {}

  onStream(handler: (stream: PortForwardStream) => void): void {
    this.handler = handler;
    for (const stream of this.waiting.splice(0)) handler(stream);
  }

  deliver(stream: PortForwardStream): void {
    if (this.handler === undefined) this.waiting.push(stream);
    else this.handler(stream);
  }

  close(): void {
    this.closer();
  }
}

/**
 * Accepts a port-forward upgrade on the socket the HTTP server handed over and writes the 101. A request
 * that is no acceptable upgrade is answered with an HTTP error, and UpgradeRefused is thrown.
 */
export async function acceptPortForward(request: IncomingMessage, socket: Duplex, head: Buffer, options: PortForwardOptions): Promise<PortForwardSession> {
  const timeoutMs = options.streamCreationTimeoutMs ?? DEFAULT_STREAM_CREATION_TIMEOUT_MS;
  if (isWebSocketRequest(request)) {
    if (headerTokens(request, "sec-websocket-protocol").includes(PORT_FORWARD_TUNNEL_PROTOCOL)) {
      const connection = acceptWebSocket(request, socket, head, [PORT_FORWARD_TUNNEL_PROTOCOL]);
      return serveSpdy(new SpdySession(new WebSocketByteStream(connection)), timeoutMs);
    }
    return serveWebSocketChannels(request, socket, head, options.ports);
  }
  if (isSpdyRequest(request)) {
    negotiateStreamProtocol(request, socket, [PORT_FORWARD_PROTOCOL]);
    socket.write(spdyUpgradeResponse(PORT_FORWARD_PROTOCOL));
    return serveSpdy(new SpdySession(socket, { initialBytes: head }), timeoutMs);
  }
  refuseNonUpgrade(request, socket);
}

interface StreamPair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: ReturnType<typeof setTimeout>;
}

/** Why a stream is refused, in the kubelet's words; undefined when it is acceptable. */
function streamProblem(stream: SpdyStream): string | undefined {
  const portText = stream.header("port");
  if (portText === undefined || portText === "") return `"port" header is required`;
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) return `unable to parse "${portText}" as a port`;
  if (port < 1) return `port "${portText}" must be > 0`;
  const type = stream.header("streamtype");
  if (type === undefined || type === "") return `"streamType" header is required`;
  if (type !== "data" && type !== "error") return `invalid stream type "${type}"`;
  return undefined;
}

/**
 * Old clients sent no requestID; the kubelet then pairs a connection's streams by their ids, which are
 * consecutive odd numbers when connections are not opened concurrently.
 */
function requestIdOf(stream: SpdyStream): string {
  const id = stream.header("requestid");
  if (id !== undefined && id !== "") return id;
  return String(stream.header("streamtype") === "error" ? stream.id : stream.id - 2);
}

function serveSpdy(spdy: SpdySession, timeoutMs: number): PortForwardSession {
  const session = new Session(spdy.aborted, () => spdy.close());
  const pairs = new Map<string, StreamPair>();

  spdy.onStream((stream) => {
    if (streamProblem(stream) !== undefined) {
      stream.reset(RstStatus.protocolError);
      return;
    }
    void stream.accept().catch(() => undefined);
    const requestId = requestIdOf(stream);
    let pair = pairs.get(requestId);
    if (pair === undefined) {
      const created: StreamPair = {
        timer: setTimeout(() => {
          pairs.delete(requestId);
          created.error?.end(`timed out waiting for streams of request ${requestId}`);
          created.data?.reset(RstStatus.cancel);
        }, timeoutMs),
      };
      created.timer.unref();
      pair = created;
      pairs.set(requestId, pair);
    }
    const type = stream.header("streamtype") === "data" ? "data" : "error";
    if (pair[type] !== undefined) {
      pair.error?.write(`error processing stream for request ${requestId}: ${type} stream already assigned`);
      stream.reset(RstStatus.protocolError);
      return;
    }
    pair[type] = stream;
    const { data, error } = pair;
    if (data === undefined || error === undefined) return;
    clearTimeout(pair.timer);
    pairs.delete(requestId);
    session.deliver(spdyForward(data, error));
  });
  spdy.aborted.addEventListener("abort", () => {
    for (const pair of pairs.values()) clearTimeout(pair.timer);
    pairs.clear();
  }, { once: true });
  return session;
}

/** The client reads both streams to their end: when our side of data is done, error is closed too. */
function spdyForward(data: SpdyStream, error: SpdyStream): PortForwardStream {
  const closeError = (): void => {
    if (!error.writableEnded && !error.destroyed) error.end();
  };
  data.once("finish", closeError);
  data.once("close", closeError);
  return {
    port: Number(data.header("port")),
    data,
    reportError(message: string): void {
      if (!error.writableEnded && !error.destroyed) error.end(message);
      if (!data.writableEnded && !data.destroyed) data.end();
    },
  };
}

function serveWebSocketChannels(request: IncomingMessage, socket: Duplex, head: Buffer, ports: number[]): PortForwardSession {
  if (ports.length === 0) refuseUpgrade(socket, 400, `query parameter "port" is required`);
  const connection = acceptWebSocket(request, socket, head, WEBSOCKET_PORT_FORWARD_PROTOCOLS);
  const mux = new ChannelMux(connection, ports.length * 2, { base64: connection.protocol.includes("base64"), closeSignal: false });
  const session = new Session(connection.aborted, () => connection.close(CloseCode.normal));
  let open = ports.length;
  const portDone = (): void => {
    open--;
    if (open === 0) connection.close(CloseCode.normal);
  };
  ports.forEach((port, index) => {
    const data = mux.channel(index * 2);
    const error = mux.channel(index * 2 + 1);
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16LE(port, 0);
    data.write(prefix);
    error.write(prefix);
    let done = false;
    const finishPort = (): void => {
      if (done) return;
      done = true;
      portDone();
    };
    data.once("finish", finishPort);
    data.once("close", finishPort);
    session.deliver(channelForward(port, data, error));
  });
  return session;
}

function channelForward(port: number, data: ChannelStream, error: ChannelStream): PortForwardStream {
  return {
    port,
    data,
    reportError(message: string): void {
      if (!error.writableEnded && !error.destroyed) error.end(message);
      if (!data.writableEnded && !data.destroyed) data.end();
    },
  };
}
