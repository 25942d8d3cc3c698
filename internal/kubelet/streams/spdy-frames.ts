/**
 * SPDY/3 framing (the wire format of SPDY/3.1 as moby/spdystream, and so every Kubernetes client, speaks
 * it): frame headers, an incremental frame reader, frame encoders, and name/value header blocks
 * compressed with zlib primed with the SPDY/3 dictionary. Header compression keeps one zlib context
 * per direction for the whole connection and ends every block with Z_SYNC_FLUSH, as the draft requires.
 */
import zlib from "node:zlib";

export const SPDY_VERSION = 3;
/** A frame's length field has 24 bits. */
export const MAX_FRAME_PAYLOAD = 0xffffff;

export const FrameType = {
  synStream: 1,
  synReply: 2,
  rstStream: 3,
  settings: 4,
  ping: 6,
  goAway: 7,
  headers: 8,
  windowUpdate: 9,
} as const;

export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;

export const RstStatus = {
  protocolError: 1,
  invalidStream: 2,
  refusedStream: 3,
  unsupportedVersion: 4,
  cancel: 5,
  internalError: 6,
  flowControlError: 7,
  streamInUse: 8,
  streamAlreadyClosed: 9,
  frameTooLarge: 11,
} as const;

export const GoAwayStatus = { ok: 0, protocolError: 1, internalError: 2 } as const;

export const SETTINGS_INITIAL_WINDOW_SIZE = 7;

export interface DataFrame {
  kind: "data";
  streamId: number;
  flags: number;
  data: Buffer;
}

export interface ControlFrame {
  kind: "control";
  version: number;
  type: number;
  flags: number;
  payload: Buffer;
}

export type Frame = DataFrame | ControlFrame;

export class SpdyProtocolError extends Error {
  override readonly name = "SpdyProtocolError";
}

/** Splits a byte stream into frames, however the bytes were chunked (one byte at a time included). */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  push(chunk: Uint8Array): Frame[] {
    if (chunk.byteLength > 0) {
      this.pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.pendingBytes += chunk.byteLength;
    }
    const frames: Frame[] = [];
    while (this.pendingBytes >= 8) {
      const header = this.peek(8);
      const length = header.readUIntBE(5, 3);
      if (this.pendingBytes < 8 + length) break;
      const whole = this.take(8 + length);
      const payload = whole.subarray(8);
      const flags = whole[4] ?? 0;
      if ((whole[0] ?? 0) & 0x80) {
        frames.push({ kind: "control", version: whole.readUInt16BE(0) & 0x7fff, type: whole.readUInt16BE(2), flags, payload });
      } else {
        frames.push({ kind: "data", streamId: whole.readUInt32BE(0) & 0x7fffffff, flags, data: payload });
      }
    }
    return frames;
  }

  private peek(count: number): Buffer {
    if ((this.pending[0]?.length ?? 0) < count) this.pending = [Buffer.concat(this.pending)];
    return (this.pending[0] ?? Buffer.alloc(0)).subarray(0, count);
  }

  private take(count: number): Buffer {
    if ((this.pending[0]?.length ?? 0) < count) this.pending = [Buffer.concat(this.pending)];
    const first = this.pending[0] ?? Buffer.alloc(0);
    const taken = first.subarray(0, count);
    if (first.length === count) this.pending.shift();
    else this.pending[0] = first.subarray(count);
    this.pendingBytes -= count;
    return taken;
  }
}

export function encodeControlFrame(type: number, flags: number, payload: Uint8Array): Buffer {
  if (payload.byteLength > MAX_FRAME_PAYLOAD) throw new SpdyProtocolError(`control frame of ${payload.byteLength} bytes is too large`);
  const frame = Buffer.allocUnsafe(8 + payload.byteLength);
  frame.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  frame.writeUInt16BE(type, 2);
  frame.writeUInt8(flags, 4);
  frame.writeUIntBE(payload.byteLength, 5, 3);
  frame.set(payload, 8);
  return frame;
}

export function encodeDataFrame(streamId: number, flags: number, data: Uint8Array): Buffer {
  if (data.byteLength > MAX_FRAME_PAYLOAD) throw new SpdyProtocolError(`data frame of ${data.byteLength} bytes is too large`);
  const frame = Buffer.allocUnsafe(8 + data.byteLength);
  frame.writeUInt32BE(streamId & 0x7fffffff, 0);
  frame.writeUInt8(flags, 4);
  frame.writeUIntBE(data.byteLength, 5, 3);
  frame.set(data, 8);
  return frame;
}

function words(...values: number[]): Buffer {
  const buffer = Buffer.allocUnsafe(values.length * 4);
  values.forEach((value, index) => buffer.writeUInt32BE(value >>> 0, index * 4));
  return buffer;
}

export function encodeRstStream(streamId: number, status: number): Buffer {
  return encodeControlFrame(FrameType.rstStream, 0, words(streamId & 0x7fffffff, status));
}

export function encodePing(id: number): Buffer {
  return encodeControlFrame(FrameType.ping, 0, words(id));
}

export function encodeGoAway(lastGoodStreamId: number, status: number): Buffer {
  return encodeControlFrame(FrameType.goAway, 0, words(lastGoodStreamId & 0x7fffffff, status));
}

export function encodeWindowUpdate(streamId: number, delta: number): Buffer {
  return encodeControlFrame(FrameType.windowUpdate, 0, words(streamId & 0x7fffffff, delta & 0x7fffffff));
}

