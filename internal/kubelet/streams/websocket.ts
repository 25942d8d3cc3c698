/**
 * An RFC 6455 WebSocket server connection: the opening handshake (Sec-WebSocket-Accept, subprotocol
 * choice in the client's order, as apimachinery's wsstream chooses), masked client frames,
 * fragmentation, ping/pong, the closing handshake, binary and text messages.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { errorMessage } from "../../errors.ts";
import { TransportWriter } from "./transport.ts";
import { headerTokens, refuseUpgrade } from "./upgrade.ts";

const HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Larger messages are refused with 1009; Kubernetes clients send at most a few hundred KiB at once. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** How long our close frame waits for the client's before the socket is dropped. */
const CLOSE_TIMEOUT_MS = 5_000;

export const Opcode = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  noStatus: 1005,
  abnormal: 1006,
  invalidPayload: 1007,
  policyViolation: 1008,
  tooBig: 1009,
  internalError: 1011,
} as const;

export class WebSocketProtocolError extends Error {
  override readonly name = "WebSocketProtocolError";
  constructor(
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface WireFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

export function acceptKey(key: string): string {
  return createHash("sha1").update(key + HANDSHAKE_GUID).digest("base64");
}

/** Decodes client frames (which must be masked) from bytes however they were split. */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly requireMask: boolean = true) {}

  push(chunk: Uint8Array): WireFrame[] {
    if (chunk.byteLength > 0) {
      this.pending.push(Buffer.from(chunk));
      this.pendingBytes += chunk.byteLength;
    }
    const frames: WireFrame[] = [];
    for (;;) {
      const frame = this.next();
      if (frame === undefined) break;
      frames.push(frame);
    }
    return frames;
  }

  /** The first `count` bytes, joining chunks only when the first one is too short. */
  private peek(count: number): Buffer {
    if ((this.pending[0]?.length ?? 0) < count && this.pending.length > 1) this.pending = [Buffer.concat(this.pending)];
    return (this.pending[0] ?? Buffer.alloc(0)).subarray(0, count);
  }

  private take(count: number): Buffer {
    const joined = this.peek(count);
    const first = this.pending[0] ?? Buffer.alloc(0);
    if (first.length === count) this.pending.shift();
    else this.pending[0] = first.subarray(count);
    this.pendingBytes -= count;
    return joined;
  }

  private next(): WireFrame | undefined {
    if (this.pendingBytes < 2) return undefined;
    const start = this.peek(Math.min(this.pendingBytes, 14));
    const first = start[0] ?? 0;
    const second = start[1] ?? 0;
    if (first & 0x70) throw new WebSocketProtocolError(CloseCode.protocolError, "reserved bits set without a negotiated extension");
    const masked = (second & 0x80) !== 0;
    if (this.requireMask && !masked) throw new WebSocketProtocolError(CloseCode.protocolError, "client frames must be masked");
    let length = second & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (start.length < 4) return undefined;
      length = start.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (start.length < 10) return undefined;
      const high = start.readUInt32BE(2);
      if (high > 0x1fffff) throw new WebSocketProtocolError(CloseCode.tooBig, "frame length out of range");
      length = high * 2 ** 32 + start.readUInt32BE(6);
      offset = 10;
    }
    if (length > MAX_MESSAGE_BYTES) throw new WebSocketProtocolError(CloseCode.tooBig, `frame of ${length} bytes is too large`);
    const maskOffset = offset;
    if (masked) offset += 4;
    if (this.pendingBytes < offset + length) return undefined;
    const whole = this.take(offset + length);
    const payload = Buffer.from(whole.subarray(offset));
    if (masked) {
      const mask = whole.subarray(maskOffset, maskOffset + 4);
      for (let index = 0; index < payload.length; index++) payload[index] = (payload[index] ?? 0) ^ (mask[index & 3] ?? 0);
    }
    return { fin: (first & 0x80) !== 0, opcode: first & 0x0f, payload };
  }
}

/** A server frame: never masked, never fragmented by us. */
export function encodeFrame(opcode: number, payload: Uint8Array, fin = true): Buffer {
  const length = payload.byteLength;
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  frame.set(payload, headerLength);
  return frame;
}

export interface WebSocketMessage {
  data: Buffer;
  binary: boolean;
}

export interface WebSocketClose {
  code: number;
  reason: string;
}

