// The CertificateSigningRequest API and the kubelet signers: a node asks for a serving certificate, an
// admin approves it, the signer issues it from the cluster CA (checked with openssl), and the API's
// validation and approval rules refuse what the real ones refuse.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ApiException, CertificatesV1Api, KubeConfig, type V1CertificateSigningRequest } from "@kubernetes/client-node";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AdminApiError, startTestApiServer, type RunningTestApiServer } from "./client.ts";
import { derChildren, derSequence, readDer } from "../../internal/kubelet/certs/der.ts";
import { isJsonObject, parseJson, type JsonObject } from "./json.ts";
import { firstPemBlock, parseCertificateRequest } from "./pkcs10.ts";

const servingSigner = "kubernetes.io/kubelet-serving";
const servingUsages = ["digital signature", "key encipherment", "server auth"];

let cluster: RunningTestApiServer;
let certificates: CertificatesV1Api;
let workDir: string;
let counter = 0;

/** A PEM certification request made by openssl for `subject`, with optional subjectAltName. */
function certificationRequest(subject: string, alternativeNames?: string): string {
  counter += 1;
  const keyPath = join(workDir, `key-${counter}.pem`);
  return execFileSync(
    "openssl",
    ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyPath, "-subj", subject, ...(alternativeNames === undefined ? [] : ["-addext", `subjectAltName=${alternativeNames}`])],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
  );
}

function csrBody(name: string, requestPem: string, overrides: Partial<V1CertificateSigningRequest["spec"]> = {}): V1CertificateSigningRequest {
  return {
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: { name },
    spec: { request: Buffer.from(requestPem).toString("base64"), signerName: servingSigner, usages: servingUsages, ...overrides },
  };
}

async function failureOf(call: Promise<unknown>): Promise<{ code: number; status: JsonObject }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof AdminApiError) return { code: error.code, status: isJsonObject(error.status) ? error.status : {} };
    if (!(error instanceof ApiException)) throw error;
    const parsed = typeof error.body === "string" ? parseJson(error.body) : undefined;
    return { code: error.code, status: isJsonObject(parsed) ? parsed : {} };
  }
  throw new Error("expected the call to fail");
}

function conditionsOf(csr: JsonObject | undefined): JsonObject[] {
  const status = csr?.["status"];
  const conditions = isJsonObject(status) ? status["conditions"] : undefined;
  return Array.isArray(conditions) ? conditions.filter(isJsonObject) : [];
}

function certificateOf(csr: JsonObject | undefined): string {
  const status = csr?.["status"];
  return isJsonObject(status) && typeof status["certificate"] === "string" ? status["certificate"] : "";
}

