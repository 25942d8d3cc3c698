// What a real cluster lets a kubelet do, for requests from node identities (user system:node:<name>
// in group system:nodes): the Node authorizer (a fixed rule set, plus secrets and configmaps only when
// a pod bound to the node references them) and the NodeRestriction admission plugin (a node writes
// only its own Node and Lease, mirror pods, and the status of pods bound to it).
import type { AdmissionPlugin, AdmissionRequest } from "./admission.ts";
import type { RequestAttributes, UserInfo } from "./auth.ts";
import { arrayAt, isJsonObject, jsonEqual, objectAt, stringAt, valueAtPath, type JsonObject, type JsonValue } from "./json.ts";
import { forbidden, notFound, type ApiError } from "./status.ts";

/** The node a user is, or undefined for everyone else. */
export function nodeNameOf(user: UserInfo): string | undefined {
  if (!user.groups.includes("system:nodes") || !user.name.startsWith("system:node:")) return undefined;
  return user.name.slice("system:node:".length);
}

interface NodeRule {
  group: string;
  resource: string;
  verbs: readonly string[];
}

// The bootstrap policy's NodeRules, limited to the resources this server serves.
const nodeRules: readonly NodeRule[] = [
  { group: "", resource: "nodes", verbs: ["create", "get", "list", "watch", "update", "patch"] },
  { group: "", resource: "nodes/status", verbs: ["update", "patch"] },
  { group: "", resource: "pods", verbs: ["get", "list", "watch", "create", "delete"] },
  { group: "", resource: "pods/status", verbs: ["update", "patch"] },
  { group: "", resource: "pods/eviction", verbs: ["create"] },
  { group: "", resource: "events", verbs: ["create", "update", "patch"] },
  { group: "coordination.k8s.io", resource: "leases", verbs: ["get", "create", "update", "patch", "delete"] },
];

const graphResources = new Set(["secrets", "configmaps"]);

/** The pods bound to a node, for the authorizer's node → pod → secret/configmap relationships. */
export type BoundPods = (nodeName: string, namespace: string) => JsonObject[];

function referencedNames(pod: JsonObject, resource: string): Set<string> {
  const names = new Set<string>();
  const add = (value: JsonValue | undefined): void => {
    if (typeof value === "string" && value !== "") names.add(value);
  };
  const spec = objectAt(pod, "spec");
  const secret = resource === "secrets";
  for (const volume of arrayAt(spec, "volumes") ?? []) {
    if (!isJsonObject(volume)) continue;
    add(secret ? valueAtPath(volume, ["secret", "secretName"]) : valueAtPath(volume, ["configMap", "name"]));
    for (const source of arrayAt(objectAt(volume, "projected"), "sources") ?? []) {
      add(valueAtPath(source, [secret ? "secret" : "configMap", "name"]));
    }
  }
  const containers = ["containers", "initContainers", "ephemeralContainers"].flatMap((field) => arrayAt(spec, field) ?? []);
  for (const container of containers) {
    if (!isJsonObject(container)) continue;
    for (const variable of arrayAt(container, "env") ?? []) {
      add(valueAtPath(variable, ["valueFrom", secret ? "secretKeyRef" : "configMapKeyRef", "name"]));
    }
    for (const source of arrayAt(container, "envFrom") ?? []) add(valueAtPath(source, [secret ? "secretRef" : "configMapRef", "name"]));
  }
  if (secret) for (const pullSecret of arrayAt(spec, "imagePullSecrets") ?? []) add(valueAtPath(pullSecret, ["name"]));
  return names;
}

function denial(user: UserInfo, attributes: RequestAttributes, reason: string): ApiError {
  const resourcePath = attributes.subresource === "" ? attributes.resource : `${attributes.resource}/${attributes.subresource}`;
  const scope = attributes.namespace === "" ? "at the cluster scope" : `in the namespace "${attributes.namespace}"`;
  const message = `User "${user.name}" cannot ${attributes.verb} resource "${resourcePath}" in API group "${attributes.group}" ${scope}`;
  return forbidden({ group: attributes.group, resource: attributes.resource }, attributes.name, reason === "" ? message : `${message}: ${reason}`);
}

