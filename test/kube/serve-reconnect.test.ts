// The compiled `vks serve` against the test API server while the sandbox's bus goes away and comes back
// (test/systemd/bus-outage.ts), and while systemd re-executes in the middle of creating pods: the node is
// NotReady only while systemd is unreachable, no pod is lost, and an exit during the outage reaches the
// pod's status. Times from the bus' return to Ready are printed, not asserted.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { VKS_BINARY, haveSystemd, managerFlag, newStateDir } from "../e2e/helpers.ts";
import { canRestartBus, elapsedMs, startBus, stopBus, systemctl } from "../systemd/bus-outage.ts";
import { at, eventually, phaseOf, spawnServeBinary } from "./helpers.ts";

const NODE = "reconnect-node";
const stateDir = newStateDir();
const dir = mkdtempSync(join(tmpdir(), "vks-serve-reconnect-"));
let cluster: RunningTestApiServer;
let serveProcess: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
let serveLog = "";

function readyCondition(node: JsonObject | undefined): JsonObject | undefined {
  return ((at(node, "status", "conditions") ?? []) as JsonObject[]).find((c) => c["type"] === "Ready");
}

function pod(name: string, spec: JsonObject): JsonObject {
  return { metadata: { name, namespace: "default" }, spec: { nodeName: NODE, terminationGracePeriodSeconds: 1, ...spec } };
}

const sleeper = (name: string) => pod(name, { containers: [{ name: "main", image: "/bin/sleep", args: ["infinity"] }] });

const began = performance.now();
/** serve's lines with the test's clock (seconds), so a failure shows when each happened. */
const stamped = (text: string): string => text.replace(/^(?=.)/gm, `${((performance.now() - began) / 1000).toFixed(2)} `);

