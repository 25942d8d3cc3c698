// A private PKI made with openssl at test time: a CA, a serving certificate for 127.0.0.1/localhost,
// and client certificates whose subject carries the identity (CN = user, O = groups), exactly as the
// real client-certificate authenticator reads it. Runs under both Bun and Node.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";

export type KeyAlgorithm = "ec" | "rsa";

export interface KeyPairFiles {
  certPath: string;
  keyPath: string;
}

export interface ClientIdentity {
  /** Becomes the user name. */
  commonName: string;
  /** Become the groups. */
  organizations?: string[];
  keyAlgorithm?: KeyAlgorithm;
}

export interface TestPki {
  dir: string;
  ca: KeyPairFiles;
  server: KeyPairFiles;
  /** Client certificate of the node `nodeName`: CN=system:node:<nodeName>, O=system:nodes. */
  node: KeyPairFiles;
  /** Client certificate of a cluster admin: CN=vks-test-admin, O=system:masters. */
  admin: KeyPairFiles;
  /**
   * The API server's own client certificate for kubelets (--kubelet-client-certificate):
   * CN=kube-apiserver-kubelet-client, O=system:masters, as kubeadm issues it.
   */
  kubeletClient: KeyPairFiles;
}

export const kubeletClientUser = "kube-apiserver-kubelet-client";

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function newKeyArguments(algorithm: KeyAlgorithm): string[] {
  return algorithm === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] : ["-newkey", "rsa:2048"];
}

function subjectOf(commonName: string, organizations: readonly string[]): string {
  const escape = (value: string): string => value.replace(/[/\\+,=]/g, (char) => `\\${char}`);
  return `${organizations.map((organization) => `/O=${escape(organization)}`).join("")}/CN=${escape(commonName)}`;
}

export function createCertificateAuthority(dir: string, stem = "ca"): KeyPairFiles {
  mkdirSync(dir, { recursive: true });
  const files = { certPath: join(dir, `${stem}.crt`), keyPath: join(dir, `${stem}.key`) };
  openssl([
    "req", "-x509", ...newKeyArguments("ec"), "-nodes", "-keyout", files.keyPath, "-out", files.certPath, "-days", "3650",
    "-subj", `/CN=vks-test-${stem}`,
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return files;
}

/** One openssl call (3.0+ signs with -CA directly) per certificate keeps a fresh PKI near a second. */
function issue(ca: KeyPairFiles, dir: string, stem: string, subject: string, extensions: readonly string[], algorithm: KeyAlgorithm): KeyPairFiles {
  mkdirSync(dir, { recursive: true });
  const files = { certPath: join(dir, `${stem}.crt`), keyPath: join(dir, `${stem}.key`) };
  openssl([
    "req", "-x509", ...newKeyArguments(algorithm), "-nodes", "-keyout", files.keyPath, "-out", files.certPath,
    "-subj", subject, "-days", "365", "-sha256", "-CA", ca.certPath, "-CAkey", ca.keyPath,
    "-set_serial", `0x${randomBytes(8).toString("hex")}`,
    "-addext", "basicConstraints=critical,CA:FALSE",
    ...extensions.flatMap((extension) => ["-addext", extension]),
  ]);
  return files;
}

export function issueServerCertificate(ca: KeyPairFiles, dir: string, hosts: readonly string[] = ["127.0.0.1", "localhost"]): KeyPairFiles {
  const alternativeNames = hosts.map((host) => (/^[\d.]+$|:/.test(host) ? `IP:${host}` : `DNS:${host}`)).join(",");
  return issue(
    ca,
    dir,
    "server",
    "/CN=vks-test-apiserver",
    [`subjectAltName=${alternativeNames}`, "extendedKeyUsage=serverAuth", "keyUsage=critical,digitalSignature,keyEncipherment"],
    "ec",
  );
}

export function issueClientCertificate(ca: KeyPairFiles, dir: string, stem: string, identity: ClientIdentity): KeyPairFiles {
  return issue(
    ca,
    dir,
    stem,
    subjectOf(identity.commonName, identity.organizations ?? []),
    ["extendedKeyUsage=clientAuth", "keyUsage=critical,digitalSignature,keyEncipherment"],
    identity.keyAlgorithm ?? "ec",
  );
}

/** Creates the standard PKI in `dir`, or reuses what an earlier call left there. */
export function ensureTestPki(dir: string, nodeName: string): TestPki {
  mkdirSync(dir, { recursive: true });
  const existing = (stem: string): KeyPairFiles | undefined => {
    const files = { certPath: join(dir, `${stem}.crt`), keyPath: join(dir, `${stem}.key`) };
    return existsSync(files.certPath) && existsSync(files.keyPath) ? files : undefined;
  };
  const ca = existing("ca") ?? createCertificateAuthority(dir);
  const server = existing("server") ?? issueServerCertificate(ca, dir);
  const node =
    existing("node") ?? issueClientCertificate(ca, dir, "node", { commonName: `system:node:${nodeName}`, organizations: ["system:nodes"] });
  const admin =
    existing("admin") ?? issueClientCertificate(ca, dir, "admin", { commonName: "vks-test-admin", organizations: ["system:masters"] });
  const kubeletClient =
    existing("kubelet-client") ??
    issueClientCertificate(ca, dir, "kubelet-client", { commonName: kubeletClientUser, organizations: ["system:masters"] });
  return { dir, ca, server, node, admin, kubeletClient };
}
