/**
 * The ConfigMaps and Secrets a pod's environment refers to (`envFrom`, `valueFrom.configMapKeyRef`,
 * `valueFrom.secretKeyRef`), fetched through the PodObjectSource before planning, so that planning itself
 * stays pure: planPod gets them as EnvObjects and resolves the values (env.ts).
 */
import type { V1ConfigMap, V1Container, V1Pod, V1Secret } from "@kubernetes/client-node";
import { ExitCode, VksError } from "../errors.ts";
import type { PodObjectSource } from "./objects.ts";

/** The objects of the pod's namespace its env refers to, by name; a name that is absent does not exist. */
export interface EnvObjects {
  configMaps: Record<string, V1ConfigMap>;
  secrets: Record<string, V1Secret>;
}

export const NO_ENV_OBJECTS: EnvObjects = { configMaps: {}, secrets: {} };

/**
 * A required ConfigMap, Secret or key is missing. Under `serve` the container waits with the kubelet's
 * CreateContainerConfigError and the pod is retried; under `pod up` it is bad input (exit 65).
 */
export class EnvSourceError extends VksError {
  override readonly name = "EnvSourceError";
  /** The kubelet's waiting reason for this failure. */
  readonly reason = "CreateContainerConfigError";
  constructor(
    readonly container: string,
    message: string,
  ) {
    super(message, {
      exitCode: ExitCode.invalidInput,
      hint:
        "create the ConfigMap/Secret or key the pod refers to, or mark the reference optional: true " +
        "(vks pod up reads ConfigMap and Secret documents from the same file; vks serve retries until it exists)",
    });
  }

  /** The same error with more context in front, keeping the class (planPod names the pod this way). */
  prefixed(prefix: string): EnvSourceError {
    return new EnvSourceError(this.container, `${prefix}${this.message}`);
  }
}

function allContainers(pod: V1Pod): V1Container[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
}

/** The names of the ConfigMaps and Secrets the pod's env refers to. */
export function envObjectNames(pod: V1Pod): { configMaps: string[]; secrets: string[] } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  for (const container of allContainers(pod)) {
    for (const source of container.envFrom ?? []) {
      if (source.configMapRef) configMaps.add(source.configMapRef.name ?? "");
      if (source.secretRef) secrets.add(source.secretRef.name ?? "");
    }
    for (const entry of container.env ?? []) {
      const configMapKey = entry.valueFrom?.configMapKeyRef;
      const secretKey = entry.valueFrom?.secretKeyRef;
      if (configMapKey) configMaps.add(configMapKey.name ?? "");
      if (secretKey) secrets.add(secretKey.name ?? "");
    }
  }
  return { configMaps: [...configMaps], secrets: [...secrets] };
}

/** Fetches every object the pod's env refers to; failures other than "does not exist" propagate. */
export async function fetchEnvObjects(pod: V1Pod, source: PodObjectSource): Promise<EnvObjects> {
  const namespace = pod.metadata?.namespace || "default";
  const names = envObjectNames(pod);
  const objects: EnvObjects = { configMaps: {}, secrets: {} };
  await Promise.all([
    ...names.configMaps.map(async (name) => {
      const found = await source.configMap(namespace, name);
      if (found !== undefined) objects.configMaps[name] = found;
    }),
    ...names.secrets.map(async (name) => {
      const found = await source.secret(namespace, name);
      if (found !== undefined) objects.secrets[name] = found;
    }),
  ]);
  return objects;
}

/**
 * Throws EnvSourceError, naming the field, for the first ConfigMap, Secret or key the pod's env needs
 * that `objects` lacks (optional references may be missing). `pod up` checks every pod this way before
 * creating any; planning finds the same problems, but only once earlier pods exist.
 */
export function checkEnvReferences(pod: V1Pod, objects: EnvObjects): void {
  const namespace = pod.metadata?.namespace || "default";
  const podName = `pod ${namespace}/${pod.metadata?.name ?? ""}: `;
  const slots = [
    ...(pod.spec?.initContainers ?? []).map((container, index) => ({ container, path: `spec.initContainers[${index}]` })),
    ...(pod.spec?.containers ?? []).map((container, index) => ({ container, path: `spec.containers[${index}]` })),
  ];
  for (const { container, path } of slots) {
    const fail = (field: string, message: string) => {
      throw new EnvSourceError(container.name, `${podName}${field}: ${message}`);
    };
    (container.envFrom ?? []).forEach((source, index) => {
      const isConfigMap = source.configMapRef !== undefined;
      const ref = source.configMapRef ?? source.secretRef;
      if (ref === undefined || ref.optional === true) return;
      const name = ref.name ?? "";
      const exists = isConfigMap ? objects.configMaps[name] !== undefined : objects.secrets[name] !== undefined;
      if (!exists) fail(`${path}.envFrom[${index}].${isConfigMap ? "configMapRef" : "secretRef"}`, `${isConfigMap ? "configmap" : "secret"} "${name}" not found in namespace ${namespace}`);
    });
    (container.env ?? []).forEach((entry, index) => {
      const isConfigMap = entry.valueFrom?.configMapKeyRef !== undefined;
      const ref = entry.valueFrom?.configMapKeyRef ?? entry.valueFrom?.secretKeyRef;
      if (ref === undefined || ref.optional === true) return;
      const field = `${path}.env[${index}].valueFrom.${isConfigMap ? "configMapKeyRef" : "secretKeyRef"}`;
      const name = ref.name ?? "";
      const object = isConfigMap ? objects.configMaps[name] : objects.secrets[name];
      if (object === undefined) fail(field, `${isConfigMap ? "configmap" : "secret"} "${name}" not found in namespace ${namespace}`);
      else if (object.data?.[ref.key] === undefined) fail(field, `couldn't find key ${ref.key} in ${isConfigMap ? "ConfigMap" : "Secret"} ${namespace}/${name}`);
    });
  }
}
