// ASN.1 DER, just enough to read certification requests and certificates, with Go's asn1 error wording;
// certificates are written with vks' own encoder (internal/kubelet/certs/der.ts).

export const tags = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  t61String: 0x14,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  bmpString: 0x1e,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Thrown for input that is not well-formed DER; the message reads like Go's asn1 errors. */
export class DerError extends Error {}

export interface DerElement {
  tag: number;
  /** The whole encoding, tag and length included, e.g. to copy a Name verbatim. */
  raw: Buffer;
  content: Buffer;
}

/** Reads the element at `offset`; `next` is where the following one starts. */
export function readElement(input: Buffer, offset = 0): { element: DerElement; next: number } {
  if (offset + 2 > input.length) throw new DerError("asn1: syntax error: data truncated");
  const tag = input[offset] ?? 0;
  if ((tag & 0x1f) === 0x1f) throw new DerError("asn1: syntax error: high-tag-number form is not supported");
  let length = input[offset + 1] ?? 0;
  let header = 2;
  if (length & 0x80) {
    const lengthBytes = length & 0x7f;
    if (lengthBytes === 0 || lengthBytes > 4) throw new DerError("asn1: syntax error: indefinite or oversized length");
    if (offset + 2 + lengthBytes > input.length) throw new DerError("asn1: syntax error: data truncated");
    length = 0;
    for (let index = 0; index < lengthBytes; index += 1) length = length * 256 + (input[offset + 2 + index] ?? 0);
    header += lengthBytes;
  }
  const end = offset + header + length;
  if (end > input.length) throw new DerError("asn1: syntax error: data truncated");
  return { element: { tag, raw: input.subarray(offset, end), content: input.subarray(offset + header, end) }, next: end };
}

/** Parses a buffer that must hold exactly one element. */
export function readSingle(input: Buffer): DerElement {
  const { element, next } = readElement(input, 0);
  if (next !== input.length) throw new DerError("asn1: syntax error: trailing data");
  return element;
}

/** The elements inside a constructed element (SEQUENCE, SET, or an explicit context tag). */
export function childrenOf(element: DerElement): DerElement[] {
  const children: DerElement[] = [];
  let offset = 0;
  while (offset < element.content.length) {
    const { element: child, next } = readElement(element.content, offset);
    children.push(child);
    offset = next;
  }
  return children;
}

export function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element === undefined || element.tag !== tag) throw new DerError(`asn1: structure error: tags don't match (${what})`);
  return element;
}

export function decodeOid(content: Buffer): string {
  const parts: number[] = [];
  let value = 0;
  for (const byte of content) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      if (parts.length === 0) parts.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else parts.push(value);
      value = 0;
    }
  }
  return parts.join(".");
}

/** A string-valued element (the DirectoryString choices and IA5String) as text. */
export function decodeString(element: DerElement): string {
  switch (element.tag) {
    case tags.utf8String:
    case tags.printableString:
    case tags.ia5String:
      return element.content.toString("utf8");
    case tags.t61String:
      return element.content.toString("latin1");
    case tags.bmpString:
      return Buffer.from(element.content).swap16().toString("utf16le");
    default:
      throw new DerError(`asn1: structure error: unsupported string type ${element.tag}`);
  }
}

/** Reads a UTCTime or GeneralizedTime in the Z form DER requires. */
export function decodeTime(element: DerElement): Date {
  const text = element.content.toString("ascii");
  const full = element.tag === tags.utcTime ? `${Number(text.slice(0, 2)) >= 50 ? "19" : "20"}${text}` : text;
  const match = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(full);
  if (match === null) throw new DerError(`asn1: time did not serialize back to the original value: ${text}`);
  const [, year, month, day, hour, minute, second] = match;
  return new Date(Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second)));
}
