// The CertificateSigningRequest API (certificates.k8s.io/v1) as the real registry implements it: the
// requester's identity stamped into spec on create, spec immutable afterwards, conditions changed only
// through /approval (Approved, Denied) and /status (everything else, and the certificate once), the
// field validation of certificates/validation, and the admission plugins that guard approval, signing
// and the kube-apiserver-client signer.
import type { AdmissionPlugin } from "./admission.ts";
import type { RequestAttributes, UserInfo } from "./auth.ts";
import { arrayAt, isJsonObject, jsonEqual, numberAt, objectAt, stringAt, type JsonObject, type JsonValue } from "./json.ts";
import { CertificateRequestError, firstPemBlock, parseCertificateRequest } from "./pkcs10.ts";
import { duplicateValue, forbidden, forbiddenField, invalidValue, requiredValue, unsupportedValue, type FieldError } from "./status.ts";
import { formatTime } from "./time.ts";

export const certificateRequestKind = "CertificateSigningRequest";
const certificatesGroup = "certificates.k8s.io";

const validUsages = [
  "signing",
  "digital signature",
  "content commitment",
  "key encipherment",
  "key agreement",
  "data encipherment",
  "cert sign",
  "crl sign",
  "encipher only",
  "decipher only",
  "any",
  "server auth",
  "client auth",
  "code signing",
  "email protection",
  "s/mime",
  "ipsec end system",
  "ipsec tunnel",
  "ipsec user",
  "timestamping",
  "ocsp signing",
  "microsoft sgc",
  "netscape sgc",
].sort();

const subdomainPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const subdomainMessage =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

const approvalConditionTypes = ["Approved", "Denied"] as const;
const finalConditionTypes = ["Approved", "Denied", "Failed"] as const;

function specOf(object: JsonObject): JsonObject {
  return objectAt(object, "spec") ?? {};
}

function conditionsOf(object: JsonObject | undefined): JsonObject[] {
  return (arrayAt(objectAt(object ?? {}, "status"), "conditions") ?? []).filter(isJsonObject);
}

/** spec.request (a []byte, base64 on the wire) as the PEM text it carries. */
export function requestPemOf(object: JsonObject): string {
  return Buffer.from(stringAt(specOf(object), "request") ?? "", "base64").toString("latin1");
}

export function signerNameOf(object: JsonObject): string {
  return stringAt(specOf(object), "signerName") ?? "";
}

export function usagesOf(object: JsonObject): string[] {
  return (arrayAt(specOf(object), "usages") ?? []).filter((usage): usage is string => typeof usage === "string");
}

export function hasCondition(object: JsonObject, type: string): boolean {
  return conditionsOf(object).some((condition) => condition["type"] === type && condition["status"] === "True");
}

export function certificateOf(object: JsonObject): string {
  return stringAt(objectAt(object, "status"), "certificate") ?? "";
}

/** PrepareForCreate: the requester is whoever sent the request, and nothing starts out approved. */
export function prepareCertificateRequestCreate(object: JsonObject, user: UserInfo | undefined): void {
  const spec: JsonObject = { ...specOf(object) };
  delete spec["username"];
  delete spec["uid"];
  delete spec["groups"];
  delete spec["extra"];
  if (user !== undefined) {
    spec["username"] = user.name;
    if (user.uid !== undefined && user.uid !== "") spec["uid"] = user.uid;
    if (user.groups.length > 0) spec["groups"] = [...user.groups];
    if (user.extra !== undefined && Object.keys(user.extra).length > 0) spec["extra"] = user.extra;
  }
  object["spec"] = spec;
  object["status"] = {};
}

/** An update of the object itself changes metadata only. */
export function prepareCertificateRequestUpdate(updated: JsonObject, current: JsonObject): void {
  if (current["spec"] === undefined) delete updated["spec"];
  else updated["spec"] = current["spec"];
  if (current["status"] === undefined) delete updated["status"];
  else updated["status"] = current["status"];
}

/** An /approval update changes status.conditions only. */
export function prepareCertificateRequestApproval(incoming: JsonObject, current: JsonObject): JsonObject {
  const result: JsonObject = { ...current, metadata: { ...objectAt(current, "metadata") } };
  const conditions = arrayAt(objectAt(incoming, "status"), "conditions");
  const status: JsonObject = { ...objectAt(current, "status") };
  if (conditions === undefined) delete status["conditions"];
  else status["conditions"] = conditions;
  result["status"] = status;
  return result;
}

/** Fills lastUpdateTime, and lastTransitionTime (kept from an old condition of the same type and status). */
export function populateConditionTimestamps(updated: JsonObject, current: JsonObject, now: Date): void {
  const status = objectAt(updated, "status");
  const conditions = arrayAt(status, "conditions");
  if (status === undefined || conditions === undefined) return;
  const previous = conditionsOf(current);
  status["conditions"] = conditions.map((condition) => {
    if (!isJsonObject(condition)) return condition;
    const filled: JsonObject = { ...condition };
    if (typeof filled["lastUpdateTime"] !== "string" || filled["lastUpdateTime"] === "") filled["lastUpdateTime"] = formatTime(now);
    if (typeof filled["lastTransitionTime"] !== "string" || filled["lastTransitionTime"] === "") {
      const same = previous.find((old) => old["type"] === filled["type"] && old["status"] === filled["status"] && typeof old["lastTransitionTime"] === "string");
      filled["lastTransitionTime"] = same?.["lastTransitionTime"] ?? formatTime(now);
    }
    return filled;
  });
}

