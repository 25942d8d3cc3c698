/**
 * Workload documents under `pod up` (like `podman kube play`): a Deployment, ReplicaSet, StatefulSet,
 * DaemonSet or Job becomes the pods its controller would create, named and labelled as that controller
 * names and labels them, each marked with the workload it belongs to so `pod down FILE` and `pod ls` can
 * treat them as a group. Everything here is pure: randomness (names, UIDs) comes in as a parameter.
 */
import type {
  V1DaemonSet,
  V1Deployment,
  V1Job,
  V1LabelSelector,
  V1OwnerReference,
  V1Pod,
  V1PodTemplateSpec,
  V1ReplicaSet,
  V1StatefulSet,
} from "@kubernetes/client-node";
import { randomInt, randomUUID } from "node:crypto";
import { ValidationError, type FieldProblem } from "../errors.ts";
import { isDns1123Subdomain } from "../unit/name.ts";
import { decodeStrict } from "./decode.ts";
import { validatePod } from "./validate.ts";

export const WORKLOAD_KINDS = {
  Deployment: { apiVersion: "apps/v1", model: "V1Deployment" },
  ReplicaSet: { apiVersion: "apps/v1", model: "V1ReplicaSet" },
  StatefulSet: { apiVersion: "apps/v1", model: "V1StatefulSet" },
  DaemonSet: { apiVersion: "apps/v1", model: "V1DaemonSet" },
  Job: { apiVersion: "batch/v1", model: "V1Job" },
} as const;
export type WorkloadKind = keyof typeof WORKLOAD_KINDS;

export function isWorkloadKind(kind: unknown): kind is WorkloadKind {
  return typeof kind === "string" && Object.hasOwn(WORKLOAD_KINDS, kind);
}

/**
 * The group marker on every pod a workload created: `<Kind>/<name>` (the namespace is the pod's own).
 * An annotation rather than a guess from the pod name, so `pod down FILE` removes exactly the pods the
 * file's workloads created, whatever their generated names. The pods also carry an ownerReference to the
 * object their controller would have made (for a Deployment: its ReplicaSet), as on a cluster.
 */
export const WORKLOAD_ANNOTATION = "vks/workload";

/** The labels the controllers add (k8s.io/api apps/v1 and batch/v1 constants). */
export const POD_TEMPLATE_HASH_LABEL = "pod-template-hash";
export const CONTROLLER_REVISION_HASH_LABEL = "controller-revision-hash";
export const STATEFULSET_POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name";
export const POD_INDEX_LABEL = "apps.kubernetes.io/pod-index";
export const POD_TEMPLATE_GENERATION_LABEL = "pod-template-generation";
export const JOB_NAME_LABELS = ["batch.kubernetes.io/job-name", "job-name"] as const;
export const JOB_CONTROLLER_UID_LABELS = ["batch.kubernetes.io/controller-uid", "controller-uid"] as const;

/** What the Job controller needs to know to run a Job's pods (defaults applied as the API server does). */
export interface JobSettings {
  restartPolicy: "Never" | "OnFailure";
  /** Failures allowed before the Job fails (default 6). */
  backoffLimit: number;
  /** Successful pods the Job needs (default 1). */
  completions: number;
  /** Pods run at once (default 1), never more than the completions still missing. */
  parallelism: number;
}

export interface Workload {
  kind: WorkloadKind;
  apiVersion: string;
  namespace: string;
  name: string;
  /** The workload object's UID: made up per `pod up`, as the API server would assign one. */
  uid: string;
  /** The UID of the pods' owner: a Deployment's pods belong to its ReplicaSet, which has its own UID. */
  ownerUid: string;
  template: V1PodTemplateSpec;
  /** Pods to start: replicas (Deployment, ReplicaSet, StatefulSet), 1 (DaemonSet: one node), Job: parallelism. */
  replicas: number;
  /** The pod-template-hash (see templateHash). */
  templateHash: string;
  /** StatefulSet: the first ordinal (spec.ordinals.start). */
  firstOrdinal: number;
  job?: JobSettings;
  /** Names the document in messages: `app.yaml (document 2)`. */
  source: string;
  /** Fields vks accepts but does not honour, with the path in the workload document. */
  warnings: FieldProblem[];
}

/** `<Kind>/<name>`: the value of WORKLOAD_ANNOTATION, and what `pod ls` shows. */
export function workloadKey(workload: Pick<Workload, "kind" | "name">): string {
  return `${workload.kind}/${workload.name}`;
}