/** The subprotocols a client offered, in its order of preference. */
export function offeredSubprotocols(request: IncomingMessage): string[] {
  return headerTokens(request, "sec-websocket-protocol");
}

/**
 * Completes the opening handshake on an upgraded socket and returns the connection. The subprotocol is
 * the first one the client offered that `supported` holds ("" in `supported` accepts a client that
 * offered none). Anything wrong is answered with an HTTP error before UpgradeRefused is thrown.
 */
export function acceptWebSocket(request: IncomingMessage, socket: Duplex, head: Buffer, supported: readonly string[]): WebSocketConnection {
  const key = request.headers["sec-websocket-key"];
  if (request.method !== "GET") refuseUpgrade(socket, 400, `websocket: the opening handshake must be a GET, not ${request.method ?? "?"}`);
  if (typeof key !== "string" || Buffer.from(key, "base64").length !== 16) refuseUpgrade(socket, 400, "websocket: missing or malformed Sec-WebSocket-Key");
  if (request.headers["sec-websocket-version"] !== "13") {
    refuseUpgrade(socket, 400, `websocket: unsupported Sec-WebSocket-Version ${JSON.stringify(request.headers["sec-websocket-version"] ?? "")}; 13 is supported`, {
      "Sec-WebSocket-Version": ["13"],
    });
  }
  const offered = offeredSubprotocols(request);
  const candidates = offered.length === 0 ? [""] : offered;
  const protocol = candidates.find((candidate) => supported.includes(candidate));
  if (protocol === undefined) {
    refuseUpgrade(socket, 403, `requested protocol(s) are not supported: [${offered.join(" ")}]; supports [${supported.join(" ")}]`);
  }
  const lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", `Sec-WebSocket-Accept: ${acceptKey(key)}`];
  if (protocol !== "") lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
  socket.write(lines.join("\r\n") + "\r\n\r\n");
  return new WebSocketConnection(socket, protocol, head);
}

export class WebSocketConnection {
  private readonly decoder = new FrameDecoder(true);
  private readonly writer: TransportWriter;
  private readonly abortController = new AbortController();
  private messageListener: ((message: WebSocketMessage) => void) | undefined;
  private readonly earlyMessages: WebSocketMessage[] = [];
  private fragments: Buffer[] = [];
  private fragmentBytes = 0;
  private fragmentOpcode = 0;
  private closeSent = false;
  private closeReceived: WebSocketClose | undefined;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;
  private finished = false;
  private readonly utf8 = new TextDecoder("utf-8", { fatal: true });
  readonly closed: Promise<WebSocketClose>;
  private resolveClosed!: (close: WebSocketClose) => void;

  constructor(
    private readonly socket: Duplex,
    readonly protocol: string,
    initialBytes: Uint8Array = Buffer.alloc(0),
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.writer = new TransportWriter(socket);
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.once("end", () => this.finish(this.closeReceived ?? { code: CloseCode.abnormal, reason: "the connection ended without a close frame" }));
    socket.once("close", () => this.finish(this.closeReceived ?? { code: CloseCode.abnormal, reason: "the connection closed without a close frame" }));
    socket.on("error", (err: Error) => this.finish({ code: CloseCode.abnormal, reason: errorMessage(err) }));
    if (initialBytes.byteLength > 0) queueMicrotask(() => this.receive(initialBytes));
  }

  /** Aborted when the connection is over, cleanly or not. */
  get aborted(): AbortSignal {
    return this.abortController.signal;
  }

  /** Receives each complete data message; messages that arrived before a listener was set are replayed. */
  onMessage(listener: (message: WebSocketMessage) => void): void {
    this.messageListener = listener;
    for (const message of this.earlyMessages.splice(0)) listener(message);
  }

  send(data: Uint8Array | string): Promise<void> {
    if (this.closeSent || this.finished) return Promise.reject(new Error("the websocket is closing"));
    if (typeof data === "string") return this.writer.write(encodeFrame(Opcode.text, Buffer.from(data, "utf8")));
    return this.writer.write(encodeFrame(Opcode.binary, data));
  }

