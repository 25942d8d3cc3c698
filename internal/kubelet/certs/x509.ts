/**
 * X.509 v3 certificates (RFC 5280) and PKCS#10 requests (RFC 2986) for a TLS server, built from
 * node:crypto keys and signatures, and the few facts vks reads back from a certificate (subject, SANs,
 * validity). Only what a kubelet's serving certificate needs: no CA certificates, no other extensions.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import {
  DerError,
  DerTag,
  derBitString,
  derBoolean,
  derChildren,
  derExplicit,
  derImplicit,
  derImplicitConstructed,
  derInteger,
  derNamedBits,
  derNull,
  derObjectIdentifier,
  derOctetString,
  derSequence,
  derSet,
  derTime,
  derUtf8String,
  ia5Octets,
  readDer,
  readObjectIdentifier,
  readTime,
  type DerNode,
} from "./der.ts";
import { formatIpAddress, ipAddressOctets } from "./ip.ts";
import { decodePem, encodePem } from "./pem.ts";

const Oid = {
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  subjectAltName: "2.5.29.17",
  keyUsage: "2.5.29.15",
  basicConstraints: "2.5.29.19",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  extensionRequest: "1.2.840.113549.1.9.14",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  sha256WithRsa: "1.2.840.113549.1.1.11",
} as const;

/** keyUsage bit numbers (RFC 5280 4.2.1.3). */
const KeyUsageBit = { digitalSignature: 0, keyEncipherment: 2 } as const;

/** GeneralName choices (RFC 5280 4.2.1.6) as implicit context tags. */
const GeneralNameTag = { dnsName: 2, ipAddress: 7 } as const;

export interface DistinguishedName {
  commonName: string;
  organizations?: readonly string[];
}

export interface AlternativeNames {
  dnsNames: readonly string[];
  /** IPv4 or IPv6, in any textual form. */
  ipAddresses: readonly string[];
}

export interface ServerCertificateTemplate {
  subject: DistinguishedName;
  altNames: AlternativeNames;
  notBefore: Date;
  notAfter: Date;
  /** Positive; a random 128-bit serial when omitted. */
  serialNumber?: bigint;
}

export interface CertificateRequestTemplate {
  subject: DistinguishedName;
  altNames: AlternativeNames;
}

/** What vks reads back from a certificate. */
export interface CertificateFacts {
  serialNumber: bigint;
  subject: DistinguishedName;
  /** DNS names as written; IP addresses in canonical form (see ip.ts). */
  altNames: AlternativeNames;
  notBefore: Date;
  notAfter: Date;
}

export class CertificateFormatError extends Error {
  override readonly name = "CertificateFormatError";
}

/** A fresh ECDSA P-256 key, the kind the kubelet's certificate manager generates. */
export function generateServingKey(): KeyObject {
  return generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
}

/** PEM of a private key: SEC 1 ("EC PRIVATE KEY") for EC keys as the kubelet writes them, PKCS#8 otherwise. */
export function privateKeyPem(key: KeyObject): string {
  const type = key.asymmetricKeyType === "ec" ? "sec1" : "pkcs8";
  return key.export({ type, format: "pem" }).toString();
}

export function randomSerialNumber(): bigint {
  const serial = BigInt(`0x${randomBytes(16).toString("hex")}`);
  return serial === 0n ? 1n : serial;
}

/** Signature algorithm and the digest node:crypto signs with, for the key types a TLS server uses. */
function signatureAlgorithm(key: KeyObject): { identifier: Buffer; digest: string } {
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== "prime256v1" && curve !== "P-256") throw new RangeError(`only P-256 EC keys are supported, not ${curve ?? "an unnamed curve"}`);
    // RFC 5758 3.2: the parameters field is absent for ECDSA.
    return { identifier: derSequence(derObjectIdentifier(Oid.ecdsaWithSha256)), digest: "sha256" };
  }
  if (key.asymmetricKeyType === "rsa") {
    return { identifier: derSequence(derObjectIdentifier(Oid.sha256WithRsa), derNull()), digest: "sha256" };
  }
  throw new RangeError(`cannot sign certificates with a ${key.asymmetricKeyType ?? "unknown"} key`);
}

