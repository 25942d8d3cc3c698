/**
 * Pods through a lost bus (test/systemd/bus-outage.ts takes the sandbox's bus away and brings it back):
 * the engine in-process, and `vks pod up` in the foreground. No pod is lost and no status change is
 * missed: what exited meanwhile is reported with its exit code, a unit collected meanwhile ends its
 * container as ContainerStatusUnknown, and creates, deletes and status reads asked for during the
 * outage complete once systemd is back.
 */
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PodEngine } from "../../internal/pod/engine.ts";
import { canRestartBus, elapsedMs, showUnit, startBus, stopBus, systemctl, waitFor } from "../systemd/bus-outage.ts";
import { noSystemd, testScope } from "../systemd/harness.ts";
import { VKS_BINARY, managerFlag, newStateDir, vks, writePod } from "./helpers.ts";

setDefaultTimeout(120_000);

function gatedExit(gate: string, code: number): string[] {
  return ["-c", `while [ ! -e '${gate}' ]; do sleep 0.05; done; exit ${code}`];
}

function pod(name: string, restartPolicy: "Never" | "Always", image: string, args: string[]): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default" },
    spec: { restartPolicy, terminationGracePeriodSeconds: 1, containers: [{ name: "main", image, args }] },
  };
}

function mainStatus(pod: V1Pod | undefined): V1ContainerStatus | undefined {
  return pod?.status?.containerStatuses?.[0];
}

describe.skipIf(noSystemd || !canRestartBus)("the pod engine across a bus outage", () => {
  let stateDir: string;
  let engine: PodEngine;
  const reported: V1Pod[] = [];
  const dir = mkdtempSync(join(tmpdir(), "vks-reconnect-"));
  const gate = join(dir, "go");
  const unitOf = (name: string) => engine.logSource("default", name)?.units[0]?.unitName ?? "";
  /** The first status the engine reported on its own (notifyPods) for `name` since `from` that satisfies `predicate`. */
  const reportedStatus = (name: string, from: number, predicate: (status: V1ContainerStatus) => boolean) =>
    waitFor(`a reported status of ${name}`, () => reported.slice(from).find((p) => p.metadata?.name === name && predicate(mainStatus(p) ?? { name: "", image: "", imageID: "", ready: false, restartCount: 0 })));

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), "vks-reconnect-state-"));
    engine = await PodEngine.open({ scope: testScope, stateDir, logMode: "file", hostIP: "127.0.0.1", keepReconnecting: true });
    engine.notifyPods((p) => reported.push(p));
  });

  afterAll(async () => {
    startBus();
    await engine.systemd.whenConnected().catch(() => undefined);
    for (const p of await engine.listPods().catch(() => [])) await engine.deletePod(p).catch(() => undefined);
    await engine.close();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test("exits, restarts and collected units during the outage all reach the pods' status; nothing is lost", async () => {
    await engine.createPod(pod("rc-exits", "Never", "/bin/sh", gatedExit(gate, 7)));
    await engine.createPod(pod("rc-collected", "Never", "/bin/sleep", ["infinity"]));
    await engine.createPod(pod("rc-restarts", "Always", "/bin/sleep", ["infinity"]));
    await engine.createPod(pod("rc-deleted", "Never", "/bin/sleep", ["infinity"]));
    const restartsPid = Number(showUnit(unitOf("rc-restarts"), ["MainPID"]).MainPID);
    const deletedUnit = unitOf("rc-deleted");
    expect(restartsPid).toBeGreaterThan(0);

    const lost = new Promise<void>((resolve) => engine.systemd.onOutage(() => resolve()));
    stopBus();
    await lost;
    // Asked for while systemd is unreachable: each must wait and complete, not fail or drop the pod.
    const created = engine.createPod(pod("rc-created-in-outage", "Never", "/bin/sleep", ["infinity"]));
    const deleted = engine.deletePod(pod("rc-deleted", "Never", "/bin/sleep", ["infinity"]));
    const statusRead = engine.getPodStatus("default", "rc-exits");

    writeFileSync(gate, "");
    await waitFor("exits to exit", () => showUnit(unitOf("rc-exits"), ["ActiveState"]).ActiveState === "failed");
    systemctl("stop", unitOf("rc-collected"));
    process.kill(restartsPid, "SIGKILL");
    await waitFor("restarts to be restarted", () => Number(showUnit(unitOf("rc-restarts"), ["NRestarts"]).NRestarts) >= 1);
    expect(engine.systemd.connected).toBe(false);

    const from = reported.length;
    const back = new Promise<void>((resolve) => engine.systemd.onReconnected(() => resolve()));
    const restarted = performance.now();
    startBus();
    await back;
    console.log(`engine: systemd reconnected ${elapsedMs(restarted)} ms after the bus was started again`);

    // Reported by the engine by itself once reconnected: the exit code systemd kept, the restart, the loss.
    const exited = await reportedStatus("rc-exits", from, (s) => s.state?.terminated !== undefined);
    expect(exited.status?.phase).toBe("Failed");
    expect(mainStatus(exited)?.state?.terminated).toMatchObject({ exitCode: 7, reason: "Error" });
    const gone = await reportedStatus("rc-collected", from, (s) => s.state?.terminated !== undefined);
    expect(mainStatus(gone)?.state?.terminated).toMatchObject({ exitCode: 137, reason: "ContainerStatusUnknown" });
    expect(gone.status?.phase).toBe("Failed");
    const again = await reportedStatus("rc-restarts", from, (s) => s.restartCount >= 1 && s.state?.running !== undefined);
    expect(again.status?.phase).toBe("Running");

    await created;
    await deleted;
    expect(mainStatus({ status: await statusRead })?.state?.terminated?.exitCode).toBe(7);
    expect((await engine.getPodStatus("default", "rc-created-in-outage"))?.phase).toBe("Running");
    expect(await engine.getPod("default", "rc-deleted")).toBeUndefined();
    expect(showUnit(deletedUnit, ["LoadState"]).LoadState).toBe("not-found");
    // Every pod is still known, each with exactly its own unit.
    const names = (await engine.listPods()).map((p) => p.metadata?.name).sort();
    expect(names).toEqual(["rc-collected", "rc-created-in-outage", "rc-exits", "rc-restarts"]);
    const units = systemctl("list-units", "--all", "--plain", "--no-legend", "vks.default.rc-*").trim().split("\n").filter(Boolean);
    const unitsOf = (name: string) => units.filter((line) => line.startsWith(`vks.default.${name}.`)).length;
    expect(["rc-exits", "rc-restarts", "rc-created-in-outage", "rc-collected", "rc-deleted"].map(unitsOf)).toEqual([1, 1, 1, 0, 0]);
  });
});

