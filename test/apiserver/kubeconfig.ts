// Kubeconfig files pointing at the test API server, in the form kubelets and kubectl use: file
// references to the CA and to a client certificate, or a bearer token.
import { writeFileSync } from "node:fs";

export type KubeconfigCredentials = { certPath: string; keyPath: string } | { token: string };

export interface KubeconfigSpec {
  server: string;
  caCertPath: string;
  credentials: KubeconfigCredentials;
  userName: string;
  namespace?: string;
}

/** Renders a kubeconfig; every scalar is a JSON string, which YAML reads as a double-quoted one. */
export function renderKubeconfig(spec: KubeconfigSpec): string {
  const quote = (value: string): string => JSON.stringify(value);
  const credentials =
    "token" in spec.credentials
      ? `    token: ${quote(spec.credentials.token)}\n`
      : `    client-certificate: ${quote(spec.credentials.certPath)}\n    client-key: ${quote(spec.credentials.keyPath)}\n`;
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: vks-test",
    "  cluster:",
    `    server: ${quote(spec.server)}`,
    `    certificate-authority: ${quote(spec.caCertPath)}`,
    "users:",
    `- name: ${quote(spec.userName)}`,
    "  user:",
    credentials.trimEnd(),
    "contexts:",
    "- name: vks-test",
    "  context:",
    "    cluster: vks-test",
    `    user: ${quote(spec.userName)}`,
    ...(spec.namespace === undefined ? [] : [`    namespace: ${quote(spec.namespace)}`]),
    "current-context: vks-test",
    "",
  ].join("\n");
}

export function writeKubeconfig(path: string, spec: KubeconfigSpec): string {
  writeFileSync(path, renderKubeconfig(spec), { mode: 0o600 });
  return path;
}