/** Subject or issuer: organizations then the common name, one attribute per RDN, as Go's crypto/x509 orders them. */
function encodeName(name: DistinguishedName): Buffer {
  const attribute = (oid: string, value: string): Buffer => derSet(derSequence(derObjectIdentifier(oid), derUtf8String(value)));
  return derSequence(...(name.organizations ?? []).map((organization) => attribute(Oid.organization, organization)), attribute(Oid.commonName, name.commonName));
}

function encodeAltNames(altNames: AlternativeNames): Buffer {
  const names: Buffer[] = [];
  for (const dnsName of altNames.dnsNames) names.push(derImplicit(GeneralNameTag.dnsName, ia5Octets(dnsName)));
  for (const address of altNames.ipAddresses) {
    const octets = ipAddressOctets(address);
    if (octets === undefined) throw new RangeError(`"${address}" is not an IP address`);
    names.push(derImplicit(GeneralNameTag.ipAddress, octets));
  }
  return derSequence(...names);
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  // DER leaves out a BOOLEAN that equals its DEFAULT (FALSE).
  return derSequence(derObjectIdentifier(oid), ...(critical ? [derBoolean(true)] : []), derOctetString(value));
}

function subjectPublicKeyInfo(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: "spki", format: "der" });
}

function hasAltNames(altNames: AlternativeNames): boolean {
  return altNames.dnsNames.length > 0 || altNames.ipAddresses.length > 0;
}

/** signed = SEQUENCE { toBeSigned, algorithm, BIT STRING signature }, the shape of both certificates and requests. */
function signedStructure(toBeSigned: Buffer, key: KeyObject): Buffer {
  const algorithm = signatureAlgorithm(key);
  return derSequence(toBeSigned, algorithm.identifier, derBitString(sign(algorithm.digest, toBeSigned, key)));
}

/** A self-signed end-entity certificate for a TLS server, in PEM. */
export function createSelfSignedCertificate(template: ServerCertificateTemplate, key: KeyObject): string {
  const serialNumber = template.serialNumber ?? randomSerialNumber();
  if (serialNumber <= 0n) throw new RangeError("the serial number must be positive (RFC 5280 4.1.2.2)");
  if (template.notAfter.getTime() <= template.notBefore.getTime()) throw new RangeError("notAfter must be later than notBefore");
  const name = encodeName(template.subject);
  const extensions = [
    extension(Oid.basicConstraints, true, derSequence()),
    extension(Oid.keyUsage, true, derNamedBits([KeyUsageBit.digitalSignature, KeyUsageBit.keyEncipherment])),
    extension(Oid.extKeyUsage, false, derSequence(derObjectIdentifier(Oid.serverAuth))),
    ...(hasAltNames(template.altNames) ? [extension(Oid.subjectAltName, false, encodeAltNames(template.altNames))] : []),
  ];
  const toBeSigned = derSequence(
    derExplicit(0, derInteger(2)), // v3
    derInteger(serialNumber),
    signatureAlgorithm(key).identifier,
    name,
    derSequence(derTime(template.notBefore), derTime(template.notAfter)),
    name,
    subjectPublicKeyInfo(key),
    derExplicit(3, derSequence(...extensions)),
  );
  return encodePem("CERTIFICATE", signedStructure(toBeSigned, key));
}

/**
 * A PKCS#10 request in PEM carrying the subject and, in an extensionRequest attribute, only the SANs:
 * what the kubelet's request holds. The usages travel in the CertificateSigningRequest object instead.
 */
export function createCertificateRequest(template: CertificateRequestTemplate, key: KeyObject): string {
  const attributes = hasAltNames(template.altNames)
    ? [derSequence(derObjectIdentifier(Oid.extensionRequest), derSet(derSequence(extension(Oid.subjectAltName, false, encodeAltNames(template.altNames)))))]
    : [];
  const requestInfo = derSequence(
    derInteger(0), // v1
    encodeName(template.subject),
    subjectPublicKeyInfo(key),
    derImplicitConstructed(0, ...attributes),
  );
  return encodePem("CERTIFICATE REQUEST", signedStructure(requestInfo, key));
}

