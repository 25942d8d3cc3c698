// internal/kube/csr.ts against the test API server's CertificateSigningRequest API, as a node: the test
// plays the cluster admin who approves or denies (`kubectl certificate approve|deny`); the server's
// kubernetes.io/kubelet-serving signer issues approved requests with the cluster CA.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { KubeCsrClient } from "../../../internal/kube/csr.ts";
import { KUBELET_SERVING_SIGNER, KUBELET_SERVING_USAGES } from "../../../internal/kubelet/certs/rotation.ts";
import { ServingCertificate } from "../../../internal/kubelet/certs/serving.ts";
import { createCertificateRequest, generateServingKey } from "../../../internal/kubelet/certs/x509.ts";
import { startTestApiServer, type RunningTestApiServer } from "../../apiserver/client.ts";
import type { JsonObject } from "../../apiserver/json.ts";
import { RecordingLog, eventually, failure } from "./helpers.ts";

let cluster: RunningTestApiServer;
let client: KubeCsrClient;
const workDir = mkdtempSync(join(tmpdir(), "vks-csr-api-"));

beforeAll(async () => {
  cluster = await startTestApiServer({ nodeName: "n1", nodeAuthorization: true });
  const config = new KubeConfig();
  config.loadFromFile(cluster.kubeconfigPath);
  client = new KubeCsrClient(config, cluster.url, { pollIntervalMs: 200 });
});

