// How serve starts: the errors a user gets for a bad kubeconfig, an unreachable server, rejected
// credentials and missing permissions; adoption of pods already running; re-registration of a node.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode, VksError } from "../../internal/errors.ts";
import { loadKubeConfig } from "../../internal/kube/kubeconfig.ts";
import { listPodsForThisNode } from "../../internal/kube/node-pods.ts";
import { serve } from "../../internal/kube/serve.ts";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { FakeProvider } from "./fake-provider.ts";
import { at, phaseOf, podManifest, serveOptions, startServe } from "./helpers.ts";

let cluster: RunningTestApiServer;
const scratch = mkdtempSync(join(tmpdir(), "vks-kube-startup-"));

beforeAll(async () => {
  cluster = await startTestApiServer({ nodeName: "start-node", tokens: [{ token: "good-token", user: "token-user", groups: ["system:masters"] }] });
});

afterAll(async () => {
  await cluster?.stop();
});

/** Runs serve expecting it to fail at start, and returns the error. */
async function startupError(overrides: Parameters<typeof serveOptions>[1]): Promise<VksError> {
  const abort = new AbortController();
  try {
    await serve({ ...serveOptions(cluster, overrides), openProvider: async () => new FakeProvider() }, abort.signal);
  } catch (err) {
    if (err instanceof VksError) return err;
    throw err;
  } finally {
    abort.abort();
  }
  throw new Error("serve returned instead of failing");
}

describe("kubeconfig", () => {
  test("a missing --kubeconfig file is named, with exit code 66", () => {
    const err = (() => {
      try {
        loadKubeConfig(join(scratch, "nope.kubeconfig"));
      } catch (e) {
        return e as VksError;
      }
      throw new Error("no error");
    })();
    expect(err.message).toContain("nope.kubeconfig");
    expect(err.exitCode).toBe(ExitCode.notFound);
    expect(err.hint).toContain("--kubeconfig");
  });

  test("$KUBECONFIG is used when --kubeconfig is absent", () => {
    const loaded = loadKubeConfig(undefined, { KUBECONFIG: cluster.kubeconfigPath });
    expect(loaded.server).toBe(cluster.url);
    expect(loaded.source).toBe(cluster.kubeconfigPath);
  });

  test("a file that is not a kubeconfig is refused", () => {
    const path = join(scratch, "garbage.kubeconfig");
    writeFileSync(path, "clusters: [not, a, kubeconfig\n");
    expect(() => loadKubeConfig(path)).toThrow(VksError);
  });
});

describe("API server access", () => {
  test("an unreachable server fails after the start-up timeout with exit code 69", async () => {
    const path = join(scratch, "dead.kubeconfig");
    const text = await Bun.file(cluster.kubeconfigPath).text();
    writeFileSync(path, text.replace(cluster.url, "https://127.0.0.1:1"));
    const err = await startupError({ kubeconfig: path, startupTimeoutSeconds: 1 });
    expect(err.exitCode).toBe(ExitCode.unavailable);
    expect(err.message).toContain("cannot reach the API server at https://127.0.0.1:1");
  });

  test("rejected credentials (401) fail at once with exit code 77", async () => {
    const path = join(scratch, "bad-token.kubeconfig");
    writeFileSync(path, (await Bun.file(cluster.tokenKubeconfigPaths["token-user"] as string).text()).replace("good-token", "wrong-token"));
    const err = await startupError({ kubeconfig: path, startupTimeoutSeconds: 30 });
    expect(err.exitCode).toBe(ExitCode.permission);
    expect(err.message).toContain("401");
  });

  test("a missing permission (403) names the verb and resource", async () => {
    await cluster.admin.setDenyRules([{ users: ["system:node:start-node"], verbs: ["list"], resources: ["pods"] }]);
    try {
      const err = await startupError({});
      expect(err.exitCode).toBe(ExitCode.permission);
      expect(err.message).toContain("list pods");
      expect(err.hint).toContain('"list" on "pods"');
    } finally {
      await cluster.admin.setDenyRules([]);
    }
  });

  test("a bearer-token kubeconfig works", async () => {
    const pods = await listPodsForThisNode({ kubeconfig: cluster.tokenKubeconfigPaths["token-user"], nodeName: "start-node" });
    expect(pods).toEqual([]);
  });
});

describe("restart", () => {
  test("pods already running are adopted, not re-created; others are created", async () => {
    const adoptedPod = await cluster.admin.create("pods", podManifest("adopted", "start-node"));
    await cluster.admin.create("pods", podManifest("fresh", "start-node"));
    await cluster.admin.create("pods", { ...podManifest("finished", "start-node") });
    await cluster.admin.patch("pods", "finished", "default", { status: { phase: "Succeeded" } }, "merge", "status");

    const provider = new FakeProvider();
    provider.adopt({ metadata: { name: "adopted", namespace: "default", uid: at(adoptedPod, "metadata", "uid") as string }, spec: { containers: [{ name: "main", image: "/bin/sleep" }] } });
    const running = startServe(cluster, provider, { nodeName: "start-node" });
    try {
      await cluster.admin.waitFor("pods", "fresh", "default", (p) => phaseOf(p) === "Running");
      await cluster.admin.waitFor("pods", "adopted", "default", (p) => phaseOf(p) === "Running");
      expect(provider.reconciled?.map((p) => p.metadata?.name).sort()).toEqual(["adopted", "finished", "fresh"]);
      expect(provider.calls).not.toContain("create default/adopted");
      expect(provider.calls).not.toContain("create default/finished");
      await expect(listPodsForThisNode({ kubeconfig: cluster.kubeconfigPath, nodeName: "start-node" }).then((pods) => pods.length)).resolves.toBe(3);
    } finally {
      await running.stop();
    }
    for (const name of ["adopted", "fresh", "finished"]) await cluster.admin.remove("pods", name);
  });

  test("an existing node keeps others' labels and taints; --disable-taint removes only vks' taint", async () => {
    await cluster.admin.create("nodes", {
      metadata: { name: "old-node", labels: { "example.com/rack": "r1" } },
      spec: { taints: [{ key: "virtual-kubelet.io/provider", value: "vks", effect: "NoSchedule" }, { key: "example.com/dedicated", value: "x", effect: "NoExecute" }] },
    });
    const running = startServe(cluster, new FakeProvider(), { nodeName: "old-node", taint: false });
    try {
      const node = await cluster.admin.waitFor("nodes", "old-node", "", (n) =>
        ((at(n, "status", "conditions") ?? []) as JsonObject[]).some((c) => c["type"] === "Ready"),
      );
      expect(at(node, "metadata", "labels", "example.com/rack")).toBe("r1");
      expect(at(node, "metadata", "labels", "type")).toBe("virtual-kubelet");
      expect(at(node, "spec", "taints")).toEqual([{ key: "example.com/dedicated", value: "x", effect: "NoExecute" }]);
    } finally {
      await running.stop();
    }
    expect(running.error()).toBeUndefined();
  });
});
