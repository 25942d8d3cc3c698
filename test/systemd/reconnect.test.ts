/**
 * SystemdManager through bus outages, against the sandbox's real manager and bus (bus-outage.ts): the bus
 * stopped for a while, the bus daemon SIGKILLed, systemd re-executing. Calls fail typed and retriable
 * meanwhile, the manager reconnects by itself, and every vks unit is reported again afterwards, with what
 * happened to it while vks was away. Reconnect times are printed, not asserted.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ExitCode } from "../../internal/errors.ts";
import { SystemdDisconnectedError } from "../../internal/systemd/disconnected.ts";
import { SystemdManager, type SystemdOutage, type SystemdReconnection } from "../../internal/systemd/manager.ts";
import type { UnitState } from "../../internal/systemd/types.ts";
import { canRestartBus, elapsedMs, killBus, showUnit, startBus, stopBus, systemctl, waitFor } from "./bus-outage.ts";
import { command, noSystemd, plan, serviceProperties, testDir, testScope, uniqueUnitName, waitForUnitState } from "./harness.ts";

setDefaultTimeout(120_000);

/** A shell unit that waits for `gate` to exist, then exits with `code`. */
function gatedExit(gate: string, code: number): string[] {
  return ["/bin/sh", "-c", `while [ ! -e '${gate}' ]; do sleep 0.05; done; exit ${code}`];
}

