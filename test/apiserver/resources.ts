// The resource types this server knows, described the way discovery and request routing need them.
import type { GroupResource } from "./status.ts";

export type Subresource = "status" | "binding" | "approval" | "token" | "log" | "exec" | "attach" | "portforward" | "proxy";

/** Subresources that connect the client to a kubelet rather than read or write the object. */
export const connectSubresources: ReadonlySet<string> = new Set(["log", "exec", "attach", "portforward", "proxy"]);

export interface ResourceType extends GroupResource {
  version: string;
  kind: string;
  listKind: string;
  singular: string;
  namespaced: boolean;
  shortNames: readonly string[];
  subresources: readonly Subresource[];
  /** Names are DNS-1123 labels (namespaces) rather than subdomains (everything else here). */
  nameIsLabel: boolean;
  /** Any non-empty name is valid, as for CertificateSigningRequests. */
  namesUnrestricted?: boolean;
  /** The only verbs served, for create-only review types; all collection verbs when left out. */
  verbs?: readonly string[];
  /**
   * Field selector labels beyond metadata.name (and metadata.namespace for namespaced types), each
   * mapped to the path it reads; the real server rejects any label not listed for the type.
   */
  fieldLabels: Readonly<Record<string, readonly string[]>>;
}

const collectionVerbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"] as const;
export const statusVerbs = ["get", "patch", "update"] as const;

export function resourceVerbs(type?: ResourceType): readonly string[] {
  return type?.verbs ?? collectionVerbs;
}

/**
 * A review type (TokenReview, SubjectAccessReview): cluster-scoped and create-only, as nothing is stored;
 * its names follow the kind as the real types' do (`tokenreviews`, `tokenreview`, `TokenReviewList`).
 */
function reviewType(group: string, kind: string): ResourceType {
  const singular = kind.toLowerCase();
  return {
    group,
    version: "v1",
    resource: `${singular}s`,
    kind,
    listKind: `${kind}List`,
    singular,
    namespaced: false,
    shortNames: [],
    subresources: [],
    nameIsLabel: false,
    verbs: ["create"],
    fieldLabels: {},
  };
}

