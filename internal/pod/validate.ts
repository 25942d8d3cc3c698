/**
 * What a pod must look like for vks to run it faithfully. Everything wrong is reported at once, located
 * by field path, so one edit fixes a manifest. Two rules decide what is an error rather than a warning:
 * a field vks cannot honour is an error when ignoring it would make the pod behave differently from what
 * it says (a volume that is not mounted, a ConfigMap that is not read); it is a warning when the pod
 * still runs as written and only loses a guarantee (probes, resource limits, hardening).
 */
import type { V1Pod } from "@kubernetes/client-node";
import { ValidationError, type FieldProblem } from "../errors.ts";
import { isDns1123Label, isDns1123Subdomain } from "../unit/name.ts";
import { childPath } from "./decode.ts";
import { isSupportedFieldPath, SUPPORTED_FIELD_PATHS } from "./env.ts";
import { checkEnvSources } from "./env-validate.ts";
import { checkExecSizes } from "./exec-limits.ts";
import { checkVolumeMounts, checkVolumes } from "./volumes.ts";
import { checkResources } from "./resources.ts";
import { checkSecurityFields } from "./security.ts";
import { PROBE_FIELDS, checkLifecycle, checkProbe, type ProbeKind } from "./probes/spec.ts";

export const RESTART_POLICIES = ["Always", "OnFailure", "Never"] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];
const PULL_POLICIES = ["Always", "IfNotPresent", "Never"];

const LABEL_RULE = "must be a DNS-1123 label (lowercase letters, digits, '-'; at most 63)";
const SUBDOMAIN_RULE = "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.'; at most 253)";
/** Kubernetes' C_IDENTIFIER-like rule for env names. */
const KUBERNETES_ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
/** systemd refuses any other name in Environment= (its env_name_is_valid follows bash). */
const SYSTEMD_ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** unitNameFor carries the uid into the unit name, which allows only these characters. */
const UID_RULE = /^[A-Za-z0-9-]{1,64}$/;
/** Largest uid/gid Linux accepts: (uid_t)-1 means "no change" to setresuid. */
const MAX_ID = 4294967294;

type Fields = Record<string, unknown>;

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNonEmptyList(value: unknown): value is unknown[] {
  return Array.isArray(value) && value.length > 0;
}

class Problems {
  readonly list: FieldProblem[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
}

function checkStringList(value: unknown, path: string, problems: Problems): void {
  if (value === undefined) return;
  if (!Array.isArray(value)) {
    problems.add(path, "must be a list of strings");
    return;
  }
  value.forEach((item, index) => {
    if (typeof item !== "string") problems.add(`${path}[${index}]`, "must be a string");
    else if (item.includes("\0")) problems.add(`${path}[${index}]`, "must not contain a NUL character");
  });
}

function checkId(value: unknown, path: string, problems: Problems): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_ID) {
    problems.add(path, `must be an integer from 0 to ${MAX_ID}`);
  }
}

function checkSecurityContext(context: unknown, path: string, problems: Problems, podLevel = false): void {
  if (!isFields(context)) return;
  checkId(context.runAsUser, childPath(path, "runAsUser"), problems);
  checkId(context.runAsGroup, childPath(path, "runAsGroup"), problems);
  if (context.windowsOptions !== undefined) problems.add(childPath(path, "windowsOptions"), "vks runs Linux processes only");
  checkSecurityFields(context, path, podLevel, (field, message) => problems.add(field, message));
}

