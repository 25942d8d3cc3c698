import type { V1Pod } from "@kubernetes/client-node";
import { expect, test } from "bun:test";
import { chooseContainer } from "../../internal/actions/pod-exec.ts";

const pod = (annotations?: Record<string, string>): V1Pod => ({
  metadata: { name: "web", ...(annotations ? { annotations } : {}) },
  spec: { containers: [{ name: "app" }, { name: "proxy" }] },
});

test("-c wins, then kubectl's default-container annotation, then the first container (with kubectl's notice)", () => {
  expect(chooseContainer(pod(), "proxy")).toEqual({ container: "proxy" });
  expect(chooseContainer(pod({ "kubectl.kubernetes.io/default-container": "proxy" }), undefined)).toEqual({ container: "proxy" });
  expect(chooseContainer(pod({ "kubectl.kubernetes.io/default-container": "gone" }), undefined)).toEqual({
    container: "app",
    notice: 'Defaulted container "app" out of: app, proxy',
  });
  expect(chooseContainer({ metadata: { name: "one" }, spec: { containers: [{ name: "only" }] } }, undefined)).toEqual({ container: "only" });
});
