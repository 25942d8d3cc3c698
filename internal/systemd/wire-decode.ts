/**
 * A direct decoder for the messages vks receives: method returns, errors and signals, little-endian and
 * without file descriptors (all systemd and dbus-daemon send to vks). dbus-next decodes each message
 * through a signature parser, 64-bit values through the `long` package and a string round trip, a
 * conversion of the whole body into a second format, and a Message whose names are validated by regular
 * expressions: at 1,000 units the 3,000 replies of `vks units ls` took more of vks' CPU than anything
 * else (bench/units-ls.ts). The values come out exactly as dbus-next gives them (Variant, bigint for
 * 64-bit, Buffer for `ay`, an object for a dict), which test/systemd/wire-decode.test.ts checks against
 * dbus-next itself; anything this decoder does not take is left to dbus-next (wire-reader.ts).
 */
import { Variant } from "dbus-next";

/** D-Bus message types (specification, "Message Types"). */
export const MESSAGE_TYPE = { methodCall: 1, methodReturn: 2, error: 3, signal: 4 } as const;

/** A received message: the fields BusConnection reads, named as dbus-next's Message names them. */
export interface IncomingMessage {
  type: number;
  flags: number;
  serial: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  signature?: string;
  body: unknown[];
}

const LITTLE_ENDIAN = 0x6c; // 'l'
/** Header field codes (specification, "Header Fields"). */
const FIELD = { path: 1, interface: 2, member: 3, errorName: 4, replySerial: 5, destination: 6, sender: 7, signature: 8, unixFds: 9 } as const;
/** The 16 fixed bytes: endianness, type, flags, version, body length, serial, header fields' length. */
export const FIXED_HEADER_LENGTH = 16;
/** The longest signature D-Bus allows; a longer one is a malformed message. */
const MAX_SIGNATURE_LENGTH = 255;
/** Nesting D-Bus allows (32 arrays plus 32 structs); deeper is malformed, and would only exhaust the stack. */
const MAX_DEPTH = 64;

/** A message this decoder leaves to dbus-next (unusual, not wrong): big-endian, file descriptors, … */
class NotHandled extends Error {}

/** One complete type of a signature, as a small tree. */
type TypeTree = { code: string; children: TypeTree[] };

const BYTE: TypeTree = { code: "y", children: [] };

/** Signatures seen are parsed once: systemd sends the same few over and over. */
const parsedSignatures = new Map<string, TypeTree[]>();
const PARSED_SIGNATURES_LIMIT = 512;

function parseSignature(signature: string): TypeTree[] {
  const known = parsedSignatures.get(signature);
  if (known !== undefined) return known;
  if (signature.length > MAX_SIGNATURE_LENGTH) throw new NotHandled("signature too long");
  let position = 0;
  const one = (depth: number): TypeTree => {
    if (depth > MAX_DEPTH) throw new NotHandled("signature nested too deeply");
    const code = signature[position++];
    switch (code) {
      case "y": case "b": case "n": case "q": case "i": case "u": case "x": case "t": case "d": case "s": case "o": case "g": case "v":
        return { code, children: [] };
      case "a":
        return { code, children: [one(depth + 1)] };
      case "(": {
        const children: TypeTree[] = [];
        while (signature[position] !== ")") {
          if (position >= signature.length) throw new NotHandled("unterminated struct");
          children.push(one(depth + 1));
        }
        position++;
        if (children.length === 0) throw new NotHandled("empty struct");
        return { code, children };
      }
      case "{": {
        const key = one(depth + 1);
        const value = one(depth + 1);
        if (signature[position++] !== "}") throw new NotHandled("dict entry without two types");
        return { code, children: [key, value] };
      }
      default:
        // 'h' (file descriptors, never negotiated) and anything malformed: dbus-next's business.
        throw new NotHandled(`type ${code ?? "(end)"}`);
    }
  };
  const types: TypeTree[] = [];
  while (position < signature.length) types.push(one(0));
  if (parsedSignatures.size < PARSED_SIGNATURES_LIMIT) parsedSignatures.set(signature, types);
  return types;
}

/** The signature text of one complete type, as dbus-next's collapseSignature gives it for a Variant. */
function signatureOf(tree: TypeTree): string {
  if (tree.code === "a") return `a${signatureOf(tree.children[0] as TypeTree)}`;
  if (tree.code === "(") return `(${tree.children.map(signatureOf).join("")})`;
  if (tree.code === "{") return `{${tree.children.map(signatureOf).join("")}}`;
  return tree.code;
}

/** Reads values from a message's bytes; offsets are from the message's start, for alignment. */
class Reader {
  offset: number;

  constructor(
    private readonly bytes: Buffer,
    start: number,
    private readonly end: number,
  ) {
    this.offset = start;
  }

  private align(alignment: number): void {
    this.offset = Math.ceil(this.offset / alignment) * alignment;
  }

  private need(length: number): void {
    if (this.offset + length > this.end) throw new NotHandled("value runs past its message");
  }