/** cluster.admin.waitFor never gives up by itself; this says which wait it was when it does not happen. */
async function within<T>(what: string, seconds: number, waiting: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${seconds} s; serve said:\n${serveLog}`)), seconds * 1000);
  });
  try {
    return await Promise.race([waiting, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function vksUnits(): string[] {
  return systemctl("list-units", "--all", "--plain", "--no-legend", "vks.default.rc-*")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split(/\s+/)[0] ?? "");
}

describe.skipIf(!haveSystemd || !canRestartBus || !existsSync(VKS_BINARY))("vks serve across bus outages", () => {
  beforeAll(async () => {
    cluster = await startTestApiServer({ nodeName: NODE });
    // Status updates far apart: Ready must follow systemd's availability at once, not at the next check.
    serveProcess = spawnServeBinary({ cluster, nodeName: NODE, stateDir, statusUpdateSeconds: 30, onOutput: (text) => void (serveLog += stamped(text)) });
    await cluster.admin.waitFor("nodes", NODE, "", (n) => readyCondition(n)?.["status"] === "True");
  });

  afterAll(async () => {
    if (process.env.DEBUG_SERVE_LOG) {
      console.log(serveLog);
      console.log(Bun.spawnSync(["systemctl", ...managerFlag, "status", "--no-pager", "dbus.socket", "dbus.service"]).stdout.toString());
    }
    startBus();
    serveProcess?.kill("SIGTERM");
    await serveProcess?.exited;
    for (const unit of vksUnits()) Bun.spawnSync(["systemctl", ...managerFlag, "stop", unit]);
    // A failed unit stays loaded after its stop until reset.
    for (const unit of vksUnits()) Bun.spawnSync(["systemctl", ...managerFlag, "reset-failed", unit]);
    await cluster?.stop();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test("bus stopped: NotReady meanwhile, Ready after; the exit during the outage reaches the pod's status", async () => {
    const gate = join(dir, "go");
    await cluster.admin.create(
      "pods",
      pod("rc-exits-in-outage", { restartPolicy: "Never", containers: [{ name: "main", image: "/bin/sh", args: ["-c", `while [ ! -e '${gate}' ]; do sleep 0.05; done; exit 5`] }] }),
    );
    await cluster.admin.create("pods", sleeper("rc-keeps-running"));
    await within("rc-exits-in-outage Running", 20, cluster.admin.waitFor("pods", "rc-exits-in-outage", "default", (p) => phaseOf(p) === "Running"));
    const running = await within("rc-keeps-running Running", 20, cluster.admin.waitFor("pods", "rc-keeps-running", "default", (p) => phaseOf(p) === "Running"));
    const logBefore = serveLog.length;

    const stopped = performance.now();
    serveLog += stamped("(test) stopping the bus\n");
    stopBus();
    let started = performance.now();
    try {
      const notReady = await within("node NotReady", 20, cluster.admin.waitFor("nodes", NODE, "", (n) => readyCondition(n)?.["status"] === "False"));
      console.log(`serve: node NotReady ${elapsedMs(stopped)} ms after the bus was stopped`);
      expect(readyCondition(notReady)).toMatchObject({ reason: "SystemdUnavailable" });
      expect(String(readyCondition(notReady)?.["message"])).toContain("reconnects");
      // A pod created while systemd is unreachable waits for it instead of failing.
      await cluster.admin.create("pods", sleeper("rc-created-in-outage"));
      writeFileSync(gate, "");
      await eventually("the container to exit while the bus is down", () =>
        systemctl("list-units", "--all", "--plain", "--no-legend", "--state=failed", "vks.default.rc-exits-in-outage.*").trim() !== "",
      );
      started = performance.now();
    } finally {
      startBus();
    }
    await within("node Ready again", 20, cluster.admin.waitFor("nodes", NODE, "", (n) => readyCondition(n)?.["status"] === "True"));
    console.log(`serve: node Ready again ${elapsedMs(started)} ms after the bus was started again`);
    const exited = await within("rc-exits-in-outage Failed", 20, cluster.admin.waitFor("pods", "rc-exits-in-outage", "default", (p) => phaseOf(p) === "Failed"));
    expect(at(exited, "status", "containerStatuses", 0, "state", "terminated")).toMatchObject({ exitCode: 5, reason: "Error" });
    console.log(`serve: the exit reached the API ${elapsedMs(started)} ms after the bus was started again`);
    await within("rc-created-in-outage Running", 20, cluster.admin.waitFor("pods", "rc-created-in-outage", "default", (p) => phaseOf(p) === "Running"));
    const after = await cluster.admin.get("pods", "rc-keeps-running");
    expect(phaseOf(after)).toBe("Running");
    expect(at(after, "status", "containerStatuses", 0, "containerID")).toBe(at(running, "status", "containerStatuses", 0, "containerID") as string);
    expect(at(after, "status", "containerStatuses", 0, "restartCount")).toBe(0);
    // One warning for the outage, not one per attempt.
    expect(serveLog.slice(logBefore).split("\n").filter((line) => line.includes("reconnecting")).length).toBe(1);
    expect(serveProcess?.exitCode).toBeNull();
  }, 90_000);

  test("daemon-reexec while pods are being created: every pod runs, each with exactly one unit", async () => {
    const names = ["rc-reexec-a", "rc-reexec-b", "rc-reexec-c", "rc-reexec-d"];
    await Promise.all(names.map((name) => cluster.admin.create("pods", sleeper(name))));
    const reexec = Bun.spawnSync(["systemctl", ...managerFlag, "daemon-reexec"]);
    expect(reexec.exitCode).toBe(0);
    for (const name of names) await within(`${name} Running`, 30, cluster.admin.waitFor("pods", name, "default", (p) => phaseOf(p) === "Running"));
    const units = vksUnits();
    for (const name of names) expect(units.filter((unit) => unit.startsWith(`vks.default.${name}.`)).length).toBe(1);
    // Each create finished too (none hangs on a job whose end was announced while systemd was away).
    for (const name of names) await eventually(`the create of ${name} to finish`, () => serveLog.includes(`pod default/${name} created`));
    await cluster.admin.waitFor("nodes", NODE, "", (n) => readyCondition(n)?.["status"] === "True");
    expect(serveProcess?.exitCode).toBeNull();
  }, 90_000);
});
