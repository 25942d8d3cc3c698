/**
 * A bare WebSocket client for tests (plain TCP to a node:http server), so the channel protocols kubectl
 * does not use (v4, base64, port-forward channels) and refusals can be driven byte for byte.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { FrameDecoder, type WireFrame } from "../../../internal/kubelet/streams/websocket.ts";

export function maskedFrame(opcode: number, payload: Uint8Array, fin = true): Buffer {
  const length = payload.byteLength;
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.alloc(headerLength + 4 + length);
  frame[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) frame[1] = 0x80 | length;
  else if (length < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  const mask = randomBytes(4);
  mask.copy(frame, headerLength);
  for (let index = 0; index < length; index++) frame[headerLength + 4 + index] = (payload[index] ?? 0) ^ (mask[index & 3] ?? 0);
  return frame;
}

export interface HttpServerForTest {
  port: number;
  close(): void;
}

export async function startUpgradeServer(onUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void): Promise<HttpServerForTest> {
  const server: Server = createServer((_request, response) => response.writeHead(404).end());
  server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => undefined);
    onUpgrade(request, socket, head);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

export interface RawResponse {
  status: number;
  head: string;
  socket: Socket;
  /** Bytes after the response head. */
  rest: Buffer;
}

/** Sends a raw HTTP request and returns the response head and whatever followed it. */
export async function rawRequest(port: number, request: string): Promise<RawResponse> {
  const socket = connect(port, "127.0.0.1");
  socket.write(request);
  let buffered = Buffer.alloc(0);
  return await new Promise<RawResponse>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.pause();
      const head = buffered.subarray(0, end).toString("latin1");
      resolve({ status: Number(head.split(" ")[1]), head, socket, rest: buffered.subarray(end + 4) });
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
}

/** Reads the rest of a refused response (the body) until the server closes. */
export async function readBody(response: RawResponse): Promise<string> {
  const chunks: Buffer[] = [response.rest];
  response.socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  response.socket.resume();
  await new Promise((resolve) => response.socket.once("close", resolve));
  return Buffer.concat(chunks).toString();
}

export class TestWebSocket {
  private readonly decoder = new FrameDecoder(false);
  private readonly frames: WireFrame[] = [];
  private waiters: Array<() => void> = [];
  closedByServer = false;

  constructor(
    readonly response: RawResponse,
    readonly protocol: string,
  ) {
    const take = (chunk: Buffer): void => {
      this.frames.push(...this.decoder.push(chunk));
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    };
    if (response.rest.length > 0) take(response.rest);
    response.socket.on("data", take);
    response.socket.once("close", () => {
      this.closedByServer = true;
      for (const wake of this.waiters.splice(0)) wake();
    });
    response.socket.resume();
  }

  send(opcode: number, payload: Uint8Array | string, fin = true): void {
    this.response.socket.write(maskedFrame(opcode, typeof payload === "string" ? Buffer.from(payload) : payload, fin));
  }

  /** The next frame from the server, waiting up to `timeoutMs`. */
  async next(timeoutMs = 3000): Promise<WireFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) return frame;
      if (this.closedByServer) throw new Error("the server closed the connection");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("no frame from the server");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Data frames until the close frame, whose code is returned with them. */
  async untilClose(timeoutMs = 5000): Promise<{ messages: WireFrame[]; closeCode: number | undefined }> {
    const messages: WireFrame[] = [];
    for (;;) {
      const frame = await this.next(timeoutMs);
      if (frame.opcode === 0x8) return { messages, closeCode: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined };
      messages.push(frame);
    }
  }
}

export async function openWebSocket(port: number, path: string, protocols: string[], extraHeaders: string[] = []): Promise<TestWebSocket | RawResponse> {
  const key = randomBytes(16).toString("base64");
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    ...(protocols.length > 0 ? [`Sec-WebSocket-Protocol: ${protocols.join(", ")}`] : []),
    ...extraHeaders,
  ];
  const response = await rawRequest(port, lines.join("\r\n") + "\r\n\r\n");
  if (response.status !== 101) return response;
  const protocol = /\r\nSec-WebSocket-Protocol: ([^\r]*)/i.exec(response.head)?.[1] ?? "";
  return new TestWebSocket(response, protocol);
}