/** The 403 the Node authorizer (with RBAC granting nodes nothing more) gives, or undefined to allow. */
export function authorizeNode(nodeName: string, user: UserInfo, attributes: RequestAttributes, boundPods: BoundPods): ApiError | undefined {
  const resourcePath = attributes.subresource === "" ? attributes.resource : `${attributes.resource}/${attributes.subresource}`;
  if (attributes.group === "" && graphResources.has(attributes.resource)) {
    if (!["get", "list", "watch"].includes(attributes.verb)) return denial(user, attributes, "can only read resources of this type");
    if (attributes.subresource !== "") return denial(user, attributes, "cannot read subresource");
    if (attributes.namespace === "") return denial(user, attributes, "can only read namespaced object of this type");
    if (attributes.name === "") return denial(user, attributes, "No Object name found");
    const related = boundPods(nodeName, attributes.namespace).some((pod) => referencedNames(pod, attributes.resource).has(attributes.name));
    return related ? undefined : denial(user, attributes, `no relationship found between node '${nodeName}' and this object`);
  }
  const allowed = nodeRules.some((rule) => rule.group === attributes.group && rule.resource === resourcePath && rule.verbs.includes(attributes.verb));
  return allowed ? undefined : denial(user, attributes, "");
}

const mirrorPodAnnotation = "kubernetes.io/config.mirror";
const kubeletLabels = new Set([
  "kubernetes.io/hostname",
  "topology.kubernetes.io/zone",
  "topology.kubernetes.io/region",
  "failure-domain.beta.kubernetes.io/zone",
  "failure-domain.beta.kubernetes.io/region",
  "beta.kubernetes.io/instance-type",
  "node.kubernetes.io/instance-type",
  "beta.kubernetes.io/os",
  "beta.kubernetes.io/arch",
  "kubernetes.io/os",
  "kubernetes.io/arch",
]);

function labelNamespace(key: string): string {
  const slash = key.indexOf("/");
  return slash === -1 ? "" : key.slice(0, slash);
}

function inDomain(namespace: string, domain: string): boolean {
  return namespace === domain || namespace.endsWith(`.${domain}`);
}

function isForbiddenNodeLabel(key: string): boolean {
  const namespace = labelNamespace(key);
  if (inDomain(namespace, "node-restriction.kubernetes.io")) return true;
  const isKubernetesLabel = inDomain(namespace, "kubernetes.io") || inDomain(namespace, "k8s.io");
  const isKubeletLabel = kubeletLabels.has(key) || inDomain(namespace, "kubelet.kubernetes.io") || inDomain(namespace, "node.kubernetes.io");
  return isKubernetesLabel && !isKubeletLabel;
}

function labelsOf(object: JsonObject | undefined): Record<string, JsonValue> {
  return objectAt(objectAt(object ?? {}, "metadata") ?? {}, "labels") ?? {};
}

function forbiddenLabelChanges(updated: JsonObject | undefined, current: JsonObject | undefined): string[] {
  const after = labelsOf(updated);
  const before = labelsOf(current);
  const changed = new Set([...Object.keys(after), ...Object.keys(before)].filter((key) => after[key] !== before[key]));
  return [...changed].filter(isForbiddenNodeLabel).sort();
}

function nodeNameOfPod(pod: JsonObject | undefined): string {
  return stringAt(objectAt(pod ?? {}, "spec"), "nodeName") ?? "";
}

/** NodeRestriction; `nodes` looks up a Node to check a mirror pod's owner reference against its UID. */
export function nodeRestriction(nodes: (name: string) => JsonObject | undefined): AdmissionPlugin {
  return (request: AdmissionRequest) => {
    const nodeName = request.user === undefined ? undefined : nodeNameOf(request.user);
    if (nodeName === undefined) return;
    const refuse = (reason: string): never => {
      throw forbidden(request.type, request.name, reason);
    };
    switch (request.type.resource) {
      case "pods":
        return admitPod(nodeName, request, nodes, refuse);
      case "nodes": {
        if (request.name !== nodeName) refuse(`node "${nodeName}" is not allowed to modify node "${request.name}"`);
        if (request.operation === "CREATE") {
          const labels = forbiddenLabelChanges(request.object, undefined);
          if (labels.length > 0) refuse(`node "${nodeName}" is not allowed to set the following labels: ${labels.join(", ")}`);
        }
        if (request.operation === "UPDATE") {
          const taints = (object: JsonObject | undefined): JsonValue | undefined => objectAt(object ?? {}, "spec")?.["taints"];
          if (!jsonEqual(taints(request.object) ?? [], taints(request.oldObject) ?? [])) refuse(`node "${nodeName}" is not allowed to modify taints`);
          const labels = forbiddenLabelChanges(request.object, request.oldObject);
          if (labels.length > 0) refuse(`is not allowed to modify labels: ${labels.join(", ")}`);
        }
        return;
      }
      case "leases":
        if (request.namespace !== "kube-node-lease") refuse(`can only access leases in the "kube-node-lease" system namespace`);
        if (request.name !== nodeName) refuse("can only access node lease with the same name as the requesting node");
        return;
      default:
        return;
    }
  };
}

