// Who is asking (client certificate or bearer token, as the real authenticators read them) and whether
// they may (deny rules standing in for RBAC, answered with RBAC's own forbidden message).
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import { forbidden, type ApiError } from "./status.ts";

export interface UserInfo {
  name: string;
  groups: string[];
  uid?: string;
  extra?: Record<string, string[]>;
}

export interface BearerToken {
  token: string;
  user: string;
  groups?: string[];
  uid?: string;
  extra?: Record<string, string[]>;
  /**
   * Audiences the token is valid for. Left out, it is audience-agnostic like a static token file
   * entry: valid exactly for the server's own API audiences.
   */
  audiences?: string[];
  /** Milliseconds since the epoch after which the token no longer authenticates (service account tokens). */
  expiresAt?: number;
}

/** Groups every authenticated user gets on top of its own, as the real authenticator chain adds. */
export const authenticatedGroup = "system:authenticated";

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

/** A token's outcome against a set of target audiences, as the real token authenticators report it. */
export type TokenAuthentication =
  | { authenticated: true; user: UserInfo; audiences: string[] }
  | { authenticated: false; error: string };

/**
 * Authenticates a bearer token for `targetAudiences`: the token must be known, unexpired, and share an
 * audience with the target (audience-agnostic tokens have the API audiences implicitly).
 */
export function authenticateToken(
  token: string,
  tokens: readonly BearerToken[],
  apiAudiences: readonly string[],
  targetAudiences: readonly string[],
  now: number = Date.now(),
): TokenAuthentication {
  const known = tokens.find((entry) => entry.token === token);
  const tokenAudiences = known?.audiences ?? apiAudiences;
  const shared = tokenAudiences.filter((audience) => targetAudiences.includes(audience));
  if (known === undefined || shared.length === 0 || (known.expiresAt !== undefined && known.expiresAt <= now)) {
    // The bearer token authenticator's default error when no token authenticator accepted the token.
    return { authenticated: false, error: "invalid bearer token" };
  }
  const user: UserInfo = {
    name: known.user,
    groups: [...(known.groups ?? []), authenticatedGroup],
    ...(known.uid === undefined ? {} : { uid: known.uid }),
    ...(known.extra === undefined ? {} : { extra: known.extra }),
  };
  return { authenticated: true, user, audiences: shared };
}

/** The user a request authenticates as, or undefined (which the caller answers with 401). */
export function authenticate(request: IncomingMessage, tokens: readonly BearerToken[], apiAudiences: readonly string[]): UserInfo | undefined {
  const socket = request.socket as TLSSocket;
  if (socket.authorized === true) {
    const certificate = socket.getPeerCertificate();
    const commonName = asList(certificate.subject?.CN)[0];
    if (commonName !== undefined && commonName !== "") {
      return { name: commonName, groups: [...asList(certificate.subject?.O), authenticatedGroup] };
    }
  }
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (match !== null) {
    const outcome = authenticateToken(match[1] ?? "", tokens, apiAudiences, apiAudiences);
    if (outcome.authenticated) return outcome.user;
  }
  return undefined;
}

function matches(filter: string[] | undefined, value: string): boolean {
  return filter === undefined || filter.includes(value);
}

/** Whether a deny rule covers the request: every field it sets matches. */
export function denyRuleMatches(rule: DenyRule, user: UserInfo, attributes: RequestAttributes): boolean {
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
  if (!rules.some((rule) => denyRuleMatches(rule, user, attributes))) return undefined;
  const resourcePath = attributes.subresource === "" ? attributes.resource : `${attributes.resource}/${attributes.subresource}`;
  const scope = attributes.namespace === "" ? "at the cluster scope" : `in the namespace "${attributes.namespace}"`;
  return forbidden(
    { group: attributes.group, resource: attributes.resource },
    attributes.name,
    `User "${user.name}" cannot ${attributes.verb} resource "${resourcePath}" in API group "${attributes.group}" ${scope}`,
  );
}
