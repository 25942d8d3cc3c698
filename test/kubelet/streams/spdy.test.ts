import { describe, expect, test } from "bun:test";
import { SpdySession, type SpdyStream } from "../../../internal/kubelet/streams/spdy.ts";
import {
  decodeHeaderBlock,
  encodeDataFrame,
  encodeHeaderBlock,
  FLAG_FIN,
  FrameReader,
  FrameType,
  HEADER_DICTIONARY,
  HeaderCompressor,
  HeaderDecompressor,
  RstStatus,
  SETTINGS_INITIAL_WINDOW_SIZE,
} from "../../../internal/kubelet/streams/spdy-frames.ts";
import { isControl, isData, TestSpdyClient } from "./spdy-client.ts";

describe("SPDY framing", () => {
  test("the header dictionary is the draft's 1423 bytes", () => {
    expect(HEADER_DICTIONARY.length).toBe(1423);
    expect(HEADER_DICTIONARY.subarray(0, 11)).toEqual(Buffer.from("\0\0\0\x07options", "latin1"));
    expect(HEADER_DICTIONARY.subarray(-6).toString()).toBe("enq=0.");
  });

  test("frames split at every byte boundary are reassembled", () => {
    const frames = Buffer.concat([encodeDataFrame(1, FLAG_FIN, Buffer.from("hello")), encodeDataFrame(3, 0, Buffer.alloc(0)), encodeDataFrame(5, 0, Buffer.from("x"))]);
    const reader = new FrameReader();
    const seen = [];
    for (const byte of frames) seen.push(...reader.push(Buffer.of(byte)));
    expect(seen.map((frame) => (frame.kind === "data" ? [frame.streamId, frame.flags, frame.data.toString()] : []))).toEqual([
      [1, FLAG_FIN, "hello"],
      [3, 0, ""],
      [5, 0, "x"],
    ]);
  });

  test("header blocks round-trip with repeated values, through one zlib context per direction", async () => {
    const headers = new Map([
      ["streamtype", ["stdout"]],
      ["x-many", ["a", "b"]],
    ]);
    expect(decodeHeaderBlock(encodeHeaderBlock(headers))).toEqual(headers);
    const compressor = new HeaderCompressor();
    const decompressor = new HeaderDecompressor();
    for (let round = 0; round < 3; round++) {
      const block = await compressor.compress(new Map([["port", [String(8080 + round)]]]));
      // Z_SYNC_FLUSH: every block ends on the empty stored block.
      expect(block.subarray(-4)).toEqual(Buffer.from([0, 0, 0xff, 0xff]));
      expect(await decompressor.decompress(block)).toEqual(new Map([["port", [String(8080 + round)]]]));
    }
    compressor.close();
    decompressor.close();
  });
});

function openSession(client: TestSpdyClient): { session: SpdySession; streams: SpdyStream[] } {
  const session = new SpdySession(client.transport);
  const streams: SpdyStream[] = [];
  session.onStream((stream) => {
    streams.push(stream);
    void stream.accept();
  });
  return { session, streams };
}

