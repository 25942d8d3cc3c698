/**
 * A container's own environment as the kubelet computes it (kubelet_pods.go makeEnvironmentVariables):
 * `envFrom` sources first, in order, each key of a later source replacing an earlier one; then `env`
 * entries in order, each literal value expanded against the variables before it, `valueFrom` filled in
 * from the pod (fieldRef), its resources (resourceFieldRef) or a ConfigMap/Secret key. Pure: the objects
 * come in as EnvObjects, fetched beforehand (env-sources.ts).
 *
 * Every variable remembers whether its value came from a Secret (directly, or by expanding a `$(VAR)`
 * that did): those must never reach a unit property, so plan.ts passes them in a root-only file.
 * The image's environment is not part of it: the kubelet expands references against the pod's
 * variables only, and the runtime lays them over the image's afterwards (see plan.ts).
 */
import type { V1ConfigMap, V1Container, V1EnvVar, V1Pod, V1Secret } from "@kubernetes/client-node";
import { ExitCode, VksError } from "../errors.ts";
import { EnvSourceError, type EnvObjects } from "./env-sources.ts";
import { expandReferences } from "./expand.ts";
import { ResourceFieldError, isResourceField, resourceFieldContainer, resourceFieldValue, type Allocatable } from "./resource-field.ts";

/** What a downward-API reference may need beyond the pod itself. */
export interface HostFacts {
  /** The host's address: pods share the host network, so it is their podIP too. */
  hostIP?: string;
}

/** Field paths `valueFrom.fieldRef` supports, as in the kubelet (`metadata.labels['key']` form included). */
export const SUPPORTED_FIELD_PATHS = [
  "metadata.name",
  "metadata.namespace",
  "metadata.uid",
  "metadata.labels['<key>']",
  "metadata.annotations['<key>']",
  "spec.nodeName",
  "spec.serviceAccountName",
  "status.hostIP",
  "status.hostIPs",
  "status.podIP",
  "status.podIPs",
] as const;

const SUBSCRIPTED_FIELD = /^metadata\.(labels|annotations)\['(.+)'\]$/;
const PLAIN_FIELDS = new Set<string>(SUPPORTED_FIELD_PATHS.filter((path) => !path.includes("[")));

export function isSupportedFieldPath(fieldPath: string): boolean {
  return PLAIN_FIELDS.has(fieldPath) || SUBSCRIPTED_FIELD.test(fieldPath);
}

/**
 * systemd passes only these names (its env_name_is_valid follows bash), in Environment= and
 * EnvironmentFile= alike; Kubernetes allows more, so keys outside this are skipped with a warning.
 */
export const SYSTEMD_ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface ResolvedEnvVar {
  name: string;
  value: string;
  /** Present when the value came from a Secret (or expanded a variable that did). */
  secret?: true;
}

/** Thrown when a reference needs a fact nobody supplied; `field` is the manifest path to blame. */
function unresolvable(field: string, message: string, hint: string): VksError {
  return new VksError(`${field}: ${message}`, { exitCode: ExitCode.invalidInput, hint });
}

/**
 * The value a downward-API field path has for this pod, or undefined when it cannot be known here.
 * status.hostIPs/podIPs give the addresses comma-separated, as the kubelet does for env.
 */
export function downwardFieldValue(pod: V1Pod, fieldPath: string, host: HostFacts): string | undefined {
  const subscripted = SUBSCRIPTED_FIELD.exec(fieldPath);
  if (subscripted !== null) {
    const [, map, key = ""] = subscripted;
    const values = map === "labels" ? pod.metadata?.labels : pod.metadata?.annotations;
    // The kubelet gives an empty string for a missing key rather than failing the container.
    return values?.[key] ?? "";
  }
  switch (fieldPath) {
    case "metadata.name":
      return pod.metadata?.name;
    case "metadata.namespace":
      return pod.metadata?.namespace || "default";
    case "metadata.uid":
      return pod.metadata?.uid;
    case "spec.nodeName":
      return pod.spec?.nodeName;
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName || "default";
    case "status.hostIP":
    case "status.hostIPs":
    case "status.podIP":
    case "status.podIPs":
      return host.hostIP ?? pod.status?.hostIP;
  }
  return undefined;
}

