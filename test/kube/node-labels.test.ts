import { describe, expect, test } from "bun:test";
import { ApiException } from "@kubernetes/client-node";
import { ExitCode } from "../../internal/errors.ts";
import { toKubeApiError } from "../../internal/kube/api-error.ts";
import { nodeMaySetLabel, parseNodeLabels } from "../../internal/kube/node-labels.ts";
import { vksErrorOf } from "../vks-error.ts";


describe("--node-labels", () => {
  test("parses k=v lists, empty values included", () => {
    expect(parseNodeLabels("example.com/rack=r1, disk=ssd,gpu=")).toEqual({ "example.com/rack": "r1", disk: "ssd", gpu: "" });
    expect(parseNodeLabels(undefined)).toEqual({});
    expect(parseNodeLabels("")).toEqual({});
  });

  test("allows what NodeRestriction lets a node set on itself", () => {
    for (const key of ["kubernetes.io/hostname", "node.kubernetes.io/instance-type", "node.kubernetes.io/exclude-from-external-load-balancers", "kubelet.kubernetes.io/x", "topology.kubernetes.io/zone", "example.com/x", "plain"]) {
      expect(nodeMaySetLabel(key)).toBe(true);
    }
    for (const key of ["kubernetes.io/role", "node-role.kubernetes.io/agent", "k8s.io/x", "foo.k8s.io/x", "node-restriction.kubernetes.io/x"]) {
      expect(nodeMaySetLabel(key)).toBe(false);
    }
  });

  test("refuses restricted keys with exit 2, naming the key and the allowed prefixes", () => {
    const err = vksErrorOf(() => parseNodeLabels("ok=1,node-role.kubernetes.io/agent=,kubernetes.io/role=agent"));
    expect(err.exitCode).toBe(ExitCode.usage);
    expect(err.message).toContain("node-role.kubernetes.io/agent, kubernetes.io/role");
    expect(err.message).toContain("kubelet.kubernetes.io, node.kubernetes.io");
    expect(err.hint).toContain("kubectl label node NAME node-role.kubernetes.io/agent=");
  });

  test("refuses malformed entries, keys and values", () => {
    expect(vksErrorOf(() => parseNodeLabels("novalue")).message).toContain('"novalue" is not key=value');
    expect(vksErrorOf(() => parseNodeLabels("Bad_Prefix/x=1")).message).toContain("prefix");
    expect(vksErrorOf(() => parseNodeLabels("x=" + "v".repeat(64))).message).toContain("invalid value");
  });
});

describe("403 hints", () => {
  const forbidden = (message: string) => new ApiException(403, "Forbidden", JSON.stringify({ kind: "Status", status: "Failure", reason: "Forbidden", message }), {});

  test("an admission refusal blames NodeRestriction, not RBAC, and quotes the server", () => {
    const message = 'nodes "vks-test" is forbidden: node "vks-test" is not allowed to set the following labels: kubernetes.io/role';
    const err = toKubeApiError(forbidden(message), { verb: "create", resource: "nodes", name: "vks-test" }, "https://api");
    expect(err.message).toContain(message);
    expect(err.hint).toContain("NodeRestriction");
    expect(err.hint).not.toContain("grant");
  });

  test("an authorizer refusal asks for the RBAC rule", () => {
    const message = 'pods is forbidden: User "system:node:n" cannot list resource "pods" in API group "" at the cluster scope';
    const err = toKubeApiError(forbidden(message), { verb: "list", resource: "pods" }, "https://api");
    expect(err.hint).toContain('grant the kubeconfig\'s user "list" on "pods"');
  });
});
