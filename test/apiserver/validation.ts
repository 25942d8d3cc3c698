// Field validation that the real server runs before storing an object (422 Invalid), plus the
// decoding checks it runs while reading a body (400 BadRequest), for the types this server stores.
import { certificateRequestBase64Fields, certificateRequestKind, certificateRequestProblems, certificateRequestUpdateProblems } from "./certificate-requests.ts";
import { arrayAt, isJsonObject, jsonEqual, numberAt, objectAt, stringAt, type JsonObject, type JsonValue } from "./json.ts";
import { apiVersionOf, type ResourceType } from "./resources.ts";
import { labelKeyProblem, labelValueProblem } from "./selectors.ts";
import {
  badRequest,
  duplicateValue,
  forbiddenField,
  invalid,
  invalidValue,
  requiredValue,
  unsupportedValue,
  type ApiError,
  type FieldError,
} from "./status.ts";
import { microTimeProblem } from "./time.ts";

const subdomainPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const labelPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const configKeyPattern = /^[-._a-zA-Z0-9]+$/;

const subdomainMessage =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const labelMessage =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

export function dnsSubdomainProblems(field: string, value: string): FieldError[] {
  const problems: FieldError[] = [];
  if (value.length > 253) problems.push(invalidValue(field, value, "must be no more than 253 characters"));
  if (!subdomainPattern.test(value)) problems.push(invalidValue(field, value, subdomainMessage));
  return problems;
}

export function dnsLabelProblems(field: string, value: string): FieldError[] {
  const problems: FieldError[] = [];
  if (value.length > 63) problems.push(invalidValue(field, value, "must be no more than 63 characters"));
  if (!labelPattern.test(value)) problems.push(invalidValue(field, value, labelMessage));
  return problems;
}

/** A 400 in the words of the real decoder: `Lease in version "v1" cannot be handled as a Lease: ...`. */
export function undecodable(type: ResourceType, detail: string): ApiError {
  return badRequest(`${type.kind} in version "${type.version}" cannot be handled as a ${type.kind}: ${detail}`);
}

function requireStringMap(type: ResourceType, owner: JsonObject | undefined, key: string, goField: string): void {
  const value = owner?.[key];
  if (value === undefined || value === null) return;
  if (!isJsonObject(value)) throw undecodable(type, `json: cannot unmarshal ${jsonKind(value)} into Go struct field ${goField} of type map[string]string`);
  for (const item of Object.values(value)) {
    if (typeof item !== "string") throw undecodable(type, `json: cannot unmarshal ${jsonKind(item)} into Go struct field ${goField} of type string`);
  }
}

function jsonKind(value: JsonValue): string {
  if (Array.isArray(value)) return "array";
  if (value === null) return "null";
  return typeof value === "object" ? "object" : typeof value;
}

function requireMicroTime(type: ResourceType, owner: JsonObject | undefined, key: string): void {
  const value = owner?.[key];
  if (value === undefined || value === null) return;
  if (typeof value !== "string") throw undecodable(type, `json: cannot unmarshal ${jsonKind(value)} into Go value of type string`);
  const problem = microTimeProblem(value);
  if (problem !== undefined) throw undecodable(type, problem);
}

/**
 * The checks the real server's decoder makes: apiVersion/kind, when given, must be the URL's; fields
 * of the wrong JSON type and malformed MicroTime or base64 values fail decoding with a 400.
 */
export function checkDecodable(type: ResourceType, body: JsonObject): void {
  const apiVersion = body["apiVersion"];
  const kind = body["kind"];
  if (apiVersion !== undefined && apiVersion !== apiVersionOf(type)) {
    throw badRequest(`the API version in the data (${String(apiVersion)}) does not match the expected API version (${apiVersionOf(type)})`);
  }
  if (kind !== undefined && kind !== type.kind) {
    throw badRequest(`the object provided is unrecognized (must be of type ${type.kind}): ${String(kind)}`);
  }
  const metadata = body["metadata"];
  if (metadata !== undefined && metadata !== null && !isJsonObject(metadata)) {
    throw undecodable(type, `json: cannot unmarshal ${jsonKind(metadata)} into Go struct field ${type.kind}.metadata of type v1.ObjectMeta`);
  }
  const meta = isJsonObject(metadata) ? metadata : undefined;
  requireStringMap(type, meta, "labels", "ObjectMeta.metadata.labels");
  requireStringMap(type, meta, "annotations", "ObjectMeta.metadata.annotations");
  for (const key of ["name", "generateName", "namespace", "resourceVersion", "uid"]) {
    const value = meta?.[key];
    if (value !== undefined && value !== null && typeof value !== "string") {
      throw undecodable(type, `json: cannot unmarshal ${jsonKind(value)} into Go struct field ObjectMeta.metadata.${key} of type string`);
    }
  }
  if (type.kind === "Lease") {
    const spec = objectAt(body, "spec");
    requireMicroTime(type, spec, "acquireTime");
    requireMicroTime(type, spec, "renewTime");
  }
  if (type.kind === "Event") {
    requireMicroTime(type, body, "eventTime");
    requireMicroTime(type, objectAt(body, "series"), "lastObservedTime");
  }
  if (type.kind === "Secret") {
    requireStringMap(type, body, "data", "Secret.data");
    requireStringMap(type, body, "stringData", "Secret.stringData");
    for (const encoded of Object.values(objectAt(body, "data") ?? {})) {
      if (typeof encoded === "string" && !isBase64(encoded)) throw undecodable(type, "illegal base64 data at input byte 0");
    }
  }
  if (type.kind === "ConfigMap") requireStringMap(type, body, "data", "ConfigMap.data");
  if (type.kind === certificateRequestKind) {
    for (const encoded of certificateRequestBase64Fields(body)) {
      if (typeof encoded !== "string") throw undecodable(type, `json: cannot unmarshal ${jsonKind(encoded)} into Go value of type []uint8`);
      if (!isBase64(encoded)) throw undecodable(type, "illegal base64 data at input byte 0");
    }
  }
}

