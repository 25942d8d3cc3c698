// Reading ASN.1 DER the way the API server's Go code reports it. vks' own reader
// (internal/kubelet/certs/der.ts) walks the encoding; this adds Go's encoding/asn1 wording for what it
// refuses, tag checks in the same words, and the string types requests may carry that vks never writes.
import { DerTag, type DerError, type DerNode, type DerProblem } from "../../internal/kubelet/certs/der.ts";

/** The universal tags vks writes, and the legacy string types a request made elsewhere may use. */
export const tags = { ...DerTag, t61String: 0x14, bmpString: 0x1e } as const;

/** A structure the API server refuses, in Go's asn1 words (vks' reader throws DerError for malformed DER). */
export class Asn1Error extends Error {}

const goWording: Readonly<Record<DerProblem, string>> = {
  truncated: "asn1: syntax error: data truncated",
  highTagNumber: "asn1: syntax error: high-tag-number form is not supported",
  length: "asn1: syntax error: indefinite or oversized length",
  trailing: "asn1: syntax error: trailing data",
  notConstructed: "asn1: structure error: tags don't match",
  notObjectIdentifier: "asn1: structure error: tags don't match",
  emptyObjectIdentifier: "asn1: syntax error: zero length OBJECT IDENTIFIER",
  time: "asn1: time did not serialize back to the original value and may be invalid",
};

/** What Go's encoding/asn1 says where vks' reader refused an encoding. */
export function goAsn1Message(error: DerError): string {
  return goWording[error.problem];
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (node === undefined || node.identifier !== tag) throw new Asn1Error(`asn1: structure error: tags don't match (${what})`);
  return node;
}

/** A string-valued element (the DirectoryString choices and IA5String) as text. */
export function decodeString(node: DerNode): string {
  switch (node.identifier) {
    case tags.utf8String:
    case tags.printableString:
    case tags.ia5String:
      return node.content.toString("utf8");
    case tags.t61String:
      return node.content.toString("latin1");
    case tags.bmpString:
      return Buffer.from(node.content).swap16().toString("utf16le");
    default:
      throw new Asn1Error(`asn1: structure error: unsupported string type ${node.identifier}`);
  }
}
