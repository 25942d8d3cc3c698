// Probes under the compiled `vks serve` against the test API server: readiness reaches the pod's status
// and a failed liveness probe restarts the container with the kubelet's events.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { VKS_BINARY, haveSystemd, managerFlag, newStateDir, vks } from "../e2e/helpers.ts";
import { at, eventually } from "./helpers.ts";

const NODE = "probe-node";
const stateDir = newStateDir();
let cluster: RunningTestApiServer;
let serveProcess: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;

const condition = (pod: JsonObject | undefined, type: string) =>
  ((at(pod, "status", "conditions") ?? []) as JsonObject[]).find((entry) => entry["type"] === type)?.["status"];

describe.skipIf(!haveSystemd || !existsSync(VKS_BINARY))("probes under vks serve (compiled, real systemd, test API server)", () => {
  beforeAll(async () => {
    cluster = await startTestApiServer({ nodeName: NODE });
    serveProcess = Bun.spawn(
      [VKS_BINARY, "serve", "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, "--node-ip", "127.0.0.1", "--state-dir", stateDir, ...managerFlag],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } },
    );
    for (const stream of [serveProcess.stdout, serveProcess.stderr]) void stream.pipeTo(new WritableStream()).catch(() => undefined);
  });

  afterAll(async () => {
    serveProcess?.kill("SIGTERM");
    await serveProcess?.exited;
    const rows = JSON.parse((await vks(stateDir, ["units", "ls", "-o", "json", ...managerFlag])).stdout || "[]") as { unit: string }[];
    for (const row of rows) Bun.spawnSync(["systemctl", ...managerFlag, "stop", row.unit]);
    await cluster?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("readiness sets ready and Ready; a failing liveness probe restarts the container with Unhealthy and Killing events", async () => {
    const ready = join(stateDir, "ready");
    const alive = join(stateDir, "alive");
    await cluster.admin.create("pods", {
      metadata: { name: "probed", namespace: "default" },
      spec: {
        nodeName: NODE,
        containers: [
          {
            name: "main",
            image: "/bin/sh",
            args: ["-c", `touch ${alive}; exec sleep infinity`],
            readinessProbe: { exec: { command: ["test", "-e", ready] }, periodSeconds: 1 },
            livenessProbe: { exec: { command: ["test", "-e", alive] }, periodSeconds: 1, failureThreshold: 2 },
          },
        ],
      },
    });
    const running = await cluster.admin.waitFor("pods", "probed", "default", (p) => at(p, "status", "containerStatuses", 0, "state", "running") !== undefined);
    expect(at(running, "status", "containerStatuses", 0, "ready")).toBe(false);
    expect(condition(running, "Ready")).toBe("False");

    writeFileSync(ready, "");
    const readyPod = await cluster.admin.waitFor("pods", "probed", "default", (p) => condition(p, "Ready") === "True");
    expect(at(readyPod, "status", "containerStatuses", 0, "ready")).toBe(true);
    expect(condition(readyPod, "ContainersReady")).toBe("True");

    // Running means the shell was started, not that it has run its touch yet (a CI run under load
    // removed the file before it existed).
    await eventually("the container to write its alive file", async () => existsSync(alive) || undefined);
    rmSync(alive);
    const restarted = await cluster.admin.waitFor(
      "pods",
      "probed",
      "default",
      (p) => Number(at(p, "status", "containerStatuses", 0, "restartCount")) >= 1 && at(p, "status", "containerStatuses", 0, "state", "running") !== undefined,
    );
    expect(at(restarted, "status", "containerStatuses", 0, "lastState", "terminated", "exitCode")).toBe(143);
    const events = await eventually("the liveness events", async () => {
      const list = (await cluster.admin.list("events", { namespace: "default" })).filter((event) => at(event, "involvedObject", "name") === "probed");
      return list.some((event) => event["reason"] === "Killing") ? list : undefined;
    });
    const unhealthy = events.find((event) => event["reason"] === "Unhealthy" && String(event["message"]).startsWith("Liveness probe failed"));
    expect(unhealthy?.["type"]).toBe("Warning");
    expect(at(unhealthy, "involvedObject", "fieldPath")).toBe("spec.containers{main}");
    const killing = events.find((event) => event["reason"] === "Killing");
    expect(killing?.["message"]).toBe("Container main failed liveness probe, will be restarted");
    await cluster.admin.delete("pods", "probed", "default");
  }, 120_000);
});
