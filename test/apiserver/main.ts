// CLI entry of the test API server, built for and run by Node:
//   node apiserver.mjs --dir DIR [--node-name N] [--port P] [--admin-port P] [--token TOKEN:USER[:GROUP,...]]...
//     [--history-limit N] [--initial-revision N] [--watch-timeout-seconds N] [--namespace NS]...
//     [--deny-rules JSON] [--allow-rules JSON] [--node-authorization] [--exit-on-stdin-close]
//     [--kubelet-preferred-address-types TYPE,...] [--kubelet-certificate-authority PATH]
//     [--auto-approve-kubelet-serving] [--api-audiences AUDIENCE,...]
// Creates (or reuses) the PKI in DIR, writes kubeconfigs there, and prints one ReadyLine as JSON.
import { join, resolve } from "node:path";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { AdminEndpoint } from "./admin.ts";
import type { BearerToken, DenyRule } from "./auth.ts";
import type { AllowRule } from "./rbac.ts";
import { ensureTestPki } from "./certs.ts";
import { parseJson } from "./json.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import type { ReadyLine } from "./protocol.ts";
import { TestApiServer } from "./server.ts";

function parseToken(text: string): BearerToken {
  const [token = "", user = "", groups] = text.split(":");
  if (token === "" || user === "") throw new Error(`--token wants TOKEN:USER[:GROUP,...], got ${text}`);
  return { token, user, ...(groups === undefined || groups === "" ? {} : { groups: groups.split(",") }) };
}

function parseDenyRules(text: string | undefined): DenyRule[] {
  if (text === undefined) return [];
  const parsed = parseJson(text);
  if (!Array.isArray(parsed)) throw new Error("--deny-rules wants a JSON list of rules");
  return parsed as DenyRule[];
}

function parseAllowRules(text: string | undefined): AllowRule[] {
  if (text === undefined) return [];
  const parsed = parseJson(text);
  if (!Array.isArray(parsed)) throw new Error("--allow-rules wants a JSON list of rules");
  return parsed as unknown as AllowRule[];
}

function commaList(text: string | undefined): string[] | undefined {
  return text === undefined ? undefined : text.split(",").filter((item) => item !== "");
}

function optionalNumber(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value)) throw new Error(`${flag} wants an integer, got ${text}`);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      "node-name": { type: "string", default: "vks-test-node" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      "admin-port": { type: "string", default: "0" },
      token: { type: "string", multiple: true, default: [] },
      "history-limit": { type: "string" },
      "initial-revision": { type: "string" },
      "watch-timeout-seconds": { type: "string" },
      namespace: { type: "string", multiple: true, default: [] },
      "deny-rules": { type: "string" },
      "allow-rules": { type: "string" },
      "kubelet-preferred-address-types": { type: "string" },
      "kubelet-certificate-authority": { type: "string" },
      "auto-approve-kubelet-serving": { type: "boolean", default: false },
      "api-audiences": { type: "string" },
      "node-authorization": { type: "boolean", default: false },
      "exit-on-stdin-close": { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.dir === undefined) throw new Error("--dir is required");
  const dir = resolve(values.dir);
  const nodeName = values["node-name"];
  const host = values.host;
  const pki = ensureTestPki(dir, nodeName);
  const tokens = values.token.map(parseToken);
  const historyLimit = optionalNumber(values["history-limit"], "--history-limit");
  const initialRevision = optionalNumber(values["initial-revision"], "--initial-revision");
  const watchTimeout = optionalNumber(values["watch-timeout-seconds"], "--watch-timeout-seconds");

  const preferredAddressTypes = commaList(values["kubelet-preferred-address-types"]);
  const apiAudiences = commaList(values["api-audiences"]);
  const kubeletCa = values["kubelet-certificate-authority"];
  const server = new TestApiServer({
    tls: {
      caCert: readFileSync(pki.ca.certPath, "utf8"),
      serverCert: readFileSync(pki.server.certPath, "utf8"),
      serverKey: readFileSync(pki.server.keyPath, "utf8"),
      caKey: readFileSync(pki.ca.keyPath, "utf8"),
      kubeletClientCert: readFileSync(pki.kubeletClient.certPath, "utf8"),
      kubeletClientKey: readFileSync(pki.kubeletClient.keyPath, "utf8"),
    },
    allowRules: parseAllowRules(values["allow-rules"]),
    autoApproveKubeletServing: values["auto-approve-kubelet-serving"],
    ...(preferredAddressTypes === undefined ? {} : { kubeletPreferredAddressTypes: preferredAddressTypes }),
    ...(apiAudiences === undefined ? {} : { apiAudiences }),
    ...(kubeletCa === undefined ? {} : { kubeletCertificateAuthority: readFileSync(resolve(kubeletCa), "utf8") }),
    host,
    port: Number(values.port),
    tokens,
    denyRules: parseDenyRules(values["deny-rules"]),
    namespaces: values.namespace,
    nodeAuthorization: values["node-authorization"],
    ...(historyLimit === undefined ? {} : { historyLimit }),
    ...(initialRevision === undefined ? {} : { initialRevision }),
    ...(watchTimeout === undefined ? {} : { defaultWatchTimeoutSeconds: watchTimeout }),
  });
  const { url, port } = await server.start();
  const admin = new AdminEndpoint(server);
  const adminAddress = await admin.start(host, Number(values["admin-port"]));

  const kubeconfig = (file: string, userName: string, credentials: Parameters<typeof writeKubeconfig>[1]["credentials"]): string =>
    writeKubeconfig(join(dir, file), { server: url, caCertPath: pki.ca.certPath, credentials, userName });
  const ready: ReadyLine = {
    event: "ready",
    pid: process.pid,
    url,
    port,
    adminUrl: adminAddress.url,
    adminPort: adminAddress.port,
    dir,
    nodeName,
    caCertPath: pki.ca.certPath,
    kubeletClient: pki.kubeletClient,
    kubeconfigs: {
      node: kubeconfig("node.kubeconfig", `system:node:${nodeName}`, pki.node),
      admin: kubeconfig("admin.kubeconfig", "vks-test-admin", pki.admin),
      tokens: Object.fromEntries(tokens.map((token) => [token.user, kubeconfig(`token-${token.user.replace(/[^A-Za-z0-9_.-]/g, "_")}.kubeconfig`, token.user, { token: token.token })])),
    },
  };

  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    Promise.all([server.stop(), admin.stop()]).finally(() => process.exit(0));
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  if (values["exit-on-stdin-close"]) {
    // The spawning test owns stdin; when it goes away (even by crashing) so does the server.
    process.stdin.on("end", shutdown);
    process.stdin.on("error", shutdown);
    process.stdin.resume();
  }
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`apiserver: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
