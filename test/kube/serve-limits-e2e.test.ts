// `vks serve` and resources: the node's allocatable less --system-reserved, its vks.io/LimitsEnforced
// condition, the kubelet's admission (OutOfcpu) and activeDeadlineSeconds, against the test API server.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { availableParallelism } from "node:os";
import { existsSync, rmSync } from "node:fs";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { VKS_BINARY, haveSystemd, managerFlag, newStateDir, vks } from "../e2e/helpers.ts";
import { at, phaseOf, podEventsOnce } from "./helpers.ts";

const NODE = "limits-node";
const stateDir = newStateDir();
let cluster: RunningTestApiServer;
let serveProcess: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
const userManager = managerFlag.includes("--user");

function pod(name: string, spec: JsonObject): JsonObject {
  return { metadata: { name, namespace: "default" }, spec: { nodeName: NODE, ...spec } };
}

describe.skipIf(!haveSystemd || !existsSync(VKS_BINARY))("vks serve: allocatable, admission, deadlines", () => {
  beforeAll(async () => {
    cluster = await startTestApiServer({ nodeName: NODE });
    serveProcess = Bun.spawn(
      [VKS_BINARY, "serve", "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, "--node-ip", "127.0.0.1", "--kubelet-port", "0",
        "--system-reserved", "cpu=500m,memory=64Mi", "--node-status-update-frequency", "1", "--state-dir", stateDir, ...managerFlag],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } },
    );
  });

  afterAll(async () => {
    serveProcess?.kill("SIGTERM");
    await serveProcess?.exited;
    await vks(stateDir, ["units", "gc", ...managerFlag]);
    await cluster?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("allocatable leaves out --system-reserved; the node says whether limits are enforced", async () => {
    const node = await cluster.admin.waitFor("nodes", NODE, "", (n) =>
      ((at(n, "status", "conditions") ?? []) as JsonObject[]).some((c) => c["type"] === "vks.io/LimitsEnforced"),
    );
    expect(at(node, "status", "allocatable", "cpu")).toBe(`${availableParallelism() * 1000 - 500}m`);
    const condition = ((at(node, "status", "conditions") ?? []) as JsonObject[]).find((c) => c["type"] === "vks.io/LimitsEnforced");
    expect(condition?.["status"]).toBe(userManager ? "False" : "True");
  }, 30_000);

  test("a pod whose requests do not fit is Failed with OutOfcpu and the kubelet's message", async () => {
    await cluster.admin.create(
      "pods",
      pod("greedy", { containers: [{ name: "main", image: "/bin/sleep", args: ["infinity"], resources: { requests: { cpu: "1000" } } }] }),
    );
    const failed = await cluster.admin.waitFor("pods", "greedy", "default", (p) => phaseOf(p) === "Failed");
    expect(at(failed, "status", "reason")).toBe("OutOfcpu");
    expect(at(failed, "status", "message")).toBe(
      `Pod was rejected: Node didn't have enough resource: cpu, requested: 1000000, used: 0, capacity: ${availableParallelism() * 1000 - 500}`,
    );
    await podEventsOnce(cluster, "greedy", "OutOfcpu");
  }, 30_000);

  test("limits the manager cannot enforce are a Warning event on the pod; enforced ones are not", async () => {
    await cluster.admin.create(
      "pods",
      pod("capped", { containers: [{ name: "main", image: "/bin/sleep", args: ["infinity"], resources: { limits: { memory: "64Mi" } } }] }),
    );
    await cluster.admin.waitFor("pods", "capped", "default", (p) => phaseOf(p) === "Running");
    if (userManager) await podEventsOnce(cluster, "capped", "LimitsNotEnforced");
    else {
      // It would have been recorded before Started.
      const events = await podEventsOnce(cluster, "capped", "Started");
      expect(events.some((event) => event["reason"] === "LimitsNotEnforced")).toBe(false);
    }
    await cluster.admin.delete("pods", "capped", "default");
  }, 30_000);

  test("activeDeadlineSeconds: Failed with DeadlineExceeded, the container stopped", async () => {
    await cluster.admin.create("pods", pod("bounded", { activeDeadlineSeconds: 2, containers: [{ name: "main", image: "/bin/sleep", args: ["infinity"] }] }));
    const failed = await cluster.admin.waitFor("pods", "bounded", "default", (p) => phaseOf(p) === "Failed");
    expect(at(failed, "status", "reason")).toBe("DeadlineExceeded");
    expect(at(failed, "status", "message")).toBe("Pod was active on the node longer than the specified deadline");
    expect(at(failed, "status", "containerStatuses", 0, "state", "terminated")).toBeDefined();
    const units = JSON.parse((await vks(stateDir, ["units", "ls", "-o", "json", ...managerFlag])).stdout) as { pod: string; activeState: string }[];
    expect(units.filter((row) => row.pod === "bounded" && row.activeState === "active")).toEqual([]);
  }, 30_000);
});