function isBase64(text: string): boolean {
  return text.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(text);
}

function validateObjectMeta(type: ResourceType, metadata: JsonObject): FieldError[] {
  const problems: FieldError[] = [];
  const name = stringAt(metadata, "name") ?? "";
  if (name === "") {
    problems.push(requiredValue("metadata.name", "name or generateName is required"));
  } else if (type.namesUnrestricted !== true) {
    problems.push(...(type.nameIsLabel ? dnsLabelProblems("metadata.name", name) : dnsSubdomainProblems("metadata.name", name)));
  }
  if (type.namespaced && (stringAt(metadata, "namespace") ?? "") === "") problems.push(requiredValue("metadata.namespace"));
  for (const [key, value] of Object.entries(objectAt(metadata, "labels") ?? {})) {
    const keyProblem = labelKeyProblem(key);
    if (keyProblem !== undefined) problems.push(invalidValue("metadata.labels", key, keyProblem));
    if (typeof value === "string") {
      const valueProblem = labelValueProblem(value);
      if (valueProblem !== undefined) problems.push(invalidValue(`metadata.labels`, value, valueProblem));
    }
  }
  for (const key of Object.keys(objectAt(metadata, "annotations") ?? {})) {
    const keyProblem = labelKeyProblem(key.toLowerCase());
    if (keyProblem !== undefined) problems.push(invalidValue("metadata.annotations", key, keyProblem));
  }
  return problems;
}

const restartPolicies = ["Always", "OnFailure", "Never"];

function validateContainers(field: string, containers: JsonValue[] | undefined, required: boolean, names: Set<string>): FieldError[] {
  const problems: FieldError[] = [];
  if (containers === undefined || containers.length === 0) {
    if (required) problems.push(requiredValue(field));
    return problems;
  }
  containers.forEach((container, index) => {
    const path = `${field}[${index}]`;
    if (!isJsonObject(container)) {
      problems.push(invalidValue(path, container, "must be an object"));
      return;
    }
    const name = stringAt(container, "name") ?? "";
    if (name === "") problems.push(requiredValue(`${path}.name`));
    else if (names.has(name)) problems.push(duplicateValue(`${path}.name`, name));
    else problems.push(...dnsLabelProblems(`${path}.name`, name));
    names.add(name);
    if ((stringAt(container, "image") ?? "") === "") problems.push(requiredValue(`${path}.image`));
  });
  return problems;
}

function validatePodSpec(pod: JsonObject): FieldError[] {
  const spec = objectAt(pod, "spec");
  if (spec === undefined) return [requiredValue("spec.containers")];
  const names = new Set<string>();
  const problems = [
    ...validateContainers("spec.containers", arrayAt(spec, "containers"), true, names),
    ...validateContainers("spec.initContainers", arrayAt(spec, "initContainers"), false, names),
  ];
  const restartPolicy = spec["restartPolicy"];
  if (typeof restartPolicy !== "string" || !restartPolicies.includes(restartPolicy)) {
    problems.push(unsupportedValue("spec.restartPolicy", restartPolicy, restartPolicies));
  }
  const nodeName = stringAt(spec, "nodeName");
  if (nodeName !== undefined && nodeName !== "") problems.push(...dnsSubdomainProblems("spec.nodeName", nodeName));
  return problems;
}

const podUpdatableSpecMessage =
  "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/** The pod spec with the fields an update may change blanked out, to compare what may not change. */
