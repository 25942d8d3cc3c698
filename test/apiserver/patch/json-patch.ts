// JSON patch (RFC 6902) over JSON pointers (RFC 6901).
import { cloneJson, isJsonObject, jsonEqual, type JsonValue } from "../json.ts";
import { MalformedPatchError, PatchNotApplicableError } from "./errors.ts";

interface Operation {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  from?: string;
  value?: JsonValue;
}

const operationNames = new Set(["add", "remove", "replace", "move", "copy", "test"]);

function parseOperations(patch: JsonValue): Operation[] {
  if (!Array.isArray(patch)) throw new MalformedPatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch");
  return patch.map((entry) => {
    if (!isJsonObject(entry)) throw new MalformedPatchError("json: cannot unmarshal into Go value of type jsonpatch.Operation");
    const { op, path, from, value } = entry;
    if (typeof op !== "string" || !operationNames.has(op)) throw new MalformedPatchError(`Unexpected kind: ${String(op)}`);
    if (typeof path !== "string") throw new MalformedPatchError(`${op} operation missing path`);
    const operation: Operation = { op: op as Operation["op"], path };
    if (op === "move" || op === "copy") {
      if (typeof from !== "string") throw new MalformedPatchError(`${op} operation missing from`);
      operation.from = from;
    }
    if (op === "add" || op === "replace" || op === "test") {
      if (!("value" in entry) || value === undefined) throw new MalformedPatchError(`${op} operation missing value`);
      operation.value = value;
    }
    return operation;
  });
}

function pointerSegments(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new MalformedPatchError(`JSON pointer must be empty or start with a "/": ${pointer}`);
  return pointer
    .slice(1)
    .split("/")
    .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"));
}

type Container = JsonValue[] | { [key: string]: JsonValue };

/** Resolves all but the last segment, returning the container the last segment addresses. */
function locateParent(document: JsonValue, pointer: string, op: string): { parent: Container; key: string } {
  const segments = pointerSegments(pointer);
  const key = segments.pop();
  if (key === undefined) throw new PatchNotApplicableError(`${op} operation does not apply: the whole document cannot be targeted`);
  let current: JsonValue | undefined = document;
  for (const segment of segments) {
    current = childOf(current, segment);
    if (current === undefined) throw new PatchNotApplicableError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`);
  }
  if (!Array.isArray(current) && !isJsonObject(current)) {
    throw new PatchNotApplicableError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`);
  }
  return { parent: current, key };
}

function arrayIndex(key: string, length: number, allowEnd: boolean): number | undefined {
  if (allowEnd && key === "-") return length;
  if (!/^(0|[1-9]\d*)$/.test(key)) return undefined;
  const index = Number(key);
  return index < (allowEnd ? length + 1 : length) ? index : undefined;
}

function childOf(value: JsonValue | undefined, key: string): JsonValue | undefined {
  if (Array.isArray(value)) {
    const index = arrayIndex(key, value.length, false);
    return index === undefined ? undefined : value[index];
  }
  if (isJsonObject(value)) return Object.hasOwn(value, key) ? value[key] : undefined;
  return undefined;
}

function getAt(document: JsonValue, pointer: string, op: string): JsonValue {
  let current: JsonValue | undefined = document;
  for (const segment of pointerSegments(pointer)) current = childOf(current, segment);
  if (current === undefined) throw new PatchNotApplicableError(`${op} operation does not apply: doc is missing path: "${pointer}": missing value`);
  return current;
}

function addAt(document: JsonValue, pointer: string, value: JsonValue, op: string): JsonValue {
  if (pointer === "") return cloneJson(value);
  const { parent, key } = locateParent(document, pointer, op);
  if (Array.isArray(parent)) {
    const index = arrayIndex(key, parent.length, true);
    if (index === undefined) throw new PatchNotApplicableError(`${op} operation does not apply: index out of bounds: ${key}`);
    parent.splice(index, 0, cloneJson(value));
  } else {
    parent[key] = cloneJson(value);
  }
  return document;
}

function removeAt(document: JsonValue, pointer: string, op: string): JsonValue {
  const { parent, key } = locateParent(document, pointer, op);
  if (Array.isArray(parent)) {
    const index = arrayIndex(key, parent.length, false);
    if (index === undefined) throw new PatchNotApplicableError(`${op} operation does not apply: index out of bounds: ${key}`);
    parent.splice(index, 1);
  } else {
    if (!Object.hasOwn(parent, key)) throw new PatchNotApplicableError(`${op} operation does not apply: doc is missing key: ${pointer}: missing value`);
    delete parent[key];
  }
  return document;
}

export function applyJsonPatch(target: JsonValue, patch: JsonValue): JsonValue {
  let document = cloneJson(target);
  for (const operation of parseOperations(patch)) {
    const { op, path } = operation;
    switch (op) {
      case "add":
        document = addAt(document, path, operation.value ?? null, op);
        break;
      case "remove":
        document = removeAt(document, path, op);
        break;
      case "replace":
        getAt(document, path, op);
        document = path === "" ? cloneJson(operation.value ?? null) : addAt(removeAt(document, path, op), path, operation.value ?? null, op);
        break;
      case "move": {
        const from = operation.from ?? "";
        const moved = getAt(document, from, op);
        document = addAt(removeAt(document, from, op), path, moved, op);
        break;
      }
      case "copy":
        document = addAt(document, path, getAt(document, operation.from ?? "", op), op);
        break;
      case "test":
        if (!jsonEqual(getAt(document, path, op), operation.value)) {
          throw new PatchNotApplicableError(`testing value ${path} failed: test failed`);
        }
        break;
    }
  }
  return document;
}