/** The workload a pod belongs to (`Deployment/web`), or undefined for a pod of its own. */
export function podWorkload(pod: V1Pod): string | undefined {
  return pod.metadata?.annotations?.[WORKLOAD_ANNOTATION];
}

/** k8s.io/apimachinery/pkg/util/rand's alphabet: no vowels, no 0/1/3, so generated names spell no words. */
const SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";
/** The API server's generateName: the base is cut to 58 characters so that base + 5 stays a DNS label. */
const MAX_GENERATE_NAME_BASE = 58;
const RANDOM_SUFFIX_LENGTH = 5;

/** rand.SafeEncodeString: each byte maps to one character of the safe alphabet. */
export function safeEncode(text: string): string {
  let encoded = "";
  for (let i = 0; i < text.length; i++) encoded += SAFE_ALPHABET[text.charCodeAt(i) % SAFE_ALPHABET.length];
  return encoded;
}

/** rand.String(n): n characters of the safe alphabet. */
export function randomSuffix(length = RANDOM_SUFFIX_LENGTH): string {
  let suffix = "";
  for (let i = 0; i < length; i++) suffix += SAFE_ALPHABET[randomInt(SAFE_ALPHABET.length)];
  return suffix;
}

/** Where workload expansion gets its randomness; tests pass fixed values. */
export interface WorkloadRandom {
  suffix(): string;
  uid(): string;
}

export const CRYPTO_RANDOM: WorkloadRandom = { suffix: () => randomSuffix(), uid: () => randomUUID() };

function fnv32a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** JSON with every mapping's keys sorted, so the hash does not depend on the order fields were written in. */
function canonicalJson(value: unknown): string {
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * The pod-template-hash label value. kube-controller-manager computes it as
 * SafeEncodeString(decimal(FNV-32a(spew dump of the defaulted Go PodTemplateSpec))); that dump (Go type
 * names, every zero-valued field, API server defaults) cannot be reproduced outside Go, so vks hashes a
 * canonical JSON of the template as written, with the same FNV-32a and the same encoding. The value looks
 * and behaves like the controller's (same template, same hash; any change, another hash) but is not equal
 * to the one a cluster would compute.
 */
export function templateHash(template: unknown): string {
  return safeEncode(String(fnv32a(canonicalJson(template))));
}

function generatedName(base: string, random: WorkloadRandom): string {
  return `${base.slice(0, MAX_GENERATE_NAME_BASE)}${random.suffix()}`;
}

class Problems {
  readonly list: FieldProblem[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
}

function describeLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? "no labels" : entries.map(([key, value]) => `${key}=${value}`).join(",");
}

/** Problems of a label selector, and whether it selects `labels` (metav1.LabelSelectorAsSelector semantics). */
function checkSelector(selector: V1LabelSelector, labels: Record<string, string>, path: string, problems: Problems): boolean {
  let matches = true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) matches = false;
  }
  (selector.matchExpressions ?? []).forEach((expression, index) => {
    const where = `${path}.matchExpressions[${index}]`;
    const values = expression.values ?? [];
    const present = Object.hasOwn(labels, expression.key);
    switch (expression.operator) {
      case "In":
      case "NotIn":
        if (values.length === 0) problems.add(`${where}.values`, `must be non-empty for operator ${expression.operator}`);
        if ((expression.operator === "In") !== (present && values.includes(labels[expression.key] ?? ""))) matches = false;
        break;
      case "Exists":
      case "DoesNotExist":
        if (values.length > 0) problems.add(`${where}.values`, `must be empty for operator ${expression.operator}`);
        if ((expression.operator === "Exists") !== present) matches = false;
        break;
      default:
        problems.add(`${where}.operator`, `must be one of In, NotIn, Exists, DoesNotExist, not ${JSON.stringify(expression.operator)}`);
    }
  });
  return matches;
}

function isEmptySelector(selector: V1LabelSelector): boolean {
  return Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0;
}

function checkCount(value: number | undefined, path: string, problems: Problems): void {
  if (value !== undefined && value < 0) problems.add(path, "must be greater than or equal to 0");
}

type WorkloadObject = V1Deployment | V1ReplicaSet | V1StatefulSet | V1DaemonSet | V1Job;

/**
 * Decodes and checks one workload document (already known to be of a workload kind) and returns the
 * Workload, or throws a ValidationError naming every problem by its path in the document. The template's
 * pod fields are checked later, with the pods (validatePod, paths under spec.template).
 */