// ---- reading ----

function expect(node: DerNode | undefined, identifier: number, what: string): DerNode {
  if (node === undefined || node.identifier !== identifier) throw new CertificateFormatError(`malformed certificate: ${what} missing`);
  return node;
}

function present(node: DerNode | undefined, what: string): DerNode {
  if (node === undefined) throw new CertificateFormatError(`malformed certificate: ${what} missing`);
  return node;
}

function readName(node: DerNode): DistinguishedName {
  let commonName = "";
  const organizations: string[] = [];
  for (const relativeName of derChildren(expect(node, DerTag.sequence, "name"))) {
    for (const attribute of derChildren(relativeName)) {
      const [type, value] = derChildren(attribute);
      if (type === undefined || value === undefined) continue;
      const oid = readObjectIdentifier(type);
      if (oid === Oid.commonName) commonName = value.content.toString("utf8");
      else if (oid === Oid.organization) organizations.push(value.content.toString("utf8"));
    }
  }
  return { commonName, organizations };
}

function readAltNames(extensionValue: Buffer): AlternativeNames {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const name of derChildren(readDer(extensionValue))) {
    const tagNumber = name.identifier & 0x1f;
    if (tagNumber === GeneralNameTag.dnsName) dnsNames.push(name.content.toString("ascii"));
    else if (tagNumber === GeneralNameTag.ipAddress && (name.content.length === 4 || name.content.length === 16)) ipAddresses.push(formatIpAddress(name.content));
  }
  return { dnsNames, ipAddresses };
}

/** Subject, SANs and validity of a DER certificate. */
export function readCertificate(der: Uint8Array): CertificateFacts {
  try {
    const [tbs] = derChildren(expect(readDer(der), DerTag.sequence, "certificate"));
    const fields = derChildren(expect(tbs, DerTag.sequence, "tbsCertificate"));
    // The version is the optional [0]; everything after it is positional.
    const positional = fields[0]?.identifier === 0xa0 ? fields.slice(1) : fields;
    const [serial, , , validity, subject, , ...optional] = positional;
    const [notBefore, notAfter] = derChildren(expect(validity, DerTag.sequence, "validity"));
    let altNames: AlternativeNames = { dnsNames: [], ipAddresses: [] };
    const extensions = optional.find((node) => node.identifier === 0xa3);
    for (const item of extensions === undefined ? [] : derChildren(expect(derChildren(extensions)[0], DerTag.sequence, "extensions"))) {
      const parts = derChildren(item);
      const oid = readObjectIdentifier(expect(parts[0], DerTag.objectIdentifier, "extension id"));
      const value = parts[parts.length - 1];
      if (oid === Oid.subjectAltName && value !== undefined) altNames = readAltNames(expect(value, DerTag.octetString, "extension value").content);
    }
    const serialNode = expect(serial, DerTag.integer, "serial number");
    return {
      serialNumber: BigInt(`0x${serialNode.content.toString("hex") || "0"}`),
      subject: readName(expect(subject, DerTag.sequence, "subject")),
      altNames,
      notBefore: readTime(present(notBefore, "notBefore")),
      notAfter: readTime(present(notAfter, "notAfter")),
    };
  } catch (err) {
    if (err instanceof DerError) throw new CertificateFormatError(`malformed certificate: ${err.message}`);
    throw err;
  }
}

/** The DER of every CERTIFICATE block in `pem`, leaf first. */
export function certificatesFromPem(pem: string): Buffer[] {
  return decodePem(pem)
    .filter((block) => block.label === "CERTIFICATE")
    .map((block) => block.der);
}

/** Parses a PEM private key (PKCS#8, SEC 1 or PKCS#1); throws on anything else, encrypted keys included. */
export function privateKeyFromPem(pem: string): KeyObject {
  return createPrivateKey({ key: pem, format: "pem" });
}
