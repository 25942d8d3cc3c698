// JSON values as they travel over the wire. Every stored object is plain JSON so that what a client
// reads back is exactly what a real API server would serialize, never a class instance.

export type JsonPrimitive = null | boolean | number | string;
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function cloneJson<T extends JsonValue>(value: T): T {
  return structuredClone(value);
}

export function jsonEqual(left: JsonValue | undefined, right: JsonValue | undefined): boolean {
  if (left === right) return true;
  if (left === undefined || right === undefined || left === null || right === null) return false;
  if (Array.isArray(left)) {
    if (!Array.isArray(right) || left.length !== right.length) return false;
    return left.every((item, index) => jsonEqual(item, right[index]));
  }
  if (isJsonObject(left)) {
    if (!isJsonObject(right)) return false;
    const leftKeys = Object.keys(left);
    if (leftKeys.length !== Object.keys(right).length) return false;
    return leftKeys.every((key) => key in right && jsonEqual(left[key], right[key]));
  }
  return false;
}

/** Parses text that must be a JSON object; anything else yields undefined so callers choose the error. */
export function parseJsonObject(text: string): JsonObject | undefined {
  const parsed = parseJson(text);
  return isJsonObject(parsed) ? parsed : undefined;
}

export function parseJson(text: string): JsonValue | undefined {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return undefined;
  }
}

/** Walks a dotted path such as `spec.nodeName`; missing segments yield undefined. */
export function valueAtPath(root: JsonValue | undefined, path: readonly string[]): JsonValue | undefined {
  let current: JsonValue | undefined = root;
  for (const segment of path) {
    if (!isJsonObject(current)) return undefined;
    current = current[segment];
  }
  return current;
}

export function objectAt(root: JsonObject, key: string): JsonObject | undefined {
  const value = root[key];
  return isJsonObject(value) ? value : undefined;
}

export function stringAt(root: JsonObject | undefined, key: string): string | undefined {
  const value = root?.[key];
  return typeof value === "string" ? value : undefined;
}

export function numberAt(root: JsonObject | undefined, key: string): number | undefined {
  const value = root?.[key];
  return typeof value === "number" ? value : undefined;
}

export function arrayAt(root: JsonObject | undefined, key: string): JsonValue[] | undefined {
  const value = root?.[key];
  return Array.isArray(value) ? value : undefined;
}
