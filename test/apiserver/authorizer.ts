// The authorization chain. Requests to this server are allowed unless a deny rule or (when enabled) the
// Node authorizer refuses them, so tests need not spell out RBAC for every client. Access reviews
// (SubjectAccessReview) answer as kube-apiserver's chain does: system:masters, then the Node
// authorizer, then RBAC, where RBAC grants only what the tests' allow rules grant.
import { authorize, denyRuleMatches, type DenyRule, type RequestAttributes, type UserInfo } from "./auth.ts";
import { authorizeNode, nodeAuthorizerDecision, nodeNameOf, type NodeGraph } from "./node-authorization.ts";
import { rbacAllowReason, type AccessAttributes, type AllowRule } from "./rbac.ts";
import type { ApiError } from "./status.ts";

export interface AuthorizationPolicy {
  denyRules: () => readonly DenyRule[];
  allowRules: () => readonly AllowRule[];
  /** Whether node identities get the Node authorizer's limits. */
  nodeAuthorization: () => boolean;
  graph: NodeGraph;
}

/** The 403 for a request this server refuses, or undefined to let it through. */
export function authorizeRequest(policy: AuthorizationPolicy, user: UserInfo, attributes: RequestAttributes): ApiError | undefined {
  const denial = authorize(policy.denyRules(), user, attributes);
  if (denial !== undefined) return denial;
  const nodeName = policy.nodeAuthorization() ? nodeNameOf(user) : undefined;
  return nodeName === undefined ? undefined : authorizeNode(nodeName, user, attributes, policy.graph);
}

/** SubjectAccessReviewStatus; RBAC never denies outright, so `denied` stays unset. */
export interface AccessReviewStatus {
  allowed: boolean;
  denied?: boolean;
  reason?: string;
  evaluationError?: string;
}

/** The union authorizer's answer: the first allow wins, otherwise the reasons given, one per line. */
export function reviewAccess(policy: AuthorizationPolicy, subject: UserInfo, attributes: AccessAttributes): AccessReviewStatus {
  if (subject.groups.includes("system:masters")) return { allowed: true };
  const reasons: string[] = [];
  const resourceAttributes: RequestAttributes | undefined = attributes.path === undefined ? attributes : undefined;
  const nodeName = policy.nodeAuthorization() ? nodeNameOf(subject) : undefined;
  if (nodeName !== undefined && resourceAttributes !== undefined) {
    const decision = nodeAuthorizerDecision(nodeName, resourceAttributes, policy.graph);
    if (decision.allowed) return { allowed: true };
    if (decision.reason !== "") reasons.push(decision.reason);
  }
  const denied = resourceAttributes !== undefined && policy.denyRules().some((rule) => denyRuleMatches(rule, subject, resourceAttributes));
  const allowedBy = denied ? undefined : rbacAllowReason(policy.allowRules(), subject, attributes);
  if (allowedBy !== undefined) return { allowed: true, reason: allowedBy };
  return reasons.length === 0 ? { allowed: false } : { allowed: false, reason: reasons.join("\n") };
}
