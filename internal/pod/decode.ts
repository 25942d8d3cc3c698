/**
 * Strict decoding of a parsed manifest into API types, the way an API server with strict field validation
 * decodes a request: every field must exist in the schema and hold the right kind of value. A typo such as
 * `comand:` must fail loudly; silently dropping it would run the image's default program instead.
 *
 * The schema is the one @kubernetes/client-node generates from the OpenAPI spec (each model's attribute
 * type map), so it always matches the V1Pod type the rest of vks uses.
 */
import * as models from "@kubernetes/client-node";
import type { FieldProblem } from "../errors.ts";

interface AttributeType {
  /** The property name in the TypeScript model. */
  name: string;
  /** The field name in JSON/YAML. */
  baseName: string;
  type: string;
  format: string;
}

interface ModelClass {
  getAttributeTypeMap(): AttributeType[];
}

const MODELS: Readonly<Record<string, unknown>> = models;

function modelClass(typeName: string): ModelClass | undefined {
  const candidate = MODELS[typeName];
  if (typeof candidate !== "function") return undefined;
  return "getAttributeTypeMap" in candidate && typeof candidate.getAttributeTypeMap === "function"
    ? (candidate as unknown as ModelClass)
    : undefined;
}

/** Resource maps hold quantities, which YAML authors often write as bare numbers (`cpu: 1`). */
const QUANTITY_MAP_FIELDS = new Set(["limits", "requests", "overhead"]);

const ARRAY_TYPE = /^Array<(.+)>$/;
const MAP_TYPE = /^\{ \[key: string\]: (.+); \}$/;
/** metav1.Time: RFC 3339 with optional fraction, `Z` or a numeric offset. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

export function childPath(parent: string, field: string): string {
  return parent === "" ? field : `${parent}.${field}`;
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Date) return "a timestamp";
  switch (typeof value) {
    case "string":
      return `the string ${JSON.stringify(value)}`;
    case "number":
      return `the number ${value}`;
    case "boolean":
      return `the boolean ${value}`;
    case "object":
      return "a mapping";
    default:
      return typeof value;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Edit distance, for suggesting the field a typo meant. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function closestField(unknown: string, known: string[]): string | undefined {
  const lowered = unknown.toLowerCase();
  let best: { field: string; distance: number } | undefined;
  for (const field of known) {
    const distance = field.toLowerCase() === lowered ? 0 : editDistance(lowered, field.toLowerCase());
    if (distance <= 2 && (best === undefined || distance < best.distance)) best = { field, distance };
  }
  return best?.field;
}

class Decoder {
  readonly problems: FieldProblem[] = [];

  problem(path: string, message: string): undefined {
    this.problems.push({ path, message });
    return undefined;
  }

  /** Returns the decoded value, or undefined for an absent (null) value or a problem already recorded. */
  decode(value: unknown, type: string, format: string, path: string, fieldName: string): unknown {
    // An explicit null means "not set", as it does to the API server (`args:` with nothing after it).
    if (value === null || value === undefined) return undefined;

    const arrayOf = ARRAY_TYPE.exec(type)?.[1];
    if (arrayOf !== undefined) {
      if (!Array.isArray(value)) return this.problem(path, `must be a list, not ${describeValue(value)}`);
      const decoded: unknown[] = [];
      value.forEach((item, index) => {
        const itemPath = `${path}[${index}]`;
        if (item === null) {
          this.problem(itemPath, "must not be null");
          return;
        }
        decoded.push(this.decode(item, arrayOf, format, itemPath, fieldName));
      });
      return decoded;
    }

    const mapOf = MAP_TYPE.exec(type)?.[1];
    if (mapOf !== undefined) {
      if (!isPlainObject(value)) return this.problem(path, `must be a mapping, not ${describeValue(value)}`);
      const decoded: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        const itemPath = `${path}[${key}]`;
        if (mapOf === "string" && QUANTITY_MAP_FIELDS.has(fieldName) && typeof item === "number") {
          decoded[key] = String(item);
        } else {
          const decodedItem = this.decode(item, mapOf, "", itemPath, fieldName);
          if (decodedItem !== undefined) decoded[key] = decodedItem;
        }
      }
      return decoded;
    }

    switch (type) {
      case "string":
        if (typeof value === "string") return value;
        if (typeof value === "number" || typeof value === "boolean") {
          return this.problem(path, `must be a string, not ${describeValue(value)}; quote it: "${String(value)}"`);
        }
        return this.problem(path, `must be a string, not ${describeValue(value)}`);
      case "number":
        if (typeof value !== "number" || !Number.isFinite(value)) {
          return this.problem(path, `must be a number, not ${describeValue(value)}`);
        }
        if ((format === "int32" || format === "int64") && !Number.isSafeInteger(value)) {
          return this.problem(path, `must be an integer, not ${describeValue(value)}`);
        }
        return value;
      case "boolean":
        if (typeof value !== "boolean") return this.problem(path, `must be true or false, not ${describeValue(value)}`);
        return value;
      case "Date":
        return this.decodeTime(value, path);
      case "IntOrString":
        if (typeof value === "string" || (typeof value === "number" && Number.isSafeInteger(value))) return value;
        return this.problem(path, `must be an integer or a string, not ${describeValue(value)}`);
      case "any":
        return value;
    }

    const model = modelClass(type);
    // A type this client does not model cannot be checked; pass it through as the API server would.
    if (model === undefined) return value;
    if (!isPlainObject(value)) return this.problem(path, `must be a mapping, not ${describeValue(value)}`);
    return this.decodeObject(value, model, path);
  }

  private decodeTime(value: unknown, path: string): Date | undefined {
    if (value instanceof Date) return value;
    if (typeof value !== "string" || !RFC3339.test(value)) {
      return this.problem(path, `must be an RFC 3339 timestamp such as "2024-05-01T12:00:00Z", not ${describeValue(value)}`);
    }
    const parsed = new Date(value);
    if (Number.isNaN(parsed.getTime())) return this.problem(path, `is not a valid time: ${JSON.stringify(value)}`);
    return parsed;
  }

  private decodeObject(value: Record<string, unknown>, model: ModelClass, path: string): Record<string, unknown> {
    const attributes = model.getAttributeTypeMap();
    const byField = new Map(attributes.map((attribute) => [attribute.baseName, attribute]));
    const decoded: Record<string, unknown> = {};
    for (const [field, item] of Object.entries(value)) {
      const fieldPath = childPath(path, field);
      const attribute = byField.get(field);
      if (attribute === undefined) {
        const suggestion = closestField(field, [...byField.keys()]);
        this.problem(fieldPath, suggestion === undefined ? "unknown field" : `unknown field (did you mean "${suggestion}"?)`);
        continue;
      }
      const decodedItem = this.decode(item, attribute.type, attribute.format, fieldPath, field);
      if (decodedItem !== undefined) decoded[attribute.name] = decodedItem;
    }
    return decoded;
  }
}

/**
 * Decodes `value` as the API model `typeName` (e.g. "V1Pod"): unknown fields and values of the wrong kind
 * become problems located by field path; timestamps become Dates. The result is meaningful only when no
 * problems are returned.
 */
export function decodeStrict(value: unknown, typeName: string): { decoded: unknown; problems: FieldProblem[] } {
  const decoder = new Decoder();
  const decoded = decoder.decode(value, typeName, "", "", "");
  return { decoded, problems: decoder.problems };
}
