// The patchStrategy/patchMergeKey tags of the core types this server stores, so strategic merge
// patches merge exactly the lists the real server merges and replace the rest (containerStatuses, for
// one, is atomic: a patch replaces the whole list).
import type { PatchSchema } from "./strategic.ts";

const objectMeta: PatchSchema = {
  fields: {
    finalizers: { merge: {} },
    ownerReferences: { merge: { key: "uid" } },
  },
};

const container: PatchSchema = {
  fields: {
    ports: { merge: { key: "containerPort" } },
    env: { merge: { key: "name" } },
    volumeMounts: { merge: { key: "mountPath" } },
    volumeDevices: { merge: { key: "devicePath" } },
  },
};

const byName = (items?: PatchSchema): PatchSchema => ({ merge: { key: "name" }, ...(items === undefined ? {} : { items }) });

const pod: PatchSchema = {
  fields: {
    metadata: objectMeta,
    spec: {
      fields: {
        containers: byName(container),
        initContainers: byName(container),
        ephemeralContainers: byName(container),
        volumes: byName(),
        imagePullSecrets: byName(),
        hostAliases: { merge: { key: "ip" } },
      },
    },
    status: {
      fields: {
        conditions: { merge: { key: "type" } },
        podIPs: { merge: { key: "ip" } },
        hostIPs: { merge: { key: "ip" } },
        resourceClaimStatuses: byName(),
      },
    },
  },
};

const node: PatchSchema = {
  fields: {
    metadata: objectMeta,
    spec: { fields: { podCIDRs: { merge: {} } } },
    status: {
      fields: {
        conditions: { merge: { key: "type" } },
        addresses: { merge: { key: "type" } },
      },
    },
  },
};

const plainObject: PatchSchema = { fields: { metadata: objectMeta } };

export function patchSchemaFor(kind: string): PatchSchema {
  if (kind === "Pod") return pod;
  if (kind === "Node") return node;
  return plainObject;
}