export function parseWorkload(object: Record<string, unknown>, source: string, random: WorkloadRandom = CRYPTO_RANDOM): Workload {
  const kind = object.kind;
  if (!isWorkloadKind(kind)) throw new Error(`parseWorkload called for kind ${String(kind)}`);
  const expected = WORKLOAD_KINDS[kind];
  const problems = new Problems();
  if (object.apiVersion !== expected.apiVersion) {
    problems.add("apiVersion", `a ${kind} has apiVersion ${expected.apiVersion}, not ${object.apiVersion === undefined ? "nothing" : JSON.stringify(object.apiVersion)}`);
  }
  // Messages name the kind too: "invalid pod manifest" alone would puzzle the author of a Deployment.
  const metadata = isRecord(object.metadata) ? object.metadata : {};
  source = withKind(source, kind, typeof metadata.name === "string" ? metadata.name : "");
  const decoding = decodeStrict(object, expected.model);
  problems.list.push(...decoding.problems);
  if (problems.list.length > 0) throw new ValidationError(source, problems.list);
  const decoded = decoding.decoded as WorkloadObject;

  const name = decoded.metadata?.name ?? "";
  if (name === "") {
    problems.add("metadata.name", decoded.metadata?.generateName ? "required (vks does not support generateName)" : "required");
  } else if (!isDns1123Subdomain(name)) {
    problems.add("metadata.name", "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.'; at most 253)");
  }
  const spec = decoded.spec;
  const template = spec?.template;
  if (spec === undefined || template === undefined) {
    problems.add(spec === undefined ? "spec" : "spec.template", "required");
    throw new ValidationError(source, problems.list);
  }
  const labels = template.metadata?.labels ?? {};
  const restartPolicy = template.spec?.restartPolicy;
  const warnings = new Problems();
  const workload: Workload = {
    kind,
    apiVersion: expected.apiVersion,
    namespace: decoded.metadata?.namespace || "default",
    name,
    uid: random.uid(),
    ownerUid: "",
    template,
    replicas: 1,
    templateHash: templateHash(isRecord(object.spec) ? object.spec.template : undefined),
    firstOrdinal: 0,
    source,
    warnings: warnings.list,
  };

  if (kind === "Job") {
    const jobSpec = (decoded as V1Job).spec;
    if (restartPolicy !== "Never" && restartPolicy !== "OnFailure") {
      problems.add("spec.template.spec.restartPolicy", `required for a Job: "Never" or "OnFailure"${restartPolicy ? `, not "${restartPolicy}"` : ""}`);
    }
    if (jobSpec?.selector !== undefined) {
      if (jobSpec.manualSelector !== true) {
        problems.add("spec.selector", "the Job controller generates the selector; give one only with spec.manualSelector: true");
      } else if (!checkSelector(jobSpec.selector, labels, "spec.selector", problems)) {
        problems.add("spec.selector", `does not match the template's labels (spec.template.metadata.labels: ${describeLabels(labels)})`);
      }
    }
    for (const field of ["backoffLimit", "completions", "parallelism"] as const) checkCount(jobSpec?.[field], `spec.${field}`, problems);
    if (jobSpec?.parallelism === 0) problems.add("spec.parallelism", "must be at least 1 under vks: a Job with parallelism 0 runs no pods");
    if (jobSpec?.completionMode !== undefined && jobSpec.completionMode !== "NonIndexed") {
      problems.add("spec.completionMode", `not supported: vks runs NonIndexed Jobs only, not ${JSON.stringify(jobSpec.completionMode)}`);
    }
    if (jobSpec?.suspend === true) problems.add("spec.suspend", "a suspended Job runs no pods; remove suspend to run it with vks");
    if (jobSpec?.podFailurePolicy !== undefined) problems.add("spec.podFailurePolicy", "not supported: vks counts every failed pod against backoffLimit");
    if (jobSpec?.successPolicy !== undefined) problems.add("spec.successPolicy", "not supported: the Job succeeds after spec.completions successful pods");
    if (jobSpec?.backoffLimitPerIndex !== undefined) problems.add("spec.backoffLimitPerIndex", "not supported: it needs completionMode Indexed");
    if (jobSpec?.maxFailedIndexes !== undefined) problems.add("spec.maxFailedIndexes", "not supported: it needs completionMode Indexed");
    if (jobSpec?.activeDeadlineSeconds !== undefined) warnings.add("spec.activeDeadlineSeconds", "not enforced");
    if (jobSpec?.ttlSecondsAfterFinished !== undefined) {
      warnings.add("spec.ttlSecondsAfterFinished", "ignored: a finished Job's pods stay until vks pod down");
    }
    const parallelism = jobSpec?.parallelism ?? 1;
    if (jobSpec?.completions === undefined && parallelism > 1) {
      warnings.add("spec.parallelism", "a work-queue Job (parallelism without completions) runs one pod at a time under vks");
    }
    const completions = jobSpec?.completions ?? 1;
    workload.job = {
      restartPolicy: restartPolicy === "OnFailure" ? "OnFailure" : "Never",
      backoffLimit: jobSpec?.backoffLimit ?? 6,
      completions,
      parallelism: Math.min(jobSpec?.completions === undefined ? 1 : parallelism, completions),
    };
    workload.replicas = workload.job.parallelism;
  } else {
    const appsSpec = (decoded as V1Deployment | V1ReplicaSet | V1StatefulSet | V1DaemonSet).spec;
    if (restartPolicy !== undefined && restartPolicy !== "Always") {
      problems.add("spec.template.spec.restartPolicy", `a ${kind}'s pods restart always: "Always", not "${restartPolicy}" (use a Job for pods that finish)`);
    }
    const selector = appsSpec?.selector;
    if (selector === undefined) {
      problems.add("spec.selector", "required");
    } else if (isEmptySelector(selector)) {
      problems.add("spec.selector", `an empty selector is invalid for a ${kind}`);
    } else if (!checkSelector(selector, labels, "spec.selector", problems)) {
      problems.add("spec.selector", `does not match the template's labels (spec.template.metadata.labels: ${describeLabels(labels)})`);
    }
    if (kind !== "DaemonSet") {
      const replicas = (appsSpec as V1Deployment["spec"] & V1StatefulSet["spec"])?.replicas;
      checkCount(replicas, "spec.replicas", problems);
      workload.replicas = replicas ?? 1;
      if (replicas === 0) warnings.add("spec.replicas", "0: no pods are started");
    }
    if (kind === "StatefulSet") {
      const stsSpec = (decoded as V1StatefulSet).spec;
      if ((stsSpec?.volumeClaimTemplates ?? []).length > 0) {
        problems.add("spec.volumeClaimTemplates", "not supported: vks provisions no PersistentVolumeClaims");
      }
      const start = stsSpec?.ordinals?.start;
      checkCount(start, "spec.ordinals.start", problems);
      workload.firstOrdinal = start ?? 0;
    }
  }
  workload.ownerUid = kind === "Deployment" ? random.uid() : workload.uid;
  // The template's pod is checked here too, so one error lists the workload's and its pod's problems.
  problems.list.push(...templatePodProblems(workload));
  if (problems.list.length > 0) throw new ValidationError(source, problems.list);
  return workload;
}

