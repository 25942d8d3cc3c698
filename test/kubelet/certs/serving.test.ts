// The three sources of the kubelet API's serving certificate: configured files, the self-signed one in
// the state dir, and certificates obtained and renewed through a (fake) CSR API.
import { afterAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import type { ServingKeyPair } from "../../../internal/kubelet/certs/keypair.ts";
import { KUBELET_SERVING_SIGNER, rotationDeadline } from "../../../internal/kubelet/certs/rotation.ts";
import { ServingCertificate, type NodeAddress, type ServingCertificateOptions } from "../../../internal/kubelet/certs/serving.ts";
import { createCertificateAuthority, issueServerCertificate } from "../../apiserver/certs.ts";
import { FakeCsrApi, ManualClock, RecordingLog, eventually, failure } from "./helpers.ts";

const root = mkdtempSync(join(tmpdir(), "vks-serving-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
function freshDir(stem: string): string {
  const dir = join(root, `${stem}-${counter++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

const ADDRESSES: NodeAddress[] = [
  { type: "InternalIP", address: "10.0.0.7" },
  { type: "Hostname", address: "n1" },
];

function options(stateDir: string, overrides: Partial<ServingCertificateOptions> = {}): ServingCertificateOptions {
  return { stateDir, nodeName: "n1", hostname: "vks-host", addresses: ADDRESSES, log: new RecordingLog(), ...overrides };
}

function opensslText(pem: string, kind: "x509" | "req" = "x509"): string {
  return execFileSync("openssl", [kind, "-noout", "-text"], { input: pem, encoding: "utf8" });
}

describe("files (--tls-cert-file / --tls-private-key-file)", () => {
  const pkiDir = freshDir("files-pki");
  const ca = createCertificateAuthority(pkiDir);
  const good = issueServerCertificate(ca, join(pkiDir, "good"));
  const other = issueServerCertificate(ca, join(pkiDir, "other"));

  test("loads the pair as given and never writes to the state dir", async () => {
    const stateDir = freshDir("files");
    const serving = await ServingCertificate.open(options(stateDir, { tlsCertFile: good.certPath, tlsPrivateKeyFile: good.keyPath }));
    try {
      expect(serving.source).toBe("files");
      expect(serving.current()?.certPem).toBe(readFileSync(good.certPath, "utf8"));
      expect(serving.current()?.keyPem).toBe(readFileSync(good.keyPath, "utf8"));
      expect(serving.current()?.certificate.subject.commonName).toBe("vks-test-apiserver");
      expect(existsSync(join(stateDir, "pki"))).toBe(false);
    } finally {
      await serving.close();
    }
  });

  test("a missing file is named by its flag", async () => {
    const stateDir = freshDir("files");
    const missingCert = await failure(ServingCertificate.open(options(stateDir, { tlsCertFile: join(stateDir, "nope.crt"), tlsPrivateKeyFile: good.keyPath })));
    expect(missingCert.message).toBe(`--tls-cert-file ${join(stateDir, "nope.crt")}: no such file`);
    expect(missingCert.exitCode).toBe(66);
    const missingKey = await failure(ServingCertificate.open(options(stateDir, { tlsCertFile: good.certPath, tlsPrivateKeyFile: join(stateDir, "nope.key") })));
    expect(missingKey.message).toBe(`--tls-private-key-file ${join(stateDir, "nope.key")}: no such file`);
  });

  test("an unreadable file is named by its flag", async () => {
    const stateDir = freshDir("files");
    // root reads anything whatever its mode; a directory is unreadable as a file for everyone.
    const err = await failure(ServingCertificate.open(options(stateDir, { tlsCertFile: stateDir, tlsPrivateKeyFile: good.keyPath })));
    expect(err.message).toStartWith(`--tls-cert-file ${stateDir}: cannot read`);
    if (process.getuid?.() !== 0) {
      const locked = join(stateDir, "locked.key");
      writeFileSync(locked, readFileSync(good.keyPath));
      chmodSync(locked, 0o000);
      const denied = await failure(ServingCertificate.open(options(stateDir, { tlsCertFile: good.certPath, tlsPrivateKeyFile: locked })));
      expect(denied.message).toBe(`--tls-private-key-file ${locked}: permission denied`);
      expect(denied.exitCode).toBe(77);
    }
  });

  test("files that are not PEM are named by their flag", async () => {
    const stateDir = freshDir("files");
    const junk = join(stateDir, "junk.pem");
    writeFileSync(junk, "this is not a certificate\n");
    const badCert = await failure(ServingCertificate.open(options(stateDir, { tlsCertFile: junk, tlsPrivateKeyFile: good.keyPath })));
    expect(badCert.message).toStartWith(`--tls-cert-file ${junk}: not a PEM certificate`);
    expect(badCert.exitCode).toBe(65);
    const badKey = await failure(ServingCertificate.open(options(stateDir, { tlsCertFile: good.certPath, tlsPrivateKeyFile: junk })));
    expect(badKey.message).toStartWith(`--tls-private-key-file ${junk}: no usable PEM private key`);
    // A key where the certificate belongs, and a certificate where the key belongs.
    const swapped = await failure(ServingCertificate.open(options(stateDir, { tlsCertFile: good.keyPath, tlsPrivateKeyFile: good.certPath })));
    expect(swapped.message).toStartWith(`--tls-cert-file ${good.keyPath}: not a PEM certificate`);
    const encrypted = join(stateDir, "encrypted.key");
    execFileSync("openssl", ["pkcs8", "-topk8", "-in", good.keyPath, "-out", encrypted, "-passout", "pass:secret"]);
    const encryptedKey = await failure(ServingCertificate.open(options(stateDir, { tlsCertFile: good.certPath, tlsPrivateKeyFile: encrypted })));
    expect(encryptedKey.message).toContain(`--tls-private-key-file ${encrypted}: the private key is encrypted`);
  });

  test("a key that does not belong to the certificate names both flags", async () => {
    const err = await failure(ServingCertificate.open(options(freshDir("files"), { tlsCertFile: good.certPath, tlsPrivateKeyFile: other.keyPath })));
    expect(err.message).toBe(`--tls-private-key-file ${other.keyPath} does not belong to the certificate in --tls-cert-file ${good.certPath}`);
    expect(err.exitCode).toBe(65);
  });

  test("one flag without the other is a usage error", async () => {
    const err = await failure(ServingCertificate.open(options(freshDir("files"), { tlsCertFile: good.certPath })));
    expect(err.message).toBe("--tls-private-key-file is required with --tls-cert-file");
    expect(err.exitCode).toBe(2);
  });

  test("files replaced on disk are reloaded; a broken replacement keeps the old pair serving", async () => {
    const stateDir = freshDir("files");
    const certFile = join(stateDir, "serving.crt");
    const keyFile = join(stateDir, "serving.key");
    writeFileSync(certFile, readFileSync(good.certPath));
    writeFileSync(keyFile, readFileSync(good.keyPath));
    const clock = new ManualClock(Date.now());
    const log = new RecordingLog();
    const serving = await ServingCertificate.open(options(stateDir, { tlsCertFile: certFile, tlsPrivateKeyFile: keyFile, clock, log, fileCheckIntervalMs: 60_000 }));
    const rotated: ServingKeyPair[] = [];
    serving.onRotated((pair) => rotated.push(pair));
    try {
      await eventually("the file watcher to sleep", () => clock.sleeping === 1);
      clock.advanceBy(60_000);
      await eventually("the watcher to sleep again", () => clock.sleeping === 1);
      expect(rotated).toHaveLength(0);

      writeFileSync(certFile, readFileSync(other.certPath));
      clock.advanceBy(60_000);
      await eventually("a mismatch warning", () => log.lines.some((line) => line.includes("not reloading") && line.includes("does not belong")));
      expect(serving.current()?.certPem).toBe(readFileSync(good.certPath, "utf8"));

      writeFileSync(keyFile, readFileSync(other.keyPath));
      await eventually("the watcher to sleep again", () => clock.sleeping === 1);
      clock.advanceBy(60_000);
      await eventually("the reload", () => rotated.length === 1);
      expect(serving.current()?.certPem).toBe(readFileSync(other.certPath, "utf8"));
    } finally {
      await serving.close();
    }
  });
});

describe("self-signed (no flags)", () => {
  test("made once in <stateDir>/pki as the kubelet's kubelet.crt/kubelet.key and reused after a restart", async () => {
    const stateDir = freshDir("self");
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const first = await ServingCertificate.open(options(stateDir, { clock }));
    await first.close();
    const pair = first.current()!;
    expect(first.source).toBe("self-signed");

    const certPath = join(stateDir, "pki", "kubelet.crt");
    const keyPath = join(stateDir, "pki", "kubelet.key");
    expect(readFileSync(certPath, "utf8")).toBe(pair.certPem);
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    expect(pair.certificate.subject.commonName).toBe(`vks-host@${Date.UTC(2030, 0, 1) / 1000}`);
    expect(pair.certificate.altNames).toEqual({ dnsNames: ["localhost", "n1", "vks-host"], ipAddresses: ["10.0.0.7", "127.0.0.1", "::1"] });
    expect(pair.certificate.notBefore.toISOString()).toBe("2029-12-31T23:00:00.000Z");
    expect(pair.certificate.notAfter.toISOString()).toBe("2030-12-31T23:00:00.000Z");
    const text = opensslText(pair.certPem);
    expect(text).toContain("DNS:localhost, DNS:n1, DNS:vks-host, IP Address:10.0.0.7, IP Address:127.0.0.1");

    clock.advanceBy(30 * 24 * 3600_000);
    const second = await ServingCertificate.open(options(stateDir, { clock }));
    await second.close();
    expect(second.current()?.certPem).toBe(pair.certPem);
    expect(second.current()?.keyPem).toBe(pair.keyPem);
  });

  test("regenerated on start when expired, when the addresses outgrew it, or when the files are damaged", async () => {
    const stateDir = freshDir("self");
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const log = new RecordingLog();
    const original = await ServingCertificate.open(options(stateDir, { clock, log }));
    await original.close();

    // A removed address does not matter (the certificate still names more than needed)...
    const fewer = await ServingCertificate.open(options(stateDir, { clock, log, addresses: [{ type: "Hostname", address: "n1" }] }));
    await fewer.close();
    expect(fewer.current()?.certPem).toBe(original.current()?.certPem);

    // ...a new one does.
    const moreAddresses: NodeAddress[] = [...ADDRESSES, { type: "ExternalIP", address: "2001:db8::7" }];
    const more = await ServingCertificate.open(options(stateDir, { clock, log, addresses: moreAddresses }));
    await more.close();
    expect(more.current()?.certPem).not.toBe(original.current()?.certPem);
    expect(more.current()?.certificate.altNames.ipAddresses).toContain("2001:db8::7");
    expect(log.lines.some((line) => line.includes("does not name all of the node's current addresses"))).toBe(true);

    clock.advanceBy(366 * 24 * 3600_000);
    const renewed = await ServingCertificate.open(options(stateDir, { clock, log, addresses: moreAddresses }));
    await renewed.close();
    expect(renewed.current()?.certificate.notAfter.getTime()).toBeGreaterThan(clock.now());
    expect(log.lines.some((line) => line.includes("it expired on 2030-12-31T23:00:00.000Z"))).toBe(true);

    writeFileSync(join(stateDir, "pki", "kubelet.key"), "garbage\n");
    const repaired = await ServingCertificate.open(options(stateDir, { clock, log }));
    await repaired.close();
    expect(repaired.current()?.certPem).not.toBe(renewed.current()?.certPem);
    expect(log.lines.some((line) => line.startsWith("warn: serving certificate: replacing") && line.includes("no usable PEM private key"))).toBe(true);
    expect(readFileSync(join(stateDir, "pki", "kubelet.key"), "utf8")).toBe(repaired.current()!.keyPem);
  });

  test("while running: replaced at expiry and when a new address appears", async () => {
    const stateDir = freshDir("self");
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const serving = await ServingCertificate.open(options(stateDir, { clock }));
    const rotated: ServingKeyPair[] = [];
    serving.onRotated((pair) => rotated.push(pair));
    try {
      expect(serving.nextRotation()?.toISOString()).toBe("2030-12-31T23:00:00.000Z");
      serving.updateAddresses([{ type: "InternalIP", address: "10.0.0.7" }]);
      await eventually("the loop to sleep", () => clock.sleeping === 1);
      expect(rotated).toHaveLength(0);

      serving.updateAddresses([...ADDRESSES, { type: "InternalIP", address: "10.0.0.8" }]);
      await eventually("a certificate naming 10.0.0.8", () => rotated.length === 1);
      expect(rotated[0]?.certificate.altNames.ipAddresses).toContain("10.0.0.8");
      expect(serving.current()).toBe(rotated[0]!);

      await eventually("the loop to sleep", () => clock.sleeping === 1);
      clock.advanceTo(serving.current()!.certificate.notAfter.getTime());
      await eventually("the replacement at expiry", () => rotated.length === 2);
      expect(rotated[1]!.certificate.notAfter.getTime()).toBeGreaterThan(clock.now());
      expect(readFileSync(join(stateDir, "pki", "kubelet.crt"), "utf8")).toBe(rotated[1]!.certPem);
    } finally {
      await serving.close();
    }
  });

  test("a node:tls server serves it and switches with setSecureContext", async () => {
    const stateDir = freshDir("self");
    const serving = await ServingCertificate.open(options(stateDir));
    const first = serving.current()!;
    const server = tls.createServer({ cert: first.certPem, key: first.keyPem }, (socket) => socket.end());
    serving.onRotated((pair) => server.setSecureContext({ cert: pair.certPem, key: pair.keyPem }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    const peerCommonName = (ca: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: "127.0.0.1", port, ca }, () => {
          resolve(String(socket.getPeerCertificate().subject.CN));
          socket.destroy();
        });
        socket.on("error", reject);
      });
    try {
      expect(await peerCommonName(first.certPem)).toBe(first.certificate.subject.commonName);
      serving.updateAddresses([...ADDRESSES, { type: "InternalIP", address: "10.0.0.9" }]);
      const second = await eventually("a new certificate", () => (serving.current() !== first ? serving.current() : undefined));
      // Same second, same CN: the serial tells the two apart.
      const peerSerial = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: "127.0.0.1", port, ca: second.certPem }, () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        });
        socket.on("error", reject);
      });
      expect(BigInt(`0x${peerSerial}`)).toBe(second.certificate.serialNumber);
    } finally {
      server.close();
      await serving.close();
    }
  });
});

describe("rotation (--rotate-server-certificates)", () => {
  test("renewal is due at 70-90 % of the lifetime", () => {
    const pair = { certificate: { notBefore: new Date(0), notAfter: new Date(1000_000) } } as ServingKeyPair;
    expect(rotationDeadline(pair, () => 0)).toBe(700_000);
    expect(rotationDeadline(pair, () => 0.5)).toBeCloseTo(800_000, 3);
    expect(rotationDeadline(pair, () => 0.999999)).toBeCloseTo(900_000, -1);
  });

  test("nothing is served until the first certificate is issued; the CSR is the kubelet's; the pair is stored as kubelet-server-current.pem", async () => {
    const stateDir = freshDir("csr");
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const api = new FakeCsrApi(root);
    const gated = {
      submissions: api.submissions,
      async requestCertificate(...args: Parameters<FakeCsrApi["requestCertificate"]>) {
        await gate;
        return api.requestCertificate(...args);
      },
    };
    const serving = await ServingCertificate.open(options(stateDir, { rotateServerCertificates: true, csrClient: gated }));
    const server = tls.createServer({}, (socket) => socket.end());
    serving.onRotated((pair) => server.setSecureContext({ cert: pair.certPem, key: pair.keyPem }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    const handshake = () =>
      new Promise<boolean>((resolve) => {
        const socket = tls.connect({ host: "127.0.0.1", port, ca: api.caPem, checkServerIdentity: () => undefined }, () => {
          resolve(socket.authorized);
          socket.destroy();
        });
        socket.on("error", () => resolve(false));
      });
    try {
      expect(serving.source).toBe("csr");
      expect(serving.current()).toBeUndefined();
      expect(await handshake()).toBe(false);

      release();
      const pair = await serving.ready();
      expect(serving.current()).toBe(pair);
      expect(await handshake()).toBe(true);

      const [submission] = api.submissions;
      expect(submission?.signerName).toBe(KUBELET_SERVING_SIGNER);
      expect(submission?.usages).toEqual(["digital signature", "key encipherment", "server auth"]);
      const request = opensslText(submission!.requestPem, "req");
      expect(request).toContain("Subject: O = system:nodes, CN = system:node:n1");
      expect(request).toContain("DNS:n1, IP Address:10.0.0.7");
      expect(pair.certificate.subject).toEqual({ commonName: "system:node:n1", organizations: ["system:nodes"] });

      const current = join(stateDir, "pki", "kubelet-server-current.pem");
      expect(lstatSync(current).isSymbolicLink()).toBe(true);
      expect(readlinkSync(current)).toMatch(/^kubelet-server-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.pem$/);
      expect(statSync(current).mode & 0o777).toBe(0o600);
      const stored = readFileSync(current, "utf8");
      expect(stored).toContain("-----BEGIN CERTIFICATE-----");
      expect(stored).toContain("-----BEGIN EC PRIVATE KEY-----");
      expect(execFileSync("openssl", ["verify", "-CAfile", api.ca.certPath, current], { encoding: "utf8" }).trim()).toBe(`${current}: OK`);
    } finally {
      server.close();
      await serving.close();
    }
  });

  test("renewed at the jittered deadline; restarts reuse the stored certificate", async () => {
    const stateDir = freshDir("csr");
    const clock = new ManualClock(Date.now());
    const api = new FakeCsrApi(root, () => "approve", () => clock.now());
    const settings = options(stateDir, { rotateServerCertificates: true, csrClient: api, clock, random: () => 0.5 });
    const serving = await ServingCertificate.open(settings);
    const rotated: ServingKeyPair[] = [];
    try {
      const first = await serving.ready();
      serving.onRotated((pair) => rotated.push(pair));
      const { notBefore, notAfter } = first.certificate;
      const deadline = notBefore.getTime() + 0.8 * (notAfter.getTime() - notBefore.getTime());
      await eventually("the renewal to be scheduled", () => clock.sleeping === 1);
      expect(serving.nextRotation()?.getTime()).toBe(deadline);

      clock.advanceTo(deadline - 1000);
      await Bun.sleep(20);
      expect(api.submissions).toHaveLength(1);

      clock.advanceTo(deadline);
      await eventually("the renewed certificate", () => rotated.length === 1);
      expect(rotated[0]!.certificate.serialNumber).not.toBe(first.certificate.serialNumber);
      expect(rotated[0]!.keyPem).not.toBe(first.keyPem);
      expect(serving.current()).toBe(rotated[0]!);
    } finally {
      await serving.close();
    }

    const restarted = await ServingCertificate.open(settings);
    try {
      expect(restarted.current()?.certPem).toBe(rotated[0]!.certPem);
      await eventually("the renewal to be scheduled", () => clock.sleeping === 1);
      expect(api.submissions).toHaveLength(2);
    } finally {
      await restarted.close();
    }
  });

  test("a denied request is retried with back-off while the old certificate keeps serving", async () => {
    const stateDir = freshDir("csr");
    const clock = new ManualClock(Date.now());
    const api = new FakeCsrApi(root, (call) => (call === 1 || call === 2 ? "deny" : "approve"), () => clock.now());
    const log = new RecordingLog();
    const serving = await ServingCertificate.open(options(stateDir, { rotateServerCertificates: true, csrClient: api, clock, log, random: () => 0.5 }));
    try {
      const first = await serving.ready();
      await eventually("the renewal to be scheduled", () => clock.sleeping === 1);
      clock.advanceTo(serving.nextRotation()!.getTime());

      await eventually("the first retry to be scheduled", () => api.submissions.length === 2 && clock.sleeping === 1);
      expect(serving.current()).toBe(first);
      expect(log.lines).toContain(
        "warn: serving certificate request failed: certificate signing request csr-1 was denied: NotAllowed: node addresses are not allowed; retrying (the current certificate keeps serving)",
      );
      // client-go's back-off: 2 s, then 4 s, each with up to 10 % jitter.
      expect(clock.nextWake()! - clock.now()).toBe(2100);
      clock.advanceBy(2100);
      await eventually("the second retry to be scheduled", () => api.submissions.length === 3 && clock.sleeping === 1);
      expect(clock.nextWake()! - clock.now()).toBe(4200);
      expect(serving.current()).toBe(first);

      clock.advanceBy(4200);
      await eventually("the certificate issued on the third try", () => serving.current() !== first);
      expect(api.submissions).toHaveLength(4);
    } finally {
      await serving.close();
    }
  });

  test("an address the certificate does not name triggers a request at once; none is made without an IP", async () => {
    const stateDir = freshDir("csr");
    const clock = new ManualClock(Date.now());
    const api = new FakeCsrApi(root, () => "approve", () => clock.now());
    const log = new RecordingLog();
    const serving = await ServingCertificate.open(
      options(stateDir, { rotateServerCertificates: true, csrClient: api, clock, log, addresses: [{ type: "Hostname", address: "n1" }] }),
    );
    try {
      await eventually("the wait for an address", () => clock.sleeping === 1);
      expect(api.submissions).toHaveLength(0);
      expect(log.lines.some((line) => line.includes("no node IP address known yet"))).toBe(true);

      serving.updateAddresses(ADDRESSES);
      const first = await serving.ready();
      expect(first.certificate.altNames.ipAddresses).toEqual(["10.0.0.7"]);

      await eventually("the renewal to be scheduled", () => clock.sleeping === 1);
      serving.updateAddresses([...ADDRESSES, { type: "ExternalIP", address: "fd00::7" }, { type: "InternalDNS", address: "n1.cluster.internal" }]);
      await eventually("a certificate naming the new addresses", () => serving.current() !== first);
      expect(serving.current()?.certificate.altNames).toEqual({ dnsNames: ["n1", "n1.cluster.internal"], ipAddresses: ["10.0.0.7", "fd00::7"] });
      expect(api.submissions).toHaveLength(2);

      // Fewer addresses than the certificate names: nothing to do.
      await eventually("the renewal to be scheduled", () => clock.sleeping === 1);
      serving.updateAddresses(ADDRESSES);
      await Bun.sleep(20);
      expect(api.submissions).toHaveLength(2);
    } finally {
      await serving.close();
    }
  });

  test("configured files serve until the first issued certificate replaces them; pairs older than the previous one are removed", async () => {
    const stateDir = freshDir("csr");
    const clock = new ManualClock(Date.now());
    const api = new FakeCsrApi(root, () => "approve", () => clock.now());
    const pki = createCertificateAuthority(join(stateDir, "given"));
    const given = issueServerCertificate(pki, join(stateDir, "given"));
    const serving = await ServingCertificate.open(
      options(stateDir, { rotateServerCertificates: true, csrClient: api, clock, tlsCertFile: given.certPath, tlsPrivateKeyFile: given.keyPath }),
    );
    try {
      expect(serving.current()?.certificate.subject.commonName).toBe("vks-test-apiserver");
      await eventually("the issued certificate", () => serving.current()?.certificate.subject.commonName === "system:node:n1");
      for (let round = 0; round < 3; round++) {
        const before = serving.current();
        await eventually("the renewal to be scheduled", () => clock.sleeping === 1);
        clock.advanceTo(serving.nextRotation()!.getTime());
        // A second apart, so each pair gets its own timestamped file name.
        clock.advanceBy(1000);
        await eventually("a renewal", () => serving.current() !== before);
      }
      const pairs = readdirSync(join(stateDir, "pki")).filter((name) => /^kubelet-server-\d/.test(name));
      expect(pairs).toHaveLength(2);
      expect(pairs).toContain(readlinkSync(join(stateDir, "pki", "kubelet-server-current.pem")));
    } finally {
      await serving.close();
    }
  });

  test("close() abandons a pending request and rejects ready()", async () => {
    const api = new FakeCsrApi(root, () => "hang");
    const serving = await ServingCertificate.open(options(freshDir("csr"), { rotateServerCertificates: true, csrClient: api }));
    const ready = serving.ready();
    await eventually("the request", () => api.submissions.length === 1);
    await serving.close();
    await expect(ready).rejects.toThrow("stopped before a serving certificate was issued");
    expect(serving.current()).toBeUndefined();
  });
});
