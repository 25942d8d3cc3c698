// The cluster CA's signer, as kube-controller-manager's csrsigning controller runs it for the
// kubernetes.io/kubelet-serving and kubernetes.io/kube-apiserver-client-kubelet signers: it checks a
// request against the signer's rules, then issues an X.509 certificate carrying the request's subject,
// public key and alternative names, with key usages from spec.usages and a lifetime from
// spec.expirationSeconds (capped at the signing duration, one year by default).
import { createPrivateKey, randomBytes, sign, type KeyObject } from "node:crypto";
import {
  derBitString,
  derBoolean,
  derChildren,
  derExplicit,
  derImplicit,
  derInteger,
  derNamedBits,
  derNull,
  derObjectIdentifier,
  derOctetString,
  derSequence,
  derTime,
  readDer,
  readObjectIdentifier,
  readTime,
} from "../../internal/kubelet/certs/der.ts";
import { ipAddressOctets } from "../../internal/kubelet/certs/ip.ts";
import { encodePem } from "../../internal/kubelet/certs/pem.ts";
import { expectTag, tags } from "./der.ts";
import { firstPemBlock, type CertificateRequest } from "./pkcs10.ts";

export const kubeletServingSigner = "kubernetes.io/kubelet-serving";
export const kubeletClientSigner = "kubernetes.io/kube-apiserver-client-kubelet";

/** The signers this server runs; requests for any other signerName stay unsigned, as without a signer. */
export const builtInSigners: ReadonlySet<string> = new Set([kubeletServingSigner, kubeletClientSigner]);

// kube-controller-manager's --cluster-signing-duration default.
const signingDurationSeconds = 365 * 24 * 60 * 60;
// The signing policy backdates NotBefore for clock skew, and NotAfter too unless the certificate is short-lived.
const backdateSeconds = 5 * 60;
const shortLivedSeconds = 8 * 60 * 60;

const keyUsageBits: Readonly<Record<string, number>> = {
  signing: 0,
  "digital signature": 0,
  "content commitment": 1,
  "key encipherment": 2,
  "data encipherment": 3,
  "key agreement": 4,
  "cert sign": 5,
  "crl sign": 6,
  "encipher only": 7,
  "decipher only": 8,
};

const extendedKeyUsageOids: Readonly<Record<string, string>> = {
  any: "2.5.29.37.0",
  "server auth": "1.3.6.1.5.5.7.3.1",
  "client auth": "1.3.6.1.5.5.7.3.2",
  "code signing": "1.3.6.1.5.5.7.3.3",
  "email protection": "1.3.6.1.5.5.7.3.4",
  "s/mime": "1.3.6.1.5.5.7.3.4",
  "ipsec end system": "1.3.6.1.5.5.7.3.5",
  "ipsec tunnel": "1.3.6.1.5.5.7.3.6",
  "ipsec user": "1.3.6.1.5.5.7.3.7",
  timestamping: "1.3.6.1.5.5.7.3.8",
  "ocsp signing": "1.3.6.1.5.5.7.3.9",
  "microsoft sgc": "1.3.6.1.4.1.311.10.3.3",
  "netscape sgc": "2.16.840.1.113730.4.1",
};

function sameSet(left: readonly string[], right: readonly string[]): boolean {
  const leftSet = new Set(left);
  const rightSet = new Set(right);
  return leftSet.size === rightSet.size && [...leftSet].every((item) => rightSet.has(item));
}

/** Go's %v of a sorted string slice: `[a b c]`. */
function goList(items: readonly string[]): string {
  return `[${[...items].sort().join(" ")}]`;
}

const servingUsages = ["digital signature", "key encipherment", "server auth"];
const servingUsagesWithoutRsa = ["digital signature", "server auth"];
const clientUsages = ["digital signature", "key encipherment", "client auth"];
const clientUsagesWithoutRsa = ["digital signature", "client auth"];