/** Keys of one envFrom source that were skipped because systemd cannot pass them as variable names. */
export interface SkippedEnvKeys {
  container: string;
  /** `configmap ns/name` or `secret ns/name`. */
  source: string;
  keys: string[];
}

export interface EnvResolution {
  /**
   * `strict`: a reference that cannot be resolved is an error naming the field (planning).
   * `lenient`: it is treated as an undefined variable (used to predict argv[0] before host facts exist).
   */
  mode: "strict" | "lenient";
  host: HostFacts;
  /** The ConfigMaps and Secrets the env refers to; absent or missing names count as not existing. */
  objects?: EnvObjects;
  /** The node's allocatable resources: the kubelet's value for a limit the container does not set. */
  allocatable?: Allocatable;
  /** Told about envFrom keys skipped as invalid names (the kubelet's InvalidEnvironmentVariableNames). */
  onSkippedKeys?: (skipped: SkippedEnvKeys) => void;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A Secret's data, decoded. systemd passes only UTF-8 and no NUL (in Environment= and EnvironmentFile=
 * alike), so a value that is not is an error naming the field rather than a silently altered value.
 */
function secretData(secret: V1Secret, field: string, namespace: string, name: string): Record<string, string> {
  const decoded: Record<string, string> = {};
  for (const [key, encoded] of Object.entries(secret.data ?? {})) {
    let value: string;
    try {
      value = utf8.decode(Buffer.from(encoded, "base64"));
    } catch {
      throw unresolvable(field, `key ${key} of Secret ${namespace}/${name} is not valid UTF-8`, "systemd passes only UTF-8 environment values; mount the Secret as a volume instead");
    }
    decoded[key] = value;
  }
  return decoded;
}

function checkValue(value: string, field: string, what: string): string {
  if (value.includes("\0")) throw unresolvable(field, `${what} contains a NUL character`, "an environment variable cannot hold NUL; mount it as a volume instead");
  return value;
}

interface SourceData {
  values: Record<string, string>;
  secret: boolean;
}

/**
 * The container's environment, in order, with later duplicates replacing the value (but not the position)
 * of earlier ones. `containerPath` is the container's field path (`spec.containers[1]`) for messages.
 */
