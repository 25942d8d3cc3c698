// The compiled `vks serve` against the test API server, next to a real systemd manager: what a cluster
// sees of a vks node, and what survives a kill -9 of vks and an API server outage.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, rmSync } from "node:fs";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { VKS_BINARY, haveSystemd, managerFlag, newStateDir, vks } from "../e2e/helpers.ts";
import { at, eventually, phaseOf, podEventsOnce, spawnServeBinary } from "./helpers.ts";

const NODE = "e2e-node";
const stateDir = newStateDir();
let cluster: RunningTestApiServer;
let serveProcess: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
let serveLog = "";

function startServeProcess(): void {
  serveProcess = spawnServeBinary({ cluster, nodeName: NODE, stateDir, statusUpdateSeconds: 1, onOutput: (text) => void (serveLog += text) });
}

interface UnitRow {
  unit: string;
  pod: string;
  namespace: string;
  activeState: string;
  subState: string;
  mainPID: number;
}

async function units(): Promise<UnitRow[]> {
  const run = await vks(stateDir, ["units", "ls", "-o", "json", ...managerFlag]);
  if (run.exitCode !== 0) throw new Error(`units ls failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as UnitRow[];
}

function pod(name: string, spec: JsonObject): JsonObject {
  return { metadata: { name, namespace: "default" }, spec: { nodeName: NODE, ...spec } };
}

const sleeper = (name: string) => pod(name, { containers: [{ name: "main", image: "/bin/sleep", args: ["infinity"] }] });
const exiter = (name: string, code: number) => pod(name, { restartPolicy: "Never", containers: [{ name: "main", image: "/bin/sh", args: ["-c", `exit ${code}`] }] });

const conditionTypes = (object: JsonObject | undefined) => (((at(object, "status", "conditions") ?? []) as JsonObject[]).map((c) => c["type"] as string)).sort();

describe.skipIf(!haveSystemd || !existsSync(VKS_BINARY))("vks serve (compiled, real systemd, test API server)", () => {
  beforeAll(async () => {
    cluster = await startTestApiServer({ nodeName: NODE });
    startServeProcess();
  });

  afterAll(async () => {
    serveProcess?.kill("SIGTERM");
    await serveProcess?.exited;
    // Whatever a failed test left running goes: the API objects first, so a restarted serve would agree.
    for (const row of await units().catch(() => [])) Bun.spawnSync(["systemctl", ...managerFlag, "stop", row.unit]);
    await cluster?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("the node registers Ready and renews its lease", async () => {
    const node = await cluster.admin.waitFor("nodes", NODE, "", (n) =>
      ((at(n, "status", "conditions") ?? []) as JsonObject[]).some((c) => c["type"] === "Ready" && c["status"] === "True"),
    );
    expect(at(node, "status", "nodeInfo", "containerRuntimeVersion")).toMatch(/^systemd:\/\/\d+/);
    expect(at(node, "status", "nodeInfo", "machineID")).toBeString();
    expect(at(node, "spec", "taints")).toEqual([{ key: "virtual-kubelet.io/provider", value: "vks", effect: "NoSchedule" }]);
    const lease = await cluster.admin.waitFor("leases", NODE, "kube-node-lease", (l) => l !== undefined);
    const firstRenew = at(lease, "spec", "renewTime");
    await cluster.admin.waitFor("leases", NODE, "kube-node-lease", (l) => at(l, "spec", "renewTime") !== firstRenew);
  }, 30_000);

  test("a pod runs as a unit and its status has the kubelet's shape", async () => {
    const created = await cluster.admin.create("pods", sleeper("web"));
    const uid = at(created, "metadata", "uid") as string;
    const runningPod = await cluster.admin.waitFor("pods", "web", "default", (p) => phaseOf(p) === "Running" && at(p, "status", "containerStatuses", 0, "ready") === true);
    expect(conditionTypes(runningPod)).toEqual(["ContainersReady", "Initialized", "PodReadyToStartContainers", "PodScheduled", "Ready"]);
    expect(at(runningPod, "status", "hostIP")).toBe("127.0.0.1");
    expect(at(runningPod, "status", "podIP")).toBe("127.0.0.1");
    expect(at(runningPod, "status", "startTime")).toBeString();
    expect(at(runningPod, "status", "qosClass")).toBe("BestEffort");
    const status = at(runningPod, "status", "containerStatuses", 0) as JsonObject;
    expect(status).toMatchObject({ name: "main", image: "/bin/sleep", ready: true, started: true, restartCount: 0 });
    expect(status["containerID"]).toBe(`systemd://vks.default.web.main.${uid}.service`);
    expect(at(status, "state", "running", "startedAt")).toBeString();
    const row = (await units()).find((r) => r.pod === "web");
    expect(row?.activeState).toBe("active");
  }, 30_000);

  test("exit codes become Succeeded and Failed, and finished pods stay finished", async () => {
    await cluster.admin.create("pods", exiter("ok", 0));
    await cluster.admin.create("pods", exiter("bad", 3));
    const ok = await cluster.admin.waitFor("pods", "ok", "default", (p) => phaseOf(p) === "Succeeded");
    expect(at(ok, "status", "containerStatuses", 0, "state", "terminated")).toMatchObject({ exitCode: 0, reason: "Completed" });
    const bad = await cluster.admin.waitFor("pods", "bad", "default", (p) => phaseOf(p) === "Failed");
    expect(at(bad, "status", "containerStatuses", 0, "state", "terminated")).toMatchObject({ exitCode: 3, reason: "Error" });
  }, 30_000);

  test("ConfigMap and Secret env reach the process; a spec vks cannot run fails the pod with the reason", async () => {
    await cluster.admin.create("configmaps", { metadata: { name: "greeting", namespace: "default" }, data: { WORD: "hello $(HOME)" } });
    await cluster.admin.create("secrets", { metadata: { name: "token", namespace: "default" }, data: { value: Buffer.from("t0p").toString("base64") } });
    await cluster.admin.create(
      "pods",
      pod("env-echo", {
        restartPolicy: "Never",
        containers: [
          {
            name: "main",
            image: "/bin/sh",
            // The pause keeps this test about env: a program that exits within milliseconds of its start
            // races the engine's start path (reported to the engine's owner).
            args: ["-c", 'sleep 0.5; test "$CFG_WORD|$TOKEN|$NODE" = "hello \\$(HOME)|t0p|e2e-node"'],
            envFrom: [{ configMapRef: { name: "greeting" }, prefix: "CFG_" }],
            env: [
              { name: "TOKEN", valueFrom: { secretKeyRef: { name: "token", key: "value" } } },
              { name: "NODE", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
            ],
          },
        ],
      }),
    );
    // Waits for Succeeded (the test's own timeout bounds it) rather than for the first terminal phase: the
    // engine can briefly report a just-started unit as ContainerStatusUnknown (reported to its owner).
    const echoed = await cluster.admin.waitFor("pods", "env-echo", "default", (p) => phaseOf(p) === "Succeeded");
    // The Secret's value went through the unit's root-only env file: no unit property shows it.
    const echoUnit = `vks.default.env-echo.main.${String(at(echoed, "metadata", "uid"))}.service`;
    const shown = Bun.spawnSync(["systemctl", ...managerFlag, "show", echoUnit]).stdout.toString();
    expect(shown).toContain("EnvironmentFiles=");
    // (The test's own script compares against "t0p", so it is the assignment that must be absent.)
    expect(shown).not.toContain("TOKEN=t0p");
    expect(shown).toMatch(/EnvironmentFiles=\S*secret-env\S*main\.env/);

    await cluster.admin.create(
      "pods",
      pod("unrunnable", { containers: [{ name: "main", image: "/bin/sleep", volumeDevices: [{ name: "disk", devicePath: "/dev/xvda" }] }] }),
    );
    const failed = await cluster.admin.waitFor("pods", "unrunnable", "default", (p) => phaseOf(p) === "Failed");
    expect(at(failed, "status", "reason")).toBe("ProviderFailed");
    expect(at(failed, "status", "message")).toContain("volumeDevices");
    await podEventsOnce(cluster, "unrunnable", "ProviderCreateFailed");
  }, 30_000);

  test("an image that cannot be pulled: ErrImagePull, then ImagePullBackOff, then Running once it can", async () => {
    const binary = `${stateDir}/late-binary`;
    await cluster.admin.create("pods", pod("late-image", { containers: [{ name: "main", image: binary }] }));
    const waitingReason = (p: JsonObject | undefined) => at(p, "status", "containerStatuses", 0, "state", "waiting", "reason");
    // ErrImagePull may last only until the first retry, so either reason will do here; the events below
    // show both happened.
    const pulling = await cluster.admin.waitFor("pods", "late-image", "default", (p) =>
      ["ErrImagePull", "ImagePullBackOff"].includes(String(waitingReason(p))),
    );
    expect(at(pulling, "status", "phase")).toBe("Pending");
    await cluster.admin.waitFor("pods", "late-image", "default", (p) => waitingReason(p) === "ImagePullBackOff");
    const events = await podEventsOnce(cluster, "late-image", "BackOff");
    expect(events.map((e) => e["reason"])).toContain("Failed");
    const failed = events.find((e) => e["reason"] === "Failed");
    expect(String(failed?.["message"])).toContain("no such file");

    await Bun.write(binary, "#!/bin/sh\nexec sleep infinity\n");
    chmodSync(binary, 0o755);
    // The kubelet's back-off starts at 10 s and doubles; the test's own timeout bounds the wait.
    await cluster.admin.waitFor("pods", "late-image", "default", (p) => phaseOf(p) === "Running");
  }, 90_000);

  test("deleting a pod stops its units and removes the pod", async () => {
    await cluster.admin.create("pods", sleeper("doomed"));
    await cluster.admin.waitFor("pods", "doomed", "default", (p) => phaseOf(p) === "Running");
    await cluster.admin.delete("pods", "doomed", "default", { gracePeriodSeconds: 5 });
    await cluster.admin.waitFor("pods", "doomed", "default", (p) => p === undefined);
    expect((await units()).some((r) => r.pod === "doomed")).toBe(false);
  }, 30_000);

  test("a delete's shorter grace period wins over the pod's own", async () => {
    // The pod would take 300 s to stop on its own terms (it ignores SIGTERM); the delete allows 2 s.
    await cluster.admin.create(
      "pods",
      pod("stubborn", {
        terminationGracePeriodSeconds: 300,
        containers: [{ name: "main", image: "/bin/sh", args: ["-c", "trap '' TERM; while true; do sleep 1; done"] }],
      }),
    );
    await cluster.admin.waitFor("pods", "stubborn", "default", (p) => phaseOf(p) === "Running");
    await cluster.admin.delete("pods", "stubborn", "default", { gracePeriodSeconds: 2 });
    await cluster.admin.waitFor("pods", "stubborn", "default", (p) => p === undefined);
    expect((await units()).some((r) => r.pod === "stubborn")).toBe(false);
  }, 60_000);

  test("kill -9 of vks, then a restart: running pods are adopted (same MainPID), nothing is orphaned", async () => {
    await cluster.admin.create("pods", sleeper("survivor"));
    await cluster.admin.waitFor("pods", "survivor", "default", (p) => phaseOf(p) === "Running");
    const before = (await units()).find((r) => r.pod === "survivor");
    expect(before?.mainPID).toBeGreaterThan(0);

    serveProcess?.kill("SIGKILL");
    await serveProcess?.exited;
    // While vks is down: one pod is deleted for good, one is created.
    await cluster.admin.delete("pods", "web", "default", { gracePeriodSeconds: 0 });
    await cluster.admin.create("pods", sleeper("while-down"));
    startServeProcess();

    await cluster.admin.waitFor("pods", "while-down", "default", (p) => phaseOf(p) === "Running");
    const rows = await eventually("web's units gone", async () => {
      const current = await units();
      return current.some((r) => r.pod === "web") ? undefined : current;
    });
    const after = rows.find((r) => r.pod === "survivor");
    expect(after?.mainPID).toBe(before?.mainPID as number);
    const survivor = await cluster.admin.get("pods", "survivor");
    expect(at(survivor, "status", "containerStatuses", 0, "restartCount")).toBe(0);
    // Every unit belongs to a pod the API server still has.
    const pods = new Set((await cluster.admin.list("pods", { fieldSelector: `spec.nodeName=${NODE}` })).map((p) => at(p, "metadata", "name")));
    for (const row of rows) expect(pods.has(row.pod)).toBe(true);
  }, 60_000);

  test("a watch that expires (410) is re-listed", async () => {
    await cluster.admin.compact({ expireWatches: true });
    await cluster.admin.create("pods", sleeper("after-410"));
    await cluster.admin.waitFor("pods", "after-410", "default", (p) => phaseOf(p) === "Running");
  }, 30_000);

  // Only against a sandbox's manager: re-executing a real host's manager is not a test's business.
  test.skipIf(process.env.VKS_SANDBOX === undefined)("systemd re-executes itself (daemon-reexec): vks keeps creating pods and hearing about units", async () => {
    await cluster.admin.create("pods", sleeper("before-reexec"));
    await cluster.admin.waitFor("pods", "before-reexec", "default", (p) => phaseOf(p) === "Running");
    const reexec = Bun.spawnSync(["systemctl", ...managerFlag, "daemon-reexec"]);
    expect(reexec.exitCode).toBe(0);
    // Signals still arrive: a killed container is restarted by systemd and the restart reaches the API.
    const row = await eventually("the unit after the re-exec", async () => (await units()).find((r) => r.pod === "before-reexec" && r.mainPID > 0));
    process.kill(row.mainPID, "SIGKILL");
    await cluster.admin.waitFor("pods", "before-reexec", "default", (p) => Number(at(p, "status", "containerStatuses", 0, "restartCount")) >= 1);
    // Calls still work: a new pod starts.
    await cluster.admin.create("pods", sleeper("after-reexec"));
    await cluster.admin.waitFor("pods", "after-reexec", "default", (p) => phaseOf(p) === "Running");
    expect(serveProcess?.exitCode).toBeNull();
  }, 60_000);

  test("an API outage: pods keep running, status catches up after recovery", async () => {
    await cluster.admin.create("pods", pod("finishes-in-outage", { restartPolicy: "Never", containers: [{ name: "main", image: "/bin/sleep", args: ["2"] }] }));
    await cluster.admin.waitFor("pods", "finishes-in-outage", "default", (p) => phaseOf(p) === "Running");
    const survivorPid = (await units()).find((r) => r.pod === "survivor")?.mainPID;
    await cluster.admin.outage("refuse");
    await eventually("the pod to finish", async () => {
      const row = (await units()).find((r) => r.pod === "finishes-in-outage");
      // RemainAfterExit keeps a finished unit "active" with sub-state "exited".
      return row !== undefined && (row.subState === "exited" || row.activeState !== "active");
    });
    expect((await units()).find((r) => r.pod === "survivor")?.mainPID).toBe(survivorPid as number);
    await cluster.admin.restore();
    await cluster.admin.waitFor("pods", "finishes-in-outage", "default", (p) => phaseOf(p) === "Succeeded");
    await cluster.admin.create("pods", sleeper("after-outage"));
    await cluster.admin.waitFor("pods", "after-outage", "default", (p) => phaseOf(p) === "Running");
    expect(serveProcess?.exitCode).toBeNull();
  }, 60_000);
});

test.skipIf(!existsSync(VKS_BINARY))("serve's own log (printed with SHOW_SERVE_LOG=1 or when it reports an error)", () => {
  if (process.env.SHOW_SERVE_LOG || /\bERROR\b|\[error\]/.test(serveLog)) console.error(serveLog);
});
