/**
 * Where received messages are decoded: dbus-next reads its socket through one function of its message
 * module (unmarshalMessages), called once per connection after authentication. vks puts its own reader
 * in that place: it cuts the stream into messages as dbus-next does and hands the ones a BusConnection
 * takes (method returns, errors and signals wire-decode.ts can decode) straight to that connection;
 * everything else (method calls to vks, the Hello reply dbus-next waits for, a message the decoder does
 * not take) goes through dbus-next's own decoding and on to dbus-next, as before. Messages keep their
 * order whichever way they go: both are delivered synchronously, one message after the other.
 *
 * When dbus-next's module does not have the expected shape (a different version), nothing is replaced
 * and dbus-next decodes everything.
 */
import DBusBuffer from "dbus-next/lib/dbus-buffer.js";
import headerSignature from "dbus-next/lib/header-signature.json";
import dbusMessageModule from "dbus-next/lib/message.js";
import { FIXED_HEADER_LENGTH, MESSAGE_TYPE, decodeMessage, type IncomingMessage } from "./wire-decode.ts";

/** Takes a decoded message; false hands it back to dbus-next. */
export type MessageSink = (message: IncomingMessage) => boolean;

interface ReadableSocket {
  read(size?: number): Buffer | { data: Buffer; fds?: number[] } | null;
  on(event: "readable", listener: () => void): unknown;
}

/** The type of the header fields' array elements, (yv), as dbus-next parses it. */
const HEADER_FIELD_TYPE: unknown = headerSignature[0]?.child[0];
/** The header field names dbus-next gives its raw messages, by field code (constants.headerTypeName). */
const HEADER_FIELD_NAMES = [null, "path", "interface", "member", "errorName", "replySerial", "destination", "sender", "signature", "unixFd"];

const sinks = new WeakMap<object, MessageSink>();

/** From now on, messages read from `stream` that `sink` takes go to it instead of through dbus-next. */
export function routeMessages(stream: object, sink: MessageSink): void {
  sinks.set(stream, sink);
}

type RawMessage = Record<string, unknown>;

/** dbus-next's own decoding of one message, into the raw form its connection expects (message.js). */
function dbusNextRaw(fixed: Buffer, rest: Buffer, fds: number[] | undefined, options: unknown): RawMessage {
  const littleEndian = fixed[0] === 0x6c;
  const fieldsLength = littleEndian ? fixed.readUInt32LE(12) : fixed.readUInt32BE(12);
  const bodyLength = littleEndian ? fixed.readUInt32LE(4) : fixed.readUInt32BE(4);
  const buffer = new DBusBuffer(rest, 0, fixed[0], fds, options);
  const fields = buffer.readArray(HEADER_FIELD_TYPE, fieldsLength) as [number, [unknown, [unknown]]][];
  buffer.align(3);
  const raw: RawMessage = { serial: littleEndian ? fixed.readUInt32LE(8) : fixed.readUInt32BE(8) };
  for (const [code, [, [value]]] of fields) {
    const name = HEADER_FIELD_NAMES[code];
    if (name) raw[name] = value;
  }
  raw.type = fixed[1];
  raw.flags = fixed[2];
  if (bodyLength > 0 && typeof raw.signature === "string" && raw.signature !== "") raw.body = buffer.read(raw.signature);
  return raw;
}

/** Length of the message starting at `offset`, from its 16 fixed bytes (either byte order). */
function frameLength(buffer: Buffer, offset: number): number {
  const littleEndian = buffer[offset] === 0x6c;
  const bodyLength = littleEndian ? buffer.readUInt32LE(offset + 4) : buffer.readUInt32BE(offset + 4);
  const fieldsLength = littleEndian ? buffer.readUInt32LE(offset + 12) : buffer.readUInt32BE(offset + 12);
  return FIXED_HEADER_LENGTH + Math.ceil(fieldsLength / 8) * 8 + bodyLength;
}

/**
 * The reader put in dbus-next's place. It takes everything the socket has at each readable event and
 * cuts messages out of it itself: reading each message's header and rest separately, as dbus-next
 * does, cost more in the stream's buffer management than decoding them. Same order, same calls to
 * onMessage for what it does not take.
 */
function unmarshalMessages(stream: ReadableSocket, onMessage: (raw: RawMessage) => void, options: unknown): void {
  /** Received bytes not yet a whole message. */
  let chunks: Buffer[] = [];
  let buffered = 0;
  const deliver = (frame: Buffer): void => {
    const sink = sinks.get(stream);
    if (sink !== undefined) {
      const decoded = decodeMessage(frame);
      if (decoded !== undefined && decoded.type !== MESSAGE_TYPE.methodCall && sink(decoded)) return;
    }
    onMessage(dbusNextRaw(frame.subarray(0, FIXED_HEADER_LENGTH), frame.subarray(FIXED_HEADER_LENGTH), undefined, options));
  };
  const take = (chunk: Buffer): void => {
    chunks.push(chunk);
    buffered += chunk.length;
    while (buffered >= FIXED_HEADER_LENGTH) {
      let first = chunks[0] as Buffer;
      if (first.length < FIXED_HEADER_LENGTH) {
        first = Buffer.concat(chunks);
        chunks = [first];
      }
      const length = frameLength(first, 0);
      if (buffered < length) return;
      if (first.length < length) {
        first = Buffer.concat(chunks);
        chunks = [first];
      }
      // Everything whole in the first buffer goes now, without copying.
      let offset = 0;
      while (first.length - offset >= FIXED_HEADER_LENGTH) {
        const next = frameLength(first, offset);
        if (first.length - offset < next) break;
        deliver(first.subarray(offset, offset + next));
        offset += next;
      }
      buffered -= offset;
      if (offset === first.length) chunks.shift();
      else chunks[0] = first.subarray(offset);
    }
  };
  stream.on("readable", () => {
    for (let read = stream.read(); read !== null; read = stream.read()) take(Buffer.isBuffer(read) ? read : read.data);
  });
}

function install(): boolean {
  const module: unknown = dbusMessageModule;
  if (typeof module !== "object" || module === null || typeof Reflect.get(module, "unmarshalMessages") !== "function") return false;
  if (typeof DBusBuffer !== "function" || HEADER_FIELD_TYPE === undefined) return false;
  Reflect.set(module, "unmarshalMessages", unmarshalMessages);
  return true;
}

/** Whether vks' reader is in place (false: dbus-next decodes every message). */
export const directDecoding = install();