describe.skipIf(noSystemd || !canRestartBus)("SystemdManager across bus outages", () => {
  let manager: SystemdManager;
  const outages: SystemdOutage[] = [];
  const reconnections: SystemdReconnection[] = [];
  const changes: UnitState[] = [];
  const started: string[] = [];
  let nextOutage: () => void = () => undefined;
  let nextReconnection: () => void = () => undefined;
  const outageSeen = () => new Promise<void>((resolve) => (nextOutage = resolve));
  const reconnectionSeen = () => new Promise<void>((resolve) => (nextReconnection = resolve));

  beforeAll(async () => {
    manager = await SystemdManager.connect({ scope: testScope, outageLimitMs: Infinity });
    manager.onOutage((outage) => {
      outages.push(outage);
      nextOutage();
    });
    manager.onReconnected((reconnection) => {
      reconnections.push(reconnection);
      nextReconnection();
    });
    manager.onUnitChanged((state) => changes.push(state));
    await manager.startWatching();
  });

  // A test that failed half-way may have left the bus stopped: the next one starts from a working bus.
  beforeEach(async () => {
    startBus();
    await manager.whenConnected();
  });

  afterAll(async () => {
    // Whatever a failed test left: the bus back, and the units gone.
    startBus();
    await manager.whenConnected().catch(() => undefined);
    for (const unit of started) Bun.spawnSync(["systemctl", ...(testScope === "user" ? ["--user"] : []), "stop", unit]);
    for (const unit of started) Bun.spawnSync(["systemctl", ...(testScope === "user" ? ["--user"] : []), "reset-failed", unit]);
    await manager.close();
  });

  test("bus stopped: calls fail typed and retriable, a unit that exits meanwhile is reported with its exit code", async () => {
    const dir = testDir("reconnect");
    const gate = join(dir, "go");
    const exiting = uniqueUnitName("exits-in-outage");
    const running = uniqueUnitName("runs-through");
    const collected = uniqueUnitName("collected");
    started.push(exiting, running, collected);
    await manager.startUnit(plan(exiting, serviceProperties({ execStart: [command(gatedExit(gate, 7))] })));
    await manager.startUnit(plan(running, serviceProperties({ execStart: [command(["/bin/sleep", "infinity"])] })));
    await manager.startUnit(plan(collected, serviceProperties({ execStart: [command(["/bin/sleep", "infinity"])] })));
    const runningBefore = await waitForUnitState(manager, running, (state) => state.mainPID > 0);

    const lost = outageSeen();
    stopBus();
    await lost;
    expect(manager.connected).toBe(false);
    const during = await manager.getUnitState(exiting).catch((err: unknown) => err);
    expect(during).toBeInstanceOf(SystemdDisconnectedError);
    expect((during as SystemdDisconnectedError).retriable).toBe(true);
    expect((during as SystemdDisconnectedError).exitCode).toBe(ExitCode.unavailable);
    const startDuring = await manager.startUnit(plan(uniqueUnitName("never"), serviceProperties({ execStart: [command(["/bin/true"])] }))).catch((err: unknown) => err);
    expect(startDuring).toBeInstanceOf(SystemdDisconnectedError);

    // Meanwhile: one container exits 7, another unit is stopped and collected by someone else.
    writeFileSync(gate, "");
    await waitFor("the unit to exit while the bus is down", () => showUnit(exiting, ["ActiveState"]).ActiveState === "failed");
    systemctl("stop", collected);
    await waitFor("the stopped unit to be collected", () => showUnit(collected, ["LoadState"]).LoadState === "not-found");

    changes.length = 0;
    const back = reconnectionSeen();
    const restarted = performance.now();
    startBus();
    await back;
    const reconnectMs = elapsedMs(restarted);
    const reconnection = reconnections.at(-1);
    console.log(`bus stopped for ${reconnection?.outageMs} ms; reconnected ${reconnectMs} ms after the bus was started again`);
    expect(manager.connected).toBe(true);
    expect(reconnection?.vksUnits.has(exiting)).toBe(true);
    expect(reconnection?.vksUnits.has(running)).toBe(true);
    expect(reconnection?.vksUnits.has(collected)).toBe(false);

    // Re-read and reported without anyone asking, with the exit code systemd kept.
    const exited = await waitForUnitState(manager, exiting, (state) => state.activeState === "failed");
    expect(exited).toMatchObject({ result: "exit-code", execMainStatus: 7 });
    await waitFor("the re-read of the exited unit to be reported", () => changes.find((state) => state.name === exiting && state.execMainStatus === 7));
    await waitFor("the re-read of the running unit to be reported", () => changes.find((state) => state.name === running && state.mainPID === runningBefore.mainPID));
    expect(await manager.getUnitState(collected)).toBeUndefined();

    // Calls and signals work again: a new unit starts and its exit arrives as a signal.
    const after = uniqueUnitName("after");
    started.push(after);
    await manager.startUnit(plan(after, serviceProperties({ execStart: [command(["/bin/sh", "-c", "exit 4"])] })));
    expect(await waitForUnitState(manager, after, (state) => state.activeState === "failed")).toMatchObject({ execMainStatus: 4 });
    expect(outages.length).toBe(reconnections.length);
  });

  test("a start job in flight when the bus goes fails with the retriable error", async () => {
    const slow = uniqueUnitName("slow-start");
    started.push(slow);
    // A oneshot's start job lasts as long as its process runs.
    const starting = manager
      .startUnit(plan(slow, serviceProperties({ type: "oneshot", execStart: [command(["/bin/sleep", "30"])] })))
      .then(() => undefined, (err: unknown) => err);
    await waitFor("the start job to run", () => showUnit(slow, ["ActiveState"]).ActiveState === "activating");
    const lost = outageSeen();
    stopBus();
    await lost;
    const failure = await starting;
    expect(failure).toBeInstanceOf(SystemdDisconnectedError);
    const back = reconnectionSeen();
    startBus();
    await back;
    // The unit itself was never affected.
    expect((await manager.getUnitState(slow))?.activeState).toBe("activating");
    await manager.stopUnit(slow);
  });

  test("the bus daemon SIGKILLed: the next connection starts a new one and the manager is back", async () => {
    const unit = uniqueUnitName("through-kill");
    started.push(unit);
    await manager.startUnit(plan(unit, serviceProperties({ execStart: [command(["/bin/sleep", "infinity"])] })));
    const lost = outageSeen();
    const back = reconnectionSeen();
    const killed = performance.now();
    killBus();
    await lost;
    await back;
    console.log(`bus daemon SIGKILLed: reconnected after ${elapsedMs(killed)} ms (outage ${reconnections.at(-1)?.outageMs} ms)`);
    expect((await manager.getUnitState(unit))?.activeState).toBe("active");
  });

  test("the bus closes vks' own socket (a corrupt message): the manager reconnects, nothing else was affected", async () => {
    const unit = uniqueUnitName("through-close");
    started.push(unit);
    await manager.startUnit(plan(unit, serviceProperties({ execStart: [command(["/bin/sleep", "infinity"])] })));
    // dbus-daemon drops a client whose byte stream is not D-Bus; reaching the socket needs dbus-next's internals.
    const stream: unknown = Reflect.get(Reflect.get(Reflect.get(Reflect.get(manager, "bus") as object, "bus") as object, "_connection") as object, "stream");
    if (typeof stream !== "object" || stream === null || !("write" in stream) || typeof stream.write !== "function") throw new Error("no dbus-next stream to corrupt");
    const lost = outageSeen();
    const back = reconnectionSeen();
    const closed = performance.now();
    stream.write(Buffer.from("this is not a D-Bus message\r\n".repeat(4)));
    await lost;
    await back;
    console.log(`socket closed by the bus: reconnected after ${elapsedMs(closed)} ms`);
    expect(reconnections.at(-1)?.vksUnits.has(unit)).toBe(true);
    expect((await manager.getUnitState(unit))?.activeState).toBe("active");
  });

  test("daemon-reexec: systemd leaves the bus and returns; the manager re-subscribes and signals flow", async () => {
    const unit = uniqueUnitName("through-reexec");
    started.push(unit);
    await manager.startUnit(plan(unit, serviceProperties({ restart: "always", execStart: [command(["/bin/sleep", "infinity"])] })));
    const before = await waitForUnitState(manager, unit, (state) => state.mainPID > 0);
    const reexecs = reconnections.length;
    const back = reconnectionSeen();
    const reexecStarted = performance.now();
    systemctl("daemon-reexec");
    await back;
    console.log(`daemon-reexec: reconnected ${elapsedMs(reexecStarted)} ms after it was asked for (outage ${reconnections.at(-1)?.outageMs} ms)`);
    expect(reconnections.length).toBe(reexecs + 1);
    // JobRemoved and PropertiesChanged come from the new systemd: a killed process restarts and is seen to.
    process.kill(before.mainPID, "SIGKILL");
    const restarted = await waitForUnitState(manager, unit, (state) => state.nRestarts >= 1 && state.mainPID > 0);
    expect(restarted.mainPID).not.toBe(before.mainPID);
    await manager.stopUnit(unit);
    expect(await manager.getUnitState(unit)).toBeUndefined();
  });
});

describe.skipIf(noSystemd || !canRestartBus)("a manager that may give up", () => {
  test("fails for good, with the reason, once the outage outlasts its limit", async () => {
    const manager = await SystemdManager.connect({ scope: testScope, outageLimitMs: 300 });
    const gaveUp = new Promise<Error>((resolve) => manager.onDisconnected(resolve));
    const outage = new Promise<void>((resolve) => manager.onOutage(() => resolve()));
    stopBus();
    try {
      await outage;
      const waiting = manager.whenConnected().catch((e: unknown) => e);
      const reason = await gaveUp;
      expect(reason.message).toContain("did not come back within");
      const err = await manager.version().catch((e: unknown) => e);
      expect(err).not.toBeInstanceOf(SystemdDisconnectedError);
      expect((err as Error).message).toContain("did not come back within");
      expect(await waiting).toBe(reason);
      const later = await manager.whenConnected().catch((e: unknown) => e);
      expect((later as Error).message).toContain("did not come back within");
    } finally {
      startBus();
      await manager.close();
    }
  });
});
