// Static pods (`vks serve --pod-manifest-path DIR`, the kubelet's staticPodPath) with the compiled binary,
// a real systemd manager, and the test API server enforcing the Node authorizer and NodeRestriction (a
// node may create a pod only as a mirror pod bound to itself, owned by its Node: test/apiserver tests the
// rule), so every mirror pod accepted here is one a kube-apiserver would accept from a kubelet.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { VKS_BINARY, haveSystemd, managerFlag, newStateDir, vks } from "../e2e/helpers.ts";
import { at, eventually, phaseOf } from "./helpers.ts";

const NODE = "static-node";
const stateDir = newStateDir();
const manifests = join(stateDir, "manifests");
let cluster: RunningTestApiServer;
let serveProcess: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
let serveLog = "";

interface UnitRow {
  unit: string;
  pod: string;
  uid: string;
  activeState: string;
  mainPID: number;
}

async function unitsOf(pod: string): Promise<UnitRow[]> {
  const run = await vks(stateDir, ["units", "ls", "-o", "json", ...managerFlag]);
  if (run.exitCode !== 0) throw new Error(`units ls failed: ${run.stderr}`);
  return (JSON.parse(run.stdout) as UnitRow[]).filter((row) => row.pod === pod);
}

/** Written next to the directory and renamed in, as editors and config management do. */
function writeManifest(name: string, text: string): void {
  const temp = join(stateDir, `.${name}.tmp`);
  writeFileSync(temp, text);
  renameSync(temp, join(manifests, name));
}

