// What a real cluster lets a kubelet do, for requests from node identities (user system:node:<name>
// in group system:nodes): the Node authorizer (a fixed rule set, plus objects reachable in its graph
// from pods bound to the node: secrets, configmaps, persistent volume claims and volumes, service
// account tokens) and the NodeRestriction admission plugin (a node writes only its own Node and Lease,
// mirror pods, the status of pods bound to it, and tokens bound to those pods).
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

// The bootstrap policy's NodeRules, limited to the resources this server serves. Secrets, configmaps,
// persistent volume claims and volumes, service accounts and leases never reach these rules: the
// authorizer decides them itself.
const nodeRules: readonly NodeRule[] = [
  { group: "authentication.k8s.io", resource: "tokenreviews", verbs: ["create"] },
  { group: "authorization.k8s.io", resource: "subjectaccessreviews", verbs: ["create"] },
  { group: "authorization.k8s.io", resource: "localsubjectaccessreviews", verbs: ["create"] },
  { group: "", resource: "nodes", verbs: ["create", "get", "list", "watch", "update", "patch"] },
  { group: "", resource: "nodes/status", verbs: ["update", "patch"] },
  { group: "", resource: "pods", verbs: ["get", "list", "watch", "create", "delete"] },
  { group: "", resource: "pods/status", verbs: ["update", "patch"] },
  { group: "", resource: "pods/eviction", verbs: ["create"] },
  { group: "", resource: "events", verbs: ["create", "update", "patch"] },
  { group: "certificates.k8s.io", resource: "certificatesigningrequests", verbs: ["create", "get", "list", "watch"] },
];

/** The pods bound to a node (in one namespace, or in all with undefined), for the authorizer's graph. */
export type BoundPods = (nodeName: string, namespace: string | undefined) => JsonObject[];

/** What the authorizer's graph is built from: pods bound to nodes, and persistent volumes by name. */
export interface NodeGraph {
  boundPods: BoundPods;
  persistentVolume: (name: string) => JsonObject | undefined;
}

type GraphResource = "secrets" | "configmaps" | "persistentvolumeclaims" | "serviceaccounts";

