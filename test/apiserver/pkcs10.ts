// PKCS#10 certification requests (RFC 2986) as the CertificateSigningRequest API reads spec.request:
// one PEM block of type CERTIFICATE REQUEST, parsed and its self-signature checked, with the subject and
// subject alternative names the signers and approvers inspect.
import { createPublicKey, verify } from "node:crypto";
import { childrenOf, decodeOid, decodeString, DerError, expectTag, readSingle, tags, type DerElement } from "./der.ts";

export interface CertificateRequest {
  /** The subject Name exactly as encoded, copied into issued certificates. */
  subjectDer: Buffer;
  commonName: string;
  organizations: string[];
  /** SubjectPublicKeyInfo exactly as encoded. */
  publicKeyInfoDer: Buffer;
  dnsNames: string[];
  ipAddresses: string[];
  emailAddresses: string[];
  uris: string[];
}

/** Why a request is not acceptable, in the words Go's x509 package and the CSR registry use. */
export class CertificateRequestError extends Error {}

const oids = {
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  extensionRequest: "1.2.840.113549.1.9.14",
  subjectAltName: "2.5.29.17",
} as const;

/** Signature algorithm OIDs and the hash node:crypto verifies them with (null: the key decides, as for Ed25519). */
const signatureHashes: Readonly<Record<string, string | null>> = {
  "1.2.840.10045.4.1": "sha1",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.2.840.113549.1.1.5": "sha1",
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.3.101.112": null,
};

const verificationFailures: Readonly<Record<string, string>> = {
  ec: "x509: ECDSA verification failure",
  rsa: "crypto/rsa: verification error",
  ed25519: "x509: Ed25519 verification failure",
};

/** The first PEM block of `text`, or undefined when there is none. */
export function firstPemBlock(text: string): { type: string; der: Buffer } | undefined {
  const match = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (match === null) return undefined;
  const body = match[2] ?? "";
  // PEM headers (Proc-Type and the like) precede a blank line; requests never carry them.
  if (/^[A-Za-z-]+:/m.test(body)) return undefined;
  return { type: match[1] ?? "", der: Buffer.from(body.replace(/\s+/g, ""), "base64") };
}

function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join(".");
  if (bytes.length !== 16) return `?${bytes.toString("hex")}`;
  const mapped = bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return [...bytes.subarray(12)].join(".");
  const groups = Array.from({ length: 8 }, (_, index) => bytes.readUInt16BE(index * 2));
  // RFC 5952: the longest run (of at least two) of zero groups collapses to "::".
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8; start += 1) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length += 1;
    if (length > bestLength && length >= 2) {
      bestStart = start;
      bestLength = length;
    }
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart === -1) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

function readName(name: DerElement): { commonName: string; organizations: string[] } {
  let commonName = "";
  const organizations: string[] = [];
  for (const relativeName of childrenOf(expectTag(name, tags.sequence, "Name"))) {
    for (const attribute of childrenOf(expectTag(relativeName, tags.set, "RelativeDistinguishedName"))) {
      const [type, value] = childrenOf(expectTag(attribute, tags.sequence, "AttributeTypeAndValue"));
      const oid = decodeOid(expectTag(type, tags.oid, "attribute type").content);
      if (value === undefined) throw new DerError("asn1: syntax error: attribute without a value");
      if (oid === oids.commonName) commonName = decodeString(value);
      if (oid === oids.organization) organizations.push(decodeString(value));
    }
  }
  return { commonName, organizations };
}

function readAlternativeNames(generalNames: Buffer, into: CertificateRequest): void {
  for (const name of childrenOf(expectTag(readSingle(generalNames), tags.sequence, "GeneralNames"))) {
    switch (name.tag) {
      case 0x81:
        into.emailAddresses.push(name.content.toString("ascii"));
        break;
      case 0x82:
        into.dnsNames.push(name.content.toString("ascii"));
        break;
      case 0x86:
        into.uris.push(name.content.toString("ascii"));
        break;
      case 0x87:
        into.ipAddresses.push(formatIp(name.content));
        break;
      default:
        break;
    }
  }
}

function readExtensionRequest(attributes: DerElement, into: CertificateRequest): void {
  for (const attribute of childrenOf(attributes)) {
    const [type, values] = childrenOf(expectTag(attribute, tags.sequence, "Attribute"));
    if (decodeOid(expectTag(type, tags.oid, "attribute type").content) !== oids.extensionRequest) continue;
    for (const extensions of childrenOf(expectTag(values, tags.set, "attribute values"))) {
      for (const extension of childrenOf(expectTag(extensions, tags.sequence, "Extensions"))) {
        const parts = childrenOf(expectTag(extension, tags.sequence, "Extension"));
        const oid = decodeOid(expectTag(parts[0], tags.oid, "extension id").content);
        const value = expectTag(parts[parts.length - 1], tags.octetString, "extension value");
        if (oid === oids.subjectAltName) readAlternativeNames(value.content, into);
      }
    }
  }
}

/** Parses a PEM certification request and checks its self-signature; throws CertificateRequestError. */
export function parseCertificateRequest(pem: string): CertificateRequest {
  const block = firstPemBlock(pem);
  if (block === undefined || block.type !== "CERTIFICATE REQUEST") throw new CertificateRequestError("PEM block type must be CERTIFICATE REQUEST");
  try {
    const [info, algorithm, signature] = childrenOf(expectTag(readSingle(block.der), tags.sequence, "CertificationRequest"));
    const infoElement = expectTag(info, tags.sequence, "CertificationRequestInfo");
    const [, subject, publicKeyInfo, attributes] = childrenOf(infoElement);
    const publicKey = expectTag(publicKeyInfo, tags.sequence, "SubjectPublicKeyInfo");
    const subjectName = readName(expectTag(subject, tags.sequence, "Name"));
    const request: CertificateRequest = {
      subjectDer: Buffer.from(expectTag(subject, tags.sequence, "Name").raw),
      ...subjectName,
      publicKeyInfoDer: Buffer.from(publicKey.raw),
      dnsNames: [],
      ipAddresses: [],
      emailAddresses: [],
      uris: [],
    };
    if (attributes !== undefined) readExtensionRequest(expectTag(attributes, 0xa0, "attributes"), request);

    const algorithmOid = decodeOid(expectTag(childrenOf(expectTag(algorithm, tags.sequence, "AlgorithmIdentifier"))[0], tags.oid, "algorithm").content);
    const hash = signatureHashes[algorithmOid];
    if (hash === undefined) throw new CertificateRequestError("x509: cannot verify signature: algorithm unimplemented");
    const signatureBits = expectTag(signature, tags.bitString, "signature");
    const key = createPublicKey({ key: request.publicKeyInfoDer, format: "der", type: "spki" });
    if (!verify(hash, infoElement.raw, key, signatureBits.content.subarray(1))) {
      throw new CertificateRequestError(verificationFailures[key.asymmetricKeyType ?? ""] ?? "x509: signature verification failure");
    }
    return request;
  } catch (error) {
    if (error instanceof CertificateRequestError) throw error;
    if (error instanceof DerError) throw new CertificateRequestError(error.message);
    throw new CertificateRequestError(`x509: ${error instanceof Error ? error.message : String(error)}`);
  }
}
