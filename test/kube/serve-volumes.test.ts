// The compiled `vks serve` against the test API server, next to a real systemd manager: a pod's
// configMap volume waits for its ConfigMap (ContainerCreating, FailedMount with the kubelet's text),
// starts once it exists, and follows an edit of it through `..data`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { VKS_BINARY, eventually, haveSystemd, managerFlag, newStateDir, vks } from "../e2e/helpers.ts";
import { at, phaseOf } from "./helpers.ts";

const NODE = "volumes-node";
const stateDir = newStateDir();
let cluster: RunningTestApiServer;
let serveProcess: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;

describe.skipIf(!haveSystemd || !existsSync(VKS_BINARY) || process.geteuid?.() !== 0)("vks serve: volumes (compiled, real systemd, test API server)", () => {
  beforeAll(async () => {
    cluster = await startTestApiServer({ nodeName: NODE });
    serveProcess = Bun.spawn(
      [VKS_BINARY, "serve", "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, "--node-ip", "127.0.0.1", "--state-dir", stateDir, ...managerFlag],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } },
    );
  });

  afterAll(async () => {
    serveProcess?.kill("SIGTERM");
    await serveProcess?.exited;
    const listed = await vks(stateDir, ["units", "ls", "-o", "json", ...managerFlag]).catch(() => undefined);
    for (const row of listed?.exitCode === 0 ? (JSON.parse(listed.stdout) as { unit: string }[]) : []) {
      Bun.spawnSync(["systemctl", ...managerFlag, "stop", row.unit]);
    }
    await cluster?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }, 60_000);

  test("a missing ConfigMap holds the pod in ContainerCreating with FailedMount; it starts once it exists and follows edits", async () => {
    const seen = join(stateDir, "seen");
    const mountPath = join(stateDir, "mnt", "config");
    await cluster.admin.create("pods", {
      metadata: { name: "follower", namespace: "default" },
      spec: {
        nodeName: NODE,
        volumes: [
          { name: "config", configMap: { name: "later" } },
          { name: "seen", hostPath: { path: seen, type: "DirectoryOrCreate" } },
        ],
        containers: [
          {
            name: "main",
            image: "/bin/sh",
            args: ["-c", `while :; do cat ${mountPath}/value > ${seen}/value.tmp && mv ${seen}/value.tmp ${seen}/value; sleep 0.2; done`],
            volumeMounts: [
              { name: "config", mountPath },
              { name: "seen", mountPath: seen },
            ],
          },
        ],
      },
    });
    const waiting = await cluster.admin.waitFor("pods", "follower", "default", (p) => at(p, "status", "containerStatuses", 0, "state", "waiting", "reason") === "ContainerCreating");
    expect(phaseOf(waiting)).toBe("Pending");
    const failedMount = await eventually("a FailedMount event", async () => {
      const events = await cluster.admin.list("events", { namespace: "default" });
      return events.find((event: JsonObject) => at(event, "involvedObject", "name") === "follower" && event["reason"] === "FailedMount");
    });
    expect(failedMount["message"]).toBe('MountVolume.SetUp failed for volume "config" : configmap "later" not found');

    await cluster.admin.create("configmaps", { metadata: { name: "later", namespace: "default" }, data: { value: "one" } });
    await cluster.admin.waitFor("pods", "follower", "default", (p) => phaseOf(p) === "Running");
    await eventually("the first value", async () => existsSync(join(seen, "value")) && (await Bun.file(join(seen, "value")).text()) === "one", 300);

    const current = await cluster.admin.get("configmaps", "later", "default");
    await cluster.admin.update("configmaps", { ...current, data: { value: "two" } } as JsonObject);
    // The kubelet's sync period: about a minute.
    await eventually("the edited value", async () => (await Bun.file(join(seen, "value")).text()) === "two", 900);

    await cluster.admin.delete("pods", "follower", "default", { gracePeriodSeconds: 2 });
    await cluster.admin.waitFor("pods", "follower", "default", (p) => p === undefined);
    expect(existsSync(join(stateDir, "volumes"))).toBe(true);
    await eventually("the pod's volume directory removed", async () => existsSync(join(stateDir, "volumes")) && (await Array.fromAsync(new Bun.Glob("*").scan({ cwd: join(stateDir, "volumes"), onlyFiles: false }))).length === 0);
  }, 150_000);

  test("the default kube-api-access volume: a TokenRequest token bound to the pod that the API server's TokenReview accepts, the root CA and the namespace", async () => {
    const seen = join(stateDir, "token-seen");
    const mountPath = join(stateDir, "mnt", "serviceaccount");
    await cluster.admin.create("pods", {
      metadata: { name: "caller", namespace: "default" },
      spec: {
        nodeName: NODE,
        serviceAccountName: "default",
        restartPolicy: "Never",
        volumes: [
          {
            // What the ServiceAccount admission plugin adds to every pod.
            name: "kube-api-access-abcde",
            projected: {
              defaultMode: 420,
              sources: [
                { serviceAccountToken: { expirationSeconds: 3607, path: "token" } },
                { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
                { downwardAPI: { items: [{ path: "namespace", fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" } }] } },
              ],
            },
          },
          { name: "seen", hostPath: { path: seen, type: "DirectoryOrCreate" } },
        ],
        containers: [
          {
            name: "main",
            image: "/bin/sh",
            args: ["-c", `cp ${mountPath}/token ${mountPath}/ca.crt ${mountPath}/namespace ${seen}/`],
            volumeMounts: [
              { name: "kube-api-access-abcde", mountPath, readOnly: true },
              { name: "seen", mountPath: seen },
            ],
          },
        ],
      },
    });
    const done = await cluster.admin.waitFor("pods", "caller", "default", (p) => phaseOf(p) === "Succeeded" || phaseOf(p) === "Failed");
    expect(phaseOf(done)).toBe("Succeeded");
    expect(await Bun.file(join(seen, "namespace")).text()).toBe("default");
    expect(await Bun.file(join(seen, "ca.crt")).text()).toBe(await Bun.file(cluster.caCertPath).text());
    const token = await Bun.file(join(seen, "token")).text();
    const review = await cluster.admin.create("tokenreviews", { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } });
    expect(at(review, "status", "authenticated")).toBe(true);
    expect(at(review, "status", "user", "username")).toBe("system:serviceaccount:default:default");
    // Bound to the pod: once it is gone, so is the token.
    await cluster.admin.delete("pods", "caller", "default", { gracePeriodSeconds: 2 });
    await cluster.admin.waitFor("pods", "caller", "default", (p) => p === undefined);
    const after = await cluster.admin.create("tokenreviews", { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } });
    expect(at(after, "status", "authenticated")).not.toBe(true);
    // The API object goes once the units are gone; the volume's tmpfs is unmounted and removed after that.
    await eventually("the pod's volume directory removed", async () => (await Array.fromAsync(new Bun.Glob("*").scan({ cwd: join(stateDir, "volumes"), onlyFiles: false }))).length === 0);
  }, 120_000);
});
