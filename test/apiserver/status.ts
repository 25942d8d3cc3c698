// metav1.Status failures with the messages, reasons and details the real API server produces, so that
// vks' error handling is exercised against the exact shapes it will meet in a cluster.
import type { JsonObject, JsonValue } from "./json.ts";

/** Names a resource the way apimachinery's GroupResource prints it: `pods`, `leases.coordination.k8s.io`. */
export interface GroupResource {
  group: string;
  resource: string;
}

export function qualifiedResource({ group, resource }: GroupResource): string {
  return group === "" ? resource : `${resource}.${group}`;
}

/** A request failure carrying the Status body to send; thrown anywhere inside request handling. */
export class ApiError extends Error {
  readonly status: JsonObject;
  readonly code: number;

  /** `reason` "" is StatusReasonUnknown, which Go leaves out of the Status. */
  constructor(code: number, reason: string, message: string, details?: JsonObject) {
    super(message);
    this.code = code;
    this.status = {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      ...(reason === "" ? {} : { reason }),
      ...(details === undefined ? {} : { details }),
      code,
    };
  }
}

/**
 * What the real server sends for an error that is not an API status (a dial failure, a node without
 * addresses): 500 with the error's text and no reason.
 */
export function unknownError(message: string): ApiError {
  return new ApiError(500, "", message);
}

/** errors.NewInternalError: 500 InternalError, the cause repeated in details. */
export function internalError(message: string): ApiError {
  return new ApiError(500, "InternalError", `Internal error occurred: ${message}`, { causes: [{ message }] });
}

/**
 * errors.NewGenericServerResponse for a backend's error answer (no verb, as the pod log streamer
 * passes none): e.g. `the server could not find the requested resource ( pods/log web)`.
 */
export function genericServerResponse(code: number, target: GroupResource, name: string, serverMessage: string): ApiError {
  const byCode: Record<number, [string, string]> = {
    400: ["BadRequest", "the server rejected our request for an unknown reason"],
    401: ["Unauthorized", "the server has asked for the client to provide credentials"],
    403: ["Forbidden", serverMessage],
    404: ["NotFound", "the server could not find the requested resource"],
    405: ["MethodNotAllowed", "the server does not allow this method on the requested resource"],
    409: ["Conflict", "the server reported a conflict"],
    415: ["UnsupportedMediaType", serverMessage],
    422: ["Invalid", "the server rejected our request due to an error in our request"],
    429: ["TooManyRequests", "the server has received too many requests and has asked us to try again later"],
    503: ["ServiceUnavailable", "the server is currently unable to handle the request"],
    504: ["Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request"],
  };
  const fallback: [string, string] =
    code >= 500
      ? ["InternalError", `an error on the server (${JSON.stringify(serverMessage)}) has prevented the request from succeeding`]
      : ["", `the server responded with the status code ${code} but did not return more information`];
  const [reason, message] = byCode[code] ?? fallback;
  return new ApiError(code, reason, `${message} ( ${qualifiedResource(target)} ${name})`, resourceDetails(target, name));
}

function resourceDetails(target: GroupResource, name: string | undefined): JsonObject {
  const details: JsonObject = {};
  if (name !== undefined && name !== "") details["name"] = name;
  if (target.group !== "") details["group"] = target.group;
  details["kind"] = target.resource;
  return details;
}

export function notFound(target: GroupResource, name: string): ApiError {
  return new ApiError(404, "NotFound", `${qualifiedResource(target)} "${name}" not found`, resourceDetails(target, name));
}

export function alreadyExists(target: GroupResource, name: string): ApiError {
  return new ApiError(409, "AlreadyExists", `${qualifiedResource(target)} "${name}" already exists`, resourceDetails(target, name));
}

export const modifiedConflictDetail = "the object has been modified; please apply your changes to the latest version and try again";