function checkEnv(env: unknown, path: string, problems: Problems): void {
  if (env === undefined) return;
  if (!Array.isArray(env)) {
    problems.add(path, "must be a list of {name, value} entries");
    return;
  }
  env.forEach((entry, index) => {
    const entryPath = `${path}[${index}]`;
    if (!isFields(entry)) {
      problems.add(entryPath, "must be a mapping with name and value");
      return;
    }
    const { name, value, valueFrom } = entry;
    if (typeof name !== "string" || name === "") {
      problems.add(`${entryPath}.name`, "required");
    } else if (!KUBERNETES_ENV_NAME.test(name)) {
      problems.add(`${entryPath}.name`, "must consist of letters, digits, '_', '-' and '.', and must not start with a digit");
    } else if (!SYSTEMD_ENV_NAME.test(name)) {
      problems.add(
        `${entryPath}.name`,
        `"${name}" is valid in Kubernetes but systemd only passes names of letters, digits and '_' (not starting with a digit)`,
      );
    }
    if (value !== undefined && typeof value !== "string") problems.add(`${entryPath}.value`, "must be a string");
    if (typeof value === "string" && value.includes("\0")) problems.add(`${entryPath}.value`, "must not contain a NUL character");
    if (valueFrom === undefined) return;
    const fromPath = `${entryPath}.valueFrom`;
    if (typeof value === "string" && value !== "") {
      problems.add(fromPath, "may not be given together with a non-empty value");
    }
    if (!isFields(valueFrom)) {
      problems.add(fromPath, "must be a mapping");
      return;
    }
    const sources = Object.keys(valueFrom).filter((key) => valueFrom[key] !== undefined);
    if (sources.length !== 1) {
      problems.add(fromPath, "must give exactly one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef, fileKeyRef");
      return;
    }
    const [source] = sources;
    // The other sources are checked with the pod's container names at hand (env-validate.ts).
    if (source !== "fieldRef") return;
    const fieldRef = valueFrom.fieldRef;
    if (!isFields(fieldRef)) {
      problems.add(`${fromPath}.fieldRef`, "must be a mapping with fieldPath");
      return;
    }
    if (fieldRef.apiVersion !== undefined && fieldRef.apiVersion !== "v1") {
      problems.add(`${fromPath}.fieldRef.apiVersion`, 'must be "v1"');
    }
    if (typeof fieldRef.fieldPath !== "string" || fieldRef.fieldPath === "") {
      problems.add(`${fromPath}.fieldRef.fieldPath`, "required");
    } else if (!isSupportedFieldPath(fieldRef.fieldPath)) {
      problems.add(
        `${fromPath}.fieldRef.fieldPath`,
        `unsupported field "${fieldRef.fieldPath}"; supported: ${SUPPORTED_FIELD_PATHS.join(", ")}`,
      );
    }
  });
}

function checkContainer(
  container: unknown,
  path: string,
  names: Map<string, string>,
  volumeNames: Set<string>,
  problems: Problems,
  kind: "app" | "init" = "app",
): void {
  if (!isFields(container)) {
    problems.add(path, "must be a mapping");
    return;
  }
  const { name, image } = container;
  if (typeof name !== "string" || name === "") {
    problems.add(`${path}.name`, "required");
  } else if (!isDns1123Label(name)) {
    problems.add(`${path}.name`, LABEL_RULE);
  } else {
    const first = names.get(name);
    if (first !== undefined) problems.add(`${path}.name`, `duplicate name "${name}" (also ${first}.name)`);
    else names.set(name, path);
  }
  if (typeof image !== "string" || image.trim() === "") {
    problems.add(`${path}.image`, "required: a Debian package name or the absolute path of a program");
  }
  if (container.imagePullPolicy !== undefined && !PULL_POLICIES.includes(String(container.imagePullPolicy))) {
    problems.add(`${path}.imagePullPolicy`, `must be one of ${PULL_POLICIES.join(", ")}`);
  }
  checkStringList(container.command, `${path}.command`, problems);
  checkStringList(container.args, `${path}.args`, problems);
  const workingDir = container.workingDir;
  if (workingDir !== undefined && (typeof workingDir !== "string" || !workingDir.startsWith("/"))) {
    problems.add(`${path}.workingDir`, "must be an absolute path");
  }
  checkEnv(container.env, `${path}.env`, problems);
  checkVolumeMounts(container.volumeMounts, `${path}.volumeMounts`, volumeNames, (field, message) => problems.add(field, message));
  if (isNonEmptyList(container.volumeDevices)) {
    problems.add(`${path}.volumeDevices`, "not supported: vks attaches no block devices");
  }
  if (kind === "init") {
    checkInitContainerRules(container, path, problems);
  } else if (container.restartPolicy !== undefined) {
    problems.add(`${path}.restartPolicy`, "not supported: set restartPolicy for the whole pod in spec.restartPolicy");
  }
  checkSecurityContext(container.securityContext, `${path}.securityContext`, problems);
  checkResources(container.resources, `${path}.resources`, false, (field, message) => problems.add(field, message));
  for (const [kind, field] of Object.entries(PROBE_FIELDS) as [ProbeKind, string][]) {
    checkProbe(container[field], `${path}.${field}`, kind, container, (field, message) => problems.add(field, message));
  }
  checkLifecycle(container.lifecycle, `${path}.lifecycle`, container, (field, message) => problems.add(field, message));
}