  uint32(): number {
    this.align(4);
    this.need(4);
    const value = this.bytes.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  private string(length: number): string {
    this.need(length + 1);
    const value = this.bytes.toString("utf8", this.offset, this.offset + length);
    this.offset += length + 1;
    return value;
  }

  signature(): string {
    this.need(1);
    const length = this.bytes[this.offset++] as number;
    return this.string(length);
  }

  value(tree: TypeTree, depth: number): unknown {
    if (depth > MAX_DEPTH) throw new NotHandled("value nested too deeply");
    switch (tree.code) {
      case "y":
        this.need(1);
        return this.bytes[this.offset++];
      case "b":
        return this.uint32() !== 0;
      case "n":
      case "q": {
        this.align(2);
        this.need(2);
        const value = tree.code === "n" ? this.bytes.readInt16LE(this.offset) : this.bytes.readUInt16LE(this.offset);
        this.offset += 2;
        return value;
      }
      case "i": {
        this.align(4);
        this.need(4);
        const value = this.bytes.readInt32LE(this.offset);
        this.offset += 4;
        return value;
      }
      case "u":
        return this.uint32();
      case "x":
      case "t":
      case "d": {
        this.align(8);
        this.need(8);
        const value = tree.code === "x" ? this.bytes.readBigInt64LE(this.offset) : tree.code === "t" ? this.bytes.readBigUInt64LE(this.offset) : this.bytes.readDoubleLE(this.offset);
        this.offset += 8;
        return value;
      }
      case "s":
      case "o":
        return this.string(this.uint32());
      case "g":
        return this.signature();
      case "v": {
        const types = parseSignature(this.signature());
        const [inner] = types;
        if (inner === undefined || types.length !== 1) throw new NotHandled("variant without one complete type");
        return new Variant(signatureOf(inner), this.value(inner, depth + 1));
      }
      case "a":
        return this.array(tree.children[0] as TypeTree, depth);
      default: {
        // A struct or a dict entry: 8-aligned, its members in order.
        this.align(8);
        return tree.children.map((child) => this.value(child, depth + 1));
      }
    }
  }

  private array(element: TypeTree, depth: number): unknown {
    const length = this.uint32();
    if (element.code === "y") {
      this.need(length);
      const bytes = Buffer.from(this.bytes.subarray(this.offset, this.offset + length));
      this.offset += length;
      return bytes;
    }
    // The length counts from the first element, after the padding 8-aligned elements get.
    if ("xtd({".includes(element.code)) this.align(8);
    const end = this.offset + length;
    if (end > this.end) throw new NotHandled("array runs past its message");
    if (element.code === "{") {
      const dict: Record<string, unknown> = {};
      while (this.offset < end) {
        const [key, value] = this.value(element, depth + 1) as [unknown, unknown];
        dict[String(key)] = value;
      }
      return dict;
    }
    const values: unknown[] = [];
    while (this.offset < end) values.push(this.value(element, depth + 1));
    return values;
  }
}

/** Total length of the message whose 16 fixed bytes are given: fixed part, header fields padded to 8, body. */
export function messageLength(fixedHeader: Buffer): number | undefined {
  if (fixedHeader[0] !== LITTLE_ENDIAN) return undefined;
  const bodyLength = fixedHeader.readUInt32LE(4);
  const fieldsLength = fixedHeader.readUInt32LE(12);
  return FIXED_HEADER_LENGTH + Math.ceil(fieldsLength / 8) * 8 + bodyLength;
}

/**
 * Decodes one complete message (`bytes` holds exactly it). Undefined when it is one for dbus-next: not
 * little-endian, carrying file descriptors, or not well-formed (dbus-next then reports it as it would).
 */
export function decodeMessage(bytes: Buffer): IncomingMessage | undefined {
  try {
    return decode(bytes);
  } catch (err) {
    if (err instanceof NotHandled || err instanceof RangeError) return undefined;
    throw err;
  }
}

function decode(bytes: Buffer): IncomingMessage {
  const length = bytes.length >= FIXED_HEADER_LENGTH ? messageLength(bytes) : undefined;
  if (length === undefined || length !== bytes.length || bytes[3] !== 1) throw new NotHandled("not a little-endian version 1 message");
  const fieldsEnd = FIXED_HEADER_LENGTH + bytes.readUInt32LE(12);
  const message: IncomingMessage = { type: bytes[1] as number, flags: bytes[2] as number, serial: bytes.readUInt32LE(8), body: [] };
  const fields = new Reader(bytes, FIXED_HEADER_LENGTH, fieldsEnd);
  while (fields.offset < fieldsEnd) {
    // Each field is a (yv) struct: 8-aligned, a code, then a variant of one basic type.
    fields.offset = Math.ceil(fields.offset / 8) * 8;
    const code = fields.value(BYTE, 0);
    const [type] = parseSignature(fields.signature());
    if (type === undefined) throw new NotHandled("header field without a type");
    const content = fields.value(type, 0);
    switch (code) {
      case FIELD.path: message.path = String(content); break;
      case FIELD.interface: message.interface = String(content); break;
      case FIELD.member: message.member = String(content); break;
      case FIELD.errorName: message.errorName = String(content); break;
      case FIELD.replySerial: message.replySerial = Number(content); break;
      case FIELD.destination: message.destination = String(content); break;
      case FIELD.sender: message.sender = String(content); break;
      case FIELD.signature: message.signature = String(content); break;
      case FIELD.unixFds: throw new NotHandled("file descriptors");
      default: break; // Unknown fields are to be ignored (specification).
    }
  }
  const bodyStart = Math.ceil(fieldsEnd / 8) * 8;
  if (bodyStart < bytes.length && message.signature) {
    const body = new Reader(bytes, bodyStart, bytes.length);
    message.body = parseSignature(message.signature).map((tree) => body.value(tree, 0));
    if (body.offset !== bytes.length) throw new NotHandled("body longer than its signature");
  }
  return message;
}