/** Why the signer refuses a request (ValidateKubeletServingCSR / ValidateKubeletClientCSR), or undefined. */
export function signerValidationProblem(signerName: string, request: CertificateRequest, usages: readonly string[]): string | undefined {
  const fromNodes = request.organizations.length === 1 && request.organizations[0] === "system:nodes";
  if (signerName === kubeletServingSigner) {
    if (!fromNodes) return "subject organization is not system:nodes";
    if (request.dnsNames.length === 0 && request.ipAddresses.length === 0) return "DNS or IP subjectAltName is required";
    if (request.emailAddresses.length > 0) return "Email subjectAltNames are not allowed";
    if (request.uris.length > 0) return "URI subjectAltNames are not allowed";
    if (!sameSet(usages, servingUsages) && !sameSet(usages, servingUsagesWithoutRsa)) return `usages did not match ${goList(servingUsages)}`;
    if (!request.commonName.startsWith("system:node:")) return "subject common name does not begin with system:node:";
    return undefined;
  }
  if (signerName === kubeletClientSigner) {
    if (!fromNodes) return "subject organization is not system:nodes";
    if (request.dnsNames.length > 0) return "DNS subjectAltNames are not allowed";
    if (request.emailAddresses.length > 0) return "Email subjectAltNames are not allowed";
    if (request.ipAddresses.length > 0) return "IP subjectAltNames are not allowed";
    if (request.uris.length > 0) return "URI subjectAltNames are not allowed";
    if (!request.commonName.startsWith("system:node:")) return "subject common name does not begin with system:node:";
    if (!sameSet(usages, clientUsages) && !sameSet(usages, clientUsagesWithoutRsa)) return `usages did not match ${goList(clientUsages)}`;
    return undefined;
  }
  return `unrecognized signerName ${signerName}`;
}

interface LoadedAuthority {
  key: KeyObject;
  subjectDer: Buffer;
  subjectKeyIdentifier: Buffer | undefined;
  notAfter: Date;
}

function loadAuthority(certificatePem: string, privateKeyPem: string): LoadedAuthority {
  const block = firstPemBlock(certificatePem);
  if (block === undefined || block.type !== "CERTIFICATE") throw new Error("the CA certificate is not a PEM CERTIFICATE");
  const [tbs] = derChildren(expectTag(readDer(block.der), tags.sequence, "Certificate"));
  const fields = derChildren(expectTag(tbs, tags.sequence, "TBSCertificate"));
  const offset = fields[0]?.identifier === 0xa0 ? 1 : 0;
  const validity = derChildren(expectTag(fields[offset + 3], tags.sequence, "Validity"));
  const subject = expectTag(fields[offset + 4], tags.sequence, "Name");
  let subjectKeyIdentifier: Buffer | undefined;
  const extensionsField = fields.find((field) => field.identifier === 0xa3);
  for (const extension of extensionsField === undefined ? [] : derChildren(derChildren(extensionsField)[0] ?? extensionsField)) {
    const parts = derChildren(extension);
    if (parts[0] === undefined || readObjectIdentifier(parts[0]) !== "2.5.29.14") continue;
    const value = parts[parts.length - 1];
    if (value !== undefined) subjectKeyIdentifier = Buffer.from(readDer(value.content).content);
  }
  const notAfterElement = validity[1];
  if (notAfterElement === undefined) throw new Error("the CA certificate has no validity end");
  return { key: createPrivateKey(privateKeyPem), subjectDer: Buffer.from(subject.encoded), subjectKeyIdentifier, notAfter: readTime(notAfterElement) };
}

/** The signature algorithm Go's x509 picks for a key: SHA-256 (P-256, RSA), SHA-384 (P-384), SHA-512 (P-521), or Ed25519. */
function signatureAlgorithm(key: KeyObject): { identifier: Buffer; hash: string | null } {
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "secp384r1") return { identifier: derSequence(derObjectIdentifier("1.2.840.10045.4.3.3")), hash: "sha384" };
    if (curve === "secp521r1") return { identifier: derSequence(derObjectIdentifier("1.2.840.10045.4.3.4")), hash: "sha512" };
    return { identifier: derSequence(derObjectIdentifier("1.2.840.10045.4.3.2")), hash: "sha256" };
  }
  if (key.asymmetricKeyType === "rsa") return { identifier: derSequence(derObjectIdentifier("1.2.840.113549.1.1.11"), derNull()), hash: "sha256" };
  if (key.asymmetricKeyType === "ed25519") return { identifier: derSequence(derObjectIdentifier("1.3.101.112")), hash: null };
  throw new Error(`unsupported CA key type ${String(key.asymmetricKeyType)}`);
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return derSequence(derObjectIdentifier(oid), ...(critical ? [derBoolean(true)] : []), derOctetString(value));
}