export function containerEnv(pod: V1Pod, container: V1Container, containerPath: string, resolution: EnvResolution): ResolvedEnvVar[] {
  const namespace = pod.metadata?.namespace || "default";
  const strict = resolution.mode === "strict";
  const values = new Map<string, ResolvedEnvVar>();
  const set = (name: string, value: string, secret: boolean) => values.set(name, secret ? { name, value, secret: true } : { name, value });

  const configMap = (name: string, field: string): SourceData | undefined => {
    const found: V1ConfigMap | undefined = resolution.objects?.configMaps[name];
    return found === undefined ? undefined : { values: found.data ?? {}, secret: false };
  };
  const secret = (name: string, field: string): SourceData | undefined => {
    const found: V1Secret | undefined = resolution.objects?.secrets[name];
    return found === undefined ? undefined : { values: secretData(found, field, namespace, name), secret: true };
  };
  const missing = (field: string, message: string) => new EnvSourceError(container.name, `${field}: ${message}`);

  (container.envFrom ?? []).forEach((source, index) => {
    const field = `${containerPath}.envFrom[${index}]`;
    const reference = source.configMapRef ?? source.secretRef;
    if (reference === undefined) return;
    const kind = source.configMapRef ? "configmap" : "secret";
    const name = reference.name ?? "";
    const refField = `${field}.${source.configMapRef ? "configMapRef" : "secretRef"}`;
    const data = source.configMapRef ? configMap(name, refField) : secret(name, refField);
    if (data === undefined) {
      if (reference.optional === true || !strict) return;
      throw missing(refField, `${kind} "${name}" not found in namespace ${namespace}`);
    }
    const skipped: string[] = [];
    // Sorted so that the result does not depend on the order the object's keys happen to be in.
    for (const key of Object.keys(data.values).sort()) {
      const variable = (source.prefix ?? "") + key;
      if (!SYSTEMD_ENV_NAME.test(variable)) {
        skipped.push(variable);
        continue;
      }
      set(variable, checkValue(data.values[key] ?? "", refField, `key ${key} of ${kind} "${name}"`), data.secret);
    }
    if (skipped.length > 0) resolution.onSkippedKeys?.({ container: container.name, source: `${kind} ${namespace}/${name}`, keys: skipped });
  });

  (container.env ?? []).forEach((entry: V1EnvVar, index) => {
    const entryPath = `${containerPath}.env[${index}]`;
    const from = entry.valueFrom;
    if (entry.value !== undefined && entry.value !== "") {
      let tainted = false;
      const value = expandReferences(entry.value, (name) => {
        const known = values.get(name);
        if (known?.secret) tainted = true;
        return known?.value;
      });
      set(entry.name, value, tainted);
      return;
    }
    if (from === undefined) {
      set(entry.name, "", false);
      return;
    }
    if (from.fieldRef !== undefined) {
      const value = downwardFieldValue(pod, from.fieldRef.fieldPath, resolution.host);
      if (value === undefined) {
        // A lenient miss leaves the variable undefined, so `$(NAME)` references to it stay as written.
        if (!strict) return;
        throw unresolvable(
          `${entryPath}.valueFrom.fieldRef`,
          `${from.fieldRef.fieldPath} is not known for this pod`,
          from.fieldRef.fieldPath.startsWith("status.")
            ? "vks fills status fields in only once it knows the host address; this is a bug in the caller"
            : `set ${from.fieldRef.fieldPath} in the manifest or use a literal value`,
        );
      }
      set(entry.name, value, false);
      return;
    }
    if (from.resourceFieldRef !== undefined) {
      const field = `${entryPath}.valueFrom.resourceFieldRef`;
      const ref = from.resourceFieldRef;
      const target = resourceFieldContainer(pod, container, ref.containerName);
      try {
        if (target === undefined) throw new ResourceFieldError(`no container named "${ref.containerName ?? ""}" in the pod`);
        if (!isResourceField(ref.resource)) throw new ResourceFieldError(`unsupported resource "${ref.resource}"`);
        set(entry.name, resourceFieldValue(target, ref.resource, ref.divisor === undefined ? undefined : String(ref.divisor), resolution.allocatable), false);
      } catch (err) {
        if (!(err instanceof ResourceFieldError)) throw err;
        if (!strict) return;
        throw unresolvable(field, err.message, "fix the resource field (validatePod reports these too)");
      }
      return;
    }
    const keyRef = from.configMapKeyRef ?? from.secretKeyRef;
    if (keyRef !== undefined) {
      const isConfigMap = from.configMapKeyRef !== undefined;
      const field = `${entryPath}.valueFrom.${isConfigMap ? "configMapKeyRef" : "secretKeyRef"}`;
      const name = keyRef.name ?? "";
      const data = isConfigMap ? configMap(name, field) : secret(name, field);
      const value = data?.values[keyRef.key];
      if (value === undefined) {
        if (keyRef.optional === true || !strict) return;
        throw missing(
          field,
          data === undefined
            ? `${isConfigMap ? "configmap" : "secret"} "${name}" not found in namespace ${namespace}`
            : `couldn't find key ${keyRef.key} in ${isConfigMap ? "ConfigMap" : "Secret"} ${namespace}/${name}`,
        );
      }
      set(entry.name, checkValue(value, field, `key ${keyRef.key} of ${isConfigMap ? "configmap" : "secret"} "${name}"`), !isConfigMap);
      return;
    }
    // validatePod rejects anything else (fileKeyRef); reaching here means an unvalidated pod.
    if (strict) throw unresolvable(`${entryPath}.valueFrom`, "unsupported source", "use value, fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef");
  });
  return [...values.values()];
}

/** Every envFrom key of the pod that cannot be passed as a variable name, per container and source. */
export function skippedEnvKeys(pod: V1Pod, objects: EnvObjects): SkippedEnvKeys[] {
  const skipped: SkippedEnvKeys[] = [];
  const resolution: EnvResolution = { mode: "lenient", host: {}, objects, onSkippedKeys: (entry) => skipped.push(entry) };
  const containers = [
    ...(pod.spec?.initContainers ?? []).map((container, index) => ({ container, path: `spec.initContainers[${index}]` })),
    ...(pod.spec?.containers ?? []).map((container, index) => ({ container, path: `spec.containers[${index}]` })),
  ];
  for (const { container, path } of containers) {
    try {
      containerEnv(pod, container, path, resolution);
    } catch {
      // Values that cannot be passed at all (not UTF-8) are planning's error to report, with the field.
    }
  }
  return skipped;
}