export const resourceTypes: readonly ResourceType[] = [
  {
    group: "",
    version: "v1",
    resource: "namespaces",
    kind: "Namespace",
    listKind: "NamespaceList",
    singular: "namespace",
    namespaced: false,
    shortNames: ["ns"],
    subresources: ["status"],
    nameIsLabel: true,
    fieldLabels: { "status.phase": ["status", "phase"] },
  },
  {
    group: "",
    version: "v1",
    resource: "nodes",
    kind: "Node",
    listKind: "NodeList",
    singular: "node",
    namespaced: false,
    shortNames: ["no"],
    subresources: ["status", "proxy"],
    nameIsLabel: false,
    fieldLabels: { "spec.unschedulable": ["spec", "unschedulable"] },
  },
  {
    group: "",
    version: "v1",
    resource: "pods",
    kind: "Pod",
    listKind: "PodList",
    singular: "pod",
    namespaced: true,
    shortNames: ["po"],
    subresources: ["status", "binding", "log", "exec", "attach", "portforward"],
    nameIsLabel: false,
    fieldLabels: {
      "spec.nodeName": ["spec", "nodeName"],
      "spec.restartPolicy": ["spec", "restartPolicy"],
      "spec.schedulerName": ["spec", "schedulerName"],
      "spec.serviceAccountName": ["spec", "serviceAccountName"],
      "spec.hostNetwork": ["spec", "hostNetwork"],
      "status.phase": ["status", "phase"],
      "status.podIP": ["status", "podIP"],
      "status.nominatedNodeName": ["status", "nominatedNodeName"],
    },
  },
  {
    group: "",
    version: "v1",
    resource: "events",
    kind: "Event",
    listKind: "EventList",
    singular: "event",
    namespaced: true,
    shortNames: ["ev"],
    subresources: [],
    nameIsLabel: false,
    fieldLabels: {
      "involvedObject.kind": ["involvedObject", "kind"],
      "involvedObject.namespace": ["involvedObject", "namespace"],
      "involvedObject.name": ["involvedObject", "name"],
      "involvedObject.uid": ["involvedObject", "uid"],
      "involvedObject.apiVersion": ["involvedObject", "apiVersion"],
      "involvedObject.resourceVersion": ["involvedObject", "resourceVersion"],
      "involvedObject.fieldPath": ["involvedObject", "fieldPath"],
      reason: ["reason"],
      reportingComponent: ["reportingComponent"],
      source: ["source", "component"],
      type: ["type"],
    },
  },
  {
    group: "",
    version: "v1",
    resource: "configmaps",
    kind: "ConfigMap",
    listKind: "ConfigMapList",
    singular: "configmap",
    namespaced: true,
    shortNames: ["cm"],
    subresources: [],
    nameIsLabel: false,
    fieldLabels: {},
  },
  {
    group: "",
    version: "v1",
    resource: "secrets",
    kind: "Secret",
    listKind: "SecretList",
    singular: "secret",
    namespaced: true,
    shortNames: [],
    subresources: [],
    nameIsLabel: false,
    fieldLabels: { type: ["type"] },
  },
  {
    group: "",
    version: "v1",
    resource: "serviceaccounts",
    kind: "ServiceAccount",
    listKind: "ServiceAccountList",
    singular: "serviceaccount",
    namespaced: true,
    shortNames: ["sa"],
    subresources: ["token"],
    nameIsLabel: false,
    fieldLabels: {},
  },
  {
    group: "",
    version: "v1",
    resource: "persistentvolumeclaims",
    kind: "PersistentVolumeClaim",
    listKind: "PersistentVolumeClaimList",
    singular: "persistentvolumeclaim",
    namespaced: true,
    shortNames: ["pvc"],
    subresources: ["status"],
    nameIsLabel: false,
    fieldLabels: {},
  },
  {
    group: "",
    version: "v1",
    resource: "persistentvolumes",
    kind: "PersistentVolume",
    listKind: "PersistentVolumeList",
    singular: "persistentvolume",
    namespaced: false,
    shortNames: ["pv"],
    subresources: ["status"],
    nameIsLabel: false,
    fieldLabels: {},
  },
  {
    group: "coordination.k8s.io",
    version: "v1",
    resource: "leases",
    kind: "Lease",
    listKind: "LeaseList",
    singular: "lease",
    namespaced: true,
    shortNames: [],
    subresources: [],
    nameIsLabel: false,
    fieldLabels: {},
  },
  {
    group: "certificates.k8s.io",
    version: "v1",
    resource: "certificatesigningrequests",
    kind: "CertificateSigningRequest",
    listKind: "CertificateSigningRequestList",
    singular: "certificatesigningrequest",
    namespaced: false,
    shortNames: ["csr"],
    subresources: ["approval", "status"],
    nameIsLabel: false,
    namesUnrestricted: true,
    fieldLabels: { "spec.signerName": ["spec", "signerName"] },
  },
  reviewType("authentication.k8s.io", "TokenReview"),
  reviewType("authorization.k8s.io", "SubjectAccessReview"),
];

export function apiVersionOf(type: ResourceType): string {
  return type.group === "" ? type.version : `${type.group}/${type.version}`;
}

export function findResourceType(group: string, version: string, resource: string): ResourceType | undefined {
  return resourceTypes.find((type) => type.group === group && type.version === version && type.resource === resource);
}

/** Looks a type up by its plural name, e.g. for the admin API where the group is implied. */
export function resourceTypeNamed(resource: string): ResourceType | undefined {
  return resourceTypes.find((type) => type.resource === resource);
}

export function groupVersions(): { group: string; version: string }[] {
  const seen = new Map<string, { group: string; version: string }>();
  for (const type of resourceTypes) seen.set(`${type.group}/${type.version}`, { group: type.group, version: type.version });
  return [...seen.values()];
}
