/**
 * Pod manifests: YAML (or JSON) text with one or more documents, each an `apiVersion: v1`, `kind: Pod`
 * object. Decoding is strict (see decode.ts); what the fields mean is checked later by validatePod.
 */
import type { V1ConfigMap, V1Pod, V1Secret } from "@kubernetes/client-node";
import { parseAllDocuments, type Document, type DocumentOptions, type ParseOptions, type SchemaOptions, type Tags } from "yaml";
import { ExitCode, ValidationError, VksError } from "../errors.ts";
import { decodeStrict } from "./decode.ts";
import { decodeConfigMap, decodeSecret } from "./manifest-objects.ts";
import { isWorkloadKind, parseWorkload, type Workload } from "./workloads.ts";

/** The kinds `pod up` runs, for messages about any other kind. */
const RUNNABLE_KINDS = "Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets and Jobs";

/** Where each kind vks does not run keeps the pod it would create, so the error can say what to copy. */
const POD_TEMPLATE_FIELDS: Readonly<Record<string, string>> = {
  ReplicationController: "spec.template",
  PodTemplate: "template",
  CronJob: "spec.jobTemplate.spec.template",
};

/** Objects the pods of the same file may refer to (env sources, volumes): read, not run. */
const OBJECT_KINDS = new Set(["ConfigMap", "Secret"]);

function isObjectKind(item: Record<string, unknown>): boolean {
  return typeof item.kind === "string" && OBJECT_KINDS.has(item.kind) && item.apiVersion === "v1";
}

/** `kubectl get pods -o yaml` prints a List; its items are accepted as if they were separate documents. */
const LIST_KINDS = new Set(["List", "PodList"]);