  /** Starts the closing handshake; the socket is dropped when the client answers or after a timeout. */
  close(code: number = CloseCode.normal, reason = ""): void {
    if (this.finished) return;
    this.sendClose(code, reason);
    if (this.closeReceived !== undefined) {
      this.writer.end();
      return;
    }
    this.closeTimer ??= setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS);
    this.closeTimer.unref();
  }

  /** Stops reading from the socket (backpressure towards the client) until resume(). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    if (!this.finished) this.socket.resume();
  }

  destroy(): void {
    this.socket.destroy();
    this.finish({ code: CloseCode.abnormal, reason: "the connection was dropped" });
  }

  private sendClose(code: number, reason: string): void {
    if (this.closeSent) return;
    this.closeSent = true;
    const reasonBytes = Buffer.from(reason, "utf8").subarray(0, 123);
    const payload = Buffer.allocUnsafe(2 + reasonBytes.length);
    payload.writeUInt16BE(code, 0);
    reasonBytes.copy(payload, 2);
    void this.writer.write(encodeFrame(Opcode.close, payload)).catch(() => undefined);
  }

  private receive(chunk: Uint8Array): void {
    if (this.finished || this.closeReceived !== undefined) return;
    try {
      for (const frame of this.decoder.push(chunk)) {
        this.handleFrame(frame);
        if (this.closeReceived !== undefined) return;
      }
    } catch (err) {
      const code = err instanceof WebSocketProtocolError ? err.closeCode : CloseCode.internalError;
      this.sendClose(code, errorMessage(err));
      this.writer.end();
      this.finish({ code, reason: errorMessage(err) });
    }
  }

  private handleFrame(frame: WireFrame): void {
    const { opcode, payload } = frame;
    if (opcode >= 0x8) {
      if (!frame.fin || payload.length > 125) throw new WebSocketProtocolError(CloseCode.protocolError, "control frames must be whole and at most 125 bytes");
      if (opcode === Opcode.ping) {
        if (!this.closeSent) void this.writer.write(encodeFrame(Opcode.pong, payload)).catch(() => undefined);
      } else if (opcode === Opcode.close) {
        this.receiveClose(payload);
      } else if (opcode !== Opcode.pong) {
        throw new WebSocketProtocolError(CloseCode.protocolError, `unknown control opcode ${opcode}`);
      }
      return;
    }
    if (opcode === Opcode.continuation) {
      if (this.fragmentOpcode === 0) throw new WebSocketProtocolError(CloseCode.protocolError, "continuation frame without a message to continue");
    } else if (opcode === Opcode.text || opcode === Opcode.binary) {
      if (this.fragmentOpcode !== 0) throw new WebSocketProtocolError(CloseCode.protocolError, "new message before the previous one was finished");
      this.fragmentOpcode = opcode;
    } else {
      throw new WebSocketProtocolError(CloseCode.protocolError, `unknown opcode ${opcode}`);
    }
    this.fragments.push(payload);
    this.fragmentBytes += payload.length;
    if (this.fragmentBytes > MAX_MESSAGE_BYTES) throw new WebSocketProtocolError(CloseCode.tooBig, "message too large");
    if (!frame.fin) return;
    const data = this.fragments.length === 1 ? (this.fragments[0] ?? Buffer.alloc(0)) : Buffer.concat(this.fragments);
    const binary = this.fragmentOpcode === Opcode.binary;
    this.fragments = [];
    this.fragmentBytes = 0;
    this.fragmentOpcode = 0;
    if (!binary) {
      try {
        this.utf8.decode(data);
      } catch {
        throw new WebSocketProtocolError(CloseCode.invalidPayload, "text message is not valid UTF-8");
      }
    }
    const message = { data, binary };
    if (this.messageListener === undefined) this.earlyMessages.push(message);
    else this.messageListener(message);
  }

  private receiveClose(payload: Buffer): void {
    if (payload.length === 1) throw new WebSocketProtocolError(CloseCode.protocolError, "close frame with a one-byte payload");
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : CloseCode.noStatus;
    const reason = payload.length > 2 ? payload.toString("utf8", 2) : "";
    this.closeReceived = { code, reason };
    // Echo the client's code, as RFC 6455 section 5.5.1 suggests; then the server closes TCP first.
    this.sendClose(code === CloseCode.noStatus ? CloseCode.normal : code, "");
    this.writer.end();
    this.finish(this.closeReceived);
  }

  private finish(close: WebSocketClose): void {
    if (this.finished) return;
    this.finished = true;
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    this.abortController.abort(new Error(`websocket closed: ${close.code} ${close.reason}`.trim()));
    this.resolveClosed(close);
    if (!this.socket.destroyed && this.socket.writableEnded) {
      // Give the kernel a moment to send what is queued, then let go.
      setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS).unref();
    }
  }
}