function referencedNames(pod: JsonObject, resource: GraphResource): Set<string> {
  const names = new Set<string>();
  const add = (value: JsonValue | undefined): void => {
    if (typeof value === "string" && value !== "") names.add(value);
  };
  const spec = objectAt(pod, "spec");
  if (resource === "serviceaccounts") {
    add(spec?.["serviceAccountName"]);
    return names;
  }
  if (resource === "persistentvolumeclaims") {
    const podName = stringAt(objectAt(pod, "metadata"), "name") ?? "";
    for (const volume of arrayAt(spec, "volumes") ?? []) {
      if (!isJsonObject(volume)) continue;
      add(valueAtPath(volume, ["persistentVolumeClaim", "claimName"]));
      // A generic ephemeral volume's claim is named after the pod and the volume.
      if (isJsonObject(volume["ephemeral"])) add(`${podName}-${stringAt(volume, "name") ?? ""}`);
    }
    return names;
  }
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

/** The Node authorizer's verdict: allow, or no opinion with the reason it gives (often ""). */
export interface NodeDecision {
  allowed: boolean;
  reason: string;
}

const allow: NodeDecision = { allowed: true, reason: "" };
const noOpinion = (reason: string): NodeDecision => ({ allowed: false, reason });

function relatedToNode(nodeName: string, resource: GraphResource, attributes: RequestAttributes, graph: NodeGraph): NodeDecision {
  if (attributes.name === "") return noOpinion("No Object name found");
  const related = graph.boundPods(nodeName, attributes.namespace).some((pod) => referencedNames(pod, resource).has(attributes.name));
  return related ? allow : noOpinion(`no relationship found between node '${nodeName}' and this object`);
}

function persistentVolumeRelated(nodeName: string, attributes: RequestAttributes, graph: NodeGraph): NodeDecision {
  if (attributes.name === "") return noOpinion("No Object name found");
  const claim = objectAt(objectAt(graph.persistentVolume(attributes.name) ?? {}, "spec") ?? {}, "claimRef");
  const claimNamespace = stringAt(claim, "namespace") ?? "";
  const claimName = stringAt(claim, "name") ?? "";
  const related =
    claimName !== "" && graph.boundPods(nodeName, claimNamespace).some((pod) => referencedNames(pod, "persistentvolumeclaims").has(claimName));
  return related ? allow : noOpinion(`no relationship found between node '${nodeName}' and this object`);
}

function readNamespacedObject(nodeName: string, resource: GraphResource, attributes: RequestAttributes, graph: NodeGraph): NodeDecision {
  if (!["get", "list", "watch"].includes(attributes.verb)) return noOpinion("can only read resources of this type");
  if (attributes.subresource !== "") return noOpinion("cannot read subresource");
  if (attributes.namespace === "") return noOpinion("can only read namespaced object of this type");
  return relatedToNode(nodeName, resource, attributes, graph);
}

function getOnly(attributes: RequestAttributes, related: () => NodeDecision): NodeDecision {
  if (attributes.verb !== "get") return noOpinion("can only get individual resources of this type");
  if (attributes.subresource !== "") return noOpinion("cannot get subresource");
  return related();
}

function lease(nodeName: string, attributes: RequestAttributes): NodeDecision {
  if (!["get", "create", "update", "patch", "delete"].includes(attributes.verb)) {
    return noOpinion("can only get, create, update, patch, or delete a node lease");
  }
  if (attributes.namespace !== "kube-node-lease") return noOpinion(`can only access leases in the "kube-node-lease" system namespace`);
  // A create names no object yet; NodeRestriction checks the name of the lease being created.
  if (attributes.verb !== "create" && attributes.name !== nodeName) {
    return noOpinion("can only access node lease with the same name as the requesting node");
  }
  return allow;
}

/** The Node authorizer (without the 1.32 AuthorizeNodeWithSelectors limits on reading nodes and pods). */
export function nodeAuthorizerDecision(nodeName: string, attributes: RequestAttributes, graph: NodeGraph): NodeDecision {
  if (attributes.group === "") {
    switch (attributes.resource) {
      case "secrets":
      case "configmaps":
        return readNamespacedObject(nodeName, attributes.resource, attributes, graph);
      case "persistentvolumeclaims":
        if (attributes.subresource === "status") {
          if (!["update", "patch"].includes(attributes.verb)) return noOpinion("can only get/update/patch this type");
          return relatedToNode(nodeName, "persistentvolumeclaims", attributes, graph);
        }
        return getOnly(attributes, () => relatedToNode(nodeName, "persistentvolumeclaims", attributes, graph));
      case "persistentvolumes":
        return getOnly(attributes, () => persistentVolumeRelated(nodeName, attributes, graph));
      case "serviceaccounts":
        if (attributes.verb !== "create" || attributes.name === "") return noOpinion("can only create tokens for individual service accounts");
        if (attributes.subresource !== "token") return noOpinion("can only create token subresource of serviceaccount");
        return relatedToNode(nodeName, "serviceaccounts", attributes, graph);
      default:
        break;
    }
  }
  if (attributes.group === "coordination.k8s.io" && attributes.resource === "leases") return lease(nodeName, attributes);
  const resourcePath = attributes.subresource === "" ? attributes.resource : `${attributes.resource}/${attributes.subresource}`;
  const allowed = nodeRules.some((rule) => rule.group === attributes.group && rule.resource === resourcePath && rule.verbs.includes(attributes.verb));
  return allowed ? allow : noOpinion("");
}

function denial(user: UserInfo, attributes: RequestAttributes, reason: string): ApiError {
  const resourcePath = attributes.subresource === "" ? attributes.resource : `${attributes.resource}/${attributes.subresource}`;
  const scope = attributes.namespace === "" ? "at the cluster scope" : `in the namespace "${attributes.namespace}"`;
  const message = `User "${user.name}" cannot ${attributes.verb} resource "${resourcePath}" in API group "${attributes.group}" ${scope}`;
  return forbidden({ group: attributes.group, resource: attributes.resource }, attributes.name, reason === "" ? message : `${message}: ${reason}`);
}

/** The 403 the Node authorizer (with RBAC granting nodes nothing more) gives, or undefined to allow. */
export function authorizeNode(nodeName: string, user: UserInfo, attributes: RequestAttributes, graph: NodeGraph): ApiError | undefined {
  const decision = nodeAuthorizerDecision(nodeName, attributes, graph);
  return decision.allowed ? undefined : denial(user, attributes, decision.reason);
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

/** Reads a stored object, as NodeRestriction reads them from its informers. */
export type ObjectLookup = (resource: string, namespace: string, name: string) => JsonObject | undefined;

/**
 * NodeRestriction; `lookup` finds the Node a mirror pod's owner reference must match and the pod a
 * token request is bound to.
 */
export function nodeRestriction(lookup: ObjectLookup): AdmissionPlugin {
  const nodes = (name: string): JsonObject | undefined => lookup("nodes", "", name);
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
      case "persistentvolumeclaims":
        if (request.subresource !== "status") refuse("may only update PVC status");
        return admitClaimStatus(nodeName, request, refuse);
      case "serviceaccounts":
        if (request.operation !== "CREATE" || request.subresource !== "token") return;
        return admitTokenRequest(nodeName, request, lookup, refuse);
      default:
        return;
    }
  };
}

