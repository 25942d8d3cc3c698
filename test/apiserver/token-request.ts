// TokenRequest (POST serviceaccounts/{name}/token): issues a bound service account token, a JWT signed
// with the cluster CA's key, valid for spec.audiences (the API audiences by default) until
// spec.expirationSeconds (an hour by default) and only while the pod or secret it is bound to exists.
import { createPrivateKey, randomUUID, sign } from "node:crypto";
import type { AdmissionPlugin } from "./admission.ts";
import type { BearerToken, UserInfo } from "./auth.ts";
import { checkDecodable } from "./validation.ts";
import { arrayAt, numberAt, objectAt, stringAt, type JsonObject } from "./json.ts";
import type { ObjectLookup } from "./node-authorization.ts";
import type { ResourceType } from "./resources.ts";
import { badRequest, conflict, invalid, invalidValue, notFound, type FieldError } from "./status.ts";
import { formatTime } from "./time.ts";

const minimumSeconds = 10 * 60;
const maximumSeconds = 2 ** 32;
const defaultSeconds = 60 * 60;

/** What a bound token stays valid for: the object it names must still exist with the same UID. */
export interface TokenBinding {
  resource: "pods" | "secrets";
  namespace: string;
  name: string;
  uid: string;
}

export interface IssuedToken extends BearerToken {
  binding: TokenBinding | undefined;
}

export interface TokenIssuer {
  lookup: ObjectLookup;
  admit: AdmissionPlugin;
  apiAudiences: () => readonly string[];
  /** The `iss` claim, as --service-account-issuer sets it. */
  issuer: string;
  signingKeyPem: string;
  register: (token: IssuedToken) => void;
  now: () => Date;
}

const tokenRequestType = { group: "authentication.k8s.io", version: "v1", kind: "TokenRequest" };

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

function signJwt(claims: JsonObject, keyPem: string): string {
  const key = createPrivateKey(keyPem);
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const algorithm = key.asymmetricKeyType === "rsa" ? "RS256" : curve === "secp384r1" ? "ES384" : "ES256";
  const hash = algorithm === "ES384" ? "sha384" : "sha256";
  const signingInput = `${base64url(JSON.stringify({ alg: algorithm, kid: "vks-test" }))}.${base64url(JSON.stringify(claims))}`;
  // JWS wants ECDSA signatures as r||s, not DER.
  const signature = sign(hash, Buffer.from(signingInput), key.asymmetricKeyType === "ec" ? { key, dsaEncoding: "ieee-p1363" } : key);
  return `${signingInput}.${base64url(signature)}`;
}

function validationProblems(expirationSeconds: number): FieldError[] {
  if (expirationSeconds < minimumSeconds) return [invalidValue("spec.expirationSeconds", expirationSeconds, "may not specify a duration less than 10 minutes")];
  if (expirationSeconds > maximumSeconds) return [invalidValue("spec.expirationSeconds", expirationSeconds, "may not specify a duration larger than 2^32 seconds")];
  return [];
}