/** Fields Kubernetes refuses on an init container that runs to completion (all of them fine on a sidecar). */
const RUN_TO_COMPLETION_FORBIDDEN = ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"] as const;

/**
 * Kubernetes' rules for init containers: restartPolicy may only be Always (which makes it a sidecar that
 * keeps running next to the app containers); one that runs to completion has no hooks or probes.
 */
function checkInitContainerRules(container: Fields, path: string, problems: Problems): void {
  const restartPolicy = container.restartPolicy;
  if (restartPolicy !== undefined && restartPolicy !== "Always") {
    problems.add(
      `${path}.restartPolicy`,
      `Unsupported value: ${JSON.stringify(restartPolicy)}: supported values: "Always" (a sidecar); leave it unset for an init container that runs to completion`,
    );
  }
  if (restartPolicy === "Always") return;
  for (const field of RUN_TO_COMPLETION_FORBIDDEN) {
    if (container[field] !== undefined) problems.add(`${path}.${field}`, "may not be set for init containers without restartPolicy=Always");
  }
}

function podProblems(pod: V1Pod): FieldProblem[] {
  const problems = new Problems();
  const metadata: unknown = pod.metadata;
  const name = isFields(metadata) ? metadata.name : undefined;
  if (typeof name !== "string" || name === "") {
    const generated = isFields(metadata) && metadata.generateName !== undefined;
    problems.add("metadata.name", generated ? "required (vks does not support generateName)" : "required");
  } else if (!isDns1123Subdomain(name)) {
    problems.add("metadata.name", SUBDOMAIN_RULE);
  }
  const namespace = isFields(metadata) ? metadata.namespace : undefined;
  if (namespace !== undefined && namespace !== "" && (typeof namespace !== "string" || !isDns1123Label(namespace))) {
    problems.add("metadata.namespace", LABEL_RULE);
  }
  const uid = isFields(metadata) ? metadata.uid : undefined;
  if (uid !== undefined && uid !== "" && (typeof uid !== "string" || !UID_RULE.test(uid))) {
    problems.add("metadata.uid", "must be 1 to 64 letters, digits and '-' (normally a UUID)");
  }

  const spec: unknown = pod.spec;
  if (!isFields(spec)) {
    problems.add("spec", "required");
    return problems.list;
  }
  const containerNames = new Set(
    [spec.initContainers, spec.containers].flatMap((list) => (Array.isArray(list) ? list : [])).flatMap((container) =>
      isFields(container) && typeof container.name === "string" ? [container.name] : [],
    ),
  );
  const volumeNames = checkVolumes(spec.volumes, containerNames, (field, message) => problems.add(field, message));
  for (const [list, field] of [[spec.initContainers, "initContainers"], [spec.containers, "containers"]] as const) {
    if (!Array.isArray(list)) continue;
    list.forEach((container: unknown, index) => {
      if (!isFields(container)) return;
      checkEnvSources(container, `spec.${field}[${index}]`, containerNames, (path, message) => problems.add(path, message));
      checkExecSizes(container, `spec.${field}[${index}]`, (path, message) => problems.add(path, message));
    });
  }
  // Container names are unique across init and app containers: both name units and log streams.
  const names = new Map<string, string>();
  if (spec.initContainers !== undefined && !Array.isArray(spec.initContainers)) {
    problems.add("spec.initContainers", "must be a list of containers");
  } else {
    (spec.initContainers ?? []).forEach((container, index) =>
      checkContainer(container, `spec.initContainers[${index}]`, names, volumeNames, problems, "init"),
    );
  }
  if (!isNonEmptyList(spec.containers)) {
    problems.add("spec.containers", "must list at least one container");
  } else {
    spec.containers.forEach((container, index) =>
      checkContainer(container, `spec.containers[${index}]`, names, volumeNames, problems),
    );
  }
  if (isNonEmptyList(spec.ephemeralContainers)) {
    problems.add("spec.ephemeralContainers", "not supported");
  }
  if (isNonEmptyList(spec.resourceClaims)) {
    problems.add("spec.resourceClaims", "not supported: vks allocates no dynamic resources");
  }
  const restartPolicy = spec.restartPolicy;
  if (restartPolicy !== undefined && !RESTART_POLICIES.some((policy) => policy === restartPolicy)) {
    problems.add("spec.restartPolicy", `must be one of ${RESTART_POLICIES.join(", ")}`);
  }
  const grace = spec.terminationGracePeriodSeconds;
  if (grace !== undefined && (typeof grace !== "number" || !Number.isSafeInteger(grace) || grace < 0)) {
    problems.add("spec.terminationGracePeriodSeconds", "must be an integer of 0 or more");
  }
  if (isFields(spec.os) && spec.os.name !== "linux") {
    problems.add("spec.os.name", 'must be "linux": vks runs Linux processes');
  }
  if (spec.hostUsers === false) {
    problems.add("spec.hostUsers", "not supported: vks runs processes in the host's user namespace");
  }
  checkSecurityContext(spec.securityContext, "spec.securityContext", problems, true);
  checkResources(spec.resources, "spec.resources", true, (field, message) => problems.add(field, message));
  const deadline = spec.activeDeadlineSeconds;
  if (deadline !== undefined && deadline !== null && (typeof deadline !== "number" || !Number.isInteger(deadline) || deadline < 1 || deadline > 2147483647)) {
    problems.add("spec.activeDeadlineSeconds", "must be between 1 and 2147483647, inclusive");
  }
  return problems.list;
}