function openssl(args: string[]): string {
  return execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

beforeAll(async () => {
  cluster = await startTestApiServer({ nodeName: "node-a", nodeAuthorization: true });
  workDir = join(cluster.dir, "csr-work");
  mkdirSync(workDir, { recursive: true });
  const config = new KubeConfig();
  config.loadFromFile(cluster.kubeconfigPath);
  certificates = config.makeApiClient(CertificatesV1Api);
});

afterAll(async () => {
  await cluster?.stop();
});

describe("CertificateSigningRequest API", () => {
  test("a node's request records who asked, starts without conditions, and cannot approve itself", async () => {
    const created = await certificates.createCertificateSigningRequest({
      body: csrBody("serving-self", certificationRequest("/O=system:nodes/CN=system:node:node-a", "DNS:node-a,IP:192.0.2.10"), { username: "someone-else", groups: ["system:masters"] }),
    });
    expect(created.spec.username).toBe("system:node:node-a");
    expect(created.spec.groups).toEqual(["system:nodes", "system:authenticated"]);
    expect(created.status?.conditions).toBeUndefined();
    const approval = await failureOf(
      certificates.replaceCertificateSigningRequestApproval({
        name: "serving-self",
        body: { ...created, status: { conditions: [{ type: "Approved", status: "True", reason: "Self", message: "trust me" }] } },
      }),
    );
    expect(approval.code).toBe(403);
    expect(approval.status["message"]).toBe(
      'certificatesigningrequests.certificates.k8s.io "serving-self" is forbidden: User "system:node:node-a" cannot update resource "certificatesigningrequests/approval" in API group "certificates.k8s.io" at the cluster scope',
    );
  });

  test("approved, the kubelet-serving signer issues a certificate from the cluster CA with the requested names and lifetime", async () => {
    await certificates.createCertificateSigningRequest({
      body: csrBody("serving-approved", certificationRequest("/O=system:nodes/CN=system:node:node-a", "DNS:node-a,DNS:node-a.example,IP:192.0.2.10,IP:fd00::10"), { expirationSeconds: 3600 }),
    });
    const approved = await cluster.admin.approveCertificateSigningRequest("serving-approved");
    expect(conditionsOf(approved)[0]).toMatchObject({ type: "Approved", status: "True", reason: "KubectlApprove" });
    const signed = await cluster.admin.waitFor("certificatesigningrequests", "serving-approved", "", (csr) => certificateOf(csr) !== "");
    const certificatePath = join(workDir, "serving-approved.crt");
    writeFileSync(certificatePath, Buffer.from(certificateOf(signed), "base64"));
    expect(openssl(["verify", "-CAfile", cluster.caCertPath, certificatePath]).trim()).toBe(`${certificatePath}: OK`);
    const text = openssl(["x509", "-in", certificatePath, "-noout", "-subject", "-ext", "subjectAltName,keyUsage,extendedKeyUsage,basicConstraints"]);
    expect(text).toContain("subject=O = system:nodes, CN = system:node:node-a");
    expect(text).toContain("DNS:node-a, DNS:node-a.example, IP Address:192.0.2.10, IP Address:FD00:0:0:0:0:0:0:10");
    expect(text).toContain("Digital Signature, Key Encipherment");
    expect(text).toContain("TLS Web Server Authentication");
    expect(text).toContain("CA:FALSE");
    const dates = openssl(["x509", "-in", certificatePath, "-noout", "-startdate", "-enddate"]);
    const [, start = ""] = /notBefore=(.+)/.exec(dates) ?? [];
    const [, end = ""] = /notAfter=(.+)/.exec(dates) ?? [];
    // Short-lived certificates keep the full lifetime after the five minutes of backdating.
    expect((Date.parse(end) - Date.parse(start)) / 1000).toBe(3600 + 300);
    expect(Math.abs(Date.parse(end) - (Date.now() + 3600_000))).toBeLessThan(60_000);
  });

  test("the signer refuses what ValidateKubeletServingCSR refuses: Failed with SignerValidationFailure", async () => {
    await certificates.createCertificateSigningRequest({ body: csrBody("serving-bad-cn", certificationRequest("/O=system:nodes/CN=node-a", "DNS:node-a")) });
    await certificates.createCertificateSigningRequest({ body: csrBody("serving-no-san", certificationRequest("/O=system:nodes/CN=system:node:node-a")) });
    for (const name of ["serving-bad-cn", "serving-no-san"]) await cluster.admin.approveCertificateSigningRequest(name);
    const failed = (csr: JsonObject | undefined): boolean => conditionsOf(csr).some((condition) => condition["type"] === "Failed");
    const badCommonName = await cluster.admin.waitFor("certificatesigningrequests", "serving-bad-cn", "", failed);
    expect(conditionsOf(badCommonName)[1]).toMatchObject({ type: "Failed", status: "True", reason: "SignerValidationFailure", message: "subject common name does not begin with system:node:" });
    const noNames = await cluster.admin.waitFor("certificatesigningrequests", "serving-no-san", "", failed);
    expect(conditionsOf(noNames)[1]).toMatchObject({ reason: "SignerValidationFailure", message: "DNS or IP subjectAltName is required" });
    expect(certificateOf(noNames)).toBe("");
  });

  test("denied requests stay unsigned; approval conditions change only through /approval", async () => {
    await certificates.createCertificateSigningRequest({ body: csrBody("serving-denied", certificationRequest("/O=system:nodes/CN=system:node:node-a", "DNS:node-a")) });
    const denied = await cluster.admin.denyCertificateSigningRequest("serving-denied", { reason: "NotToday", message: "no" });
    expect(conditionsOf(denied)[0]).toMatchObject({ type: "Denied", status: "True", reason: "NotToday", message: "no" });
    expect(typeof conditionsOf(denied)[0]?.["lastUpdateTime"]).toBe("string");
    const approveAfterDeny = await failureOf(cluster.admin.approveCertificateSigningRequest("serving-denied"));
    expect(approveAfterDeny.code).toBe(422);
    expect(String(approveAfterDeny.status["message"])).toContain("Approved and Denied conditions are mutually exclusive");
    const viaStatus = await failureOf(
      cluster.admin.update("certificatesigningrequests", { ...denied, status: { conditions: [...conditionsOf(denied), { type: "Approved", status: "True" }] } }, "status"),
    );
    expect(String(viaStatus.status["message"])).toContain('updates may not add a condition of type "Approved"');
    await Bun.sleep(100);
    expect(certificateOf(await cluster.admin.get("certificatesigningrequests", "serving-denied"))).toBe("");
  });

  test("validation: the request must be a signed PEM CSR; usages, signer name and duration are checked", async () => {
    const good = certificationRequest("/O=system:nodes/CN=system:node:node-a", "DNS:node-a");
    const notPem = await failureOf(certificates.createCertificateSigningRequest({ body: csrBody("bad-pem", "hello") }));
    expect(notPem.code).toBe(422);
    expect(String(notPem.status["message"])).toBe(
      'CertificateSigningRequest.certificates.k8s.io "bad-pem" is invalid: spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f}: PEM block type must be CERTIFICATE REQUEST',
    );
    const short = await failureOf(certificates.createCertificateSigningRequest({ body: csrBody("too-short", good, { expirationSeconds: 599 }) }));
    expect(short.status["message"]).toBe('CertificateSigningRequest.certificates.k8s.io "too-short" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)');
    const usages = await failureOf(certificates.createCertificateSigningRequest({ body: csrBody("bad-usage", good, { usages: ["server auth", "server auth", "flying"] }) }));
    expect(String(usages.status["message"])).toContain('spec.usages[1]: Duplicate value: "server auth"');
    expect(String(usages.status["message"])).toContain('spec.usages[2]: Unsupported value: "flying": supported values: "any", "cert sign", "client auth"');
    const signer = await failureOf(certificates.createCertificateSigningRequest({ body: csrBody("bad-signer", good, { signerName: "kubelet-serving" }) }));
    expect(String(signer.status["message"])).toContain(`spec.signerName: Invalid value: "kubelet-serving": must be a fully qualified domain and path of the form 'example.com/signer-name'`);
    const legacy = await failureOf(certificates.createCertificateSigningRequest({ body: csrBody("legacy", good, { signerName: "kubernetes.io/legacy-unknown" }) }));
    expect(String(legacy.status["message"])).toContain("the legacy signerName is not allowed via this API version");
    // Another request's signature over this request's content: well-formed, but not self-signed.
    const der = (pem: string): Buffer => firstPemBlock(pem)?.der ?? Buffer.alloc(0);
    const [info, algorithm] = derChildren(readDer(der(good)));
    const [, , foreignSignature] = derChildren(readDer(der(certificationRequest("/CN=someone-else"))));
    const swapped = derSequence(info?.encoded ?? Buffer.alloc(0), algorithm?.encoded ?? Buffer.alloc(0), foreignSignature?.encoded ?? Buffer.alloc(0));
    const swappedPem = `-----BEGIN CERTIFICATE REQUEST-----\n${swapped.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(() => parseCertificateRequest(swappedPem)).toThrow("x509: ECDSA verification failure");
    const unsigned = await failureOf(certificates.createCertificateSigningRequest({ body: csrBody("tampered", swappedPem) }));
    expect(unsigned.code).toBe(422);
    expect(String(unsigned.status["message"])).toEndWith(": x509: ECDSA verification failure");
  });

  test("with autoApproveKubeletServing, a node's request for itself is approved and signed; one for another node waits", async () => {
    await cluster.admin.setAutoApproveKubeletServing(true);
    try {
      await certificates.createCertificateSigningRequest({ body: csrBody("auto-self", certificationRequest("/O=system:nodes/CN=system:node:node-a", "IP:192.0.2.10")) });
      await certificates.createCertificateSigningRequest({ body: csrBody("auto-other", certificationRequest("/O=system:nodes/CN=system:node:node-b", "DNS:node-b")) });
      const signed = await cluster.admin.waitFor("certificatesigningrequests", "auto-self", "", (csr) => certificateOf(csr) !== "");
      expect(conditionsOf(signed)[0]).toMatchObject({ type: "Approved", reason: "AutoApproved" });
      await Bun.sleep(200);
      expect(conditionsOf(await cluster.admin.get("certificatesigningrequests", "auto-other"))).toEqual([]);
    } finally {
      await cluster.admin.setAutoApproveKubeletServing(false);
    }
  });

  test("approving needs the approve verb on the signer (CertificateApproval admission)", async () => {
    await certificates.createCertificateSigningRequest({ body: csrBody("guarded", certificationRequest("/O=system:nodes/CN=system:node:node-a", "DNS:node-a")) });
    await cluster.admin.setDenyRules([{ users: ["vks-test-admin"], verbs: ["approve"], resources: ["signers"] }]);
    try {
      const refused = await failureOf(cluster.admin.approveCertificateSigningRequest("guarded"));
      expect(refused.code).toBe(403);
      expect(refused.status["message"]).toBe(
        'certificatesigningrequests.certificates.k8s.io "guarded" is forbidden: user not permitted to approve requests with signerName "kubernetes.io/kubelet-serving"',
      );
    } finally {
      await cluster.admin.setDenyRules([]);
    }
  });

  test("the kube-apiserver-client-kubelet signer issues client certificates for nodes", async () => {
    const request = certificationRequest("/O=system:nodes/CN=system:node:node-a");
    await certificates.createCertificateSigningRequest({
      body: csrBody("client", request, { signerName: "kubernetes.io/kube-apiserver-client-kubelet", usages: ["digital signature", "client auth"] }),
    });
    await cluster.admin.approveCertificateSigningRequest("client");
    const signed = await cluster.admin.waitFor("certificatesigningrequests", "client", "", (csr) => certificateOf(csr) !== "");
    const path = join(workDir, "client.crt");
    writeFileSync(path, Buffer.from(certificateOf(signed), "base64"));
    expect(openssl(["verify", "-CAfile", cluster.caCertPath, path]).trim()).toBe(`${path}: OK`);
    expect(openssl(["x509", "-in", path, "-noout", "-ext", "extendedKeyUsage"])).toContain("TLS Web Client Authentication");
    expect(readFileSync(path, "utf8")).toStartWith("-----BEGIN CERTIFICATE-----\n");
  });
});