function admitPod(nodeName: string, request: AdmissionRequest, nodes: (name: string) => JsonObject | undefined, refuse: (reason: string) => never): void {
  if (request.subresource === "status") {
    if (request.operation !== "UPDATE") refuse(`unexpected operation "${request.operation}"`);
    if (nodeNameOfPod(request.oldObject) !== nodeName) refuse(`node "${nodeName}" can only update pod status for pods with spec.nodeName set to itself`);
    if (!jsonEqual(labelsOf(request.object), labelsOf(request.oldObject))) refuse(`node "${nodeName}" cannot update labels through pod status`);
    return;
  }
  if (request.subresource !== "") refuse(`unexpected pod subresource "${request.subresource}", only 'status' and 'eviction' are allowed`);
  if (request.operation === "DELETE") {
    if (nodeNameOfPod(request.oldObject) !== nodeName) refuse(`node "${nodeName}" can only delete pods with spec.nodeName set to itself`);
    return;
  }
  if (request.operation !== "CREATE") refuse(`unexpected operation "${request.operation}", node "${nodeName}" can only create and delete mirror pods`);
  const pod = request.object ?? {};
  const annotations = objectAt(objectAt(pod, "metadata") ?? {}, "annotations") ?? {};
  if (!(mirrorPodAnnotation in annotations)) refuse(`pod does not have "${mirrorPodAnnotation}" annotation, node "${nodeName}" can only create mirror pods`);
  if (nodeNameOfPod(pod) !== nodeName) refuse(`node "${nodeName}" can only create pods with spec.nodeName set to itself`);
  const owners = arrayAt(objectAt(pod, "metadata"), "ownerReferences") ?? [];
  if (owners.length > 1) refuse(`node "${nodeName}" can only create pods with a single owner reference set to itself`);
  const owner = owners[0];
  if (!isJsonObject(owner)) return refuse(`node "${nodeName}" can only create pods with an owner reference set to itself`);
  if (owner["apiVersion"] !== "v1" || owner["kind"] !== "Node" || owner["name"] !== nodeName) {
    refuse(`node "${nodeName}" can only create pods with an owner reference set to itself`);
  }
  if (owner["controller"] !== true) refuse(`node "${nodeName}" can only create pods with a controller owner reference set to itself`);
  if (owner["blockOwnerDeletion"] === true) refuse(`node "${nodeName}" must not set blockOwnerDeletion on an owner reference`);
  const node = nodes(nodeName);
  if (node === undefined) throw notFound({ group: "", resource: "nodes" }, nodeName);
  const nodeUid = stringAt(objectAt(node, "metadata"), "uid") ?? "";
  if (owner["uid"] !== nodeUid) refuse(`node ${nodeName} UID mismatch: expected ${String(owner["uid"])} got ${nodeUid}`);
  if ((stringAt(objectAt(pod, "spec"), "serviceAccountName") ?? "") !== "") refuse(`node "${nodeName}" can not create pods that reference a service account`);
  if (referencedNames(pod, "secrets").size > 0) refuse(`node "${nodeName}" can not create pods that reference secrets`);
  if (referencedNames(pod, "configmaps").size > 0) refuse(`node "${nodeName}" can not create pods that reference configmaps`);
  const claims = (arrayAt(objectAt(pod, "spec"), "volumes") ?? []).some((volume) => isJsonObject(volume) && volume["persistentVolumeClaim"] !== undefined);
  if (claims) refuse(`node "${nodeName}" can not create pods that reference persistentvolumeclaims`);
}
