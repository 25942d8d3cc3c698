/**
 * ConfigMap and Secret environment sources, resolved the way the kubelet does before it starts a
 * container: `envFrom` first (later sources win), then `env` in order; optional sources that are missing
 * are skipped, required ones fail the container with CreateContainerConfigError. The provider then sees
 * only literal values: it never talks to the API server, and serve never watches ConfigMaps or Secrets.
 */
import type { V1ConfigMap, V1Container, V1EnvVar, V1Pod, V1Secret } from "@kubernetes/client-node";
import { ExitCode, VksError } from "../errors.ts";

/** Fetches one object by name; undefined when it does not exist. */
export interface EnvSourceFetcher {
  configMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  secret(namespace: string, name: string): Promise<V1Secret | undefined>;
}

/** A required source or key is missing: the container cannot start until someone creates it. */
export class EnvSourceError extends VksError {
  override readonly name = "EnvSourceError";
  /** The kubelet's waiting reason for this failure. */
  readonly reason = "CreateContainerConfigError";
  constructor(
    readonly container: string,
    message: string,
  ) {
    super(message, {
      exitCode: ExitCode.notFound,
      hint: "create the ConfigMap/Secret or key the pod refers to (or mark the reference optional); vks retries",
    });
  }
}

export interface ResolvedEnv {
  pod: V1Pod;
  /** Keys skipped because they cannot be environment variable names, per container (the kubelet warns). */
  invalidNames: { container: string; names: string[] }[];
}

/**
 * Kubernetes (since 1.30) accepts any printable ASCII except '=' as an environment variable name; keys
 * outside that are skipped, as the kubelet does.
 */
const ENV_NAME = /^[\x20-\x3c\x3e-\x7e]+$/;

/**
 * Values the provider receives are still subject to `$(VAR)` expansion, which the kubelet never applies to
 * values from ConfigMaps and Secrets; doubling every `$` makes expansion give back the value unchanged.
 */
export function escapeReferences(value: string): string {
  return value.replaceAll("$", "$$$$");
}

function decodeSecretValue(encoded: string): string {
  return Buffer.from(encoded, "base64").toString("utf8");
}

function needsResolution(container: V1Container): boolean {
  return (
    (container.envFrom?.length ?? 0) > 0 ||
    (container.env ?? []).some((env) => env.valueFrom?.configMapKeyRef !== undefined || env.valueFrom?.secretKeyRef !== undefined)
  );
}

/** Whether the pod refers to any ConfigMap or Secret for its environment. */
export function podNeedsEnvResolution(pod: V1Pod): boolean {
  const spec = pod.spec;
  if (!spec) return false;
  return [...(spec.initContainers ?? []), ...spec.containers].some(needsResolution);
}

/** Memoises fetches for one pod: several containers usually share a ConfigMap. */
class SourceCache {
  private readonly configMaps = new Map<string, Promise<V1ConfigMap | undefined>>();
  private readonly secrets = new Map<string, Promise<V1Secret | undefined>>();
  constructor(
    private readonly fetcher: EnvSourceFetcher,
    private readonly namespace: string,
  ) {}

  async configMapData(name: string): Promise<Record<string, string> | undefined> {
    let pending = this.configMaps.get(name);
    if (!pending) this.configMaps.set(name, (pending = this.fetcher.configMap(this.namespace, name)));
    const configMap = await pending;
    return configMap === undefined ? undefined : (configMap.data ?? {});
  }

  async secretData(name: string): Promise<Record<string, string> | undefined> {
    let pending = this.secrets.get(name);
    if (!pending) this.secrets.set(name, (pending = this.fetcher.secret(this.namespace, name)));
    const secret = await pending;
    if (secret === undefined) return undefined;
    const decoded: Record<string, string> = {};
    for (const [key, value] of Object.entries(secret.data ?? {})) decoded[key] = decodeSecretValue(value);
    return decoded;
  }
}

