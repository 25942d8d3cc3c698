// RBAC-like allow rules for SubjectAccessReview: each rule is a (Cluster)Role with one PolicyRule bound
// to users and groups, matched the way the RBAC authorizer matches (wildcards, */subresource,
// resourceNames, nonResourceURLs with a trailing *), and reported with RBAC's own reason text.
import type { RequestAttributes, UserInfo } from "./auth.ts";

/**
 * One binding of one rule. Without `namespaces` it acts as a ClusterRoleBinding (every namespace,
 * cluster-scoped resources and non-resource URLs); with them, as a RoleBinding in each namespace.
 */
export interface AllowRule {
  /** Names the binding and role in SAR reasons; default `vks-test-allow-<index>`. */
  name?: string;
  users?: string[];
  groups?: string[];
  /** "*" matches every verb. */
  verbs: string[];
  /** API groups ("" is core); "*" or left out matches every group. */
  apiGroups?: string[];
  /** `pods`, `nodes/proxy`, `*`, `*\/status`; left out, the rule grants no resources. */
  resources?: string[];
  resourceNames?: string[];
  namespaces?: string[];
  /** `/healthz`, `/metrics/*`, `*`; only for cluster-wide rules, as RBAC allows. */
  nonResourceURLs?: string[];
}

/** What is asked: a resource request, or a non-resource one (path) when `path` is set. */
export interface AccessAttributes extends RequestAttributes {
  /** Set for non-resource requests (`/metrics`); undefined for resource requests. */
  path?: string;
}

/** RBAC matches bindings on the user's name and groups only. */
type AccessSubject = Pick<UserInfo, "name" | "groups">;

function verbMatches(rule: AllowRule, verb: string): boolean {
  return rule.verbs.includes("*") || rule.verbs.includes(verb);
}

function groupMatches(rule: AllowRule, group: string): boolean {
  return rule.apiGroups === undefined || rule.apiGroups.includes("*") || rule.apiGroups.includes(group);
}

function resourceMatches(rule: AllowRule, attributes: AccessAttributes): boolean {
  const combined = attributes.subresource === "" ? attributes.resource : `${attributes.resource}/${attributes.subresource}`;
  return (rule.resources ?? []).some(
    (resource) => resource === "*" || resource === combined || (attributes.subresource !== "" && resource === `*/${attributes.subresource}`),
  );
}

function nameMatches(rule: AllowRule, name: string): boolean {
  return rule.resourceNames === undefined || rule.resourceNames.length === 0 || rule.resourceNames.includes(name);
}

function urlMatches(rule: AllowRule, path: string): boolean {
  return (rule.nonResourceURLs ?? []).some((url) => url === "*" || url === path || (url.endsWith("*") && path.startsWith(url.slice(0, -1))));
}

function ruleAllows(rule: AllowRule, attributes: AccessAttributes): boolean {
  if (!verbMatches(rule, attributes.verb)) return false;
  if (attributes.path !== undefined) return urlMatches(rule, attributes.path);
  return groupMatches(rule, attributes.group) && resourceMatches(rule, attributes) && nameMatches(rule, attributes.name);
}

/** The subject of the binding that matches, described as RBAC does: `User "alice"`, `Group "g"`. */
function matchingSubject(rule: AllowRule, subject: AccessSubject): string | undefined {
  if (rule.users?.includes(subject.name) === true) return `User "${subject.name}"`;
  const group = rule.groups?.find((candidate) => subject.groups.includes(candidate));
  return group === undefined ? undefined : `Group "${group}"`;
}

/**
 * RBAC's reason when a rule allows the request (`RBAC: allowed by ClusterRoleBinding "b" of
 * ClusterRole "b" to User "u"`), or undefined when none does. Cluster-wide bindings are visited first,
 * then the bindings in the request's namespace, as the RBAC authorizer visits them.
 */
export function rbacAllowReason(rules: readonly AllowRule[], subject: AccessSubject, attributes: AccessAttributes): string | undefined {
  const named = rules.map((rule, index) => ({ rule, name: rule.name ?? `vks-test-allow-${index}` }));
  for (const { rule, name } of named.filter(({ rule }) => rule.namespaces === undefined)) {
    const described = matchingSubject(rule, subject);
    if (described !== undefined && ruleAllows(rule, attributes)) return `RBAC: allowed by ClusterRoleBinding "${name}" of ClusterRole "${name}" to ${described}`;
  }
  if (attributes.path !== undefined || attributes.namespace === "") return undefined;
  for (const { rule, name } of named.filter(({ rule }) => rule.namespaces?.includes(attributes.namespace) === true)) {
    const described = matchingSubject(rule, subject);
    if (described !== undefined && ruleAllows(rule, attributes)) {
      return `RBAC: allowed by RoleBinding "${name}/${attributes.namespace}" of Role "${name}" to ${described}`;
    }
  }
  return undefined;
}