function keyUsageExtension(usages: readonly string[]): Buffer | undefined {
  const bits = usages.map((usage) => keyUsageBits[usage]).filter((bit): bit is number => bit !== undefined);
  return bits.length === 0 ? undefined : extension("2.5.29.15", true, derNamedBits(bits));
}

function alternativeNames(request: CertificateRequest): Buffer | undefined {
  // GeneralName choices as implicit context tags (RFC 5280 4.2.1.6): rfc822Name 1, dNSName 2, URI 6, iPAddress 7.
  const names: Buffer[] = [
    ...request.dnsNames.map((name) => derImplicit(2, Buffer.from(name, "ascii"))),
    ...request.emailAddresses.map((address) => derImplicit(1, Buffer.from(address, "ascii"))),
    ...request.ipAddresses.map((address) => derImplicit(7, ipOctets(address))),
    ...request.uris.map((uri) => derImplicit(6, Buffer.from(uri, "ascii"))),
  ];
  return names.length === 0 ? undefined : extension("2.5.29.17", false, derSequence(...names));
}

/** The request's addresses were formatted from its own octets, so they always parse back. */
function ipOctets(address: string): Buffer {
  const octets = ipAddressOctets(address);
  if (octets === undefined) throw new Error(`the request's IP address ${JSON.stringify(address)} does not parse back`);
  return octets;
}

export interface SigningRequest {
  request: CertificateRequest;
  usages: readonly string[];
  expirationSeconds: number | undefined;
}

/** Issues a certificate for `signing` from the CA, returning it as PEM. */
export function issueCertificate(caCertificatePem: string, caPrivateKeyPem: string, signing: SigningRequest, now: Date = new Date()): string {
  const authority = loadAuthority(caCertificatePem, caPrivateKeyPem);
  const { identifier, hash } = signatureAlgorithm(authority.key);
  const ttl = Math.min(signing.expirationSeconds ?? signingDurationSeconds, signingDurationSeconds);
  const notBefore = new Date(now.getTime() - backdateSeconds * 1000);
  let notAfter = new Date(now.getTime() + (ttl < shortLivedSeconds ? ttl : ttl - backdateSeconds) * 1000);
  if (notAfter.getTime() >= authority.notAfter.getTime()) notAfter = authority.notAfter;
  if (now.getTime() >= authority.notAfter.getTime()) throw new Error(`refusing to sign a certificate that expired in the past: NotAfter=${authority.notAfter.toISOString()}`);

  const serial = randomBytes(8);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const extendedUsages = signing.usages.map((usage) => extendedKeyUsageOids[usage]).filter((oid): oid is string => oid !== undefined);
  const extensions = [
    keyUsageExtension(signing.usages),
    extendedUsages.length === 0 ? undefined : extension("2.5.29.37", false, derSequence(...extendedUsages.map(derObjectIdentifier))),
    extension("2.5.29.19", true, derSequence()),
    authority.subjectKeyIdentifier === undefined ? undefined : extension("2.5.29.35", false, derSequence(derImplicit(0, authority.subjectKeyIdentifier))),
    alternativeNames(signing.request),
  ].filter((item): item is Buffer => item !== undefined);

  const tbs = derSequence(
    derExplicit(0, derInteger(2)),
    derInteger(BigInt(`0x${serial.toString("hex")}`)),
    identifier,
    authority.subjectDer,
    derSequence(derTime(notBefore), derTime(notAfter)),
    signing.request.subjectDer,
    signing.request.publicKeyInfoDer,
    derExplicit(3, derSequence(...extensions)),
  );
  const signature = sign(hash, tbs, authority.key);
  return encodePem("CERTIFICATE", derSequence(tbs, identifier, derBitString(signature)));
}