/** validatePod's problems with a pod made from the template, located in the workload document. */
function templatePodProblems(workload: Workload): FieldProblem[] {
  const sample = workloadPod(workload, 0, { suffix: () => "b".repeat(RANDOM_SUFFIX_LENGTH), uid: () => workload.uid });
  try {
    validatePod(sample, workload.source);
    return [];
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return err.problems.map((problem) => ({ ...problem, path: templateProblemPath(problem.path) }));
  }
}

/** `app.yaml (document 2)` -> `app.yaml (document 2, Deployment web)`; `d.yaml` -> `d.yaml (Deployment web)`. */
function withKind(source: string, kind: string, name: string): string {
  const what = name === "" ? kind : `${kind} ${name}`;
  return source.endsWith(")") ? `${source.slice(0, -1)}, ${what})` : `${source} (${what})`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The object the pods' controller would be, for their ownerReference: a Deployment's pods belong to its ReplicaSet. */
function ownerOf(workload: Workload): V1OwnerReference {
  if (workload.kind === "Deployment") {
    return {
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      name: `${workload.name}-${workload.templateHash}`,
      uid: workload.ownerUid,
      controller: true,
      blockOwnerDeletion: true,
    };
  }
  return { apiVersion: workload.apiVersion, kind: workload.kind, name: workload.name, uid: workload.uid, controller: true, blockOwnerDeletion: true };
}

/**
 * One pod of the workload, as its controller creates it. `ordinal` is the StatefulSet pod's index among
 * the replicas (0-based, offset by spec.ordinals.start); other kinds get a random name suffix.
 */
export function workloadPod(workload: Workload, ordinal: number, random: WorkloadRandom = CRYPTO_RANDOM): V1Pod {
  const template = structuredClone(workload.template);
  const labels: Record<string, string> = { ...template.metadata?.labels };
  let name: string;
  let generateName: string | undefined;
  switch (workload.kind) {
    case "Deployment":
      generateName = `${workload.name}-${workload.templateHash}-`;
      labels[POD_TEMPLATE_HASH_LABEL] = workload.templateHash;
      break;
    case "ReplicaSet":
      generateName = `${workload.name}-`;
      break;
    case "StatefulSet": {
      const index = workload.firstOrdinal + ordinal;
      name = `${workload.name}-${index}`;
      labels[CONTROLLER_REVISION_HASH_LABEL] = `${workload.name}-${workload.templateHash}`;
      labels[STATEFULSET_POD_NAME_LABEL] = name;
      labels[POD_INDEX_LABEL] = String(index);
      break;
    }
    case "DaemonSet":
      generateName = `${workload.name}-`;
      labels[CONTROLLER_REVISION_HASH_LABEL] = workload.templateHash;
      labels[POD_TEMPLATE_GENERATION_LABEL] = "1";
      break;
    case "Job":
      generateName = `${workload.name}-`;
      for (const key of JOB_CONTROLLER_UID_LABELS) labels[key] = workload.uid;
      for (const key of JOB_NAME_LABELS) labels[key] = workload.name;
      break;
  }
  name ??= generatedName(generateName ?? `${workload.name}-`, random);
  const spec = template.spec ?? { containers: [] };
  // The API server defaults a template's restartPolicy to Always; a Job's is required (checked above).
  spec.restartPolicy ??= "Always";
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      ...(generateName === undefined ? {} : { generateName }),
      namespace: workload.namespace,
      labels,
      annotations: { ...template.metadata?.annotations, [WORKLOAD_ANNOTATION]: workloadKey(workload) },
      ownerReferences: [ownerOf(workload)],
    },
    spec,
  };
}

