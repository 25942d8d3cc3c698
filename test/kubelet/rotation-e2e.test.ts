// The compiled vks serve with a kubelet's credentials against the test API server (Node authorizer and
// NodeRestriction on): --rotate-server-certificates gets the serving certificate through a CSR that an
// admin approves, and --node-labels that NodeRestriction would refuse are refused before any API call.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { VKS_BINARY, eventually, haveSystemd, managerFlag } from "../e2e/helpers.ts";
import { at } from "../kube/helpers.ts";
import { detectHostIP } from "../../internal/host/address.ts";

setDefaultTimeout(120_000);

const NODE = "rotating-node";
const nodeIP = detectHostIP() ?? "127.0.0.1";
const stateDir = mkdtempSync(join(tmpdir(), "vks-rotation-e2e-"));
let cluster: RunningTestApiServer;
let serve: ReturnType<typeof Bun.spawn> | undefined;
let kubeletPort = 0;

async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

/** The certificate the kubelet port presents, or undefined while nothing completes a handshake there. */
function servedCertificate(): Promise<X509Certificate | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: nodeIP, port: kubeletPort, rejectUnauthorized: false }, () => {
      const raw = socket.getPeerX509Certificate();
      socket.destroy();
      resolve(raw);
    });
    socket.on("error", () => resolve(undefined));
  });
}

beforeAll(async () => {
  if (!haveSystemd) return;
  cluster = await startTestApiServer({ nodeName: NODE, nodeAuthorization: true, kubeletPreferredAddressTypes: ["InternalIP"] });
  kubeletPort = await freePort();
});

afterAll(async () => {
  serve?.kill("SIGTERM");
  await serve?.exited;
  await cluster?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe.skipIf(!haveSystemd)("vks serve with a kubelet's credentials", () => {
  test("--node-labels with a label NodeRestriction refuses exits 2 before any API call", async () => {
    const before = (await cluster.admin.requests()).length;
    const run = Bun.spawn([VKS_BINARY, "serve", "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, "--node-labels", "node-role.kubernetes.io/agent=", ...managerFlag], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1" },
    });
    const [stdout, stderr, exitCode] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text(), run.exited]);
    expect(exitCode).toBe(2);
    expect(stdout + stderr).toContain("node-role.kubernetes.io/agent");
    expect(stdout + stderr).toContain("kubectl label node");
    const requests = (await cluster.admin.requests()).slice(before);
    expect(requests.filter((request) => JSON.stringify(request).includes(`system:node:${NODE}`))).toEqual([]);
  });

  test("--rotate-server-certificates: serves once the node's CSR is approved, with the cluster's certificate", async () => {
    serve = Bun.spawn(
      [VKS_BINARY, "serve", "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, "--node-ip", nodeIP, "--kubelet-address", nodeIP, "--kubelet-port", String(kubeletPort), "--rotate-server-certificates", "--node-labels", "example.com/rack=r1", ...managerFlag],
      { stdout: "pipe", stderr: "pipe", env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1" } },
    );
    const node = await cluster.admin.waitFor("nodes", NODE, "", (object) => object !== undefined);
    expect(at(node, "metadata", "labels", "example.com/rack")).toBe("r1");
    const csr = await eventually("the node's CSR", async () => {
      const requests = await cluster.admin.list("certificatesigningrequests");
      return requests.find((request) => at(request, "spec", "signerName") === "kubernetes.io/kubelet-serving");
    });
    expect(at(csr, "spec", "username")).toBe(`system:node:${NODE}`);
    expect(at(csr, "spec", "usages")).toEqual(expect.arrayContaining(["digital signature", "server auth"]));
    // Nothing is served until a certificate is issued, as with the kubelet.
    expect(await servedCertificate()).toBeUndefined();
    await cluster.admin.approveCertificateSigningRequest(at(csr, "metadata", "name") as string);
    const served = await eventually("the issued certificate served", async () => servedCertificate());
    const ca = new X509Certificate(readFileSync(cluster.caCertPath));
    expect(served.verify(ca.publicKey)).toBe(true);
    expect(served.subject).toContain(`CN=system:node:${NODE}`);
    expect(served.subjectAltName).toContain(`IP Address:${nodeIP}`);
    const ready = await cluster.admin.waitFor("nodes", NODE, "", (object) =>
      ((at(object, "status", "conditions") ?? []) as JsonObject[]).some((condition) => condition["type"] === "Ready" && condition["status"] === "True"),
    );
    expect(at(ready, "status", "daemonEndpoints", "kubeletEndpoint", "Port")).toBe(kubeletPort);
  });
});