/** A node may change only status.capacity and status.conditions of a claim (what volume expansion reports). */
function admitClaimStatus(nodeName: string, request: AdmissionRequest, refuse: (reason: string) => never): void {
  if (request.operation !== "UPDATE") refuse(`unexpected operation "${request.operation}"`);
  const comparable = (claim: JsonObject | undefined): JsonObject => {
    const copy: JsonObject = { ...claim };
    copy["metadata"] = { ...objectAt(copy, "metadata") };
    delete (copy["metadata"] as JsonObject)["resourceVersion"];
    delete (copy["metadata"] as JsonObject)["managedFields"];
    const status: JsonObject = { ...objectAt(copy, "status") };
    delete status["capacity"];
    delete status["conditions"];
    copy["status"] = status;
    return copy;
  };
  const before = comparable(request.oldObject);
  const after = comparable(request.object);
  if (!jsonEqual(before, after)) {
    // The real message ends with a go-cmp diff; this names the differing top-level fields instead.
    const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((key) => !jsonEqual(before[key], after[key]));
    refuse(`node "${nodeName}" is not allowed to update fields other than status.capacity and status.conditions: ${fields.join(", ")}`);
  }
}

/** Tokens a node requests must be bound to a pod that runs on that node. */
function admitTokenRequest(nodeName: string, request: AdmissionRequest, lookup: ObjectLookup, refuse: (reason: string) => never): void {
  const reference = objectAt(objectAt(request.object ?? {}, "spec") ?? {}, "boundObjectRef");
  const podName = stringAt(reference, "name") ?? "";
  if (reference === undefined || reference["apiVersion"] !== "v1" || reference["kind"] !== "Pod" || podName === "") {
    refuse("node requested token not bound to a pod");
  }
  const uid = stringAt(reference, "uid") ?? "";
  if (uid === "") refuse("node requested token with a pod binding without a uid");
  const pod = lookup("pods", request.namespace, podName);
  if (pod === undefined) throw notFound({ group: "", resource: "pods" }, podName);
  if (uid !== stringAt(objectAt(pod, "metadata"), "uid")) {
    refuse(`the UID in the bound object reference (${uid}) does not match the UID in record. The object might have been deleted and then recreated`);
  }
  if (nodeNameOfPod(pod) !== nodeName) refuse("node requested token bound to a pod scheduled on a different node");
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