interface Located {
  /** 1-based position of the document in the file, counting empty documents too. */
  index: number;
  line: number;
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function invalidInput(message: string, hint: string): VksError {
  return new VksError(message, { exitCode: ExitCode.invalidInput, hint });
}

/** One line per YAML error, compiler style (`file:line:col: message`), with the library's source excerpt. */
function syntaxErrors(documents: Document.Parsed[], source: string): string[] {
  const lines: string[] = [];
  for (const document of documents) {
    for (const error of document.errors) {
      const position = error.linePos?.[0];
      const [summary = error.message, excerpt] = error.message.split(/ at line \d+, column \d+:\n\n/);
      const where = position === undefined ? source : `${source}:${position.line}:${position.col}`;
      lines.push(`${where}: ${summary}`);
      if (excerpt !== undefined) lines.push(...excerpt.trimEnd().split("\n").map((line) => `    ${line}`));
    }
  }
  return lines;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describeKind(kind: unknown): string {
  if (typeof kind !== "string" || kind === "") return "has no kind";
  return `is ${/^[AEIOU]/.test(kind) ? "an" : "a"} ${kind}`;
}

/** Checks apiVersion and kind, unwrapping Lists; returns the raw pod objects it found. */
function podObjects(value: unknown, where: Located, source: string): { objects: Record<string, unknown>[]; fromList: boolean } {
  const label = `${source}: document ${where.index} (line ${where.line})`;
  if (!isMapping(value)) {
    throw invalidInput(`${label} is not a mapping`, "each document must be a Kubernetes object: apiVersion: v1, kind: Pod, metadata, spec");
  }
  const { apiVersion, kind } = value;
  if (typeof kind === "string" && LIST_KINDS.has(kind) && apiVersion === "v1") {
    const items = value.items;
    if (!Array.isArray(items)) throw invalidInput(`${label} is a ${kind} without items`, "give the pods under items:");
    const objects = items.map((item, position) => {
      if (isMapping(item) && item.kind === "Pod" && item.apiVersion === "v1") return item;
      if (isMapping(item) && isWorkloadKind(item.kind)) return item;
      if (isMapping(item) && isObjectKind(item)) return item;
      const itemKind = isMapping(item) ? item.kind : undefined;
      throw invalidInput(
        `${label}: items[${position}] ${describeKind(itemKind)}; vks runs ${RUNNABLE_KINDS}`,
        "keep only Pods (apiVersion: v1) and workloads (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job) in the list",
      );
    });
    return { objects, fromList: true };
  }
  if (isWorkloadKind(kind)) return { objects: [value], fromList: false };
  if (isObjectKind(value)) return { objects: [value], fromList: false };
  if (kind !== "Pod") {
    const template = typeof kind === "string" ? POD_TEMPLATE_FIELDS[kind] : undefined;
    throw invalidInput(
      `${label} ${describeKind(kind)}; vks runs ${RUNNABLE_KINDS}`,
      template === undefined
        ? "give each document apiVersion: v1 and kind: Pod"
        : `write a Pod manifest (apiVersion: v1, kind: Pod) from the metadata and spec under ${template}`,
    );
  }
  if (apiVersion !== "v1") {
    throw invalidInput(
      `${label}: a Pod has apiVersion v1, not ${apiVersion === undefined ? "nothing" : JSON.stringify(apiVersion)}`,
      "set apiVersion: v1",
    );
  }
  return { objects: [value], fromList: false };
}

/** What a manifest file holds, by kind, each in file order. */
export interface ManifestContents {
  pods: V1Pod[];
  /** Deployment, ReplicaSet, StatefulSet, DaemonSet and Job documents (see workloads.ts). */
  workloads: Workload[];
  /** ConfigMap and Secret documents (apiVersion v1): the pods' env and volume sources under `pod up`. */
  configMaps: V1ConfigMap[];
  /** Secrets with stringData merged into data, as the API server stores them. */
  secrets: V1Secret[];
}

/** The Pod documents of `text` only (see parseManifestContents). */
export function parseManifests(text: string, source: string): V1Pod[] {
  return parseManifestContents(text, source).pods;
}

/**
 * YAML 1.1, as kubectl and the API server read manifests (go-yaml v2): `defaultMode: 0644` is octal 420,
 * which YAML 1.2 would read as decimal 644 and every volume mode would be refused. Timestamps stay strings
 * (no Kubernetes field takes a YAML date; an unquoted date in an env value or annotation keeps its text).
 */
const YAML_OPTIONS = {
  prettyErrors: true,
  uniqueKeys: true,
  version: "1.1",
  customTags: (tags: Tags) => tags.filter((tag) => typeof tag === "string" || tag.tag !== "tag:yaml.org,2002:timestamp"),
} as const satisfies DocumentOptions & ParseOptions & SchemaOptions;

/**
 * Parses every document in `text`: Pods into V1Pods, workloads into Workloads. `source` names the text in
 * messages (a file name, or "<stdin>"). Empty documents are skipped; any other kind is an error naming the
 * document. The pods' `status` is dropped, as an API server ignores it on create.
 */
export function parseManifestContents(text: string, source: string): ManifestContents {
  const documents = parseAllDocuments(text, YAML_OPTIONS);
  // parseAllDocuments returns a placeholder object rather than an array for text without any document.
  if (!Array.isArray(documents)) return { pods: [], workloads: [], configMaps: [], secrets: [] };
  const errors = syntaxErrors(documents, source);
  if (errors.length > 0) {
    throw invalidInput(`${source}: invalid YAML:\n${errors.join("\n")}`, "fix the YAML syntax at the positions shown");
  }

  const multiple = documents.length > 1;
  const pods: V1Pod[] = [];
  const workloads: Workload[] = [];
  const configMaps: V1ConfigMap[] = [];
  const secrets: V1Secret[] = [];
  documents.forEach((document, position) => {
    const line = document.contents === null ? undefined : lineAt(text, document.contents.range[0]);
    let value: unknown;
    try {
      value = document.toJS();
    } catch (err) {
      // The yaml library refuses to expand aliases past a limit (a "billion laughs" document).
      throw invalidInput(
        `${source}: document ${position + 1}${line === undefined ? "" : ` (line ${line})`}: ${err instanceof Error ? err.message : String(err)}`,
        "write the document without that many YAML aliases (*name)",
      );
    }
    // A document with nothing but comments, or an explicit `---` with nothing after it.
    if (value === null || value === undefined || document.contents === null || line === undefined) return;
    const where: Located = { index: position + 1, line };
    const { objects, fromList } = podObjects(value, where, source);
    objects.forEach((object, item) => {
      const itemLabel = fromList ? `, items[${item}]` : "";
      const label = multiple || fromList ? `${source} (document ${where.index}${itemLabel})` : source;
      if (isWorkloadKind(object.kind)) {
        workloads.push(parseWorkload(object, label));
        return;
      }
      if (object.kind === "ConfigMap") {
        configMaps.push(decodeConfigMap(object, label));
        return;
      }
      if (object.kind === "Secret") {
        secrets.push(decodeSecret(object, label));
        return;
      }
      const { decoded, problems } = decodeStrict(object, "V1Pod");
      if (problems.length > 0) throw new ValidationError(label, problems);
      const pod = decoded as V1Pod;
      delete pod.status;
      pods.push(pod);
    });
  });
  return { pods, workloads, configMaps, secrets };
}
