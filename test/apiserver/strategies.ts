// Per-type lifecycle rules of the real registry (its "strategies"): defaulting, what create and update
// may set, what the status subresource may change, and how deletion proceeds.
import { randomUUID } from "node:crypto";
import { certificateRequestKind, prepareCertificateRequestUpdate } from "./certificate-requests.ts";
import { arrayAt, isJsonObject, jsonEqual, numberAt, objectAt, stringAt, type JsonObject, type JsonValue } from "./json.ts";
import type { ResourceType } from "./resources.ts";
import { formatTime } from "./time.ts";

function defaultContainer(container: JsonValue): JsonValue {
  if (!isJsonObject(container)) return container;
  const image = stringAt(container, "image") ?? "";
  const lastSegment = image.split("/").pop() ?? "";
  const pinnedTag = lastSegment.includes(":") && !lastSegment.endsWith(":latest");
  const pinned = image.includes("@") || pinnedTag;
  const ports = arrayAt(container, "ports")?.map((port) => (isJsonObject(port) ? { protocol: "TCP", ...port } : port));
  return {
    terminationMessagePath: "/dev/termination-log",
    terminationMessagePolicy: "File",
    imagePullPolicy: pinned ? "IfNotPresent" : "Always",
    resources: {},
    ...container,
    ...(ports === undefined ? {} : { ports }),
  };
}

function defaultPod(pod: JsonObject): void {
  const spec = objectAt(pod, "spec");
  if (spec === undefined) return;
  pod["spec"] = {
    restartPolicy: "Always",
    terminationGracePeriodSeconds: 30,
    dnsPolicy: "ClusterFirst",
    schedulerName: "default-scheduler",
    securityContext: {},
    enableServiceLinks: true,
    ...spec,
    containers: (arrayAt(spec, "containers") ?? []).map(defaultContainer),
    ...(arrayAt(spec, "initContainers") === undefined ? {} : { initContainers: (arrayAt(spec, "initContainers") ?? []).map(defaultContainer) }),
  };
}

