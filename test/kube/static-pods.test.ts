// The static pod and mirror pod a manifest file becomes (pure functions of static-pods.ts).
import { describe, expect, test } from "bun:test";
import type { V1Pod } from "@kubernetes/client-node";
import { CONFIG_HASH, CONFIG_MIRROR, CONFIG_SOURCE, isMirrorPod, isStaticPod, mirrorPodOf, staticPodFrom, staticPodHash, staticPodProblems } from "../../internal/kube/static-pods.ts";

const pod = (spec: V1Pod["spec"], name = "etcd"): V1Pod => ({ apiVersion: "v1", kind: "Pod", metadata: { name, labels: { tier: "control-plane" } }, spec });
const simple = pod({ containers: [{ name: "main", image: "/bin/sleep", args: ["infinity"] }] });
const seen = new Date("2026-01-01T00:00:00Z");

describe("static pods", () => {
  test("named <name>-<node>, uid = hash of pod, node and file, with the kubelet's annotations", () => {
    const made = staticPodFrom(simple, "n1", "/etc/vks/manifests/etcd.yaml", seen);
    expect(made.metadata?.name).toBe("etcd-n1");
    expect(made.metadata?.namespace).toBe("default");
    expect(made.metadata?.uid).toMatch(/^[0-9a-f]{32}$/);
    expect(made.metadata?.annotations).toEqual({ [CONFIG_HASH]: made.metadata?.uid ?? "", [CONFIG_SOURCE]: "file", "kubernetes.io/config.seen": seen.toISOString() });
    expect(made.spec?.nodeName).toBe("n1");
    expect(isStaticPod(made)).toBe(true);
    expect(isMirrorPod(made)).toBe(false);
  });

  test("the hash changes with the content, the node and the file, not with key order", () => {
    const base = staticPodHash(simple, "n1", "/m/etcd.yaml");
    expect(staticPodHash(pod({ containers: [{ name: "main", image: "/bin/sleep", args: ["60"] }] }), "n1", "/m/etcd.yaml")).not.toBe(base);
    expect(staticPodHash(simple, "n2", "/m/etcd.yaml")).not.toBe(base);
    expect(staticPodHash(simple, "n1", "/m/other.yaml")).not.toBe(base);
    const reordered: V1Pod = { spec: simple.spec, metadata: { labels: { tier: "control-plane" }, name: "etcd" }, kind: "Pod", apiVersion: "v1" };
    expect(staticPodHash(reordered, "n1", "/m/etcd.yaml")).toBe(base);
  });

  test("the mirror pod: config.mirror = the hash, owned by the Node as controller, no uid of its own yet", () => {
    const made = staticPodFrom(simple, "n1", "/m/etcd.yaml", seen);
    const mirror = mirrorPodOf(made, { name: "n1", uid: "node-uid" });
    expect(mirror.metadata?.uid).toBeUndefined();
    expect(mirror.metadata?.annotations?.[CONFIG_MIRROR]).toBe(made.metadata?.uid ?? "");
    expect(mirror.metadata?.ownerReferences).toEqual([{ apiVersion: "v1", kind: "Node", name: "n1", uid: "node-uid", controller: true }]);
    expect(mirror.spec).toEqual(made.spec);
    expect(isMirrorPod(mirror)).toBe(true);
    expect(isStaticPod(mirror)).toBe(false);
  });

  test("references to API objects are refused with their field (NodeRestriction would refuse the mirror)", () => {
    const problems = staticPodProblems(
      pod({
        serviceAccountName: "builder",
        containers: [{ name: "main", image: "/bin/true", env: [{ name: "X", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }], envFrom: [{ configMapRef: { name: "c" } }] }],
        volumes: [{ name: "v", secret: { secretName: "s" } }, { name: "e", emptyDir: {} }],
      }),
    );
    expect(problems.map((problem) => problem.path)).toEqual(["spec.serviceAccountName", "spec.containers[0].envFrom[0]", "spec.containers[0].env[0].valueFrom", "spec.volumes[0]"]);
    expect(staticPodProblems(simple)).toEqual([]);
  });
});
