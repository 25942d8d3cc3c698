/**
 * ASN.1 DER, only as much as X.509 certificates and PKCS#10 requests need: an encoder for the universal
 * types they use and a reader that walks an encoding back into tag/content nodes. node:crypto signs and
 * parses keys but cannot build a certificate, and one small encoder is less to trust than a package.
 */

/** Universal tags (X.690 8.x) as the first identifier octet: class bits 00, constructed bit for SEQUENCE/SET. */
export const DerTag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  objectIdentifier: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

const CONTEXT_SPECIFIC = 0x80;
const CONSTRUCTED = 0x20;

function lengthOctets(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return Buffer.from([0x80 | octets.length, ...octets]);
}

/** One element: identifier octet, definite length, content. Tag numbers above 30 never occur here. */
export function derElement(identifier: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([identifier]), lengthOctets(content.length), content]);
}

export function derSequence(...elements: Uint8Array[]): Buffer {
  return derElement(DerTag.sequence, Buffer.concat(elements));
}

/** SET OF: DER orders the encodings as octet strings, shorter ones padded with zero octets (X.690 11.6). */
export function derSet(...elements: Uint8Array[]): Buffer {
  const sorted = [...elements].sort((left, right) => {
    const length = Math.max(left.length, right.length);
    for (let index = 0; index < length; index++) {
      const difference = (left[index] ?? 0) - (right[index] ?? 0);
      if (difference !== 0) return difference;
    }
    return 0;
  });
  return derElement(DerTag.set, Buffer.concat(sorted));
}

/** A non-negative INTEGER in the fewest octets, with a leading zero where the top bit would read as a sign. */
export function derInteger(value: bigint | number): Buffer {
  let rest = BigInt(value);
  if (rest < 0n) throw new RangeError("derInteger: negative integers are not needed and not supported");
  const octets: number[] = [];
  do {
    octets.unshift(Number(rest & 0xffn));
    rest >>= 8n;
  } while (rest > 0n);
  if ((octets[0] ?? 0) & 0x80) octets.unshift(0);
  return derElement(DerTag.integer, Buffer.from(octets));
}

export function derBoolean(value: boolean): Buffer {
  return derElement(DerTag.boolean, Buffer.from([value ? 0xff : 0x00]));
}

export function derNull(): Buffer {
  return derElement(DerTag.null, Buffer.alloc(0));
}

/** OBJECT IDENTIFIER from dotted form: the first two arcs share one subidentifier, each in base 128. */
export function derObjectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split(".").map((arc) => {
    if (!/^\d+$/.test(arc)) throw new SyntaxError(`derObjectIdentifier: "${dotted}" is not a dotted OID`);
    return BigInt(arc);
  });
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || first > 2n || (first < 2n && second > 39n)) {
    throw new SyntaxError(`derObjectIdentifier: "${dotted}" is not a valid OID`);
  }
  const octets: number[] = [];
  for (const subidentifier of [first * 40n + second, ...rest]) {
    const group: number[] = [Number(subidentifier & 0x7fn)];
    for (let high = subidentifier >> 7n; high > 0n; high >>= 7n) group.unshift(Number(high & 0x7fn) | 0x80);
    octets.push(...group);
  }
  return derElement(DerTag.objectIdentifier, Buffer.from(octets));
}

export function derUtf8String(text: string): Buffer {
  return derElement(DerTag.utf8String, Buffer.from(text, "utf8"));
}

/** IA5String: 7-bit ASCII, as dNSName requires. */
export function ia5Octets(text: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(text)) throw new RangeError(`"${text}" has characters outside IA5 (ASCII)`);
  return Buffer.from(text, "ascii");
}

export function derOctetString(content: Uint8Array): Buffer {
  return derElement(DerTag.octetString, content);
}

/** BIT STRING of whole octets (signatures, keys) or a named-bit list with its unused trailing bits. */
export function derBitString(content: Uint8Array, unusedBits = 0): Buffer {
  return derElement(DerTag.bitString, Buffer.concat([Buffer.from([unusedBits]), content]));
}

/**
 * A named-bit BIT STRING (keyUsage) from the bit numbers set, with trailing zero bits removed as DER
 * requires (X.690 11.2.2).
 */
export function derNamedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return derBitString(Buffer.alloc(0));
  const highest = Math.max(...bits);
  const octets = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) {
    const index = Math.floor(bit / 8);
    octets[index] = (octets[index] ?? 0) | (0x80 >> bit % 8);
  }
  return derBitString(octets, 7 - (highest % 8));
}

function twoDigits(value: number): string {
  return String(value).padStart(2, "0");
}

/**
 * A certificate time (RFC 5280 4.1.2.5): UTCTime for 1950–2049, GeneralizedTime otherwise, always UTC
 * with whole seconds.
 */
