// Turns a request's method and path into what is being asked, following the apiserver's RequestInfo
// rules (including `/namespaces/{name}` naming the namespace itself and the legacy `/watch/` prefix).
import { connectSubresources } from "./resources.ts";
import { parseFieldSelector } from "./selectors.ts";

export interface ResourceRequest {
  kind: "resource";
  verb: string;
  group: string;
  version: string;
  resource: string;
  subresource: string;
  namespace: string;
  /** The object named in the path, "" for collections. */
  name: string;
  /** The name authorization sees: the path's, or a list/watch's `metadata.name=` field selector's. */
  authorizedName: string;
  /** What follows a `proxy` subresource (`/metrics` in `nodes/n1/proxy/metrics`), "" when nothing does. */
  proxyPath: string;
}

export interface NonResourceRequest {
  kind: "nonResource";
  path: string;
}

export type RequestInfo = ResourceRequest | NonResourceRequest;

const namespaceSubresources = new Set(["status", "finalize"]);

function isWatchParameter(value: string | null): boolean {
  return value === "true" || value === "1";
}

export function parseRequest(method: string, url: URL): RequestInfo {
  const segments = url.pathname.split("/").filter((segment) => segment !== "");
  let group: string;
  let version: string;
  let rest: string[];
  if (segments[0] === "api" && segments.length >= 3) {
    group = "";
    version = segments[1] ?? "";
    rest = segments.slice(2);
  } else if (segments[0] === "apis" && segments.length >= 4) {
    group = segments[1] ?? "";
    version = segments[2] ?? "";
    rest = segments.slice(3);
  } else {
    return { kind: "nonResource", path: url.pathname };
  }

  let legacyWatch = false;
  if (rest[0] === "watch") {
    legacyWatch = true;
    rest = rest.slice(1);
  }
  let namespace = "";
  if (rest[0] === "namespaces" && rest.length > 1) {
    namespace = rest[1] ?? "";
    if (rest.length > 2 && !namespaceSubresources.has(rest[2] ?? "")) rest = rest.slice(2);
  }
  const [resource = "", name = "", subresource = "", ...extra] = rest;
  if (resource === "" || (extra.length > 0 && subresource !== "proxy")) return { kind: "nonResource", path: url.pathname };
  const proxyPath = subresource === "proxy" ? proxyPathOf(url.pathname, extra) : "";

  let verb: string;
  switch (method) {
    case "GET":
    case "HEAD":
      // Connect subresources (logs, exec, proxy) pass query parameters through, so `watch` is theirs.
      if (connectSubresources.has(subresource) && name !== "") verb = "get";
      else if (legacyWatch || isWatchParameter(url.searchParams.get("watch"))) verb = "watch";
      else verb = name === "" ? "list" : "get";
      break;
    case "POST":
      verb = "create";
      break;
    case "PUT":
      verb = "update";
      break;
    case "PATCH":
      verb = "patch";
      break;
    case "DELETE":
      verb = name === "" ? "deletecollection" : "delete";
      break;
    default:
      verb = method.toLowerCase();
  }
  return {
    kind: "resource",
    verb,
    group,
    version,
    resource,
    subresource,
    namespace,
    name,
    authorizedName: name || namedBySelector(verb, url),
    proxyPath,
  };
}

/** The path after `.../proxy`, keeping a trailing slash, since the proxied server may care about it. */
function proxyPathOf(pathname: string, extra: readonly string[]): string {
  if (extra.length === 0) return pathname.endsWith("/") ? "/" : "";
  const joined = `/${extra.join("/")}`;
  return pathname.endsWith("/") ? `${joined}/` : joined;
}

/**
 * A list or watch whose field selector pins metadata.name addresses that one object, and authorizers
 * see its name (this is how a node may watch just the secrets its pods use).
 */
function namedBySelector(verb: string, url: URL): string {
  if (verb !== "list" && verb !== "watch") return "";
  try {
    const selector = parseFieldSelector(url.searchParams.get("fieldSelector") ?? "");
    return selector.requirements.find((requirement) => requirement.field === "metadata.name" && !requirement.negated)?.value ?? "";
  } catch {
    // A malformed selector is reported by the list or watch itself.
    return "";
  }
}