export function conflict(target: GroupResource, name: string, detail: string): ApiError {
  return new ApiError(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualifiedResource(target)} "${name}": ${detail}`,
    resourceDetails(target, name),
  );
}

export function forbidden(target: GroupResource, name: string | undefined, detail: string): ApiError {
  const subject = name === undefined || name === "" ? qualifiedResource(target) : `${qualifiedResource(target)} "${name}"`;
  return new ApiError(403, "Forbidden", `${subject} is forbidden: ${detail}`, resourceDetails(target, name));
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, "BadRequest", message);
}

export function unauthorized(): ApiError {
  return new ApiError(401, "Unauthorized", "Unauthorized");
}

export function expired(message: string): ApiError {
  return new ApiError(410, "Expired", message);
}

export function unsupportedMediaType(contentType: string, acceptedTypes: readonly string[]): ApiError {
  return new ApiError(
    415,
    "UnsupportedMediaType",
    `the body of the request was in an unknown format - accepted media types include: ${acceptedTypes.join(", ")}`,
    { causes: [{ reason: "UnexpectedServerResponse", message: contentType }] },
  );
}

export function methodNotAllowed(): ApiError {
  return new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {});
}

export function pathNotFound(): ApiError {
  return new ApiError(404, "NotFound", "the server could not find the requested resource", {});
}

export function serviceUnavailable(): ApiError {
  return new ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request", {});
}

export function timeout(message: string): ApiError {
  return new ApiError(504, "Timeout", message, {});
}

export function unprocessable(message: string): ApiError {
  return new ApiError(422, "Invalid", message);
}

/** One field.Error from apimachinery's validation; `message` prints as the real one does. */
export interface FieldError {
  field: string;
  reason: "FieldValueInvalid" | "FieldValueRequired" | "FieldValueForbidden" | "FieldValueNotSupported" | "FieldValueDuplicate";
  /** The text after `field: `, e.g. `Invalid value: "Foo": a lowercase RFC 1123 subdomain ...`. */
  detail: string;
}

function printValue(value: JsonValue | undefined): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === undefined || value === null) return "null";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function invalidValue(field: string, value: JsonValue | undefined, detail: string): FieldError {
  return { field, reason: "FieldValueInvalid", detail: `Invalid value: ${printValue(value)}: ${detail}` };
}

export function requiredValue(field: string, detail?: string): FieldError {
  return { field, reason: "FieldValueRequired", detail: detail === undefined ? "Required value" : `Required value: ${detail}` };
}

export function forbiddenField(field: string, detail: string): FieldError {
  return { field, reason: "FieldValueForbidden", detail: `Forbidden: ${detail}` };
}

export function unsupportedValue(field: string, value: JsonValue | undefined, supported: readonly string[]): FieldError {
  const listed = supported.map((item) => JSON.stringify(item)).join(", ");
  return { field, reason: "FieldValueNotSupported", detail: `Unsupported value: ${printValue(value)}: supported values: ${listed}` };
}

export function duplicateValue(field: string, value: JsonValue | undefined): FieldError {
  return { field, reason: "FieldValueDuplicate", detail: `Duplicate value: ${printValue(value)}` };
}

/**
 * 422 Invalid. `kind` is usually the Kind (`Pod`), printed as a GroupKind (`Lease.coordination.k8s.io`);
 * the store's own resourceVersion check passes the resource instead, as the real store does.
 */
export function invalid(group: string, kind: string, name: string, errors: readonly FieldError[]): ApiError {
  const printed = errors.map((error) => `${error.field}: ${error.detail}`);
  const summary = printed.length === 1 ? (printed[0] ?? "") : `[${printed.join(", ")}]`;
  const groupKind = group === "" ? kind : `${kind}.${group}`;
  const details: JsonObject = { name };
  if (group !== "") details["group"] = group;
  details["kind"] = kind;
  details["causes"] = errors.map((error) => ({ reason: error.reason, message: error.detail, field: error.field }));
  return new ApiError(422, "Invalid", `${groupKind} "${name}" is invalid: ${summary}`, details);
}

export function successStatus(target: GroupResource, name: string, uid: string): JsonObject {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Success",
    details: { ...resourceDetails(target, name), uid },
  };
}
