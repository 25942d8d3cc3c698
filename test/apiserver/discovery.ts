// Discovery documents (/api, /apis, /api/v1, ...) and /version, enough for clients that look up
// whether a resource is namespaced before acting on it.
import type { JsonObject } from "./json.ts";
import { groupVersions, resourceTypes, resourceVerbs, statusVerbs, type ResourceType, type Subresource } from "./resources.ts";

export const serverVersion = {
  major: "1",
  minor: "34",
  gitVersion: "v1.34.0-vks-test",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2025-01-01T00:00:00Z",
  goVersion: "go1.24.0",
  compiler: "gc",
  platform: "linux/amd64",
} as const;

/** A subresource's discovery entry, as the real server lists it (e.g. pods/exec as PodExecOptions, create and get). */
function subresourceEntry(type: ResourceType, subresource: Subresource): JsonObject {
  const entry = (kind: string, verbs: readonly string[], extra: JsonObject = {}): JsonObject => ({
    name: `${type.resource}/${subresource}`,
    singularName: "",
    namespaced: type.namespaced,
    ...extra,
    kind,
    verbs: [...verbs],
  });
  switch (subresource) {
    case "status":
    case "approval":
      return entry(type.kind, statusVerbs);
    case "binding":
      return entry("Binding", ["create"]);
    case "token":
      return entry("TokenRequest", ["create"], { group: "authentication.k8s.io", version: "v1" });
    case "log":
      return entry("Pod", ["get"]);
    case "exec":
      return entry("PodExecOptions", ["create", "get"]);
    case "attach":
      return entry("PodAttachOptions", ["create", "get"]);
    case "portforward":
      return entry("PodPortForwardOptions", ["create", "get"]);
    case "proxy":
      return entry("NodeProxyOptions", ["create", "delete", "get", "patch", "update"]);
  }
}

function resourceList(group: string, version: string): JsonObject {
  const resources: JsonObject[] = [];
  for (const type of resourceTypes.filter((candidate) => candidate.group === group && candidate.version === version)) {
    resources.push({
      name: type.resource,
      singularName: type.singular,
      namespaced: type.namespaced,
      kind: type.kind,
      verbs: [...resourceVerbs(type)],
      ...(type.shortNames.length > 0 ? { shortNames: [...type.shortNames] } : {}),
    });
    for (const subresource of type.subresources) resources.push(subresourceEntry(type, subresource));
  }
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion: group === "" ? version : `${group}/${version}`, resources };
}

function apiGroup(group: string): JsonObject {
  const versions = groupVersions()
    .filter((candidate) => candidate.group === group)
    .map(({ version }) => ({ groupVersion: `${group}/${version}`, version }));
  return { kind: "APIGroup", apiVersion: "v1", name: group, versions, preferredVersion: versions[0] ?? {} };
}

/** The discovery document at `path`, or undefined if the path is not a discovery path. */
export function discoveryDocument(path: string, serverAddress: string): JsonObject | undefined {
  const trimmed = path.replace(/\/+$/, "");
  if (trimmed === "/api") {
    return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }] };
  }
  if (trimmed === "/apis") {
    const groups = [...new Set(groupVersions().map(({ group }) => group))].filter((group) => group !== "").map(apiGroup);
    return { kind: "APIGroupList", apiVersion: "v1", groups };
  }
  if (trimmed === "/version") return { ...serverVersion };
  const core = /^\/api\/([^/]+)$/.exec(trimmed);
  if (core !== null && groupVersions().some(({ group, version }) => group === "" && version === core[1])) return resourceList("", core[1] ?? "");
  const named = /^\/apis\/([^/]+)(?:\/([^/]+))?$/.exec(trimmed);
  if (named !== null) {
    const [, group = "", version] = named;
    if (!groupVersions().some((candidate) => candidate.group === group && (version === undefined || candidate.version === version))) return undefined;
    return version === undefined ? apiGroup(group) : resourceList(group, version);
  }
  return undefined;
}
