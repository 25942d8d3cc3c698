// The Node authorizer's graph beyond secrets and configmaps: persistent volume claims and volumes of
// pods bound to the node, service account tokens for those pods (with NodeRestriction's binding rules),
// node leases, and what a node may not read about itself (nodes/status).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ApiException, AuthenticationV1Api, CoordinationV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { startTestApiServer, type RunningTestApiServer } from "./client.ts";
import { isJsonObject, objectAt, parseJson, stringAt, type JsonObject } from "./json.ts";

const nodeUser = "system:node:node-a";

let cluster: RunningTestApiServer;
let core: CoreV1Api;
let coordination: CoordinationV1Api;
let authentication: AuthenticationV1Api;
let builderPodUid: string;

async function failureOf(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call;
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    const parsed = typeof error.body === "string" ? parseJson(error.body) : undefined;
    return { code: error.code, message: isJsonObject(parsed) ? String(parsed["message"]) : "" };
  }
  throw new Error("expected the call to fail");
}

function podWith(name: string, nodeName: string, spec: JsonObject): JsonObject {
  return { metadata: { name }, spec: { nodeName, containers: [{ name: "main", image: "docker.io/library/busybox:1.36" }], ...spec } };
}

beforeAll(async () => {
  cluster = await startTestApiServer({ nodeName: "node-a", nodeAuthorization: true });
  const config = new KubeConfig();
  config.loadFromFile(cluster.kubeconfigPath);
  core = config.makeApiClient(CoreV1Api);
  coordination = config.makeApiClient(CoordinationV1Api);
  authentication = config.makeApiClient(AuthenticationV1Api);
  await cluster.admin.create("nodes", { metadata: { name: "node-a" } });
  await cluster.admin.create("nodes", { metadata: { name: "node-b" } });
  for (const name of ["data", "scratch", "elsewhere", "unused"]) {
    await cluster.admin.create("persistentvolumeclaims", { metadata: { name }, spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } } });
  }
  await cluster.admin.create("persistentvolumes", { metadata: { name: "pv-data" }, spec: { capacity: { storage: "1Gi" }, claimRef: { namespace: "default", name: "data" } } });
  await cluster.admin.create("persistentvolumes", { metadata: { name: "pv-unused" }, spec: { capacity: { storage: "1Gi" }, claimRef: { namespace: "default", name: "unused" } } });
  await cluster.admin.create("pods", podWith("claimer", "node-a", { volumes: [{ name: "data", persistentVolumeClaim: { claimName: "data" } }, { name: "tmp", ephemeral: { volumeClaimTemplate: { spec: {} } } }] }));
  await cluster.admin.create("pods", podWith("remote", "node-b", { volumes: [{ name: "data", persistentVolumeClaim: { claimName: "elsewhere" } }] }));
  for (const name of ["builder", "other"]) await cluster.admin.create("serviceaccounts", { metadata: { name } });
  const builder = await cluster.admin.create("pods", podWith("builder", "node-a", { serviceAccountName: "builder" }));
  builderPodUid = stringAt(objectAt(builder, "metadata"), "uid") ?? "";
  await cluster.admin.create("pods", podWith("foreign", "node-b", { serviceAccountName: "other" }));
});

afterAll(async () => {
  await cluster?.stop();
});