afterAll(async () => {
  await cluster?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

function submission() {
  const requestPem = createCertificateRequest(
    { subject: { commonName: "system:node:n1", organizations: ["system:nodes"] }, altNames: { dnsNames: ["n1"], ipAddresses: ["10.0.0.7"] } },
    generateServingKey(),
  );
  return { requestPem, signerName: KUBELET_SERVING_SIGNER, usages: KUBELET_SERVING_USAGES };
}

async function pendingCsrNames(): Promise<string[]> {
  const items = await cluster.admin.list("certificatesigningrequests");
  return items
    .filter((item) => (item["status"] as { conditions?: unknown[] } | undefined)?.conditions === undefined)
    .map((item) => String((item["metadata"] as JsonObject)["name"]));
}

async function decide(name: string, type: "Approved" | "Denied", reason: string, message: string): Promise<void> {
  if (type === "Approved") await cluster.admin.approveCertificateSigningRequest(name, { reason, message });
  else await cluster.admin.denyCertificateSigningRequest(name, { reason, message });
}

describe("KubeCsrClient", () => {
  test("creates a csr-* request as the node and returns the certificate once approved and signed", async () => {
    const pending = client.requestCertificate(submission(), { signal: new AbortController().signal, timeoutMs: 20_000 });
    const [name] = await eventually("the CSR", async () => {
      const names = await pendingCsrNames();
      return names.length > 0 ? names : undefined;
    });
    expect(name).toMatch(/^csr-[a-z0-9]{5}$/);
    const created = (await cluster.admin.get("certificatesigningrequests", name!))!;
    const spec = created["spec"] as JsonObject;
    expect(spec["signerName"]).toBe("kubernetes.io/kubelet-serving");
    expect(spec["usages"]).toEqual(["digital signature", "key encipherment", "server auth"]);
    expect(spec["username"]).toBe("system:node:n1");
    expect(Buffer.from(String(spec["request"]), "base64").toString()).toStartWith("-----BEGIN CERTIFICATE REQUEST-----");

    await decide(name!, "Approved", "AutoApproved", "approved by the test");
    const issued = await pending;
    expect(issued.csrName).toBe(name!);
    const certPath = join(workDir, "issued.crt");
    writeFileSync(certPath, issued.certificatePem);
    const text = execFileSync("openssl", ["x509", "-in", certPath, "-noout", "-text"], { encoding: "utf8" });
    expect(text).toContain("CN = system:node:n1");
    expect(text).toContain("DNS:n1, IP Address:10.0.0.7");
    expect(text).toContain("TLS Web Server Authentication");
  });

  test("a denied request fails with the reason and message", async () => {
    const pending = failure(client.requestCertificate(submission(), { signal: new AbortController().signal, timeoutMs: 20_000 }));
    const [name] = await eventually("the CSR", async () => {
      const names = await pendingCsrNames();
      return names.length > 0 ? names : undefined;
    });
    await decide(name!, "Denied", "NotOurNode", "10.0.0.7 is not this node's address");
    const err = await pending;
    expect(err.message).toBe(`certificate signing request ${name} was denied: NotOurNode: 10.0.0.7 is not this node's address`);
    expect(err.exitCode).toBe(77);
  });

  test("nobody approving: the wait ends at its timeout with the command that approves it", async () => {
    const err = await failure(client.requestCertificate(submission(), { signal: new AbortController().signal, timeoutMs: 1_500 }));
    expect(err.message).toMatch(/^certificate signing request csr-[a-z0-9]{5} was not approved within 2 s$/);
    expect(err.hint).toContain("kubectl certificate approve csr-");
    for (const name of await pendingCsrNames()) await cluster.admin.delete("certificatesigningrequests", name);
  });

  test("an abort ends the wait at once", async () => {
    const abort = new AbortController();
    const pending = failure(client.requestCertificate(submission(), { signal: abort.signal, timeoutMs: 60_000 }));
    await eventually("the CSR", async () => ((await pendingCsrNames()).length > 0 ? true : undefined));
    const started = Date.now();
    abort.abort();
    const err = await pending;
    expect(err.message).toMatch(/^stopped waiting for certificate signing request csr-/);
    expect(Date.now() - started).toBeLessThan(1000);
    for (const name of await pendingCsrNames()) await cluster.admin.delete("certificatesigningrequests", name);
  });

  test("a request deleted while pending fails at once", async () => {
    const pending = failure(client.requestCertificate(submission(), { signal: new AbortController().signal, timeoutMs: 20_000 }));
    const [name] = await eventually("the CSR", async () => {
      const names = await pendingCsrNames();
      return names.length > 0 ? names : undefined;
    });
    await cluster.admin.delete("certificatesigningrequests", name!);
    const err = await pending;
    expect(err.message).toBe(`certificate signing request ${name} was deleted before a certificate was issued`);
  });
});

test("--rotate-server-certificates end to end: the first certificate comes from the cluster", async () => {
  const log = new RecordingLog();
  const serving = await ServingCertificate.open({
    stateDir: join(workDir, "state"),
    nodeName: "n1",
    hostname: "vks-host",
    addresses: [
      { type: "InternalIP", address: "10.0.0.7" },
      { type: "Hostname", address: "n1" },
    ],
    rotateServerCertificates: true,
    csrClient: client,
    log,
  });
  try {
    expect(serving.current()).toBeUndefined();
    const [name] = await eventually("the CSR", async () => {
      const names = await pendingCsrNames();
      return names.length > 0 ? names : undefined;
    });
    await decide(name!, "Approved", "AutoApproved", "approved by the test");
    const pair = await serving.ready();
    expect(pair.certificate.subject).toEqual({ commonName: "system:node:n1", organizations: ["system:nodes"] });
    expect(pair.certificate.altNames).toEqual({ dnsNames: ["n1"], ipAddresses: ["10.0.0.7"] });
    const verified = execFileSync("openssl", ["verify", "-CAfile", cluster.caCertPath, join(workDir, "state", "pki", "kubelet-server-current.pem")], { encoding: "utf8" });
    expect(verified.trim()).toEndWith(": OK");
    expect(log.lines.some((line) => line.startsWith(`info: serving certificate: ${name} issued`))).toBe(true);
  } finally {
    await serving.close();
  }
});

test("with an approver in the cluster (kubelet-csr-approver's role) renewal needs nobody", async () => {
  await cluster.admin.setAutoApproveKubeletServing(true);
  const serving = await ServingCertificate.open({
    stateDir: join(workDir, "auto"),
    nodeName: "n1",
    hostname: "vks-host",
    addresses: [{ type: "InternalIP", address: "10.0.0.7" }],
    rotateServerCertificates: true,
    csrClient: client,
    log: new RecordingLog(),
  });
  try {
    const first = await serving.ready();
    // A new address the certificate does not name: a new request at once, approved and issued as well.
    serving.updateAddresses([
      { type: "InternalIP", address: "10.0.0.7" },
      { type: "ExternalIP", address: "fd00::7" },
    ]);
    const second = await eventually("a certificate naming fd00::7", () => (serving.current() !== first ? serving.current() : undefined));
    expect(second.certificate.altNames.ipAddresses).toEqual(["10.0.0.7", "fd00::7"]);
  } finally {
    await serving.close();
    await cluster.admin.setAutoApproveKubeletServing(false);
  }
});
