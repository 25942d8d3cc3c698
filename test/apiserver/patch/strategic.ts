// Strategic merge patch: a merge patch that merges the lists Kubernetes marks `patchStrategy: merge`
// element by element (by their patchMergeKey, or as sets for lists of primitives) instead of replacing
// them, and honours the `$patch`, `$retainKeys`, `$deleteFromPrimitiveList` and `$setElementOrder`
// directives.
import { cloneJson, isJsonObject, jsonEqual, type JsonObject, type JsonValue } from "../json.ts";
import { MalformedPatchError } from "./errors.ts";

/** The patch metadata of one field, as the Go struct tags `patchStrategy`/`patchMergeKey` declare it. */
export interface PatchSchema {
  fields?: Readonly<Record<string, PatchSchema>>;
  /** Present on lists with `patchStrategy: merge`; without `key` the list is a set of primitives. */
  merge?: { key?: string };
  /** Schema of each list element. */
  items?: PatchSchema;
}

const directiveKey = "$patch";
const retainKeysDirective = "$retainKeys";
const deleteFromPrimitiveListPrefix = "$deleteFromPrimitiveList/";
const setElementOrderPrefix = "$setElementOrder/";

function isDirectiveKey(key: string): boolean {
  return key === directiveKey || key === retainKeysDirective || key.startsWith(deleteFromPrimitiveListPrefix) || key.startsWith(setElementOrderPrefix);
}

/** Copies a patch value that lands where nothing merges, dropping directives the way the server does. */
function withoutDirectives(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(withoutDirectives);
  if (!isJsonObject(value)) return value;
  const result: JsonObject = {};
  for (const [key, item] of Object.entries(value)) {
    if (!isDirectiveKey(key) && item !== null) result[key] = withoutDirectives(item);
  }
  return result;
}

function mergeMap(original: JsonObject, patch: JsonObject, schema: PatchSchema | undefined): JsonObject | undefined {
  const directive = patch[directiveKey];
  if (directive === "replace") return withoutDirectives(patch) as JsonObject;
  if (directive === "delete") return undefined;
  if (directive !== undefined && directive !== "merge") throw new MalformedPatchError(`Unknown patch type: ${String(directive)}`);

  const result = cloneJson(original);
  for (const [key, patchValue] of Object.entries(patch)) {
    if (key.startsWith(deleteFromPrimitiveListPrefix)) {
      const field = key.slice(deleteFromPrimitiveListPrefix.length);
      if (!Array.isArray(patchValue)) throw new MalformedPatchError(`invalid patch: ${key} must be a list`);
      const current = result[field];
      if (Array.isArray(current)) result[field] = current.filter((item) => !patchValue.some((removed) => jsonEqual(item, removed)));
      continue;
    }
    if (isDirectiveKey(key)) continue;
    if (patchValue === null) {
      delete result[key];
      continue;
    }
    const fieldSchema = schema?.fields?.[key];
    const currentValue = result[key];
    if (isJsonObject(patchValue)) {
      const merged = mergeMap(isJsonObject(currentValue) ? currentValue : {}, patchValue, fieldSchema);
      if (merged === undefined) delete result[key];
      else result[key] = merged;
    } else if (Array.isArray(patchValue) && fieldSchema?.merge !== undefined) {
      result[key] = mergeList(Array.isArray(currentValue) ? currentValue : [], patchValue, fieldSchema);
    } else {
      result[key] = withoutDirectives(patchValue);
    }
  }

  const retainedKeys = patch[retainKeysDirective];
  if (retainedKeys !== undefined) {
    if (!Array.isArray(retainedKeys)) throw new MalformedPatchError("invalid patch: $retainKeys must be a list");
    for (const key of Object.keys(result)) {
      if (!retainedKeys.includes(key)) delete result[key];
    }
  }
  return result;
}

function mergeList(original: JsonValue[], patch: JsonValue[], schema: PatchSchema): JsonValue[] {
  if (patch.some((item) => isJsonObject(item) && item[directiveKey] === "replace")) {
    return patch.filter((item) => !(isJsonObject(item) && item[directiveKey] === "replace")).map(withoutDirectives);
  }
  const mergeKey = schema.merge?.key;
  if (mergeKey === undefined) {
    const result = cloneJson(original);
    for (const item of patch) {
      if (isJsonObject(item) || Array.isArray(item)) throw new MalformedPatchError("invalid patch: a list of primitives may only contain primitives");
      if (!result.some((existing) => jsonEqual(existing, item))) result.push(item);
    }
    return result;
  }
  const result = cloneJson(original);
  for (const item of patch) {
    if (!isJsonObject(item)) throw new MalformedPatchError(`invalid patch: expected a map in a list merged by ${mergeKey}`);
    const keyValue = item[mergeKey];
    if (keyValue === undefined) {
      throw new MalformedPatchError(`map: ${JSON.stringify(item)} does not contain declared merge key: ${mergeKey}`);
    }
    const index = result.findIndex((existing) => isJsonObject(existing) && jsonEqual(existing[mergeKey], keyValue));
    const existing = index === -1 ? undefined : result[index];
    if (item[directiveKey] === "delete") {
      if (index !== -1) result.splice(index, 1);
      continue;
    }
    const merged = mergeMap(isJsonObject(existing) ? existing : {}, item, schema.items);
    if (merged === undefined) {
      if (index !== -1) result.splice(index, 1);
    } else if (index === -1) {
      result.push(merged);
    } else {
      result[index] = merged;
    }
  }
  return result;
}

export function applyStrategicMergePatch(target: JsonObject, patch: JsonValue, schema: PatchSchema): JsonObject {
  if (!isJsonObject(patch)) throw new MalformedPatchError("json: cannot unmarshal array into Go value of type map[string]interface {}");
  return mergeMap(target, patch, schema) ?? {};
}
