// PKCS#10 certification requests (RFC 2986) as the CertificateSigningRequest API reads spec.request:
// one PEM block of type CERTIFICATE REQUEST, parsed and its self-signature checked, with the subject and
// subject alternative names the signers and approvers inspect.
import { createPublicKey, verify } from "node:crypto";
import { DerError, derChildren, readDer, readObjectIdentifier, type DerNode } from "../../internal/kubelet/certs/der.ts";
import { formatIpAddress } from "../../internal/kubelet/certs/ip.ts";
import { Asn1Error, decodeString, expectTag, goAsn1Message, tags } from "./der.ts";

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

/** An iPAddress SAN as Go's net.IP.String() prints it: IPv4-mapped IPv6 addresses in dotted form. */
function formatIp(bytes: Buffer): string {
  // crypto/x509 refuses other lengths while parsing the request.
  if (bytes.length !== 4 && bytes.length !== 16) throw new CertificateRequestError(`x509: cannot parse IP address of length ${bytes.length}`);
  const mapped = bytes.length === 16 && bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return formatIpAddress(mapped ? bytes.subarray(12) : bytes);
}

function readName(name: DerNode): { commonName: string; organizations: string[] } {
  let commonName = "";
  const organizations: string[] = [];
  for (const relativeName of derChildren(expectTag(name, tags.sequence, "Name"))) {
    for (const attribute of derChildren(expectTag(relativeName, tags.set, "RelativeDistinguishedName"))) {
      const [type, value] = derChildren(expectTag(attribute, tags.sequence, "AttributeTypeAndValue"));
      const oid = readObjectIdentifier(expectTag(type, tags.objectIdentifier, "attribute type"));
      if (value === undefined) throw new Asn1Error("asn1: syntax error: attribute without a value");
      if (oid === oids.commonName) commonName = decodeString(value);
      if (oid === oids.organization) organizations.push(decodeString(value));
    }
  }
  return { commonName, organizations };
}

function readAlternativeNames(generalNames: Buffer, into: CertificateRequest): void {
  for (const name of derChildren(expectTag(readDer(generalNames), tags.sequence, "GeneralNames"))) {
    switch (name.identifier) {
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

function readExtensionRequest(attributes: DerNode, into: CertificateRequest): void {
  for (const attribute of derChildren(attributes)) {
    const [type, values] = derChildren(expectTag(attribute, tags.sequence, "Attribute"));
    if (readObjectIdentifier(expectTag(type, tags.objectIdentifier, "attribute type")) !== oids.extensionRequest) continue;
    for (const extensions of derChildren(expectTag(values, tags.set, "attribute values"))) {
      for (const extension of derChildren(expectTag(extensions, tags.sequence, "Extensions"))) {
        const parts = derChildren(expectTag(extension, tags.sequence, "Extension"));
        const oid = readObjectIdentifier(expectTag(parts[0], tags.objectIdentifier, "extension id"));
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
    const [info, algorithm, signature] = derChildren(expectTag(readDer(block.der), tags.sequence, "CertificationRequest"));
    const infoElement = expectTag(info, tags.sequence, "CertificationRequestInfo");
    const [, subject, publicKeyInfo, attributes] = derChildren(infoElement);
    const publicKey = expectTag(publicKeyInfo, tags.sequence, "SubjectPublicKeyInfo");
    const subjectName = readName(expectTag(subject, tags.sequence, "Name"));
    const request: CertificateRequest = {
      subjectDer: Buffer.from(expectTag(subject, tags.sequence, "Name").encoded),
      ...subjectName,
      publicKeyInfoDer: Buffer.from(publicKey.encoded),
      dnsNames: [],
      ipAddresses: [],
      emailAddresses: [],
      uris: [],
    };
    if (attributes !== undefined) readExtensionRequest(expectTag(attributes, 0xa0, "attributes"), request);

    const algorithmOid = readObjectIdentifier(expectTag(derChildren(expectTag(algorithm, tags.sequence, "AlgorithmIdentifier"))[0], tags.objectIdentifier, "algorithm"));
    const hash = signatureHashes[algorithmOid];
    if (hash === undefined) throw new CertificateRequestError("x509: cannot verify signature: algorithm unimplemented");
    const signatureBits = expectTag(signature, tags.bitString, "signature");
    const key = createPublicKey({ key: request.publicKeyInfoDer, format: "der", type: "spki" });
    if (!verify(hash, infoElement.encoded, key, signatureBits.content.subarray(1))) {
      throw new CertificateRequestError(verificationFailures[key.asymmetricKeyType ?? ""] ?? "x509: signature verification failure");
    }
    return request;
  } catch (error) {
    if (error instanceof CertificateRequestError) throw error;
    if (error instanceof Asn1Error) throw new CertificateRequestError(error.message);
    if (error instanceof DerError) throw new CertificateRequestError(goAsn1Message(error));
    throw new CertificateRequestError(`x509: ${error instanceof Error ? error.message : String(error)}`);
  }
}
