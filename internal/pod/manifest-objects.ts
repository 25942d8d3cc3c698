/**
 * ConfigMap and Secret documents of a `pod up` manifest: decoded strictly like Pods, checked as the API
 * server checks them on create, and served to the engine as the pods' PodObjectSource.
 */
import type { V1ConfigMap, V1Secret } from "@kubernetes/client-node";
import { ExitCode, ValidationError, VksError, type FieldProblem } from "../errors.ts";
import { isDns1123Label, isDns1123Subdomain } from "../unit/name.ts";
import { decodeStrict } from "./decode.ts";
import type { PodObjectSource } from "./objects.ts";

/** The API server's limit on the data of one ConfigMap or Secret. */
export const MAX_OBJECT_DATA_BYTES = 1024 * 1024;
/** IsConfigMapKey: what a data key may be (it becomes a file name in a volume). */
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function checkMetadata(metadata: { name?: string; namespace?: string } | undefined, problems: FieldProblem[]): void {
  const name = metadata?.name;
  if (name === undefined || name === "") problems.push({ path: "metadata.name", message: "required" });
  else if (!isDns1123Subdomain(name)) problems.push({ path: "metadata.name", message: "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.'; at most 253)" });
  const namespace = metadata?.namespace;
  if (namespace !== undefined && namespace !== "" && !isDns1123Label(namespace)) {
    problems.push({ path: "metadata.namespace", message: "must be a DNS-1123 label (lowercase letters, digits, '-'; at most 63)" });
  }
}

function checkKeys(keys: Iterable<string>, path: string, problems: FieldProblem[]): void {
  for (const key of keys) {
    if (!DATA_KEY.test(key) || key === "." || key === ".." || key.length > 253) {
      problems.push({ path: `${path}[${JSON.stringify(key)}]`, message: "a key must consist of letters, digits, '-', '_' or '.' (not '.' or '..')" });
    }
  }
}

/** A ConfigMap document, decoded and checked; `label` names it in messages (file and document). */
export function decodeConfigMap(object: Record<string, unknown>, label: string): V1ConfigMap {
  const { decoded, problems } = decodeStrict(object, "V1ConfigMap");
  if (problems.length > 0) throw new ValidationError(label, problems);
  const configMap = decoded as V1ConfigMap;
  const found: FieldProblem[] = [];
  checkMetadata(configMap.metadata, found);
  const data = configMap.data ?? {};
  const binaryData = configMap.binaryData ?? {};
  checkKeys(Object.keys(data), "data", found);
  checkKeys(Object.keys(binaryData), "binaryData", found);
  let size = 0;
  for (const [key, value] of Object.entries(data)) {
    size += key.length + Buffer.byteLength(value);
    if (key in binaryData) found.push({ path: `binaryData[${JSON.stringify(key)}]`, message: "duplicate of a data key" });
  }
  for (const [key, value] of Object.entries(binaryData)) {
    if (!BASE64.test(value)) found.push({ path: `binaryData[${JSON.stringify(key)}]`, message: "must be base64" });
    size += key.length + Buffer.from(value, "base64").length;
  }
  if (size > MAX_OBJECT_DATA_BYTES) found.push({ path: "data", message: `ConfigMap data is ${size} bytes; the limit is ${MAX_OBJECT_DATA_BYTES} (1 MiB)` });
  if (found.length > 0) throw new ValidationError(label, found);
  return configMap;
}

/**
 * A Secret document, decoded and checked. `stringData` is merged into `data` (base64-encoded, winning
 * over a data key of the same name) and dropped, as the API server does on create.
 */
export function decodeSecret(object: Record<string, unknown>, label: string): V1Secret {
  const { decoded, problems } = decodeStrict(object, "V1Secret");
  if (problems.length > 0) throw new ValidationError(label, problems);
  const secret = decoded as V1Secret;
  const found: FieldProblem[] = [];
  checkMetadata(secret.metadata, found);
  const data: Record<string, string> = { ...(secret.data ?? {}) };
  checkKeys(Object.keys(data), "data", found);
  for (const [key, value] of Object.entries(data)) {
    if (!BASE64.test(value)) found.push({ path: `data[${JSON.stringify(key)}]`, message: "must be base64 (put plain text under stringData)" });
  }
  const stringData = secret.stringData ?? {};
  checkKeys(Object.keys(stringData), "stringData", found);
  for (const [key, value] of Object.entries(stringData)) data[key] = Buffer.from(value, "utf8").toString("base64");
  let size = 0;
  for (const [key, value] of Object.entries(data)) size += key.length + Buffer.from(value, "base64").length;
  if (size > MAX_OBJECT_DATA_BYTES) found.push({ path: "data", message: `Secret data is ${size} bytes; the limit is ${MAX_OBJECT_DATA_BYTES} (1 MiB)` });
  if (found.length > 0) throw new ValidationError(label, found);
  const { stringData: _merged, ...rest } = secret;
  return { ...rest, data };
}

function keyOf(kind: string, namespace: string | undefined, name: string | undefined): string {
  return `${kind}/${namespace || "default"}/${name ?? ""}`;
}

/**
 * The PodObjectSource of a manifest's ConfigMap and Secret documents (a document without a namespace is in
 * "default", as the pods are). Two documents of one kind, namespace and name are an error.
 */
export function manifestObjectSource(configMaps: readonly V1ConfigMap[], secrets: readonly V1Secret[], source: string): PodObjectSource {
  const byKey = new Map<string, V1ConfigMap | V1Secret>();
  const add = (kind: string, object: V1ConfigMap | V1Secret) => {
    const key = keyOf(kind, object.metadata?.namespace, object.metadata?.name);
    if (byKey.has(key)) {
      throw new VksError(`${source}: two ${kind} documents named ${object.metadata?.namespace || "default"}/${object.metadata?.name ?? ""}`, {
        exitCode: ExitCode.invalidInput,
        hint: "keep one of them, or give them different names",
      });
    }
    byKey.set(key, structuredClone(object));
  };
  for (const configMap of configMaps) add("ConfigMap", configMap);
  for (const secret of secrets) add("Secret", secret);
  return {
    configMap: async (namespace, name) => byKey.get(keyOf("ConfigMap", namespace, name)) as V1ConfigMap | undefined,
    secret: async (namespace, name) => byKey.get(keyOf("Secret", namespace, name)) as V1Secret | undefined,
  };
}