/** Creates a token for service account `name`; `user` is who asks (NodeRestriction limits nodes). */
export function requestToken(issuer: TokenIssuer, serviceAccounts: ResourceType, namespace: string, name: string, body: JsonObject, user: UserInfo): JsonObject {
  checkDecodable({ ...serviceAccounts, ...tokenRequestType }, body);
  const spec: JsonObject = { ...objectAt(body, "spec") };
  // NodeRestriction and the other admission plugins see the request before the registry does.
  issuer.admit({
    operation: "CREATE",
    type: serviceAccounts,
    subresource: "token",
    namespace,
    name: stringAt(objectAt(body, "metadata"), "name") || "Unknown",
    user,
    object: { ...body, spec },
    oldObject: undefined,
  });
  const account = issuer.lookup("serviceaccounts", namespace, name);
  if (account === undefined) throw notFound(serviceAccounts, name);
  const expirationSeconds = numberAt(spec, "expirationSeconds") ?? defaultSeconds;
  const problems = validationProblems(expirationSeconds);
  if (problems.length > 0) throw invalid(tokenRequestType.group, tokenRequestType.kind, "", problems);
  const audiences = (arrayAt(spec, "audiences") ?? []).filter((audience): audience is string => typeof audience === "string");
  const effectiveAudiences = audiences.length > 0 ? audiences : [...issuer.apiAudiences()];

  const reference = objectAt(spec, "boundObjectRef");
  let binding: TokenBinding | undefined;
  const extra: Record<string, string[]> = {};
  const claimsBinding: JsonObject = {};
  if (reference !== undefined) {
    const kind = stringAt(reference, "kind") ?? "";
    const apiVersion = stringAt(reference, "apiVersion") ?? "";
    const referenceName = stringAt(reference, "name") ?? "";
    const resource = apiVersion === "v1" && kind === "Pod" ? "pods" : apiVersion === "v1" && kind === "Secret" ? "secrets" : undefined;
    // Go prints the GroupVersionKind as `group/version, Kind=kind`, so core objects read `/v1, Kind=Node`.
    if (resource === undefined) throw badRequest(`cannot bind token to object of type ${apiVersion.includes("/") ? apiVersion : `/${apiVersion}`}, Kind=${kind}`);
    const bound = issuer.lookup(resource, namespace, referenceName);
    if (bound === undefined) throw notFound({ group: "", resource }, referenceName);
    const uid = stringAt(objectAt(bound, "metadata"), "uid") ?? "";
    if (resource === "pods" && (stringAt(objectAt(bound, "spec"), "serviceAccountName") ?? "") !== name) {
      throw badRequest(`cannot bind token for serviceaccount "${name}" to pod running with different serviceaccount name.`);
    }
    const requestedUid = stringAt(reference, "uid") ?? "";
    if (requestedUid !== "" && requestedUid !== uid) {
      throw conflict(
        { group: "", resource: kind },
        referenceName,
        `the UID in the bound object reference (${requestedUid}) does not match the UID in record. The object might have been deleted and then recreated`,
      );
    }
    binding = { resource, namespace, name: referenceName, uid };
    if (resource === "pods") {
      extra["authentication.kubernetes.io/pod-name"] = [referenceName];
      extra["authentication.kubernetes.io/pod-uid"] = [uid];
      claimsBinding["pod"] = { name: referenceName, uid };
      const nodeName = stringAt(objectAt(bound, "spec"), "nodeName") ?? "";
      const node = nodeName === "" ? undefined : issuer.lookup("nodes", "", nodeName);
      if (node !== undefined) {
        const nodeUid = stringAt(objectAt(node, "metadata"), "uid") ?? "";
        extra["authentication.kubernetes.io/node-name"] = [nodeName];
        extra["authentication.kubernetes.io/node-uid"] = [nodeUid];
        claimsBinding["node"] = { name: nodeName, uid: nodeUid };
      }
    } else {
      claimsBinding["secret"] = { name: referenceName, uid };
    }
  }

  const now = issuer.now();
  const issuedAt = Math.floor(now.getTime() / 1000);
  const expiresAt = issuedAt + expirationSeconds;
  const tokenId = randomUUID();
  const accountUid = stringAt(objectAt(account, "metadata"), "uid") ?? "";
  const subject = `system:serviceaccount:${namespace}:${name}`;
  extra["authentication.kubernetes.io/credential-id"] = [`JTI=${tokenId}`];
  const token = signJwt(
    {
      aud: effectiveAudiences,
      exp: expiresAt,
      iat: issuedAt,
      iss: issuer.issuer,
      jti: tokenId,
      "kubernetes.io": { namespace, ...claimsBinding, serviceaccount: { name, uid: accountUid } },
      nbf: issuedAt,
      sub: subject,
    },
    issuer.signingKeyPem,
  );
  issuer.register({
    token,
    user: subject,
    uid: accountUid,
    groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`],
    extra,
    audiences: effectiveAudiences,
    expiresAt: expiresAt * 1000,
    binding,
  });
  return {
    kind: tokenRequestType.kind,
    apiVersion: `${tokenRequestType.group}/${tokenRequestType.version}`,
    metadata: { ...objectAt(body, "metadata"), name, namespace, creationTimestamp: null },
    spec: { ...spec, audiences: effectiveAudiences, expirationSeconds },
    status: { token, expirationTimestamp: formatTime(new Date(expiresAt * 1000)) },
  };
}

/** Whether an issued token's bound object still exists as the same object. */
export function bindingHolds(binding: TokenBinding | undefined, lookup: ObjectLookup): boolean {
  if (binding === undefined) return true;
  const bound = lookup(binding.resource, binding.namespace, binding.name);
  return bound !== undefined && stringAt(objectAt(bound, "metadata"), "uid") === binding.uid;
}

