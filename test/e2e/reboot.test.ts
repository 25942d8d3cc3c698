// vks as a service and across a simulated reboot, against the sandbox's user manager (test/sandbox.sh):
// `vks service install` units, Type=notify readiness, a stop that leaves pods running, then every unit
// and the manager stopped (as at shutdown), a fresh manager booted, and every pod that should run running
// again with its restartCount continued, none duplicated, none orphaned.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { at, phaseOf } from "../kube/helpers.ts";
import { VKS_BINARY, eventually, listPods, newStateDir, podNamed, vks, writePod } from "./helpers.ts";

const NODE = "reboot-node";
const SANDBOX_MANAGER = resolve(import.meta.dir, "../sandbox-manager.sh");
// Only the sandbox's private manager may be restarted; never a host's. Not in test/sandbox.sh --system
// either: there the manager is PID 1 of the sandbox, and stopping it ends the sandbox with the test.
const inSandbox = process.env.VKS_SANDBOX === "1" && existsSync("/run/systemd-user.pid");
const stateDir = newStateDir();
const user = ["--user"];
let cluster: RunningTestApiServer;

function systemctl(...args: string[]): { exitCode: number; stdout: string; stderr: string } {
  const run = Bun.spawnSync(["systemctl", "--user", ...args], { stdout: "pipe", stderr: "pipe" });
  return { exitCode: run.exitCode, stdout: run.stdout.toString(), stderr: run.stderr.toString() };
}

function unitProperty(unit: string, property: string): string {
  return systemctl("show", "-p", property, "--value", unit).stdout.trim();
}

interface UnitRow {
  unit: string;
  pod: string;
  namespace: string;
  container: string;
  activeState: string;
  mainPID: number;
}

