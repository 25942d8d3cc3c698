// Who is asking (client certificate or bearer token, as the real authenticators read them) and whether
// they may (deny rules standing in for RBAC, answered with RBAC's own forbidden message).
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import { forbidden, type ApiError } from "./status.ts";

export interface UserInfo {
  name: string;
  groups: string[];
}

export interface BearerToken {
  token: string;
  user: string;
  groups?: string[];
}

/** One API request as authorization sees it; `subresource` is "" for the main resource. */
export interface RequestAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
}

/**
 * Denies matching requests; a field left out matches anything. `resources` entries may name a
 * subresource as `nodes/status`.
 */
export interface DenyRule {
  users?: string[];
  groups?: string[];
  verbs?: string[];
  resources?: string[];
  namespaces?: string[];
  names?: string[];
}

function asList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** The user a request authenticates as, or undefined (which the caller answers with 401). */
export function authenticate(request: IncomingMessage, tokens: readonly BearerToken[]): UserInfo | undefined {
  const socket = request.socket as TLSSocket;
  if (socket.authorized === true) {
    const certificate = socket.getPeerCertificate();
    const commonName = asList(certificate.subject?.CN)[0];
    if (commonName !== undefined && commonName !== "") {
      return { name: commonName, groups: [...asList(certificate.subject?.O), "system:authenticated"] };
    }
  }
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (match !== null) {
    const known = tokens.find((entry) => entry.token === match[1]);
    if (known !== undefined) return { name: known.user, groups: [...(known.groups ?? []), "system:authenticated"] };
  }
  return undefined;
}

function matches(filter: string[] | undefined, value: string): boolean {
  return filter === undefined || filter.includes(value);
}

function ruleMatches(rule: DenyRule, user: UserInfo, attributes: RequestAttributes): boolean {
  const resourcePath = attributes.subresource === "" ? attributes.resource : `${attributes.resource}/${attributes.subresource}`;
  const groupMatches = rule.groups === undefined || rule.groups.some((group) => user.groups.includes(group));
  return (
    matches(rule.users, user.name) &&
    groupMatches &&
    matches(rule.verbs, attributes.verb) &&
    matches(rule.resources, resourcePath) &&
    matches(rule.namespaces, attributes.namespace) &&
    matches(rule.names, attributes.name)
  );
}

/** The 403 RBAC would give, or undefined when no deny rule matches. */
export function authorize(rules: readonly DenyRule[], user: UserInfo, attributes: RequestAttributes): ApiError | undefined {
  if (!rules.some((rule) => ruleMatches(rule, user, attributes))) return undefined;
  const resourcePath = attributes.subresource === "" ? attributes.resource : `${attributes.resource}/${attributes.subresource}`;
  const scope = attributes.namespace === "" ? "at the cluster scope" : `in the namespace "${attributes.namespace}"`;
  return forbidden(
    { group: attributes.group, resource: attributes.resource },
    attributes.name,
    `User "${user.name}" cannot ${attributes.verb} resource "${resourcePath}" in API group "${attributes.group}" ${scope}`,
  );
}