describe("Node authorizer graph", () => {
  test("a node may not read nodes/status, not even its own", async () => {
    const own = await failureOf(core.readNodeStatus({ name: "node-a" }));
    expect(own.code).toBe(403);
    expect(own.message).toBe(`nodes "node-a" is forbidden: User "${nodeUser}" cannot get resource "nodes/status" in API group "" at the cluster scope`);
  });

  test("persistent volume claims: get only, and only those of pods on the node (generic ephemeral ones included)", async () => {
    expect((await core.readNamespacedPersistentVolumeClaim({ namespace: "default", name: "data" })).metadata?.name).toBe("data");
    const ephemeral = await failureOf(core.readNamespacedPersistentVolumeClaim({ namespace: "default", name: "claimer-tmp" }));
    expect(ephemeral.code).toBe(404);
    const elsewhere = await failureOf(core.readNamespacedPersistentVolumeClaim({ namespace: "default", name: "elsewhere" }));
    expect(elsewhere.message).toBe(
      `persistentvolumeclaims "elsewhere" is forbidden: User "${nodeUser}" cannot get resource "persistentvolumeclaims" in API group "" in the namespace "default": no relationship found between node 'node-a' and this object`,
    );
    const listed = await failureOf(core.listNamespacedPersistentVolumeClaim({ namespace: "default" }));
    expect(listed.message).toBe(
      `persistentvolumeclaims is forbidden: User "${nodeUser}" cannot list resource "persistentvolumeclaims" in API group "" in the namespace "default": can only get individual resources of this type`,
    );
  });

  test("a node updates only the capacity and conditions in the status of its claims", async () => {
    const patched = await core.patchNamespacedPersistentVolumeClaimStatus(
      { namespace: "default", name: "data", body: { status: { capacity: { storage: "2Gi" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(patched.status?.capacity?.["storage"]).toBe("2Gi");
    const phase = await failureOf(
      core.patchNamespacedPersistentVolumeClaimStatus({ namespace: "default", name: "data", body: { status: { phase: "Lost" } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch)),
    );
    expect(phase.message).toBe(`persistentvolumeclaims "data" is forbidden: node "node-a" is not allowed to update fields other than status.capacity and status.conditions: status`);
    const spec = await failureOf(
      core.patchNamespacedPersistentVolumeClaim({ namespace: "default", name: "data", body: { metadata: { labels: { a: "b" } } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch)),
    );
    expect(spec.message).toContain("can only get individual resources of this type");
  });

  test("persistent volumes: only those bound to a claim of a pod on the node", async () => {
    expect((await core.readPersistentVolume({ name: "pv-data" })).metadata?.name).toBe("pv-data");
    const unrelated = await failureOf(core.readPersistentVolume({ name: "pv-unused" }));
    expect(unrelated.message).toBe(
      `persistentvolumes "pv-unused" is forbidden: User "${nodeUser}" cannot get resource "persistentvolumes" in API group "" at the cluster scope: no relationship found between node 'node-a' and this object`,
    );
  });

  test("service account tokens: only for service accounts of pods on the node, bound to such a pod", async () => {
    const issued = await core.createNamespacedServiceAccountToken({
      namespace: "default",
      name: "builder",
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { audiences: ["vault"], expirationSeconds: 600, boundObjectRef: { apiVersion: "v1", kind: "Pod", name: "builder", uid: builderPodUid } } },
    });
    const token = issued.status?.token ?? "";
    expect(token.split(".")).toHaveLength(3);
    const reviewed = await authentication.createTokenReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token, audiences: ["vault"] } } });
    expect(reviewed.status?.authenticated).toBe(true);
    expect(reviewed.status?.user?.username).toBe("system:serviceaccount:default:builder");
    expect(reviewed.status?.user?.groups).toEqual(["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]);
    expect(reviewed.status?.user?.extra?.["authentication.kubernetes.io/pod-name"]).toEqual(["builder"]);

    const other = await failureOf(
      core.createNamespacedServiceAccountToken({ namespace: "default", name: "other", body: { spec: { audiences: ["vault"], boundObjectRef: { apiVersion: "v1", kind: "Pod", name: "foreign" } } } }),
    );
    expect(other.message).toBe(
      `serviceaccounts "other" is forbidden: User "${nodeUser}" cannot create resource "serviceaccounts/token" in API group "" in the namespace "default": no relationship found between node 'node-a' and this object`,
    );
    const unbound = await failureOf(core.createNamespacedServiceAccountToken({ namespace: "default", name: "builder", body: { spec: { audiences: ["vault"] } } }));
    expect(unbound.message).toBe('serviceaccounts "Unknown" is forbidden: node requested token not bound to a pod');
    const read = await failureOf(core.readNamespacedServiceAccount({ namespace: "default", name: "builder" }));
    expect(read.message).toContain("can only create tokens for individual service accounts");
    const tooShort = await failureOf(
      core.createNamespacedServiceAccountToken({
        namespace: "default",
        name: "builder",
        body: { spec: { audiences: ["vault"], expirationSeconds: 60, boundObjectRef: { apiVersion: "v1", kind: "Pod", name: "builder", uid: builderPodUid } } },
      }),
    );
    expect(tooShort.message).toBe('TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes');

    // A bound token dies with its pod.
    await cluster.admin.delete("pods", "builder", "default", { gracePeriodSeconds: 0 });
    const afterDelete = await authentication.createTokenReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token, audiences: ["vault"] } } });
    expect(afterDelete.status?.authenticated).toBeUndefined();
  });

  test("leases: only the node's own, in kube-node-lease", async () => {
    const other = await failureOf(coordination.readNamespacedLease({ namespace: "kube-node-lease", name: "node-b" }));
    expect(other.message).toBe(
      `leases.coordination.k8s.io "node-b" is forbidden: User "${nodeUser}" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease": can only access node lease with the same name as the requesting node`,
    );
    const listed = await failureOf(coordination.listNamespacedLease({ namespace: "kube-node-lease" }));
    expect(listed.message).toContain("can only get, create, update, patch, or delete a node lease");
  });
});
