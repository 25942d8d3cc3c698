/**
 * serve's PodObjectSource: a pod's ConfigMaps and Secrets read from the API server by name (a node may
 * get only the objects its pods refer to: the NodeAuthorizer's rule), a missing one being undefined.
 * The engine resolves env and volumes from them (internal/pod/env.ts); a required object that is missing
 * makes createPod throw EnvSourceError, which the pod controller reports as CreateContainerConfigError
 * and retries.
 */
import { ExitCode, VksError } from "../errors.ts";
import type { PodObjectSource } from "../pod/objects.ts";
import { isNotFound } from "./api-error.ts";
import type { KubeClient } from "./client.ts";

export function apiObjectSource(client: Pick<KubeClient, "getConfigMap" | "getSecret" | "createServiceAccountToken">): PodObjectSource {
  const orUndefined = async <T>(read: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await read();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
  return {
    configMap: (namespace, name) => orUndefined(() => client.getConfigMap(namespace, name)),
    secret: (namespace, name) => orUndefined(() => client.getSecret(namespace, name)),
    // As the kubelet: a token bound to the pod, so it stops working when the pod is deleted.
    async serviceAccountToken(request) {
      const issued = await client.createServiceAccountToken(request.namespace, request.serviceAccountName, {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          audiences: request.audiences,
          expirationSeconds: request.expirationSeconds,
          boundObjectRef: { apiVersion: "v1", kind: "Pod", name: request.podName, uid: request.podUid },
        },
      });
      const token = issued.status?.token;
      const expiresAt = issued.status?.expirationTimestamp;
      if (token === undefined || token === "" || expiresAt === undefined) {
        throw new VksError(`TokenRequest for service account ${request.namespace}/${request.serviceAccountName} came back without a token`, { exitCode: ExitCode.unavailable });
      }
      return { token, expiresAt: new Date(expiresAt) };
    },
  };
}
