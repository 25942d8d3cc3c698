// The connect subresources that reach through the API server to a kubelet: pods/log, pods/exec,
// pods/attach, pods/portforward and nodes/proxy. Each resolves the kubelet location the way the real
// registry does (with its errors), then streams, proxies or relays an upgrade.
import { lookup as lookupHost } from "node:dns/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIPv4 } from "node:net";
import { isUpgradeRequest, proxyHttp, relayUpgrade, streamFromBackend, type BackendTarget, type UpgradeStream } from "./backend-proxy.ts";
import { kubeletLocation, kubeletTlsOptions, type KubeletClientConfig, type KubeletLocation } from "./kubelet-client.ts";
import { objectAt, stringAt, type JsonObject } from "./json.ts";
import type { ObjectLookup } from "./node-authorization.ts";
import { execOrAttachLocation, logLocation, parseLogOptions, portForwardLocation, type StreamLocation } from "./pod-streams.ts";
import type { ResourceRequest } from "./routing.ts";
import { ApiError, badRequest, methodNotAllowed, notFound } from "./status.ts";

export interface ConnectContext {
  lookup: ObjectLookup;
  kubelet: KubeletClientConfig;
}

const upgradeMethods = ["GET", "POST"];
const proxyMethods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

function requireMethod(method: string, allowed: readonly string[]): void {
  if (!allowed.includes(method)) throw methodNotAllowed();
}

function locate(context: ConnectContext, nodeName: string): KubeletLocation {
  const location = kubeletLocation(context.lookup("nodes", "", nodeName), nodeName, context.kubelet.preferredAddressTypes());
  if (location instanceof ApiError) throw location;
  return location;
}

function kubeletTarget(context: ConnectContext, location: KubeletLocation, insecureSkipVerify: boolean): BackendTarget {
  return { host: location.host, port: location.port, tls: kubeletTlsOptions(context.kubelet, location.host, insecureSkipVerify) };
}

function podOf(context: ConnectContext, namespace: string, name: string): JsonObject {
  const pod = context.lookup("pods", namespace, name);
  if (pod === undefined) throw notFound({ group: "", resource: "pods" }, name);
  return pod;
}

function nodeNameOfPod(pod: JsonObject): string {
  return stringAt(objectAt(pod, "spec"), "nodeName") ?? "";
}

/** Go's net.IP.IsGlobalUnicast: not unspecified, loopback, link-local, multicast or the broadcast address. */
function isGlobalUnicast(address: string): boolean {
  if (isIPv4(address)) {
    const [first = 0, second = 0] = address.split(".").map(Number);
    if (address === "0.0.0.0" || address === "255.255.255.255") return false;
    return first !== 127 && !(first === 169 && second === 254) && !(first >= 224 && first <= 239);
  }
  const lower = address.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (mapped !== null) return isGlobalUnicast(mapped[1] ?? "");
  if (lower === "::" || lower === "::1") return false;
  return !/^fe[89ab]/.test(lower) && !lower.startsWith("ff");
}

/** The node proxy refuses hosts that resolve to loopback, link-local or other non-global addresses (CVE-2022-3294). */
async function requireProxyableHost(host: string): Promise<void> {
  let addresses: { address: string }[];
  try {
    addresses = await lookupHost(host, { all: true });
  } catch {
    throw badRequest(`lookup ${host}: no such host`);
  }
  if (addresses.length === 0) throw badRequest("no addresses for hostname");
  if (!addresses.every(({ address }) => isGlobalUnicast(address))) throw badRequest("address not allowed");
}

/** utilnet.SplitSchemeNamePort for `name`, `name:port` and `scheme:name:port`. */
function splitSchemeNamePort(id: string): { scheme: string; name: string; port: string } | undefined {
  const parts = id.split(":");
  const [first = "", second = "", third = ""] = parts;
  const split = parts.length === 1 ? { scheme: "", name: first, port: "" } : parts.length === 2 ? { scheme: "", name: first, port: second } : parts.length === 3 ? { scheme: first, name: second, port: third } : undefined;
  if (split === undefined || split.name === "" || !["", "http", "https"].includes(split.scheme)) return undefined;
  return split;
}

