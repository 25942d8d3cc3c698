// Which objects a list, watch or deletecollection request addresses: its namespace plus label and field
// selectors, with field labels limited to those the real server supports for the type.
import { isJsonObject, objectAt, valueAtPath, type JsonObject } from "./json.ts";
import type { ResourceType } from "./resources.ts";
import { fieldsMatch, labelsMatch, parseFieldSelector, parseLabelSelector, type FieldSelector, type LabelSelector } from "./selectors.ts";
import { badRequest } from "./status.ts";

export interface Selection {
  type: ResourceType;
  /** "" selects every namespace (and is the only value for cluster-scoped types). */
  namespace: string;
  labels: LabelSelector;
  fields: FieldSelector;
}

function fieldValue(type: ResourceType, object: JsonObject, field: string): string {
  const path =
    field === "metadata.name"
      ? ["metadata", "name"]
      : field === "metadata.namespace"
        ? ["metadata", "namespace"]
        : (type.fieldLabels[field] ?? []);
  const value = valueAtPath(object, path);
  if (typeof value === "string") return value;
  if (typeof value === "boolean" || typeof value === "number") return String(value);
  // Unset booleans read as "false" in the real field sets (e.g. spec.unschedulable, spec.hostNetwork).
  if (field === "spec.unschedulable" || field === "spec.hostNetwork") return "false";
  return "";
}

export function isSupportedFieldLabel(type: ResourceType, field: string): boolean {
  if (field === "metadata.name") return true;
  if (field === "metadata.namespace") return type.namespaced;
  return Object.hasOwn(type.fieldLabels, field);
}

/**
 * Parses `labelSelector`/`fieldSelector`; a request naming an object (`/pods/foo?watch=1` or the
 * legacy `/watch/.../foo`) selects `metadata.name=foo` on top.
 */
export function parseSelection(type: ResourceType, namespace: string, query: URLSearchParams, name: string): Selection {
  const labels = parseLabelSelector(query.get("labelSelector") ?? "");
  const fields = parseFieldSelector(query.get("fieldSelector") ?? "");
  for (const requirement of fields.requirements) {
    if (!isSupportedFieldLabel(type, requirement.field)) throw badRequest(`field label not supported: ${requirement.field}`);
  }
  const requirements = name === "" ? fields.requirements : [...fields.requirements, { field: "metadata.name", negated: false, value: name }];
  return { type, namespace: type.namespaced ? namespace : "", labels, fields: { requirements } };
}

export function selects(selection: Selection, object: JsonObject): boolean {
  const metadata = objectAt(object, "metadata") ?? {};
  if (selection.namespace !== "" && metadata["namespace"] !== selection.namespace) return false;
  const labelsValue = metadata["labels"];
  const labels: Record<string, string> = {};
  if (isJsonObject(labelsValue)) {
    for (const [key, value] of Object.entries(labelsValue)) if (typeof value === "string") labels[key] = value;
  }
  return labelsMatch(selection.labels, labels) && fieldsMatch(selection.fields, (field) => fieldValue(selection.type, object, field));
}