export function derTime(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const rest =
    twoDigits(date.getUTCMonth() + 1) +
    twoDigits(date.getUTCDate()) +
    twoDigits(date.getUTCHours()) +
    twoDigits(date.getUTCMinutes()) +
    twoDigits(date.getUTCSeconds()) +
    "Z";
  if (year >= 1950 && year < 2050) return derElement(DerTag.utcTime, Buffer.from(twoDigits(year % 100) + rest, "ascii"));
  return derElement(DerTag.generalizedTime, Buffer.from(String(year).padStart(4, "0") + rest, "ascii"));
}

/** [n] EXPLICIT: the whole inner element wrapped in a constructed context-specific element. */
export function derExplicit(tagNumber: number, inner: Uint8Array): Buffer {
  return derElement(CONTEXT_SPECIFIC | CONSTRUCTED | tagNumber, inner);
}

/** [n] IMPLICIT over a primitive type: the content under a context-specific tag. */
export function derImplicit(tagNumber: number, content: Uint8Array): Buffer {
  return derElement(CONTEXT_SPECIFIC | tagNumber, content);
}

/** [n] IMPLICIT over a constructed type (SET OF, SEQUENCE): the concatenated elements under the tag. */
export function derImplicitConstructed(tagNumber: number, ...elements: Uint8Array[]): Buffer {
  return derElement(CONTEXT_SPECIFIC | CONSTRUCTED | tagNumber, Buffer.concat(elements));
}

// ---- reading ----

/** What is wrong with an encoding, apart from the wording: callers that answer in another's words key on it. */
export type DerProblem = "truncated" | "highTagNumber" | "length" | "trailing" | "notConstructed" | "notObjectIdentifier" | "emptyObjectIdentifier" | "time";

export class DerError extends Error {
  override readonly name = "DerError";
  constructor(
    readonly problem: DerProblem,
    message: string,
  ) {
    super(message);
  }
}

/** One element as read: its identifier octet, its content, and the exact octets it spanned. */
export interface DerNode {
  identifier: number;
  content: Buffer;
  encoded: Buffer;
}

/** Reads the element at `offset`; returns it and where the next one starts. */
function readElement(input: Buffer, offset: number): { node: DerNode; next: number } {
  const identifier = input[offset];
  if (identifier === undefined) throw new DerError("truncated", "truncated: no identifier octet");
  if ((identifier & 0x1f) === 0x1f) throw new DerError("highTagNumber", "high tag numbers are not used by X.509");
  const first = input[offset + 1];
  if (first === undefined) throw new DerError("truncated", "truncated: no length octet");
  let length = first;
  let contentStart = offset + 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new DerError("length", count === 0 ? "indefinite length is not DER" : "length too large");
    length = 0;
    for (let index = 0; index < count; index++) {
      const octet = input[offset + 2 + index];
      if (octet === undefined) throw new DerError("truncated", "truncated length");
      length = length * 256 + octet;
    }
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > input.length) throw new DerError("truncated", "truncated: content runs past the end");
  return { node: { identifier, content: input.subarray(contentStart, end), encoded: input.subarray(offset, end) }, next: end };
}

/** The single element that makes up `input` (trailing octets are an error). */
export function readDer(input: Uint8Array): DerNode {
  const buffer = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const { node, next } = readElement(buffer, 0);
  if (next !== buffer.length) throw new DerError("trailing", "trailing octets after the element");
  return node;
}

/** The elements inside a constructed element (SEQUENCE, SET, explicit tags). */
export function derChildren(node: DerNode): DerNode[] {
  if (!(node.identifier & CONSTRUCTED)) throw new DerError("notConstructed", `element 0x${node.identifier.toString(16)} is not constructed`);
  const children: DerNode[] = [];
  for (let offset = 0; offset < node.content.length; ) {
    const { node: child, next } = readElement(node.content, offset);
    children.push(child);
    offset = next;
  }
  return children;
}

/** The dotted form of an OBJECT IDENTIFIER element. */
export function readObjectIdentifier(node: DerNode): string {
  if (node.identifier !== DerTag.objectIdentifier) throw new DerError("notObjectIdentifier", "not an OBJECT IDENTIFIER");
  const subidentifiers: bigint[] = [];
  let value = 0n;
  for (const octet of node.content) {
    value = (value << 7n) | BigInt(octet & 0x7f);
    if (!(octet & 0x80)) {
      subidentifiers.push(value);
      value = 0n;
    }
  }
  const [first, ...rest] = subidentifiers;
  if (first === undefined) throw new DerError("emptyObjectIdentifier", "empty OBJECT IDENTIFIER");
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...rest].join(".");
}

/** A UTCTime or GeneralizedTime element (the forms RFC 5280 allows: UTC, whole seconds). */
export function readTime(node: DerNode): Date {
  const text = node.content.toString("ascii");
  const match =
    node.identifier === DerTag.utcTime
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : node.identifier === DerTag.generalizedTime
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
        : null;
  if (match === null) throw new DerError("time", `unsupported time "${text}"`);
  const [, yearText, month, day, hours, minutes, seconds] = match.map(Number) as number[];
  let year = yearText!;
  if (node.identifier === DerTag.utcTime) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, month! - 1, day!, hours!, minutes!, seconds!));
}