export function encodeSettings(entries: ReadonlyArray<{ id: number; value: number }>): Buffer {
  const payload = Buffer.allocUnsafe(4 + entries.length * 8);
  payload.writeUInt32BE(entries.length, 0);
  entries.forEach((entry, index) => {
    payload.writeUInt32BE(entry.id & 0xffffff, 4 + index * 8);
    payload.writeUInt32BE(entry.value >>> 0, 8 + index * 8);
  });
  return encodeControlFrame(FrameType.settings, 0, payload);
}

export function decodeSettings(payload: Buffer): Array<{ id: number; value: number }> {
  if (payload.length < 4) throw new SpdyProtocolError("SETTINGS frame too short");
  const count = payload.readUInt32BE(0);
  if (payload.length < 4 + count * 8) throw new SpdyProtocolError("SETTINGS frame shorter than its entry count");
  const entries: Array<{ id: number; value: number }> = [];
  for (let index = 0; index < count; index++) {
    entries.push({ id: payload.readUInt32BE(4 + index * 8) & 0xffffff, value: payload.readUInt32BE(8 + index * 8) });
  }
  return entries;
}

/** Header names are lowercase; a name may carry several values (NUL-separated on the wire). */
export type SpdyHeaders = Map<string, string[]>;

export function encodeHeaderBlock(headers: SpdyHeaders): Buffer {
  const parts: Buffer[] = [words(headers.size)];
  for (const [name, values] of headers) {
    const nameBytes = Buffer.from(name.toLowerCase(), "utf8");
    const valueBytes = Buffer.from(values.join("\0"), "utf8");
    parts.push(words(nameBytes.length), nameBytes, words(valueBytes.length), valueBytes);
  }
  return Buffer.concat(parts);
}

export function decodeHeaderBlock(block: Buffer): SpdyHeaders {
  const headers: SpdyHeaders = new Map();
  let offset = 0;
  const readLength = (): number => {
    if (offset + 4 > block.length) throw new SpdyProtocolError("header block truncated");
    const value = block.readUInt32BE(offset);
    offset += 4;
    if (offset + value > block.length) throw new SpdyProtocolError("header block truncated");
    return value;
  };
  const count = readLength();
  for (let index = 0; index < count; index++) {
    const nameLength = readLength();
    const name = block.toString("utf8", offset, offset + nameLength).toLowerCase();
    offset += nameLength;
    const valueLength = readLength();
    const values = block.toString("utf8", offset, offset + valueLength).split("\0");
    offset += valueLength;
    headers.set(name, [...(headers.get(name) ?? []), ...values]);
  }
  return headers;
}

/** SPDY/3 draft section 2.6.10.1: length-prefixed header names and values, then a run of raw text. */
const DICTIONARY_ENTRIES = [
  "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
  "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
  "content-base", "content-encoding", "content-language", "content-length", "content-location",
  "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
  "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
  "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
  "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
  "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
  "public", "set-cookie", "keep-alive", "origin",
];
const DICTIONARY_TAIL =
  "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505" +
  "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized" +
  "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable" +
  "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT" +
  "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain," +
  "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

export const HEADER_DICTIONARY: Buffer = Buffer.concat([
  ...DICTIONARY_ENTRIES.flatMap((entry) => [words(entry.length), Buffer.from(entry, "latin1")]),
  Buffer.from(DICTIONARY_TAIL, "latin1"),
]);

/**
 * One direction's zlib context. node:zlib has no synchronous flush on a long-lived context (Bun's
 * `_processChunk` breaks on the second call), so each block goes through the stream and waits for its
 * Z_SYNC_FLUSH; blocks are chained so they pass through the context in call order.
 */
class ZlibBlockCodec {
  private chain: Promise<unknown> = Promise.resolve();
  private failure: Error | undefined;

  constructor(private readonly stream: zlib.Deflate | zlib.Inflate) {
    stream.on("error", (err: Error) => {
      this.failure = err;
    });
  }

  process(block: Uint8Array): Promise<Buffer> {
    const result = this.chain.then(() => this.run(block));
    this.chain = result.catch(() => undefined);
    return result;
  }

  close(): void {
    this.stream.destroy();
  }

  private run(block: Uint8Array): Promise<Buffer> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const output: Buffer[] = [];
      const onData = (chunk: Buffer): void => {
        output.push(chunk);
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(err);
      };
      const cleanup = (): void => {
        this.stream.off("data", onData);
        this.stream.off("error", onError);
      };
      this.stream.on("data", onData);
      this.stream.once("error", onError);
      this.stream.write(block);
      this.stream.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        cleanup();
        if (this.failure !== undefined) reject(this.failure);
        else resolve(Buffer.concat(output));
      });
    });
  }
}

export class HeaderCompressor {
  private readonly codec = new ZlibBlockCodec(zlib.createDeflate({ dictionary: HEADER_DICTIONARY, level: zlib.constants.Z_DEFAULT_COMPRESSION }));

  compress(headers: SpdyHeaders): Promise<Buffer> {
    return this.codec.process(encodeHeaderBlock(headers));
  }

  close(): void {
    this.codec.close();
  }
}

export class HeaderDecompressor {
  private readonly codec = new ZlibBlockCodec(zlib.createInflate({ dictionary: HEADER_DICTIONARY }));

  async decompress(compressed: Uint8Array): Promise<SpdyHeaders> {
    return decodeHeaderBlock(await this.codec.process(compressed));
  }

  close(): void {
    this.codec.close();
  }
}