/** The pods a workload starts with: replicas of them (StatefulSet ordinals in order), names unique. */
export function initialPods(workload: Workload, random: WorkloadRandom = CRYPTO_RANDOM): V1Pod[] {
  const pods: V1Pod[] = [];
  const names = new Set<string>();
  for (let ordinal = 0; ordinal < workload.replicas; ordinal++) {
    let pod = workloadPod(workload, ordinal, random);
    // A repeated random suffix (1 in 14 million) is drawn again, as the API server retries generateName.
    for (let attempt = 0; names.has(pod.metadata?.name ?? "") && attempt < 10; attempt++) pod = workloadPod(workload, ordinal, random);
    names.add(pod.metadata?.name ?? "");
    pods.push(pod);
  }
  return pods;
}

/**
 * Maps a pod validation problem to where it is in the workload document: the pod's spec is the
 * template's (`spec.containers[0]` -> `spec.template.spec.containers[0]`).
 */
export function templateProblemPath(path: string): string {
  if (path === "spec" || path.startsWith("spec.")) return `spec.template.${path}`;
  if (path === "metadata" || path.startsWith("metadata.")) return `spec.template.${path}`;
  return path;
}

/** How a Job's pods are doing, counted over every pod vks created for it. */
export interface JobProgress {
  /** Pods that have not finished. */
  active: number;
  succeeded: number;
  failed: number;
  /** Container restarts of the active pods (restartPolicy OnFailure counts these against backoffLimit). */
  restarts: number;
}

export type JobVerdict =
  | { state: "Running"; create: number }
  | { state: "Complete" }
  | { state: "Failed"; reason: "BackoffLimitExceeded"; message: string };

/**
 * The Job controller's next step (pkg/controller/job): complete after `completions` successes; failed
 * once more pods failed than backoffLimit allows (for OnFailure: once the active pods' restarts reach
 * it); otherwise create pods until `parallelism` run, never more than the completions still missing.
 */
export function jobStep(job: JobSettings, progress: JobProgress): JobVerdict {
  if (progress.succeeded >= job.completions) return { state: "Complete" };
  if (progress.failed > job.backoffLimit) {
    return { state: "Failed", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" };
  }
  if (job.restartPolicy === "OnFailure" && (job.backoffLimit === 0 ? progress.restarts > 0 : progress.restarts >= job.backoffLimit)) {
    return { state: "Failed", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" };
  }
  const wanted = Math.min(job.parallelism, job.completions - progress.succeeded);
  return { state: "Running", create: Math.max(0, wanted - progress.active) };
}
