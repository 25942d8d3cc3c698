/**
 * A serving certificate with its private key, checked the way a TLS server needs them: a parsable leaf
 * certificate (with any chain after it), a usable unencrypted key, and the key belonging to the leaf.
 */
import { X509Certificate, type KeyObject } from "node:crypto";
import { canonicalIpAddress } from "./ip.ts";
import { CertificateFormatError, certificatesFromPem, privateKeyFromPem, readCertificate, type AlternativeNames, type CertificateFacts } from "./x509.ts";

export interface ServingKeyPair {
  /** The leaf certificate first, then any intermediates, in PEM: what node:tls takes as `cert`. */
  certPem: string;
  keyPem: string;
  /** What the leaf says about itself. */
  certificate: CertificateFacts;
}

export type KeyPairProblem = "no-certificate" | "malformed-certificate" | "no-key" | "mismatch";

/** Why a certificate/key pair cannot serve; `problem` tells which of the two files is at fault. */
export class KeyPairError extends Error {
  override readonly name = "KeyPairError";
  constructor(
    readonly problem: KeyPairProblem,
    message: string,
  ) {
    super(message);
  }
}

/** Checks and reads a certificate chain and key given as PEM text; throws KeyPairError. */
export function keyPairFromPem(certPem: string, keyPem: string): ServingKeyPair {
  const [leaf] = certificatesFromPem(certPem);
  if (leaf === undefined) throw new KeyPairError("no-certificate", "no PEM CERTIFICATE block");
  let certificate: CertificateFacts;
  let x509: X509Certificate;
  try {
    certificate = readCertificate(leaf);
    x509 = new X509Certificate(leaf);
  } catch (err) {
    const detail = err instanceof CertificateFormatError ? err.message : `cannot parse the certificate: ${err instanceof Error ? err.message : String(err)}`;
    throw new KeyPairError("malformed-certificate", detail);
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyPem)) {
    throw new KeyPairError("no-key", "the private key is encrypted; vks needs it unencrypted, as the kubelet does");
  }
  let key: KeyObject;
  try {
    key = privateKeyFromPem(keyPem);
  } catch {
    throw new KeyPairError("no-key", "no usable PEM private key (PKCS#8, SEC 1 or PKCS#1)");
  }
  if (!x509.checkPrivateKey(key)) throw new KeyPairError("mismatch", "the private key does not belong to the certificate");
  return { certPem, keyPem, certificate };
}

/** Whether `now` lies within the leaf's validity. */
export function isCurrentlyValid(pair: ServingKeyPair, now: number): boolean {
  return now >= pair.certificate.notBefore.getTime() && now < pair.certificate.notAfter.getTime();
}

/**
 * Whether the certificate names everything `wanted` names. Extra names do not count against it, as
 * with the kubelet's certificate manager: a node that lost an address keeps a certificate that still works.
 */
export function coversAltNames(have: AlternativeNames, wanted: AlternativeNames): boolean {
  const dnsNames = new Set(have.dnsNames.map((name) => name.toLowerCase()));
  const ipAddresses = new Set(have.ipAddresses.map((address) => canonicalIpAddress(address) ?? address));
  return (
    wanted.dnsNames.every((name) => dnsNames.has(name.toLowerCase())) &&
    wanted.ipAddresses.every((address) => ipAddresses.has(canonicalIpAddress(address) ?? address))
  );
}
