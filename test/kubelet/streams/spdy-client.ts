/**
 * A scripted SPDY/3 client for unit tests: it talks to a SpdySession through an in-memory transport
 * whose incoming bytes the test feeds (whole, or one byte per read), and decodes what the server sends.
 */
import { Duplex } from "node:stream";
import {
  type ControlFrame,
  encodeControlFrame,
  encodeDataFrame,
  type Frame,
  FrameReader,
  FrameType,
  HeaderCompressor,
  HeaderDecompressor,
  type SpdyHeaders,
} from "../../../internal/kubelet/streams/spdy-frames.ts";

/** The session's side of an in-memory connection: writes go to `onWrite`, reads come from feed(). */
export class MemoryTransport extends Duplex {
  constructor(private readonly onWrite: (chunk: Buffer) => void) {
    super();
  }

  feed(bytes: Uint8Array): void {
    this.push(Buffer.from(bytes));
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.onWrite(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.emit("ended-by-server");
    callback();
  }
}

export interface DecodedControl {
  type: number;
  flags: number;
  streamId: number;
  /** Second word (RST status, GOAWAY status, WINDOW_UPDATE delta), when the frame has one. */
  value: number;
  headers?: SpdyHeaders;
}

export class TestSpdyClient {
  readonly transport: MemoryTransport;
  private readonly reader = new FrameReader();
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor = new HeaderDecompressor();
  private readonly received: Array<Frame | DecodedControl> = [];
  private waiters: Array<() => void> = [];
  private decoding: Promise<unknown> = Promise.resolve();
  /** Feed incoming bytes one at a time, each in its own read. */
  byteByByte = false;

  /** With a sink, frames go there (a real socket) and the test feeds the socket's bytes to fromServer(). */
  constructor(private readonly sink?: (frame: Buffer) => void) {
    this.transport = new MemoryTransport((chunk) => this.fromServer(chunk));
  }

  async synStream(streamId: number, headers: Record<string, string>, flags = 0): Promise<void> {
    const block = await this.compressor.compress(new Map(Object.entries(headers).map(([name, value]) => [name, [value]])));
    const payload = Buffer.alloc(10 + block.length);
    payload.writeUInt32BE(streamId, 0);
    block.copy(payload, 10);
    this.send(encodeControlFrame(FrameType.synStream, flags, payload));
  }

  data(streamId: number, bytes: Uint8Array | string, fin = false): void {
    this.send(encodeDataFrame(streamId, fin ? 1 : 0, typeof bytes === "string" ? Buffer.from(bytes) : bytes));
  }

  control(type: number, words: number[], flags = 0): void {
    const payload = Buffer.alloc(words.length * 4);
    words.forEach((word, index) => payload.writeUInt32BE(word >>> 0, index * 4));
    this.send(encodeControlFrame(type, flags, payload));
  }

  send(frame: Buffer): void {
    if (this.sink !== undefined) {
      this.sink(frame);
      return;
    }
    if (!this.byteByByte) {
      this.transport.feed(frame);
      return;
    }
    for (const byte of frame) this.transport.feed(Buffer.of(byte));
  }

  /** Waits for the next frame from the server that `match` accepts, and removes it. */
  async next<T extends Frame | DecodedControl>(match: (frame: Frame | DecodedControl) => frame is T, timeoutMs = 2000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.decoding;
      const index = this.received.findIndex(match);
      if (index >= 0) return this.received.splice(index, 1)[0] as T;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame; have ${JSON.stringify(this.received.map((frame) => ("kind" in frame ? frame.kind : frame.type)))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Everything received so far (decoded), without waiting. */
  async drain(): Promise<Array<Frame | DecodedControl>> {
    await this.decoding;
    return this.received.splice(0);
  }

  fromServer(chunk: Buffer): void {
    for (const frame of this.reader.push(chunk)) {
      this.decoding = this.decoding.then(async () => {
        this.received.push(frame.kind === "data" ? frame : await this.decodeControl(frame));
        const waiters = this.waiters;
        this.waiters = [];
        for (const wake of waiters) wake();
      });
    }
  }

  private async decodeControl(frame: ControlFrame): Promise<DecodedControl> {
    const payload = frame.payload;
    const streamId = payload.length >= 4 ? payload.readUInt32BE(0) & 0x7fffffff : 0;
    const value = payload.length >= 8 ? payload.readUInt32BE(4) : 0;
    if (frame.type === FrameType.synReply || frame.type === FrameType.headers) {
      return { type: frame.type, flags: frame.flags, streamId, value: 0, headers: await this.decompressor.decompress(payload.subarray(4)) };
    }
    return { type: frame.type, flags: frame.flags, streamId, value };
  }
}

export const isControl =
  (type: number, streamId?: number) =>
  (frame: Frame | DecodedControl): frame is DecodedControl =>
    !("kind" in frame) && frame.type === type && (streamId === undefined || frame.streamId === streamId);

export const isData =
  (streamId: number) =>
  (frame: Frame | DecodedControl): frame is Extract<Frame, { kind: "data" }> =>
    "kind" in frame && frame.kind === "data" && frame.streamId === streamId;