async function readAll(stream: SpdyStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream.iterator({ destroyOnReturn: false })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

for (const byteByByte of [false, true]) {
  describe(`SPDY session (${byteByByte ? "one byte per read" : "whole frames"})`, () => {
    test("replies to a stream, carries data both ways and half-closes each side", async () => {
      const client = new TestSpdyClient();
      client.byteByByte = byteByByte;
      const { streams } = openSession(client);
      await client.synStream(1, { streamtype: "stdin" });
      const reply = await client.next(isControl(FrameType.synReply, 1));
      expect(reply.headers?.size).toBe(0);
      const stream = streams[0];
      if (stream === undefined) throw new Error("no stream");
      expect(stream.header("streamType")).toBe("stdin");
      client.data(1, "from client");
      client.data(1, "", true);
      expect(await readAll(stream)).toBe("from client");
      stream.end("from server");
      const data = await client.next(isData(1));
      expect(data.data.toString()).toBe("from server");
      const fin = await client.next(isData(1));
      expect(fin.flags & FLAG_FIN).toBe(FLAG_FIN);
    });

    test("answers pings with odd ids and ignores its own", async () => {
      const client = new TestSpdyClient();
      client.byteByByte = byteByByte;
      openSession(client);
      client.control(FrameType.ping, [7]);
      const pong = await client.next(isControl(FrameType.ping));
      expect(pong.streamId).toBe(7);
      client.control(FrameType.ping, [8]);
      await Bun.sleep(20);
      expect((await client.drain()).length).toBe(0);
    });
  });
}

describe("SPDY session", () => {
  test("a reset from the client ends the stream; data for it is refused", async () => {
    const client = new TestSpdyClient();
    const { streams } = openSession(client);
    await client.synStream(1, { streamtype: "data" });
    await client.next(isControl(FrameType.synReply, 1));
    const stream = streams[0];
    if (stream === undefined) throw new Error("no stream");
    const closed = new Promise((resolve) => stream.once("close", resolve));
    client.control(FrameType.rstStream, [1, RstStatus.cancel]);
    await closed;
    client.data(1, "late");
    const rst = await client.next(isControl(FrameType.rstStream, 1));
    expect(rst.value).toBe(RstStatus.invalidStream);
  });

  test("destroying a half-open stream resets it", async () => {
    const client = new TestSpdyClient();
    const { streams } = openSession(client);
    await client.synStream(1, { streamtype: "data" });
    await client.next(isControl(FrameType.synReply, 1));
    streams[0]?.destroy();
    const rst = await client.next(isControl(FrameType.rstStream, 1));
    expect(rst.value).toBe(RstStatus.cancel);
  });

  test("stream ids must increase and be odd", async () => {
    const client = new TestSpdyClient();
    openSession(client);
    await client.synStream(3, { streamtype: "a" });
    await client.next(isControl(FrameType.synReply, 3));
    await client.synStream(1, { streamtype: "b" });
    expect((await client.next(isControl(FrameType.rstStream, 1))).value).toBe(RstStatus.protocolError);
    await client.synStream(4, { streamtype: "c" });
    expect((await client.next(isControl(FrameType.rstStream, 4))).value).toBe(RstStatus.protocolError);
  });

  test("data written before the reply waits for SYN_REPLY", async () => {
    const client = new TestSpdyClient();
    const session = new SpdySession(client.transport);
    let stream: SpdyStream | undefined;
    session.onStream((opened) => {
      stream = opened;
      opened.write("early");
    });
    await client.synStream(1, {});
    await Bun.sleep(20);
    expect((await client.drain()).length).toBe(0);
    await stream?.accept();
    const frames = await client.drain();
    expect(frames.map((frame) => ("kind" in frame ? "data" : frame.type))).toEqual([FrameType.synReply, "data"]);
  });

  test("sends WINDOW_UPDATE as the reader consumes", async () => {
    const client = new TestSpdyClient();
    const { streams } = openSession(client);
    await client.synStream(1, {});
    await client.next(isControl(FrameType.synReply, 1));
    for (let index = 0; index < 4; index++) client.data(1, Buffer.alloc(16 * 1024));
    const stream = streams[0];
    let consumed = 0;
    stream?.on("data", (chunk: Buffer) => {
      consumed += chunk.length;
    });
    // Batched: nothing before half a window was read, then exactly what was read.
    const update = await client.next(isControl(FrameType.windowUpdate, 1));
    expect(update.value).toBeGreaterThanOrEqual(32 * 1024);
    expect(update.value).toBeLessThanOrEqual(consumed);
  });

  test("a peer that keeps windows is never sent more than its window", async () => {
    const client = new TestSpdyClient();
    const { streams } = openSession(client);
    // SETTINGS: one entry, INITIAL_WINDOW_SIZE = 10000.
    client.control(FrameType.settings, [1, SETTINGS_INITIAL_WINDOW_SIZE, 10_000]);
    await client.synStream(1, {});
    await client.next(isControl(FrameType.synReply, 1));
    const stream = streams[0];
    if (stream === undefined) throw new Error("no stream");
    let written = false;
    stream.write(Buffer.alloc(25_000, 1), () => {
      written = true;
    });
    await Bun.sleep(30);
    const sent = (await client.drain()).filter((frame) => "kind" in frame).reduce((total, frame) => total + ("data" in frame ? frame.data.length : 0), 0);
    expect(sent).toBe(10_000);
    expect(written).toBe(false);
    client.control(FrameType.windowUpdate, [1, 20_000]);
    await Bun.sleep(30);
    const more = (await client.drain()).filter((frame) => "kind" in frame).reduce((total, frame) => total + ("data" in frame ? frame.data.length : 0), 0);
    expect(more).toBe(15_000);
    expect(written).toBe(true);
  });

  test("a peer that keeps no windows (spdystream) gets large writes at once", async () => {
    const client = new TestSpdyClient();
    const { streams } = openSession(client);
    await client.synStream(1, {});
    await client.next(isControl(FrameType.synReply, 1));
    await new Promise<void>((resolve) => streams[0]?.write(Buffer.alloc(1024 * 1024), () => resolve()));
    const sent = (await client.drain()).reduce((total, frame) => total + ("kind" in frame && frame.kind === "data" ? frame.data.length : 0), 0);
    expect(sent).toBe(1024 * 1024);
  });

  test("a reader that falls behind pauses the transport until it catches up", async () => {
    const client = new TestSpdyClient();
    const { streams } = openSession(client);
    await client.synStream(1, {});
    await client.next(isControl(FrameType.synReply, 1));
    for (let index = 0; index < 12; index++) client.data(1, Buffer.alloc(32 * 1024));
    await Bun.sleep(10);
    expect(client.transport.isPaused()).toBe(true);
    let read = 0;
    streams[0]?.on("data", (chunk: Buffer) => {
      read += chunk.length;
    });
    await Bun.sleep(10);
    expect(read).toBe(12 * 32 * 1024);
    expect(client.transport.isPaused()).toBe(false);
  });

  test("the connection closing aborts the session and ends its streams", async () => {
    const client = new TestSpdyClient();
    const { session, streams } = openSession(client);
    await client.synStream(1, {});
    await client.next(isControl(FrameType.synReply, 1));
    const streamClosed = new Promise((resolve) => streams[0]?.once("close", resolve));
    client.transport.destroy();
    await streamClosed;
    expect(session.aborted.aborted).toBe(true);
  });

  test("close() says GOAWAY and half-closes the transport", async () => {
    const client = new TestSpdyClient();
    const { session } = openSession(client);
    await client.synStream(5, {});
    await client.next(isControl(FrameType.synReply, 5));
    const ended = new Promise((resolve) => client.transport.once("ended-by-server", resolve));
    session.close();
    const goAway = await client.next(isControl(FrameType.goAway));
    expect(goAway.streamId).toBe(5);
    expect(goAway.value).toBe(0);
    await ended;
  });

  test("a corrupt header block is a session error: GOAWAY PROTOCOL or INTERNAL, then the end", async () => {
    const client = new TestSpdyClient();
    const { session } = openSession(client);
    const payload = Buffer.alloc(10 + 8, 0xee);
    payload.writeUInt32BE(1, 0);
    const { encodeControlFrame } = await import("../../../internal/kubelet/streams/spdy-frames.ts");
    client.send(encodeControlFrame(FrameType.synStream, 0, payload));
    const goAway = await client.next(isControl(FrameType.goAway));
    expect(goAway.value).not.toBe(0);
    expect(session.aborted.aborted).toBe(true);
  });
});
