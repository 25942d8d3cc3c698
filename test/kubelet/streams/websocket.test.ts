import { describe, expect, test } from "bun:test";
import { acceptKey, CloseCode, encodeFrame, FrameDecoder, Opcode, WebSocketConnection } from "../../../internal/kubelet/streams/websocket.ts";
import { MemoryTransport } from "./spdy-client.ts";
import { maskedFrame } from "./ws-client.ts";

describe("WebSocket framing", () => {
  test("Sec-WebSocket-Accept is computed as RFC 6455 shows", () => {
    expect(acceptKey("dGhlIHNhbXBsZSBub25jZQ==")).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  });

  test("masked frames of every length class decode, fed one byte at a time", () => {
    const payloads = [Buffer.alloc(0), Buffer.alloc(125, 1), Buffer.alloc(126, 2), Buffer.alloc(70_000, 3)];
    const wire = Buffer.concat(payloads.map((payload) => maskedFrame(Opcode.binary, payload)));
    const decoder = new FrameDecoder();
    const frames = [];
    for (const byte of wire) frames.push(...decoder.push(Buffer.of(byte)));
    expect(frames.map((frame) => frame.payload)).toEqual(payloads);
  });

  test("server frames are unmasked and use the right length encoding", () => {
    const decoder = new FrameDecoder(false);
    for (const length of [0, 125, 126, 65535, 65536]) {
      const [frame] = decoder.push(encodeFrame(Opcode.binary, Buffer.alloc(length, 7)));
      expect(frame?.payload.length).toBe(length);
      expect(frame?.fin).toBe(true);
    }
  });

  test("an unmasked client frame is a protocol error", () => {
    expect(() => new FrameDecoder().push(encodeFrame(Opcode.binary, Buffer.from("x")))).toThrow("masked");
  });
});

function connection(): { client: MemoryTransport; socket: MemoryTransport; fromServer: Buffer[]; connection: WebSocketConnection } {
  const fromServer: Buffer[] = [];
  const socket = new MemoryTransport((chunk) => fromServer.push(chunk));
  return { client: socket, socket, fromServer, connection: new WebSocketConnection(socket, "v5.channel.k8s.io") };
}

function serverFrames(fromServer: Buffer[]): Array<{ opcode: number; payload: Buffer }> {
  return new FrameDecoder(false).push(Buffer.concat(fromServer)).map(({ opcode, payload }) => ({ opcode, payload }));
}

describe("WebSocket connection", () => {
  test("reassembles a fragmented message with a ping in the middle, and answers the ping", async () => {
    const { socket, fromServer, connection: ws } = connection();
    const messages: Array<{ data: string; binary: boolean }> = [];
    ws.onMessage((message) => messages.push({ data: message.data.toString(), binary: message.binary }));
    const wire = Buffer.concat([
      maskedFrame(Opcode.text, Buffer.from("hel"), false),
      maskedFrame(Opcode.ping, Buffer.from("are you there")),
      maskedFrame(Opcode.continuation, Buffer.from("lo "), false),
      maskedFrame(Opcode.continuation, Buffer.from("wörld"), true),
      maskedFrame(Opcode.binary, Buffer.from([1, 2, 3])),
    ]);
    for (const byte of wire) socket.feed(Buffer.of(byte));
    await Bun.sleep(10);
    expect(messages).toEqual([
      { data: "hello wörld", binary: false },
      { data: "\x01\x02\x03", binary: true },
    ]);
    expect(serverFrames(fromServer)).toEqual([{ opcode: Opcode.pong, payload: Buffer.from("are you there") }]);
  });

  test("a close from the client is echoed, and the connection ends", async () => {
    const { socket, fromServer, connection: ws } = connection();
    const ended = new Promise((resolve) => socket.once("ended-by-server", resolve));
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(CloseCode.goingAway, 0);
    socket.feed(maskedFrame(Opcode.close, payload));
    expect((await ws.closed).code).toBe(CloseCode.goingAway);
    await ended;
    const [close] = serverFrames(fromServer);
    expect(close?.opcode).toBe(Opcode.close);
    expect(close?.payload.readUInt16BE(0)).toBe(CloseCode.goingAway);
    expect(ws.aborted.aborted).toBe(true);
  });

  test("close() sends 1000 and waits for the client's close", async () => {
    const { socket, fromServer, connection: ws } = connection();
    ws.close();
    const [close] = serverFrames(fromServer);
    expect(close?.payload.readUInt16BE(0)).toBe(CloseCode.normal);
    expect(ws.aborted.aborted).toBe(false);
    socket.feed(maskedFrame(Opcode.close, close?.payload ?? Buffer.alloc(0)));
    expect((await ws.closed).code).toBe(CloseCode.normal);
  });

  test("invalid UTF-8 in a text message closes with 1007", async () => {
    const { socket, fromServer, connection: ws } = connection();
    socket.feed(maskedFrame(Opcode.text, Buffer.from([0xff, 0xfe])));
    expect((await ws.closed).code).toBe(CloseCode.invalidPayload);
    expect(serverFrames(fromServer)[0]?.payload.readUInt16BE(0)).toBe(CloseCode.invalidPayload);
  });

  test("a continuation without a message, or an unmasked frame, closes with 1002", async () => {
    const first = connection();
    first.socket.feed(maskedFrame(Opcode.continuation, Buffer.from("x")));
    expect((await first.connection.closed).code).toBe(CloseCode.protocolError);
    const second = connection();
    second.socket.feed(encodeFrame(Opcode.binary, Buffer.from("x")));
    expect((await second.connection.closed).code).toBe(CloseCode.protocolError);
  });

  test("a socket that ends without a close frame is an abnormal closure", async () => {
    const { socket, connection: ws } = connection();
    socket.push(null);
    expect((await ws.closed).code).toBe(CloseCode.abnormal);
  });
});