describe.skipIf(noSystemd || !canRestartBus || !existsSync(VKS_BINARY))("vks pod up in the foreground across a bus outage", () => {
  const stateDir = newStateDir();
  const dir = mkdtempSync(join(tmpdir(), "vks-reconnect-up-"));

  afterAll(async () => {
    startBus();
    await vks(stateDir, ["pod", "down", "rc-gated", ...managerFlag]).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test("keeps running, reconnects, and reports the exit that happened meanwhile", async () => {
    const gate = join(dir, "go");
    const file = writePod(
      dir,
      "rc-gated",
      `  restartPolicy: Never\n  containers:\n    - name: main\n      image: /bin/sh\n      args: ["-c", "echo waiting; while [ ! -e '${gate}' ]; do sleep 0.05; done; exit 4"]\n`,
    );
    const up = Bun.spawn([VKS_BINARY, "pod", "up", file, "--state-dir", stateDir, ...managerFlag], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1" },
    });
    let output = "";
    const decoder = new TextDecoder();
    for (const stream of [up.stdout, up.stderr]) {
      void stream.pipeTo(new WritableStream({ write: (chunk) => void (output += decoder.decode(chunk)) })).catch(() => undefined);
    }
    await waitFor("the container to run", () => output.includes("main: Running"));
    stopBus();
    await waitFor("pod up to notice the outage", () => output.includes("reconnecting"));
    writeFileSync(gate, "");
    await waitFor("the container to exit", () => systemctl("list-units", "--all", "--plain", "--no-legend", "--state=failed", "vks.default.rc-gated.*").trim() !== "");
    expect(up.exitCode).toBeNull();
    startBus();
    expect(await up.exited).toBe(1);
    expect(output).toContain("main: Terminated: Error (exit code 4)");
    expect(output).toContain("pod default/rc-gated Failed");
    expect(output.split("\n").filter((line) => line.includes("reconnecting")).length).toBe(1);
  });
});
