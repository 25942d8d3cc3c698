/**
 * Where a pod's ConfigMaps, Secrets and service account tokens come from: the documents of the manifest
 * file under `pod up`, the API server under `serve`. The engine reads them through this seam only, for
 * env sources and volumes alike, and never knows which of the two it is talking to.
 */
import type { V1ConfigMap, V1Secret } from "@kubernetes/client-node";

export interface ServiceAccountTokenRequest {
  namespace: string;
  serviceAccountName: string;
  audiences: string[];
  expirationSeconds: number;
  /** The pod the token is bound to (TokenRequest boundObjectRef). */
  podName: string;
  podUid: string;
}

export interface ServiceAccountToken {
  token: string;
  expiresAt: Date;
}

export interface PodObjectSource {
  /** The object, or undefined when it does not exist. Other failures (unreachable, forbidden) throw. */
  configMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  secret(namespace: string, name: string): Promise<V1Secret | undefined>;
  /** A token for a projected serviceAccountToken volume; absent where no API server issues them (pod up). */
  serviceAccountToken?(request: ServiceAccountTokenRequest): Promise<ServiceAccountToken>;
}

/** No objects at all: every reference is missing. */
export const NO_OBJECTS: PodObjectSource = {
  configMap: async () => undefined,
  secret: async () => undefined,
};
