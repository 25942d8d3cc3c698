// DER encoding checked against known encodings, certificates and requests checked by the openssl CLI,
// and a real TLS handshake with the self-signed certificate.
import { afterAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import {
  derBitString,
  derInteger,
  derNamedBits,
  derObjectIdentifier,
  derSet,
  derTime,
  derUtf8String,
  readDer,
  readObjectIdentifier,
  readTime,
} from "../../../internal/kubelet/certs/der.ts";
import { canonicalIpAddress, formatIpAddress, ipAddressOctets } from "../../../internal/kubelet/certs/ip.ts";
import { decodePem } from "../../../internal/kubelet/certs/pem.ts";
import {
  certificatesFromPem,
  createCertificateRequest,
  createSelfSignedCertificate,
  generateServingKey,
  privateKeyPem,
  readCertificate,
} from "../../../internal/kubelet/certs/x509.ts";

const workDir = mkdtempSync(join(tmpdir(), "vks-x509-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function openssl(args: string[], input?: string): string {
  return execFileSync("openssl", args, { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

describe("DER encoder", () => {
  test("integers take the fewest octets, with a zero octet before a set top bit", () => {
    expect(hex(derInteger(0))).toBe("020100");
    expect(hex(derInteger(127))).toBe("02017f");
    expect(hex(derInteger(128))).toBe("02020080");
    expect(hex(derInteger(256))).toBe("02020100");
    expect(hex(derInteger(2n ** 64n))).toBe("0209010000000000000000");
    expect(() => derInteger(-1)).toThrow();
  });

  test("object identifiers: X.690's example and multi-octet arcs", () => {
    expect(hex(derObjectIdentifier("1.2.840.113549.1.1.11"))).toBe("06092a864886f70d01010b");
    expect(hex(derObjectIdentifier("2.5.29.17"))).toBe("0603551d11");
    expect(readObjectIdentifier(readDer(derObjectIdentifier("1.3.6.1.5.5.7.3.1")))).toBe("1.3.6.1.5.5.7.3.1");
    expect(() => derObjectIdentifier("1.40")).toThrow();
  });

  test("long lengths use the long form", () => {
    const encoded = derUtf8String("x".repeat(300));
    expect(hex(encoded.subarray(0, 4))).toBe("0c82012c");
    expect(readDer(encoded).content.length).toBe(300);
  });

  test("named bits drop trailing zero bits (keyUsage digitalSignature + keyEncipherment = 03 02 05 a0)", () => {
    expect(hex(derNamedBits([0, 2]))).toBe("030205a0");
    expect(hex(derNamedBits([0]))).toBe("03020780");
    expect(hex(derNamedBits([8]))).toBe("0303070080");
    expect(hex(derBitString(Buffer.from([1, 2])))).toBe("0303000102");
  });

  test("SET OF is sorted by encoding", () => {
    const set = derSet(derInteger(3), derInteger(1), derInteger(2));
    expect(hex(set)).toBe("3109020101020102020103");
  });

  test("times: UTCTime until 2049, GeneralizedTime from 2050, read back exactly", () => {
    const early = new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 999));
    expect(derTime(early).toString("latin1").slice(2)).toBe("250102030405Z");
    expect(readTime(readDer(derTime(early))).toISOString()).toBe("2025-01-02T03:04:05.000Z");
    const late = new Date(Date.UTC(2050, 11, 31, 23, 59, 59));
    expect(derTime(late)[0]).toBe(0x18);
    expect(readTime(readDer(derTime(late))).toISOString()).toBe("2050-12-31T23:59:59.000Z");
  });

  test("the reader refuses truncated and indefinite-length input", () => {
    expect(() => readDer(Buffer.from("3004020101", "hex"))).toThrow();
    expect(() => readDer(Buffer.from("30800000", "hex"))).toThrow();
    expect(() => readDer(Buffer.from("02010100", "hex"))).toThrow(/trailing/);
  });
});

describe("IP addresses", () => {
  test("IPv4, IPv6 (compressed, expanded, embedded IPv4) and IPv4-mapped", () => {
    expect(hex(ipAddressOctets("10.0.0.7")!)).toBe("0a000007");
    expect(hex(ipAddressOctets("::1")!)).toBe("00000000000000000000000000000001");
    expect(hex(ipAddressOctets("2001:db8::8:800:200c:417a")!)).toBe("20010db80000000000080800200c417a");
    expect(hex(ipAddressOctets("64:ff9b::192.0.2.33")!)).toBe("0064ff9b0000000000000000c0000221");
    expect(hex(ipAddressOctets("::ffff:10.1.2.3")!)).toBe("0a010203");
    expect(ipAddressOctets("node-1")).toBeUndefined();
    expect(ipAddressOctets("fe80::1%eth0")).toBeUndefined();
  });

  test("canonical text follows RFC 5952", () => {
    expect(canonicalIpAddress("0:0:0:0:0:0:0:1")).toBe("::1");
    expect(canonicalIpAddress("2001:DB8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1");
    expect(canonicalIpAddress("2001:db8:0:1:1:1:1:1")).toBe("2001:db8:0:1:1:1:1:1");
    expect(canonicalIpAddress("::")).toBe("::");
    expect(formatIpAddress(Buffer.from([192, 168, 1, 2]))).toBe("192.168.1.2");
  });
});

describe("self-signed certificate", () => {
  const key = generateServingKey();
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(notBefore.getTime() + 365 * 24 * 3600_000);
  const certPem = createSelfSignedCertificate(
    {
      subject: { commonName: "vks-host@1700000000", organizations: ["system:nodes"] },
      altNames: { dnsNames: ["node-1", "localhost"], ipAddresses: ["10.0.0.7", "127.0.0.1", "::1", "2001:db8::5"] },
      notBefore,
      notAfter,
      serialNumber: 0x8f00_1234n,
    },
    key,
  );
  const certPath = join(workDir, "self.crt");
  writeFileSync(certPath, certPem);

  test("openssl reads every field", () => {
    const text = openssl(["x509", "-in", certPath, "-noout", "-text"]);
    expect(text).toContain("Version: 3 (0x2)");
    expect(text).toContain("Serial Number: 2399146548 (0x8f001234)");
    expect(text).toContain("Signature Algorithm: ecdsa-with-SHA256");
    expect(text).toContain("Subject: O = system:nodes, CN = vks-host@1700000000");
    expect(text).toContain("Issuer: O = system:nodes, CN = vks-host@1700000000");
    expect(text).toContain("NIST CURVE: P-256");
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s*\n\s+TLS Web Server Authentication/);
    expect(text).toContain("DNS:node-1, DNS:localhost, IP Address:10.0.0.7, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:0:0:0:5");
  });

  test("openssl verifies its self-signature and the purpose sslserver", () => {
    expect(openssl(["verify", "-CAfile", certPath, "-purpose", "sslserver", certPath]).trim()).toBe(`${certPath}: OK`);
  });

  test("validity as openssl prints it", () => {
    const dates = openssl(["x509", "-in", certPath, "-noout", "-startdate", "-enddate"]);
    const [, start] = /notBefore=(.*)/.exec(dates)!;
    const [, end] = /notAfter=(.*)/.exec(dates)!;
    expect(new Date(start!).getTime()).toBe(Math.floor(notBefore.getTime() / 1000) * 1000);
    expect(new Date(end!).getTime()).toBe(Math.floor(notAfter.getTime() / 1000) * 1000);
  });

  test("readCertificate returns what was written", () => {
    const facts = readCertificate(certificatesFromPem(certPem)[0]!);
    expect(facts.serialNumber).toBe(0x8f001234n);
    expect(facts.subject).toEqual({ commonName: "vks-host@1700000000", organizations: ["system:nodes"] });
    expect(facts.altNames).toEqual({ dnsNames: ["node-1", "localhost"], ipAddresses: ["10.0.0.7", "127.0.0.1", "::1", "2001:db8::5"] });
    expect(facts.notAfter.getTime()).toBe(Math.floor(notAfter.getTime() / 1000) * 1000);
  });

  test("readCertificate reads certificates openssl made (RSA, IPv6 SANs)", () => {
    const dir = join(workDir, "openssl");
    execFileSync("mkdir", ["-p", dir]);
    openssl([
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "2",
      "-subj", "/O=a/O=b/CN=made-by-openssl", "-addext", "subjectAltName=DNS:x.example,IP:fd00::10,IP:192.0.2.1",
    ]);
    const pem = openssl(["x509", "-in", join(dir, "c.pem")]);
    const facts = readCertificate(certificatesFromPem(pem)[0]!);
    expect(facts.subject).toEqual({ commonName: "made-by-openssl", organizations: ["a", "b"] });
    expect(facts.altNames).toEqual({ dnsNames: ["x.example"], ipAddresses: ["fd00::10", "192.0.2.1"] });
    expect(facts.notAfter.getTime() - facts.notBefore.getTime()).toBe(2 * 24 * 3600_000);
  });

  test("a node:tls server with it completes a handshake with a client that trusts it", async () => {
    const server = tls.createServer({ cert: certPem, key: privateKeyPem(key) }, (socket) => socket.end("hello"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    try {
      const connect = (options: tls.ConnectionOptions) =>
        new Promise<{ authorized: boolean; data: string }>((resolve, reject) => {
          const socket = tls.connect({ host: "127.0.0.1", port, ca: certPem, ...options }, () => {
            let data = "";
            socket.on("data", (chunk: Buffer) => (data += chunk.toString()));
            socket.on("end", () => resolve({ authorized: socket.authorized, data }));
          });
          socket.on("error", reject);
        });
      // By IP (checked against the IP SANs) and by name (SNI and the DNS SANs).
      expect(await connect({})).toEqual({ authorized: true, data: "hello" });
      expect(await connect({ servername: "node-1" })).toEqual({ authorized: true, data: "hello" });
      await expect(connect({ servername: "elsewhere.example" })).rejects.toThrow();
      await expect(connect({ ca: undefined })).rejects.toThrow();
    } finally {
      server.close();
    }
  });
});

describe("certificate request", () => {
  const key = generateServingKey();
  const requestPem = createCertificateRequest(
    { subject: { commonName: "system:node:node-1", organizations: ["system:nodes"] }, altNames: { dnsNames: ["node-1"], ipAddresses: ["10.0.0.7", "fd00::7"] } },
    key,
  );

  test("openssl verifies the signature and reads subject and requested SANs", () => {
    const path = join(workDir, "node.csr");
    writeFileSync(path, requestPem);
    const result = execFileSync("openssl", ["req", "-in", path, "-verify", "-noout", "-text"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    expect(result).toContain("Subject: O = system:nodes, CN = system:node:node-1");
    expect(result).toContain("Requested Extensions:");
    expect(result).toContain("DNS:node-1, IP Address:10.0.0.7, IP Address:FD00:0:0:0:0:0:0:7");
    expect(result).toContain("Signature Algorithm: ecdsa-with-SHA256");
  });

  test("openssl req -verify reports success on stderr", () => {
    const path = join(workDir, "verify.csr");
    writeFileSync(path, requestPem);
    const output = execFileSync("sh", ["-c", `openssl req -in ${path} -verify -noout 2>&1`], { encoding: "utf8" });
    expect(output).toMatch(/verify OK/);
  });

  test("a request without SANs still has an (empty) attributes field and verifies", () => {
    const bare = createCertificateRequest({ subject: { commonName: "x" }, altNames: { dnsNames: [], ipAddresses: [] } }, key);
    const path = join(workDir, "bare.csr");
    writeFileSync(path, bare);
    const output = execFileSync("sh", ["-c", `openssl req -in ${path} -verify -noout -text 2>&1`], { encoding: "utf8" });
    expect(output).toMatch(/verify OK/);
    expect(output).toContain("Subject: CN = x");
  });

  test("PEM is one CERTIFICATE REQUEST block of 64-column base64", () => {
    const blocks = decodePem(requestPem);
    expect(blocks.map((block) => block.label)).toEqual(["CERTIFICATE REQUEST"]);
    for (const line of requestPem.trim().split("\n").slice(1, -1)) expect(line.length).toBeLessThanOrEqual(64);
  });
});