/** Throws a ValidationError listing every problem of the pod; `source` names it (file, or pod name). */
export function validatePod(pod: V1Pod, source: string): void {
  const problems = podProblems(pod);
  if (problems.length > 0) throw new ValidationError(source, problems);
}

const HOST_IDENTITY_FIELDS = ["hostname", "subdomain", "hostAliases", "dnsConfig"] as const;

/**
 * Fields a valid pod may have that vks accepts but does not honour. Call on a pod validatePod accepted;
 * the caller shows them as warnings.
 */
export function podWarnings(pod: V1Pod): FieldProblem[] {
  const warnings = new Problems();
  const spec = pod.spec;
  if (spec === undefined) return warnings.list;
  const everyContainer = [
    ...(spec.initContainers ?? []).map((container, index) => ({ container, path: `spec.initContainers[${index}]` })),
    ...(spec.containers ?? []).map((container, index) => ({ container, path: `spec.containers[${index}]` })),
  ];
  everyContainer.forEach(({ container, path }) => {
    // Whether the manager can enforce cpu and memory is the engine's to say (it knows the manager).
    checkResources(container.resources, `${path}.resources`, false, () => undefined, (field, message) => warnings.add(field, message));
    if (container.stdin === true || container.tty === true) {
      warnings.add(`${path}.${container.stdin === true ? "stdin" : "tty"}`, "ignored: the process's standard input is /dev/null");
    }
    const seen = new Map<string, number>();
    (container.env ?? []).forEach((entry, envIndex) => {
      const first = seen.get(entry.name);
      if (first === undefined) seen.set(entry.name, envIndex);
      else warnings.add(`${path}.env[${envIndex}].name`, `duplicate of env[${first}]; the last value wins`);
    });
  });
  for (const field of HOST_IDENTITY_FIELDS) {
    if (spec[field] !== undefined) warnings.add(`spec.${field}`, "ignored: pods share the host's network, name and resolver");
  }
  if (isNonEmptyList(spec.readinessGates)) warnings.add("spec.readinessGates", "ignored: readiness follows the containers only");
  return warnings.list;
}
