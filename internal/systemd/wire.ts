/**
 * A direct encoder for the method calls vks sends most: those whose arguments are all strings (property
 * Gets, GetUnit, KillUnit's name…). dbus-next's generic marshaller builds each message through a
 * signature parser, per-value closures and a growing buffer: measured ~140 µs per Get on 2 busy cores,
 * which made the 3,000 Gets of `vks units ls` at 1,000 units cost more than systemd answering them.
 * Encoding the fixed layout by hand costs a few microseconds. Anything else (variants, arrays, numbers)
 * still goes through dbus-next; so does a call this encoder cannot prove valid, so that dbus-next's own
 * validation errors stay what the caller sees.
 */

/** D-Bus header field codes (specification, "Header Fields"). */
const FIELD = { path: 1, interface: 2, member: 3, destination: 6, signature: 8 } as const;
const METHOD_CALL = 1;
const PROTOCOL_VERSION = 1;
const LITTLE_ENDIAN = 0x6c; // 'l'

/** A method call as vks sends it (bus.ts), whether or not this encoder can take it. */
export interface MethodCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
}

const OBJECT_PATH = /^\/(?:[A-Za-z0-9_]+(?:\/[A-Za-z0-9_]+)*)?$/;
const ELEMENT = "[A-Za-z_][A-Za-z0-9_]*";
const INTERFACE_NAME = new RegExp(`^${ELEMENT}(?:\\.${ELEMENT})+$`);
const MEMBER_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Unique (`:1.42`) or well-known (`org.freedesktop.systemd1`) bus names. */
const BUS_NAME = /^(?::[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+|[A-Za-z_-][A-Za-z0-9_-]*(?:\.[A-Za-z_-][A-Za-z0-9_-]*)+)$/;
const STRINGS_ONLY = /^s*$/;
const MAX_NAME_LENGTH = 255;

/** Whether `call` is one this module encodes: all-string arguments and names D-Bus accepts as they are. */
function encodable(call: MethodCall): call is MethodCall & { body?: string[] } {
  const signature = call.signature ?? "";
  const body = call.body ?? [];
  if (!STRINGS_ONLY.test(signature) || body.length !== signature.length) return false;
  if (!body.every((value) => typeof value === "string" && !value.includes("\0"))) return false;
  return (
    OBJECT_PATH.test(call.path) &&
    call.interface.length <= MAX_NAME_LENGTH &&
    INTERFACE_NAME.test(call.interface) &&
    call.member.length <= MAX_NAME_LENGTH &&
    MEMBER_NAME.test(call.member) &&
    call.destination.length <= MAX_NAME_LENGTH &&
    BUS_NAME.test(call.destination)
  );
}

/** Writes into one zero-filled buffer sized up front, so padding is simply skipped over. */
class Writer {
  private readonly buffer: Buffer;
  offset: number;

  constructor(capacity: number, start = 0) {
    this.buffer = Buffer.alloc(capacity);
    this.offset = start;
  }

  pad(alignment: number): void {
    this.offset = Math.ceil(this.offset / alignment) * alignment;
  }

  byte(value: number): void {
    this.buffer.writeUInt8(value, this.offset++);
  }

  uint32At(value: number, offset: number): void {
    this.buffer.writeUInt32LE(value, offset);
  }

  /** STRING and OBJECT_PATH: uint32 length, UTF-8 bytes, NUL. */
  string(value: string): void {
    this.pad(4);
    const length = this.buffer.write(value, this.offset + 4, "utf8");
    this.buffer.writeUInt32LE(length, this.offset);
    this.offset += 4 + length + 1;
  }

  /** SIGNATURE: byte length, ASCII, NUL. */
  signature(value: string): void {
    this.byte(value.length);
    this.offset += this.buffer.write(value, this.offset, "latin1") + 1;
  }

  bytes(): Buffer {
    return this.buffer.subarray(0, this.offset);
  }
}

/** Room for a string with its length, NUL and worst-case padding. */
const stringRoom = (value: string): number => Buffer.byteLength(value, "utf8") + 24;

/**
 * The wire bytes of a METHOD_CALL, little-endian, or undefined when the call is not one this encoder
 * handles (the caller then uses dbus-next's marshaller).
 */
export function encodeStringMethodCall(call: MethodCall, serial: number, flags: number): Buffer | undefined {
  if (!encodable(call)) return undefined;
  const signature = call.signature ?? "";

  const args = call.body ?? [];
  const strings = [call.path, call.interface, call.member, call.destination, signature, ...args];
  const message = new Writer(16 + strings.reduce((sum, value) => sum + stringRoom(value), 0));
  // Header fields: an array of (code, variant) structs, each 8-aligned, after 12 fixed bytes and the
  // array's length (offset 16, so the first field needs no padding).
  message.offset = 16;
  const field = (code: number, type: "o" | "s" | "g", value: string): void => {
    message.pad(8);
    message.byte(code);
    message.signature(type);
    if (type === "g") message.signature(value);
    else message.string(value);
  };
  field(FIELD.path, "o", call.path);
  field(FIELD.interface, "s", call.interface);
  field(FIELD.member, "s", call.member);
  field(FIELD.destination, "s", call.destination);
  if (signature !== "") field(FIELD.signature, "g", signature);
  const fieldsLength = message.offset - 16;
  message.pad(8);
  const bodyStart = message.offset;
  for (const value of args) message.string(value);
  const bodyLength = message.offset - bodyStart;

  message.offset = 0;
  message.byte(LITTLE_ENDIAN);
  message.byte(METHOD_CALL);
  message.byte(flags);
  message.byte(PROTOCOL_VERSION);
  message.uint32At(bodyLength, 4);
  message.uint32At(serial, 8);
  message.uint32At(fieldsLength, 12);
  message.offset = bodyStart + bodyLength;
  return message.bytes();
}

interface RawStream {
  writable: boolean;
  supportsUnixFd?: boolean;
  write(chunk: Buffer | { data: Buffer; fds: number[] }): boolean;
}

/** Calls encoded in this tick, per socket, not written yet. */
const batches = new WeakMap<RawStream, Buffer[]>();

function isRawStream(value: unknown): value is RawStream {
  return typeof value === "object" && value !== null && typeof Reflect.get(value, "write") === "function" && typeof Reflect.get(value, "writable") === "boolean";
}

function connectedStream(bus: object): RawStream | undefined {
  const connection: unknown = Reflect.get(bus, "_connection");
  const stream: unknown = typeof connection === "object" && connection !== null ? Reflect.get(connection, "stream") : undefined;
  if (!isRawStream(stream) || Reflect.get(connection as object, "state") !== "connected") return undefined;
  return stream;
}

function flush(stream: RawStream): void {
  const batch = batches.get(stream);
  if (batch === undefined) return;
  batches.delete(stream);
  const data = batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch);
  try {
    stream.write(stream.supportsUnixFd ? { data, fds: [] } : data);
  } catch {
    // Closed meanwhile: the connection's end fails every call still waiting for its reply.
  }
}

/**
 * Queues encoded bytes for the socket under dbus-next's connection, as its own send() writes once
 * connected. Calls made in one go (a listing's property reads) leave in one write at the end of the
 * tick: a socket write per call cost more than encoding it. False when that socket cannot be found (a
 * dbus-next that changed shape): the caller then sends through dbus-next. Throws, as dbus-next does, when
 * the socket is closed.
 */
export function writeRaw(bus: object, bytes: Buffer): boolean {
  const stream = connectedStream(bus);
  if (stream === undefined) return false;
  if (!stream.writable) throw new Error("Cannot send message, stream is closed");
  let batch = batches.get(stream);
  if (batch === undefined) {
    batch = [];
    batches.set(stream, batch);
    process.nextTick(() => flush(stream));
  }
  batch.push(bytes);
  return true;
}

/** Writes what writeRaw queued now: before a message sent through dbus-next, so messages keep their order. */
export function flushRaw(bus: object): void {
  const stream = connectedStream(bus);
  if (stream !== undefined) flush(stream);
}
