/**
 * The labels a node sets on itself. A kubelet's credentials pass through the NodeRestriction admission
 * plugin, which refuses any `kubernetes.io`/`k8s.io` label outside a short allowed set, so the kubelet
 * checks `--node-labels` against the same rule before it talks to the API server: a refused label is a
 * usage error at start, not a registration that fails forever. Roles (`node-role.kubernetes.io/…`) are
 * for an administrator to set.
 */
import { ExitCode, VksError } from "../errors.ts";

/** Labels in the restricted domains a node may still set, as the kubelet lists them. */
const KUBELET_LABELS: ReadonlySet<string> = new Set([
  "kubernetes.io/hostname",
  "kubernetes.io/os",
  "kubernetes.io/arch",
  "beta.kubernetes.io/os",
  "beta.kubernetes.io/arch",
  "beta.kubernetes.io/instance-type",
  "node.kubernetes.io/instance-type",
  "topology.kubernetes.io/region",
  "topology.kubernetes.io/zone",
  "failure-domain.beta.kubernetes.io/region",
  "failure-domain.beta.kubernetes.io/zone",
]);

/** Prefixes (and their subdomains) under which any label is a node's own. */
const KUBELET_LABEL_DOMAINS = ["kubelet.kubernetes.io", "node.kubernetes.io"] as const;

const RESTRICTED_DOMAINS = ["kubernetes.io", "k8s.io"] as const;

function labelDomain(key: string): string {
  const slash = key.indexOf("/");
  return slash === -1 ? "" : key.slice(0, slash);
}

function inDomain(domain: string, parent: string): boolean {
  return domain === parent || domain.endsWith(`.${parent}`);
}

/** Whether NodeRestriction lets a node set `key` on itself. */
export function nodeMaySetLabel(key: string): boolean {
  const domain = labelDomain(key);
  if (inDomain(domain, "node-restriction.kubernetes.io")) return false;
  if (!RESTRICTED_DOMAINS.some((restricted) => inDomain(domain, restricted))) return true;
  return KUBELET_LABELS.has(key) || KUBELET_LABEL_DOMAINS.some((allowed) => inDomain(domain, allowed));
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function keyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return "its prefix must be a DNS subdomain (lowercase, dots and dashes)";
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return "its name must be at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit";
  }
  return undefined;
}

function valueProblem(value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > 63 || !LABEL_NAME.test(value)) {
    return "a value must be empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit";
  }
  return undefined;
}

function usage(message: string, hint: string): VksError {
  return new VksError(`--node-labels: ${message}`, { exitCode: ExitCode.usage, hint });
}

/** Parses `k=v,k2=v2` as the kubelet's --node-labels, refusing what NodeRestriction would refuse. */
export function parseNodeLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text === undefined || text.trim() === "") return labels;
  const restricted: string[] = [];
  for (const entry of text.split(",")) {
    const equals = entry.indexOf("=");
    if (equals <= 0) throw usage(`"${entry}" is not key=value`, "e.g. --node-labels example.com/rack=r1,disk=ssd");
    const key = entry.slice(0, equals).trim();
    const value = entry.slice(equals + 1).trim();
    const badKey = keyProblem(key);
    if (badKey !== undefined) throw usage(`label key "${key}" is invalid: ${badKey}`, "e.g. --node-labels example.com/rack=r1");
    const badValue = valueProblem(value);
    if (badValue !== undefined) throw usage(`label "${key}" has an invalid value "${value}": ${badValue}`, "e.g. --node-labels example.com/rack=r1");
    if (!nodeMaySetLabel(key)) restricted.push(key);
    labels[key] = value;
  }
  if (restricted.length > 0) {
    throw usage(
      `unknown 'kubernetes.io' or 'k8s.io' labels: ${restricted.join(", ")}; a node may set labels in those domains only ` +
        `with the prefixes ${KUBELET_LABEL_DOMAINS.join(", ")} or from the allowed set ${[...KUBELET_LABELS].join(", ")}`,
      "NodeRestriction admission refuses the others; an administrator sets them, e.g. kubectl label node NAME node-role.kubernetes.io/agent=",
    );
  }
  return labels;
}
