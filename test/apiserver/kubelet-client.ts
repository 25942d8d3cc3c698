// How the API server reaches a node's kubelet (pkg/kubelet/client): the node's first address of the
// preferred types, the port the kubelet reported in status.daemonEndpoints, TLS with the API server's
// own kubelet client certificate, and the kubelet's serving certificate verified only when a kubelet CA
// is configured (--kubelet-certificate-authority). Network failures are worded as Go reports them,
// since that text is what clients of the real server see.
import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { arrayAt, isJsonObject, numberAt, objectAt, stringAt, type JsonObject } from "./json.ts";
import { notFound, unknownError, type ApiError } from "./status.ts";

/** kube-apiserver's --kubelet-preferred-address-types default. */
export const defaultPreferredAddressTypes: readonly string[] = ["Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP"];

// Used when a node reports no kubelet port (the deprecated --kubelet-port default).
const defaultKubeletPort = 10250;

export interface KubeletClientConfig {
  preferredAddressTypes: () => readonly string[];
  /** PEM of the API server's client certificate and key for kubelets. */
  clientCertificate: string;
  clientKey: string;
  /** PEM CA that kubelet serving certificates must chain to; undefined skips verification, as the real default does. */
  certificateAuthority: string | undefined;
}

export interface KubeletLocation {
  host: string;
  port: number;
}

/** Host and port as Go's net.JoinHostPort writes them (IPv6 in brackets). */
export function joinHostPort(host: string, port: number | string): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Go's %v of a []NodeAddress: `[{InternalIP 10.0.0.1} {Hostname n1}]`. */
function describeAddresses(addresses: readonly JsonObject[]): string {
  return `[${addresses.map((address) => `{${stringAt(address, "type") ?? ""} ${stringAt(address, "address") ?? ""}}`).join(" ")}]`;
}

/** GetConnectionInfo: where the node's kubelet listens, or the real server's error. */
export function kubeletLocation(node: JsonObject | undefined, nodeName: string, preferredTypes: readonly string[]): KubeletLocation | ApiError {
  if (node === undefined) return notFound({ group: "", resource: "nodes" }, nodeName);
  const status = objectAt(node, "status") ?? {};
  const addresses = (arrayAt(status, "addresses") ?? []).filter(isJsonObject);
  let host: string | undefined;
  for (const type of preferredTypes) {
    host = stringAt(addresses.find((address) => address["type"] === type), "address");
    if (host !== undefined) break;
  }
  if (host === undefined) return unknownError(`no preferred addresses found; known addresses: ${describeAddresses(addresses)}`);
  const reported = numberAt(objectAt(objectAt(status, "daemonEndpoints") ?? {}, "kubeletEndpoint"), "Port") ?? 0;
  return { host, port: reported > 0 ? reported : defaultKubeletPort };
}

/** TLS options for a connection to the kubelet; `insecureSkipVerify` is the logs option of that name. */
export function kubeletTlsOptions(config: KubeletClientConfig, host: string, insecureSkipVerify = false): ConnectionOptions {
  const verify = config.certificateAuthority !== undefined && !insecureSkipVerify;
  return {
    cert: config.clientCertificate,
    key: config.clientKey,
    ...(verify ? { ca: config.certificateAuthority, rejectUnauthorized: true } : { rejectUnauthorized: false }),
    // SNI carries host names only; Go sends none for an IP address either.
    ...(isIP(host) === 0 ? { servername: host } : {}),
    ALPNProtocols: ["http/1.1"],
  };
}

interface NodeNetworkError {
  code?: string;
  message: string;
}

function asNetworkError(error: unknown): NodeNetworkError {
  if (error instanceof Error) return { message: error.message, ...("code" in error && typeof error.code === "string" ? { code: error.code } : {}) };
  return { message: String(error) };
}

const unverifiedCodes = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
]);

/** A failure to connect to `host:port` (or to complete TLS with it), in Go's words. */
export function describeNetworkError(error: unknown, host: string, port: number): string {
  const { code, message } = asNetworkError(error);
  const address = joinHostPort(host, port);
  switch (code) {
    case "ECONNREFUSED":
      return `dial tcp ${address}: connect: connection refused`;
    case "EHOSTUNREACH":
      return `dial tcp ${address}: connect: no route to host`;
    case "ENETUNREACH":
      return `dial tcp ${address}: connect: network is unreachable`;
    case "ETIMEDOUT":
      return `dial tcp ${address}: i/o timeout`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `dial tcp: lookup ${host}: no such host`;
    case "ECONNRESET":
      return `read tcp ${address}: read: connection reset by peer`;
    case "CERT_HAS_EXPIRED":
    case "CERT_NOT_YET_VALID":
      return "tls: failed to verify certificate: x509: certificate has expired or is not yet valid";
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `tls: failed to verify certificate: x509: certificate is not valid for ${host}`;
    default:
      if (code !== undefined && unverifiedCodes.has(code)) return "tls: failed to verify certificate: x509: certificate signed by unknown authority";
      return message;
  }
}