/** Go's %#v of a []byte, which is how validation prints an invalid spec.request. */
function goBytes(bytes: Buffer): string {
  return `[]byte{${[...bytes].map((byte) => `0x${byte.toString(16)}`).join(", ")}}`;
}

/** Why status.certificate is not acceptable (only CERTIFICATE PEM blocks, at least one), or undefined. */
function certificateProblem(encoded: string): string | undefined {
  if (encoded === "") return undefined;
  let remaining = Buffer.from(encoded, "base64").toString("latin1");
  let blocks = 0;
  for (;;) {
    const block = firstPemBlock(remaining);
    if (block === undefined) break;
    if (block.type !== "CERTIFICATE") return `only CERTIFICATE PEM blocks are allowed, found "${block.type}"`;
    blocks += 1;
    remaining = remaining.slice(remaining.indexOf(`-----END ${block.type}-----`) + `-----END ${block.type}-----`.length);
  }
  return blocks === 0 ? "must contain at least one CERTIFICATE PEM block" : undefined;
}

/** ValidateCertificateSigningRequestSignerName. */
function signerNameProblems(signerName: string): FieldError[] {
  const field = "spec.signerName";
  if (signerName === "") return [requiredValue(field, "signerName must be provided")];
  const segments = signerName.split("/");
  if (segments.length !== 2) return [invalidValue(field, signerName, "must be a fully qualified domain and path of the form 'example.com/signer-name'")];
  const [domain = "", path = ""] = segments;
  const problems: FieldError[] = [];
  const domainLabels = domain.split(".");
  for (const label of domainLabels) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(label) || label.length > 63) {
      problems.push(
        invalidValue(
          field,
          domain,
          `validating label "${label}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
        ),
      );
      break;
    }
  }
  if (domainLabels.length < 2) problems.push(invalidValue(field, domain, "should be a domain with at least two segments separated by dots"));
  for (const label of path.split(".")) {
    const labelProblems = [
      ...(label.length > 253 ? ["must be no more than 253 characters"] : []),
      ...(subdomainPattern.test(label) ? [] : [subdomainMessage]),
    ];
    problems.push(...labelProblems.map((problem) => invalidValue(field, path, `validating label ${JSON.stringify(label)}: ${problem}`)));
    if (labelProblems.length > 0) break;
  }
  if (signerName.length > 571) problems.push({ field, reason: "FieldValueInvalid", detail: "Too long: may not be more than 571 bytes" });
  return problems;
}

function conditionProblems(object: JsonObject): FieldError[] {
  const problems: FieldError[] = [];
  const seen = new Set<string>();
  let approved = false;
  let denied = false;
  conditionsOf(object).forEach((condition, index) => {
    const path = `status.conditions[${index}]`;
    const type = stringAt(condition, "type") ?? "";
    const status = stringAt(condition, "status") ?? "";
    if (type === "") problems.push(requiredValue(`${path}.type`));
    const allowed = (finalConditionTypes as readonly string[]).includes(type) ? ["True"] : ["False", "True", "Unknown"];
    if (status === "") problems.push(requiredValue(`${path}.status`));
    else if (!allowed.includes(status)) problems.push(unsupportedValue(`${path}.status`, status, allowed));
    if (type === "Approved") {
      approved = true;
      if (denied) problems.push(invalidValue(`${path}.type`, type, "Approved and Denied conditions are mutually exclusive"));
    }
    if (type === "Denied") {
      denied = true;
      if (approved) problems.push(invalidValue(`${path}.type`, type, "Approved and Denied conditions are mutually exclusive"));
    }
    if (seen.has(type)) problems.push(duplicateValue(`${path}.type`, type));
    seen.add(type);
  });
  return problems;
}

/** validateCertificateSigningRequest: the request, usages, signer name, duration, conditions, certificate. */
export function certificateRequestProblems(object: JsonObject): FieldError[] {
  const problems: FieldError[] = [];
  const spec = specOf(object);
  try {
    parseCertificateRequest(requestPemOf(object));
  } catch (error) {
    if (!(error instanceof CertificateRequestError)) throw error;
    const bytes = Buffer.from(stringAt(spec, "request") ?? "", "base64");
    problems.push({ field: "spec.request", reason: "FieldValueInvalid", detail: `Invalid value: ${goBytes(bytes)}: ${error.message}` });
  }
  const usages = arrayAt(spec, "usages") ?? [];
  if (usages.length === 0) problems.push(requiredValue("spec.usages", "usages must be provided"));
  usages.forEach((usage, index) => {
    if (typeof usage !== "string" || !validUsages.includes(usage)) problems.push(unsupportedValue(`spec.usages[${index}]`, usage, validUsages));
  });
  const seenUsages = new Set<JsonValue>();
  usages.forEach((usage, index) => {
    if (seenUsages.has(usage)) problems.push(duplicateValue(`spec.usages[${index}]`, usage));
    seenUsages.add(usage);
  });
  const signerName = stringAt(spec, "signerName") ?? "";
  if (signerName === "kubernetes.io/legacy-unknown") {
    problems.push(invalidValue("spec.signerName", signerName, "the legacy signerName is not allowed via this API version"));
  } else {
    problems.push(...signerNameProblems(signerName));
  }
  const expirationSeconds = numberAt(spec, "expirationSeconds");
  if (expirationSeconds !== undefined && expirationSeconds < 600) {
    problems.push(invalidValue("spec.expirationSeconds", expirationSeconds, "may not specify a duration less than 600 seconds (10 minutes)"));
  }
  problems.push(...conditionProblems(object));
  const certificate = certificateProblem(certificateOf(object));
  if (certificate !== undefined) problems.push(invalidValue("status.certificate", "<certificate data>", certificate));
  return problems;
}

/** The extra rules of an update: final conditions stay, and who may add approvals and the certificate. */
export function certificateRequestUpdateProblems(updated: JsonObject, current: JsonObject, subresource: string): FieldError[] {
  const problems = certificateRequestProblems(updated);
  const ofType = (object: JsonObject, type: string): JsonObject[] => conditionsOf(object).filter((condition) => condition["type"] === type);
  for (const type of finalConditionTypes) {
    if (ofType(updated, type).length < ofType(current, type).length) {
      problems.push(forbiddenField("status.conditions", `updates may not remove a condition of type "${type}"`));
    }
  }
  if (subresource !== "approval") {
    for (const type of approvalConditionTypes) {
      const before = ofType(current, type);
      const after = ofType(updated, type);
      if (after.length > before.length) problems.push(forbiddenField("status.conditions", `updates may not add a condition of type "${type}"`));
      else if (after.length === before.length && !jsonEqual(after, before)) {
        problems.push(forbiddenField("status.conditions", `updates may not modify a condition of type "${type}"`));
      }
    }
  }
  if (certificateOf(updated) !== certificateOf(current)) {
    if (subresource !== "status") problems.push(forbiddenField("status.certificate", "updates may not set certificate content"));
    else if (certificateOf(current) !== "") problems.push(forbiddenField("status.certificate", "updates may not modify existing certificate content"));
  }
  return problems;
}

/** The base64 fields of the object, which the decoder reads as []byte. */
export function certificateRequestBase64Fields(object: JsonObject): JsonValue[] {
  return [specOf(object)["request"], objectAt(object, "status")?.["certificate"]].filter((value) => value !== undefined && value !== null);
}

/** Whether `user` may do `verb` (approve, sign) for signers named `signerName` or `domain/*`. */
export type SignerAuthorizer = (user: UserInfo, attributes: RequestAttributes) => boolean;

function mayUseSigner(authorized: SignerAuthorizer, user: UserInfo, verb: string, signerName: string): boolean {
  const attributes = (name: string): RequestAttributes => ({ verb, group: certificatesGroup, resource: "signers", subresource: "", namespace: "", name });
  const domain = signerName.split("/")[0] ?? "";
  return authorized(user, attributes(signerName)) || authorized(user, attributes(`${domain}/*`));
}

/** CertificateApproval, CertificateSigning and CertificateSubjectRestriction. */
export function certificateAdmission(authorized: SignerAuthorizer): AdmissionPlugin {
  return (request) => {
    if (request.type.kind !== certificateRequestKind || request.user === undefined) return;
    const refuse = (reason: string): never => {
      throw forbidden(request.type, request.name, reason);
    };
    if (request.operation === "CREATE" && request.object !== undefined && signerNameOf(request.object) === "kubernetes.io/kube-apiserver-client") {
      try {
        if (parseCertificateRequest(requestPemOf(request.object)).organizations.includes("system:masters")) {
          refuse("use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed");
        }
      } catch (error) {
        // An unparsable request is validation's to report.
        if (!(error instanceof CertificateRequestError)) throw error;
      }
    }
    if (request.operation !== "UPDATE" || request.oldObject === undefined) return;
    // Permissions are checked against the stored signer name, so approving cannot retarget a request.
    const signerName = signerNameOf(request.oldObject);
    if (request.subresource === "approval" && !mayUseSigner(authorized, request.user, "approve", signerName)) {
      refuse(`user not permitted to approve requests with signerName "${signerName}"`);
    }
    const certificateChanged = request.object !== undefined && certificateOf(request.object) !== certificateOf(request.oldObject);
    if (request.subresource === "status" && certificateChanged && !mayUseSigner(authorized, request.user, "sign", signerName)) {
      refuse(`user not permitted to sign requests with signerName "${signerName}"`);
    }
  };
}