async function relayToKubelet(target: BackendTarget, location: StreamLocation, request: IncomingMessage, upgrade: UpgradeStream | undefined): Promise<number> {
  if (upgrade === undefined || !isUpgradeRequest(request)) throw badRequest("Upgrade request required");
  return relayUpgrade(target, location.path, request, upgrade);
}

async function serveLog(context: ConnectContext, info: ResourceRequest, response: ServerResponse, query: URLSearchParams, method: string): Promise<number | undefined> {
  requireMethod(method, ["GET"]);
  const options = parseLogOptions(query, info.name);
  const pod = podOf(context, info.namespace, info.name);
  const location = logLocation(pod, options);
  if (location === undefined) {
    response.writeHead(204);
    response.end();
    return 204;
  }
  const target = kubeletTarget(context, locate(context, nodeNameOfPod(pod)), location.insecureSkipVerify);
  await streamFromBackend(target, location.path, response, { resource: { group: "", resource: "pods/log" }, name: info.name });
  return 200;
}

async function serveNodeProxy(
  context: ConnectContext,
  info: ResourceRequest,
  request: IncomingMessage,
  response: ServerResponse,
  upgrade: UpgradeStream | undefined,
  url: URL,
): Promise<number | undefined> {
  const method = request.method ?? "GET";
  requireMethod(method, proxyMethods);
  const id = splitSchemeNamePort(info.name);
  if (id === undefined) throw badRequest(`invalid node request ${JSON.stringify(info.name)}`);
  const location = locate(context, id.name);
  await requireProxyableHost(location.host);
  const viaKubelet = id.port === "" || id.port === String(location.port);
  const target: BackendTarget = viaKubelet
    ? kubeletTarget(context, location, false)
    : { host: location.host, port: Number(id.port), tls: id.scheme === "https" ? { rejectUnauthorized: false } : undefined };
  if (upgrade !== undefined && isUpgradeRequest(request)) {
    // The upgrade path dials the location as resolved, which for nodes/proxy carries no query.
    return relayUpgrade(target, info.proxyPath === "" ? "/" : info.proxyPath, request, upgrade);
  }
  if (info.proxyPath === "" && (method === "GET" || method === "HEAD")) {
    // https://issue.k8s.io/4958: an empty proxied path redirects to the same path with a slash.
    response.writeHead(301, { Location: `${url.pathname}/${url.search}` });
    response.end();
    return 301;
  }
  const proxyPrefix = url.pathname.slice(0, url.pathname.length - info.proxyPath.length);
  await proxyHttp(target, `${info.proxyPath}${url.search}`, request, response, { pathPrepend: proxyPrefix });
  return response.statusCode;
}

/**
 * Serves a connect subresource; resolves with the status code the client got (101 for an upgrade).
 * `upgrade` is set when the request arrived as an HTTP upgrade with its raw connection.
 */
export async function serveConnect(
  context: ConnectContext,
  info: ResourceRequest,
  request: IncomingMessage,
  response: ServerResponse,
  upgrade: UpgradeStream | undefined,
  url: URL,
): Promise<number | undefined> {
  const method = request.method ?? "GET";
  const query = url.searchParams;
  switch (info.subresource) {
    case "log":
      return serveLog(context, info, response, query, method);
    case "exec":
    case "attach":
    case "portforward": {
      requireMethod(method, upgradeMethods);
      const pod = podOf(context, info.namespace, info.name);
      const location = info.subresource === "portforward" ? portForwardLocation(pod, query) : execOrAttachLocation(info.subresource, pod, query);
      return relayToKubelet(kubeletTarget(context, locate(context, nodeNameOfPod(pod)), false), location, request, upgrade);
    }
    case "proxy":
      return serveNodeProxy(context, info, request, response, upgrade, url);
    default:
      throw notFound({ group: "", resource: info.resource }, info.name);
  }
}