async function resolveContainer(
  container: V1Container,
  namespace: string,
  cache: SourceCache,
  invalidNames: string[],
): Promise<V1Container> {
  if (!needsResolution(container)) return container;
  const resolved: V1EnvVar[] = [];
  const literal = (name: string, value: string) => resolved.push({ name, value: escapeReferences(value) });

  for (const source of container.envFrom ?? []) {
    const prefix = source.prefix ?? "";
    let data: Record<string, string> | undefined;
    let optional: boolean;
    let what: string;
    if (source.configMapRef) {
      what = `configmap "${source.configMapRef.name ?? ""}"`;
      optional = source.configMapRef.optional === true;
      data = await cache.configMapData(source.configMapRef.name ?? "");
    } else if (source.secretRef) {
      what = `secret "${source.secretRef.name ?? ""}"`;
      optional = source.secretRef.optional === true;
      data = await cache.secretData(source.secretRef.name ?? "");
    } else {
      continue;
    }
    if (data === undefined) {
      if (optional) continue;
      throw new EnvSourceError(container.name, `container ${container.name}: ${what} not found in namespace ${namespace}`);
    }
    // Sorted so that the result does not depend on the order the server happened to send keys in.
    for (const key of Object.keys(data).sort()) {
      const name = prefix + key;
      if (!ENV_NAME.test(name)) {
        invalidNames.push(name);
        continue;
      }
      literal(name, data[key] ?? "");
    }
  }

  for (const env of container.env ?? []) {
    const configMapKey = env.valueFrom?.configMapKeyRef;
    const secretKey = env.valueFrom?.secretKeyRef;
    if (configMapKey) {
      const data = await cache.configMapData(configMapKey.name ?? "");
      const value = data?.[configMapKey.key];
      if (value === undefined) {
        if (configMapKey.optional === true) continue;
        throw new EnvSourceError(
          container.name,
          data === undefined
            ? `container ${container.name}: env ${env.name}: configmap "${configMapKey.name ?? ""}" not found in namespace ${namespace}`
            : `container ${container.name}: env ${env.name}: couldn't find key ${configMapKey.key} in ConfigMap ${namespace}/${configMapKey.name ?? ""}`,
        );
      }
      literal(env.name, value);
    } else if (secretKey) {
      const data = await cache.secretData(secretKey.name ?? "");
      const value = data?.[secretKey.key];
      if (value === undefined) {
        if (secretKey.optional === true) continue;
        throw new EnvSourceError(
          container.name,
          data === undefined
            ? `container ${container.name}: env ${env.name}: secret "${secretKey.name ?? ""}" not found in namespace ${namespace}`
            : `container ${container.name}: env ${env.name}: couldn't find key ${secretKey.key} in Secret ${namespace}/${secretKey.name ?? ""}`,
        );
      }
      literal(env.name, value);
    } else {
      // Literal values and fieldRef/resourceFieldRef stay as written: the provider expands and fills those.
      resolved.push(env);
    }
  }
  const { envFrom: _resolvedAway, ...rest } = container;
  return { ...rest, env: resolved };
}

/**
 * The pod with every ConfigMap/Secret env source replaced by literal values. Throws EnvSourceError for a
 * missing required source or key; other fetch failures (unreachable, forbidden) propagate as they are.
 */
export async function resolveEnvSources(pod: V1Pod, fetcher: EnvSourceFetcher): Promise<ResolvedEnv> {
  if (!podNeedsEnvResolution(pod) || !pod.spec) return { pod, invalidNames: [] };
  const namespace = pod.metadata?.namespace || "default";
  const cache = new SourceCache(fetcher, namespace);
  const invalidNames: ResolvedEnv["invalidNames"] = [];
  const resolveAll = async (containers: V1Container[] | undefined) => {
    if (containers === undefined) return undefined;
    const out: V1Container[] = [];
    for (const container of containers) {
      const names: string[] = [];
      out.push(await resolveContainer(container, namespace, cache, names));
      if (names.length > 0) invalidNames.push({ container: container.name, names });
    }
    return out;
  };
  const initContainers = await resolveAll(pod.spec.initContainers);
  const containers = (await resolveAll(pod.spec.containers)) ?? [];
  const spec = { ...pod.spec, containers, ...(initContainers === undefined ? {} : { initContainers }) };
  return { pod: { ...pod, spec }, invalidNames };
}
