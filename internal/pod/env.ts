/**
 * A container's own environment as the kubelet computes it: `env` entries in order, each literal value
 * expanded against the entries before it, `valueFrom.fieldRef` filled in from the pod (downward API).
 * The image's environment is not part of it: the kubelet expands references against the pod's
 * variables only, and the runtime lays them over the image's afterwards (see plan.ts).
 */
import type { V1Container, V1EnvVar, V1Pod } from "@kubernetes/client-node";
import { ExitCode, VksError } from "../errors.ts";
import { expandReferences } from "./expand.ts";

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

export interface ResolvedEnvVar {
  name: string;
  value: string;
}

/** Thrown when a fieldRef needs a fact nobody supplied; `field` is the manifest path to blame. */
function unresolvable(field: string, message: string, hint: string): VksError {
  return new VksError(`${field}: ${message}`, { exitCode: ExitCode.invalidInput, hint });
}

/** The value a downward-API field path has for this pod, or undefined when it cannot be known here. */
function fieldValue(pod: V1Pod, fieldPath: string, host: HostFacts): string | undefined {
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

export interface EnvResolution {
  /**
   * `strict`: a reference that cannot be resolved is an error naming the field (planning).
   * `lenient`: it is treated as an undefined variable (used to predict argv[0] before host facts exist).
   */
  mode: "strict" | "lenient";
  host: HostFacts;
}

/**
 * The container's `env`, in order, with later duplicates replacing the value (but not the position) of
 * earlier ones. `containerPath` is the container's field path (`spec.containers[1]`) for messages.
 */
export function containerEnv(
  pod: V1Pod,
  container: V1Container,
  containerPath: string,
  resolution: EnvResolution,
): ResolvedEnvVar[] {
  const values = new Map<string, string>();
  (container.env ?? []).forEach((entry: V1EnvVar, index) => {
    const entryPath = `${containerPath}.env[${index}]`;
    const fieldRef = entry.valueFrom?.fieldRef;
    let value: string | undefined;
    if (entry.value !== undefined && entry.value !== "") {
      value = expandReferences(entry.value, (name) => values.get(name));
    } else if (fieldRef !== undefined) {
      value = fieldValue(pod, fieldRef.fieldPath, resolution.host);
      if (value === undefined && resolution.mode === "strict") {
        throw unresolvable(
          `${entryPath}.valueFrom.fieldRef`,
          `${fieldRef.fieldPath} is not known for this pod`,
          fieldRef.fieldPath.startsWith("status.")
            ? "vks fills status fields in only once it knows the host address; this is a bug in the caller"
            : `set ${fieldRef.fieldPath} in the manifest or use a literal value`,
        );
      }
    } else if (entry.valueFrom !== undefined && resolution.mode === "strict") {
      // validatePod rejects these; reaching here means an unvalidated pod.
      throw unresolvable(`${entryPath}.valueFrom`, "only fieldRef is supported", "use value or valueFrom.fieldRef");
    } else {
      value = "";
    }
    // A lenient miss leaves the variable undefined, so `$(NAME)` references to it stay as written.
    if (value !== undefined) values.set(entry.name, value);
  });
  return [...values].map(([name, value]) => ({ name, value }));
}