function podQosClass(pod: JsonObject): string {
  const containers = [...(arrayAt(objectAt(pod, "spec"), "containers") ?? []), ...(arrayAt(objectAt(pod, "spec"), "initContainers") ?? [])];
  let anyResources = false;
  let guaranteed = true;
  for (const container of containers) {
    const resources = isJsonObject(container) ? objectAt(container, "resources") : undefined;
    const requests = resources === undefined ? undefined : objectAt(resources, "requests");
    const limits = resources === undefined ? undefined : objectAt(resources, "limits");
    if (Object.keys(requests ?? {}).length > 0 || Object.keys(limits ?? {}).length > 0) anyResources = true;
    for (const resourceName of ["cpu", "memory"]) {
      const limit = limits?.[resourceName];
      const request = requests?.[resourceName] ?? limit;
      if (limit === undefined || !jsonEqual(request, limit)) guaranteed = false;
    }
  }
  if (!anyResources) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

function defaultSecret(secret: JsonObject): void {
  if (secret["type"] === undefined) secret["type"] = "Opaque";
  const stringData = objectAt(secret, "stringData");
  if (stringData === undefined) return;
  const data: JsonObject = { ...objectAt(secret, "data") };
  for (const [key, value] of Object.entries(stringData)) {
    if (typeof value === "string") data[key] = Buffer.from(value, "utf8").toString("base64");
  }
  secret["data"] = data;
  delete secret["stringData"];
}

/** Scheme defaulting, applied to every object that comes in through create, update or patch. */
export function applyDefaults(type: ResourceType, object: JsonObject): void {
  if (type.kind === "Pod") defaultPod(object);
  if (type.kind === "Secret") defaultSecret(object);
}

function metadataOf(object: JsonObject): JsonObject {
  const metadata = objectAt(object, "metadata") ?? {};
  object["metadata"] = metadata;
  return metadata;
}

/** Fills the fields the server owns on a new object; `now` is passed so tests of it can be exact. */
export function prepareForCreate(type: ResourceType, object: JsonObject, now: Date): void {
  const metadata = metadataOf(object);
  metadata["uid"] = randomUUID();
  metadata["creationTimestamp"] = formatTime(now);
  delete metadata["deletionTimestamp"];
  delete metadata["deletionGracePeriodSeconds"];
  delete metadata["selfLink"];
  delete metadata["generation"];
  if (type.kind === "Pod") {
    metadata["generation"] = 1;
    object["status"] = { phase: "Pending", qosClass: podQosClass(object) };
  }
  if (type.kind === "Namespace") {
    metadata["labels"] = { ...objectAt(metadata, "labels"), "kubernetes.io/metadata.name": stringAt(metadata, "name") ?? "" };
    object["spec"] = { finalizers: ["kubernetes"] };
    object["status"] = { phase: "Active" };
  }
}

/** Whether writes to the main resource leave status alone, as for types with a status subresource. */
export function hasStatusSubresource(type: ResourceType): boolean {
  return type.subresources.includes("status");
}

/** Carries over what an update of the main resource may not change. */
export function prepareForUpdate(type: ResourceType, updated: JsonObject, current: JsonObject): void {
  const metadata = metadataOf(updated);
  const currentMetadata = objectAt(current, "metadata") ?? {};
  for (const key of ["creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"]) {
    const value = currentMetadata[key];
    if (value === undefined) delete metadata[key];
    else metadata[key] = value;
  }
  if (metadata["uid"] === undefined || metadata["uid"] === "") metadata["uid"] = currentMetadata["uid"] ?? "";
  delete metadata["selfLink"];
  if (hasStatusSubresource(type)) {
    if (current["status"] === undefined) delete updated["status"];
    else updated["status"] = current["status"];
  }
  if (type.kind === "Namespace") {
    metadata["labels"] = { ...objectAt(metadata, "labels"), "kubernetes.io/metadata.name": stringAt(metadata, "name") ?? "" };
  }
  if (type.kind === certificateRequestKind) prepareCertificateRequestUpdate(updated, current);
  const generation = numberAt(currentMetadata, "generation");
  if (generation !== undefined && !jsonEqual(updated["spec"], current["spec"])) metadata["generation"] = generation + 1;
}

/** A status-subresource write: everything but status comes from the stored object. */
export function prepareForStatusUpdate(updated: JsonObject, current: JsonObject): JsonObject {
  const result: JsonObject = { ...current };
  const status = updated["status"];
  if (status === undefined) delete result["status"];
  else result["status"] = status;
  result["metadata"] = { ...objectAt(current, "metadata") };
  return result;
}

/** Pods and namespaces answer a DELETE with the object; everything else here with a Status. */
export function returnsDeletedObject(type: ResourceType): boolean {
  return type.kind === "Pod" || type.kind === "Namespace";
}

/**
 * The grace period a deletion gets, following the pod strategy: the request's or the pod's own
 * terminationGracePeriodSeconds, but none for pods never scheduled or already finished.
 */
export function gracePeriodFor(type: ResourceType, object: JsonObject, requested: number | undefined): number {
  if (type.kind !== "Pod") return 0;
  const spec = objectAt(object, "spec");
  const phase = stringAt(objectAt(object, "status"), "phase");
  if ((stringAt(spec, "nodeName") ?? "") === "" || phase === "Succeeded" || phase === "Failed") return 0;
  const period = requested ?? numberAt(spec, "terminationGracePeriodSeconds") ?? 30;
  // A negative request means "as soon as possible but not forced", which the server rounds to 1s.
  return period < 0 ? 1 : period;
}

/** Whether an object marked for deletion may now go: no finalizers left and no grace period pending. */
export function readyToRemove(object: JsonObject): boolean {
  const metadata = objectAt(object, "metadata") ?? {};
  if (metadata["deletionTimestamp"] === undefined) return false;
  if ((arrayAt(metadata, "finalizers") ?? []).length > 0) return false;
  return (numberAt(metadata, "deletionGracePeriodSeconds") ?? 0) === 0;
}
