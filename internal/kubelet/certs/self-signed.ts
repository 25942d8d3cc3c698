/**
 * The kubelet's fallback when no certificate is configured: a self-signed serving certificate kept in
 * its certificate directory as kubelet.crt/kubelet.key and reused across restarts. vks also replaces it
 * when it has expired or no longer names all of the node's addresses (the kubelet keeps it forever).
 */
import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "./files.ts";
import { coversAltNames, isCurrentlyValid, keyPairFromPem, type ServingKeyPair } from "./keypair.ts";
import { createSelfSignedCertificate, generateServingKey, privateKeyPem, readCertificate, certificatesFromPem, type AlternativeNames } from "./x509.ts";

/** One year, back-dated an hour against clock skew, as client-go's GenerateSelfSignedCertKey does. */
export const SELF_SIGNED_LIFETIME_MS = 365 * 24 * 3600_000;
const BACKDATE_MS = 3600_000;

export interface SelfSignedFiles {
  certPath: string;
  keyPath: string;
}

export function selfSignedFiles(pkiDir: string): SelfSignedFiles {
  return { certPath: join(pkiDir, "kubelet.crt"), keyPath: join(pkiDir, "kubelet.key") };
}

/** Why a stored self-signed certificate cannot be reused, or undefined when it can. */
export function selfSignedStaleness(pair: ServingKeyPair, altNames: AlternativeNames, now: number): string | undefined {
  if (!isCurrentlyValid(pair, now)) return `it expired on ${pair.certificate.notAfter.toISOString()}`;
  if (!coversAltNames(pair.certificate.altNames, altNames)) return "it does not name all of the node's current addresses";
  return undefined;
}

/** A fresh pair with the kubelet's subject, `<hostname>@<unix seconds>`, which tells certificates of one host apart. */
export function createSelfSignedPair(hostname: string, altNames: AlternativeNames, now: number): ServingKeyPair {
  const key = generateServingKey();
  const certPem = createSelfSignedCertificate(
    {
      subject: { commonName: `${hostname}@${Math.floor(now / 1000)}` },
      altNames,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now - BACKDATE_MS + SELF_SIGNED_LIFETIME_MS),
    },
    key,
  );
  const leaf = certificatesFromPem(certPem)[0];
  if (leaf === undefined) throw new Error("bug: the certificate just built has no PEM block");
  return { certPem, keyPem: privateKeyPem(key), certificate: readCertificate(leaf) };
}

/** The stored pair, or why it cannot be used ("missing" when there is none yet). */
export async function readSelfSigned(files: SelfSignedFiles): Promise<ServingKeyPair | { unusable: string }> {
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([readFile(files.certPath, "utf8"), readFile(files.keyPath, "utf8")]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { unusable: "missing" };
    return { unusable: err instanceof Error ? err.message : String(err) };
  }
  try {
    return keyPairFromPem(certPem, keyPem);
  } catch (err) {
    return { unusable: err instanceof Error ? err.message : String(err) };
  }
}

/** Stores `pair`: the key first (0600), then the certificate, each replaced atomically. */
export async function writeSelfSigned(files: SelfSignedFiles, pair: ServingKeyPair): Promise<void> {
  await mkdir(dirname(files.keyPath), { recursive: true, mode: 0o755 });
  await mkdir(dirname(files.certPath), { recursive: true, mode: 0o755 });
  await writeFileAtomic(files.keyPath, pair.keyPem, 0o600);
  await writeFileAtomic(files.certPath, pair.certPem, 0o644);
}