async function unitRows(): Promise<UnitRow[]> {
  const run = await vks(stateDir, ["units", "ls", "-o", "json", ...user]);
  if (run.exitCode !== 0) throw new Error(`units ls failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as UnitRow[];
}

function apiPod(name: string, container: JsonObject): JsonObject {
  return { metadata: { name, namespace: "default" }, spec: { nodeName: NODE, containers: [{ name: "main", ...container }] } };
}

const apiRestarts = (pod: JsonObject | undefined) => (at(pod, "status", "containerStatuses", 0, "restartCount") as number | undefined) ?? 0;

describe.skipIf(!inSandbox || !existsSync(VKS_BINARY))("vks as a service, and a simulated reboot (sandbox user manager)", () => {
  beforeAll(async () => {
    cluster = await startTestApiServer({ nodeName: NODE });
    const manifests = join(stateDir, "manifests");
    mkdirSync(manifests);
    writeFileSync(join(manifests, "static-web.yaml"), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\nspec:\n  containers:\n  - name: main\n    image: /bin/sleep\n    args: [infinity]\n");
    const install = await vks(stateDir, [
      "service", "install", ...user, "--state-dir", stateDir, "--binary", VKS_BINARY, "--watchdog-sec", "20", "--",
      "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, "--node-ip", "127.0.0.1", "--kubelet-port", "0",
      "--node-lease-duration-seconds", "4", "--node-status-update-frequency", "1", "--pod-manifest-path", manifests,
    ]);
    expect(install.exitCode, install.stderr).toBe(0);
  });

  afterAll(async () => {
    systemctl("stop", "vks-serve.service", "vks-pods.service");
    systemctl("disable", "vks-serve.service", "vks-pods.service");
    for (const unit of ["vks-serve.service", "vks-pods.service"]) rmSync(join(process.env.XDG_CONFIG_HOME ?? "/nonexistent", "systemd", "user", unit), { force: true });
    systemctl("daemon-reload");
    for (const listed of await listPods(stateDir).catch(() => [])) {
      await vks(stateDir, ["pod", "down", listed.metadata.name, "-n", listed.metadata.namespace, ...user]);
    }
    await vks(stateDir, ["units", "gc", ...user]);
    await cluster?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("the installed units: Type=notify, watchdog, Restart=always, KillMode=process, enabled for boot", () => {
    expect(unitProperty("vks-serve.service", "Type")).toBe("notify");
    expect(unitProperty("vks-serve.service", "Restart")).toBe("always");
    expect(unitProperty("vks-serve.service", "KillMode")).toBe("process");
    expect(systemctl("is-enabled", "vks-serve.service").stdout.trim()).toBe("enabled");
    expect(systemctl("is-enabled", "vks-pods.service").stdout.trim()).toBe("enabled");
  });

  test("systemctl start returns once the node is registered (READY=1), and stop leaves the pods running", async () => {
    // start blocks until READY=1 (or fails after TimeoutStartSec): the node must exist the moment it returns.
    const started = systemctl("start", "vks-serve.service");
    expect(started.exitCode, started.stderr).toBe(0);
    expect(unitProperty("vks-serve.service", "ActiveState")).toBe("active");
    expect(await cluster.admin.get("nodes", NODE, "")).toBeDefined();
    // systemd reports the watchdog of the running service (WatchdogSec= from the unit), and vks feeds it:
    // the keep-alive timestamp moves (every 10 s here), and the service is never killed for silence.
    expect(unitProperty("vks-serve.service", "WatchdogUSec")).toBe("20s");
    const firstKeepAlive = unitProperty("vks-serve.service", "WatchdogTimestampMonotonic");
    await eventually("a watchdog keep-alive", async () => unitProperty("vks-serve.service", "WatchdogTimestampMonotonic") !== firstKeepAlive, 300);
    expect(unitProperty("vks-serve.service", "NRestarts")).toBe("0");
    // The notification came from vks' own PID (NotifyAccess=main), with a status line.
    expect(unitProperty("vks-serve.service", "StatusText")).toMatch(/node reboot-node registered|serving node reboot-node/);

    await cluster.admin.create("pods", apiPod("api-sleeper", { image: "/bin/sleep", args: ["infinity"] }));
    await cluster.admin.waitFor("pods", "api-sleeper", "default", (p) => phaseOf(p) === "Running");
    const before = (await unitRows()).find((row) => row.pod === "api-sleeper");
    expect(before?.activeState).toBe("active");

    const stopped = systemctl("stop", "vks-serve.service");
    expect(stopped.exitCode, stopped.stderr).toBe(0);
    expect(unitProperty("vks-serve.service", "ActiveState")).toBe("inactive");
    const after = (await unitRows()).find((row) => row.pod === "api-sleeper");
    expect(after).toMatchObject({ activeState: "active", mainPID: before?.mainPID ?? -1 });
    expect(systemctl("start", "vks-serve.service").exitCode).toBe(0);
  }, 120_000);

  test("after a reboot every pod that should run runs again, restartCount continued, none duplicated or orphaned", async () => {
    // pod up -d pods: one that runs, one that crashes and restarts, one --ephemeral.
    const dir = newStateDir();
    try {
      const sleeper = writePod(dir, "local-sleeper", "  containers:\n  - name: main\n    image: /bin/sleep\n    args: [infinity]\n");
      const crasher = writePod(dir, "local-crasher", "  containers:\n  - name: main\n    image: /bin/sh\n    args: [-c, 'sleep 0.5; exit 3']\n");
      const ephemeral = writePod(dir, "local-ephemeral", "  containers:\n  - name: main\n    image: /bin/sleep\n    args: [infinity]\n");
      for (const args of [[sleeper], [crasher], [ephemeral, "--ephemeral"]]) {
        const up = await vks(stateDir, ["pod", "up", "-d", ...args, ...user]);
        expect(up.exitCode, up.stderr).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await cluster.admin.create("pods", apiPod("api-crasher", { image: "/bin/sh", args: ["-c", "sleep 0.5; exit 3"] }));
    // vks-pods.service is active at runtime after a boot; started here so its ExecStop runs at shutdown.
    expect(systemctl("start", "vks-pods.service").exitCode).toBe(0);

    const localBefore = await eventually("local-crasher to restart twice", async () => {
      const pod = await podNamed(stateDir, "local-crasher");
      const count = pod?.status.containerStatuses?.[0]?.restartCount ?? 0;
      return count >= 2 ? count : undefined;
    });
    const apiBefore = apiRestarts(await cluster.admin.waitFor("pods", "api-crasher", "default", (p) => apiRestarts(p) >= 2));

    // Shutdown: the manager stops every unit (vks-serve, then vks-pods' checkpoint, then the pods) and exits;
    // the transient units are gone with it. The fresh manager starts what is enabled, as at boot.
    const reboot = Bun.spawnSync(["bash", SANDBOX_MANAGER, "restart"], { stdout: "pipe", stderr: "pipe" });
    expect(reboot.exitCode, reboot.stderr.toString()).toBe(0);

    await eventually("vks-serve.service to be active after the boot", async () => unitProperty("vks-serve.service", "ActiveState") === "active");
    expect(unitProperty("vks-pods.service", "ActiveState")).toBe("active");

    const local = await eventually("the local pods to run again", async () => {
      const pods = await listPods(stateDir);
      const running = (name: string) => pods.find((pod) => pod.metadata.name === name)?.status.containerStatuses?.[0]?.state.running !== undefined;
      return running("local-sleeper") && running("local-crasher") ? pods : undefined;
    });
    // The ephemeral pod's record went with its units; serve's pods are not in pod up's listing twice.
    expect(local.map((pod) => pod.metadata.name)).not.toContain("local-ephemeral");
    const localAfter = local.find((pod) => pod.metadata.name === "local-crasher")?.status.containerStatuses?.[0]?.restartCount ?? 0;
    expect(localAfter).toBeGreaterThan(localBefore);
    expect(local.find((pod) => pod.metadata.name === "local-sleeper")?.status.containerStatuses?.[0]?.restartCount).toBe(1);

    await cluster.admin.waitFor("pods", "api-sleeper", "default", (p) => phaseOf(p) === "Running" && at(p, "status", "containerStatuses", 0, "state", "running") !== undefined && apiRestarts(p) >= 1);
    // The static pod runs again under the same uid (same file), and its mirror shows it.
    await cluster.admin.waitFor("pods", `static-web-${NODE}`, "default", (p) => at(p, "metadata", "annotations", "kubernetes.io/config.mirror") !== undefined && apiRestarts(p) >= 1);
    const apiAfter = await cluster.admin.waitFor("pods", "api-crasher", "default", (p) => apiRestarts(p) > apiBefore);
    expect(apiRestarts(apiAfter)).toBeGreaterThan(apiBefore);

    // One unit per container, each owned by a record; nothing for gc to remove.
    const rows = await eventually("every pod's unit", async () => {
      const all = await unitRows();
      return ["local-sleeper", "local-crasher", "api-sleeper", "api-crasher", `static-web-${NODE}`].every((name) => all.some((row) => row.pod === name)) ? all : undefined;
    });
    const keys = rows.map((row) => `${row.namespace}/${row.pod}/${row.container}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.sort()).toEqual(["default/api-crasher/main", "default/api-sleeper/main", "default/local-crasher/main", "default/local-sleeper/main", `default/static-web-${NODE}/main`]);
    const gc = await vks(stateDir, ["units", "gc", "--dry-run", ...user]);
    expect(gc.exitCode, gc.stderr).toBe(0);
    expect(gc.stdout + gc.stderr).not.toMatch(/vks\.default\./);
  }, 240_000);
});