const sleeperYaml = (name: string, seconds: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  labels:\n    app: ${name}\nspec:\n  containers:\n  - name: main\n    image: /bin/sleep\n    args: ["${seconds}"]\n`;

const mirrorName = (name: string) => `${name}-${NODE}`;
const annotation = (pod: JsonObject | undefined, key: string) => at(pod, "metadata", "annotations", key) as string | undefined;

describe.skipIf(!haveSystemd || !existsSync(VKS_BINARY))("static pods and mirror pods (compiled vks serve, NodeRestriction)", () => {
  beforeAll(async () => {
    cluster = await startTestApiServer({ nodeName: NODE, nodeAuthorization: true });
    mkdirSync(manifests);
    writeManifest("web.yaml", sleeperYaml("web", "infinity"));
    // One good file and one bad: the bad one is reported with its field, the good one still runs.
    writeManifest("broken.yaml", `apiVersion: v1\nkind: Pod\nmetadata:\n  name: broken\nspec:\n  containers:\n  - name: main\n    image: /bin/sleep\n    restartPolcy: Always\n`);
    writeManifest(".hidden.yaml", sleeperYaml("hidden", "infinity"));
    serveProcess = Bun.spawn(
      [
        VKS_BINARY, "serve", "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, "--node-ip", "127.0.0.1", "--kubelet-port", "0",
        "--node-lease-duration-seconds", "4", "--node-status-update-frequency", "1", "--state-dir", stateDir, "--pod-manifest-path", manifests, ...managerFlag,
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } },
    );
    const decoder = new TextDecoder();
    for (const stream of [serveProcess.stdout, serveProcess.stderr]) {
      void stream.pipeTo(new WritableStream({ write: (chunk) => void (serveLog += decoder.decode(chunk)) })).catch(() => undefined);
    }
  });

  afterAll(async () => {
    if (process.env.VKS_DEBUG_SERVE_LOG) console.log(serveLog);
    // Removing the files stops the static pods; serve then exits and leaves nothing behind.
    rmSync(manifests, { recursive: true, force: true });
    await eventually("the static pods to stop", async () => (await unitsOf("web-static-node")).length === 0 || serveProcess?.exitCode !== null).catch(() => undefined);
    serveProcess?.kill("SIGTERM");
    await serveProcess?.exited;
    const leftovers = await vks(stateDir, ["units", "ls", "-o", "json", ...managerFlag]).catch(() => undefined);
    for (const row of leftovers?.exitCode === 0 ? (JSON.parse(leftovers.stdout) as UnitRow[]) : []) Bun.spawnSync(["systemctl", ...managerFlag, "stop", row.unit]);
    await cluster?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("a manifest runs as a pod and its mirror pod appears as the kubelet makes it", async () => {
    const mirror = await cluster.admin.waitFor("pods", mirrorName("web"), "default", (pod) => phaseOf(pod) === "Running");
    const hash = annotation(mirror, "kubernetes.io/config.hash");
    expect(hash).toMatch(/^[0-9a-f]{32}$/);
    expect(annotation(mirror, "kubernetes.io/config.mirror")).toBe(hash);
    expect(annotation(mirror, "kubernetes.io/config.source")).toBe("file");
    expect(annotation(mirror, "kubernetes.io/config.seen")).toBeString();
    const node = await cluster.admin.get("nodes", NODE, "");
    expect(at(mirror, "metadata", "ownerReferences")).toEqual([{ apiVersion: "v1", kind: "Node", name: NODE, uid: at(node, "metadata", "uid") as string, controller: true }]);
    expect(at(mirror, "spec", "nodeName")).toBe(NODE);
    expect(at(mirror, "metadata", "labels", "app")).toBe("web");
    // The pod runs under the static pod's uid (the hash); the mirror has the API server's own.
    const [row] = await unitsOf(mirrorName("web"));
    expect(row).toMatchObject({ uid: hash, activeState: "active" });
    expect(at(mirror, "metadata", "uid")).not.toBe(hash);
    expect(at(mirror, "status", "containerStatuses", 0, "containerID")).toBe(`systemd://${row?.unit}`);
    // The dotfile is ignored, the broken file reported by name and field.
    expect(await cluster.admin.get("pods", mirrorName("hidden"), "default")).toBeUndefined();
    await eventually("the broken manifest to be reported", async () => serveLog.includes("broken.yaml") && serveLog.includes("restartPolcy"));
  }, 60_000);

  test("deleting the mirror pod makes it again and leaves the pod running", async () => {
    const mirror = await cluster.admin.get("pods", mirrorName("web"), "default");
    const [before] = await unitsOf(mirrorName("web"));
    await cluster.admin.delete("pods", mirrorName("web"), "default");
    const again = await cluster.admin.waitFor("pods", mirrorName("web"), "default", (pod) => pod !== undefined && at(pod, "metadata", "uid") !== at(mirror, "metadata", "uid") && phaseOf(pod) === "Running");
    expect(annotation(again, "kubernetes.io/config.mirror")).toBe(annotation(mirror, "kubernetes.io/config.mirror"));
    const [after] = await unitsOf(mirrorName("web"));
    expect(after).toMatchObject({ unit: before?.unit ?? "", mainPID: before?.mainPID ?? -1, activeState: "active" });
  }, 60_000);

  test("an edited manifest is a new pod; a removed one stops and its mirror goes", async () => {
    const old = await cluster.admin.get("pods", mirrorName("web"), "default");
    const oldHash = annotation(old, "kubernetes.io/config.hash");
    writeManifest("web.yaml", sleeperYaml("web", "3600"));
    const edited = await cluster.admin.waitFor("pods", mirrorName("web"), "default", (pod) => annotation(pod, "kubernetes.io/config.mirror") !== undefined && annotation(pod, "kubernetes.io/config.mirror") !== oldHash && phaseOf(pod) === "Running");
    const newHash = annotation(edited, "kubernetes.io/config.hash");
    const rows = await eventually("one unit, of the new pod", async () => {
      const found = await unitsOf(mirrorName("web"));
      return found.length === 1 && found[0]?.uid === newHash ? found : undefined;
    });
    expect(rows[0]?.activeState).toBe("active");

    rmSync(join(manifests, "web.yaml"));
    await eventually("the static pod's units to go", async () => (await unitsOf(mirrorName("web"))).length === 0);
    await cluster.admin.waitFor("pods", mirrorName("web"), "default", (pod) => pod === undefined);
  }, 60_000);
});
