// TokenReview (authentication.k8s.io/v1) and SubjectAccessReview (authorization.k8s.io/v1): the
// delegated authentication and authorization a kubelet asks of the API server about its own clients.
// Neither is stored; the answer comes back in status of the created object.
import { authenticateToken, type BearerToken, type UserInfo } from "./auth.ts";
import { reviewAccess, type AuthorizationPolicy } from "./authorizer.ts";
import { arrayAt, isJsonObject, objectAt, stringAt, type JsonObject, type JsonValue } from "./json.ts";
import type { AccessAttributes } from "./rbac.ts";
import { badRequest, invalid, invalidValue, type FieldError } from "./status.ts";

function stringList(value: JsonValue | undefined): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

/** An unstored object's metadata, which Go serializes with a null creationTimestamp. */
function echoedMetadata(body: JsonObject): JsonObject {
  return { ...objectAt(body, "metadata"), creationTimestamp: objectAt(body, "metadata")?.["creationTimestamp"] ?? null };
}

/**
 * Authenticates spec.token for spec.audiences (the API audiences when empty). Unknown, expired or
 * wrong-audience tokens come back unauthenticated with the authenticator's error, not as a failure.
 */
export function reviewToken(body: JsonObject, tokens: readonly BearerToken[], apiAudiences: readonly string[]): JsonObject {
  const spec = objectAt(body, "spec") ?? {};
  const token = stringAt(spec, "token") ?? "";
  if (token === "") throw badRequest("token is required for TokenReview in authentication");
  const requested = stringList(spec["audiences"]);
  const outcome = authenticateToken(token, tokens, apiAudiences, requested.length > 0 ? requested : apiAudiences);
  let status: JsonObject;
  if (outcome.authenticated) {
    const user: JsonObject = { username: outcome.user.name };
    if (outcome.user.uid !== undefined && outcome.user.uid !== "") user["uid"] = outcome.user.uid;
    if (outcome.user.groups.length > 0) user["groups"] = [...outcome.user.groups];
    if (outcome.user.extra !== undefined && Object.keys(outcome.user.extra).length > 0) user["extra"] = outcome.user.extra;
    status = { authenticated: true, user, audiences: outcome.audiences };
  } else {
    status = { user: {}, error: outcome.error };
  }
  return { kind: "TokenReview", apiVersion: "authentication.k8s.io/v1", metadata: echoedMetadata(body), spec, status };
}

function reviewProblems(body: JsonObject, spec: JsonObject): FieldError[] {
  const problems: FieldError[] = [];
  const resourceAttributes = spec["resourceAttributes"];
  const nonResourceAttributes = spec["nonResourceAttributes"];
  const hasResource = isJsonObject(resourceAttributes);
  const hasNonResource = isJsonObject(nonResourceAttributes);
  if (hasResource && hasNonResource) {
    problems.push(invalidValue("spec.nonResourceAttributes", nonResourceAttributes, "cannot be specified in combination with resourceAttributes"));
  }
  if (!hasResource && !hasNonResource) {
    problems.push(invalidValue("spec.resourceAttributes", null, "exactly one of nonResourceAttributes or resourceAttributes must be specified"));
  }
  if ((stringAt(spec, "user") ?? "") === "" && stringList(spec["groups"]).length === 0) {
    problems.push(invalidValue("spec.user", "", "at least one of user or group must be specified"));
  }
  const metadata = { ...objectAt(body, "metadata") };
  delete metadata["managedFields"];
  delete metadata["creationTimestamp"];
  if (Object.keys(metadata).length > 0) problems.push(invalidValue("metadata", metadata, "must be empty"));
  return problems;
}

/** Evaluates spec (user, groups, and resource or non-resource attributes) against the authorization chain. */
export function reviewSubjectAccess(body: JsonObject, policy: AuthorizationPolicy): JsonObject {
  const spec = objectAt(body, "spec") ?? {};
  const problems = reviewProblems(body, spec);
  if (problems.length > 0) throw invalid("authorization.k8s.io", "SubjectAccessReview", "", problems);
  const subject: UserInfo = { name: stringAt(spec, "user") ?? "", groups: stringList(arrayAt(spec, "groups")) };
  const resource = objectAt(spec, "resourceAttributes");
  const nonResource = objectAt(spec, "nonResourceAttributes");
  const attributes: AccessAttributes =
    resource !== undefined
      ? {
          verb: stringAt(resource, "verb") ?? "",
          group: stringAt(resource, "group") ?? "",
          resource: stringAt(resource, "resource") ?? "",
          subresource: stringAt(resource, "subresource") ?? "",
          namespace: stringAt(resource, "namespace") ?? "",
          name: stringAt(resource, "name") ?? "",
        }
      : { verb: stringAt(nonResource, "verb") ?? "", group: "", resource: "", subresource: "", namespace: "", name: "", path: stringAt(nonResource, "path") ?? "" };
  const decision = reviewAccess(policy, subject, attributes);
  const status: JsonObject = { allowed: decision.allowed };
  if (decision.denied === true) status["denied"] = true;
  if (decision.reason !== undefined && decision.reason !== "") status["reason"] = decision.reason;
  if (decision.evaluationError !== undefined) status["evaluationError"] = decision.evaluationError;
  return { kind: "SubjectAccessReview", apiVersion: "authorization.k8s.io/v1", metadata: echoedMetadata(body), spec, status };
}