function immutablePodSpec(spec: JsonObject | undefined): JsonObject {
  const masked: JsonObject = { ...spec };
  const withoutImages = (containers: JsonValue[] | undefined): JsonValue[] | undefined =>
    containers?.map((container) => (isJsonObject(container) ? { ...container, image: "" } : container));
  const containers = withoutImages(arrayAt(spec, "containers"));
  const initContainers = withoutImages(arrayAt(spec, "initContainers"));
  if (containers !== undefined) masked["containers"] = containers;
  if (initContainers !== undefined) masked["initContainers"] = initContainers;
  delete masked["activeDeadlineSeconds"];
  delete masked["tolerations"];
  delete masked["terminationGracePeriodSeconds"];
  return masked;
}

function validateLease(lease: JsonObject): FieldError[] {
  const spec = objectAt(lease, "spec");
  const problems: FieldError[] = [];
  const duration = numberAt(spec, "leaseDurationSeconds");
  if (duration !== undefined && duration <= 0) problems.push(invalidValue("spec.leaseDurationSeconds", duration, "must be greater than 0"));
  const transitions = numberAt(spec, "leaseTransitions");
  if (transitions !== undefined && transitions < 0) problems.push(invalidValue("spec.leaseTransitions", transitions, "must be greater than or equal to 0"));
  return problems;
}

function validateEvent(event: JsonObject): FieldError[] {
  const eventNamespace = stringAt(objectAt(event, "metadata"), "namespace") ?? "";
  const involvedNamespace = stringAt(objectAt(event, "involvedObject"), "namespace") ?? "";
  // Events about cluster-scoped objects (nodes) live in "default", as kubelets have always posted them.
  const namespaceAgrees = involvedNamespace === "" ? eventNamespace === "" || eventNamespace === "default" : eventNamespace === involvedNamespace;
  return namespaceAgrees ? [] : [invalidValue("involvedObject.namespace", involvedNamespace, "does not match event.namespace")];
}

function validateConfigKeys(object: JsonObject, fields: readonly string[]): FieldError[] {
  const problems: FieldError[] = [];
  const seen = new Set<string>();
  for (const field of fields) {
    for (const key of Object.keys(objectAt(object, field) ?? {})) {
      if (!configKeyPattern.test(key) || key.length > 253) {
        problems.push(
          invalidValue(
            `${field}[${key}]`,
            key,
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
          ),
        );
      }
      if (seen.has(key)) problems.push(duplicateValue(`${field}[${key}]`, key));
      seen.add(key);
    }
  }
  return problems;
}

function kindProblems(type: ResourceType, object: JsonObject): FieldError[] {
  switch (type.kind) {
    case "Pod":
      return validatePodSpec(object);
    case "Lease":
      return validateLease(object);
    case "Event":
      return validateEvent(object);
    case "ConfigMap":
      return validateConfigKeys(object, ["data", "binaryData"]);
    case "Secret":
      return validateConfigKeys(object, ["data"]);
    case certificateRequestKind:
      return certificateRequestProblems(object);
    default:
      return [];
  }
}

function nameForMessage(object: JsonObject): string {
  return stringAt(objectAt(object, "metadata"), "name") ?? "";
}

/** Throws 422 Invalid if a new object may not be stored. */
export function validateCreate(type: ResourceType, object: JsonObject): void {
  const problems = [...validateObjectMeta(type, objectAt(object, "metadata") ?? {}), ...kindProblems(type, object)];
  if (problems.length > 0) throw invalid(type.group, type.kind, nameForMessage(object), problems);
}

/** Throws 422 Invalid if `updated` may not replace `current` through `subresource` ("" for the object itself). */
export function validateUpdate(type: ResourceType, updated: JsonObject, current: JsonObject, subresource = ""): void {
  const kindRules = type.kind === certificateRequestKind ? certificateRequestUpdateProblems(updated, current, subresource) : kindProblems(type, updated);
  const problems = [...validateObjectMeta(type, objectAt(updated, "metadata") ?? {}), ...kindRules];
  const currentUid = stringAt(objectAt(current, "metadata"), "uid");
  const updatedUid = stringAt(objectAt(updated, "metadata"), "uid");
  if (updatedUid !== currentUid) problems.push(invalidValue("metadata.uid", updatedUid ?? "", "field is immutable"));
  if (type.kind === "Pod" && !jsonEqual(immutablePodSpec(objectAt(updated, "spec")), immutablePodSpec(objectAt(current, "spec")))) {
    problems.push(forbiddenField("spec", podUpdatableSpecMessage));
  }
  if (type.kind === "Secret" && stringAt(updated, "type") !== stringAt(current, "type")) {
    problems.push(invalidValue("type", stringAt(updated, "type") ?? "", "field is immutable"));
  }
  if ((type.kind === "Secret" || type.kind === "ConfigMap") && current["immutable"] === true) {
    for (const field of ["data", "binaryData", "stringData"]) {
      if (!jsonEqual(updated[field], current[field])) problems.push(forbiddenField(field, "field is immutable when `immutable` is set"));
    }
  }
  if (problems.length > 0) throw invalid(type.group, type.kind, nameForMessage(updated), problems);
}
