/**
 * SystemdManager against a real systemd (test/sandbox.sh bun test test/systemd): unit lifecycle, exit
 * statuses, restarts, stop grace, output files, events and error reporting.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ExitCode, SystemdError } from "../../internal/errors.ts";
import type { SystemdManager } from "../../internal/systemd/manager.ts";
import { ExitKind, type UnitState } from "../../internal/systemd/types.ts";
import {
  command,
  connectTestManager,
  hasFinished,
  noSystemd,
  plan,
  serviceProperties,
  testDir,
  uniqueUnitName,
  waitForUnitState,
} from "./harness.ts";

describe.skipIf(noSystemd)("SystemdManager", () => {
  let manager: SystemdManager;
  const started: string[] = [];

  beforeAll(async () => {
    manager = await connectTestManager();
  });

  afterAll(async () => {
    await Promise.all(started.map((name) => manager.stopUnit(name)));
    await manager.close();
  });

  async function start(label: string, properties: Parameters<typeof plan>[1]): Promise<string> {
    const name = uniqueUnitName(label);
    started.push(name);
    await manager.startUnit(plan(name, properties));
    return name;
  }

  test("version names systemd's release", async () => {
    expect(await manager.version()).toMatch(/^\d+/);
    expect(manager.systemdVersion).toMatch(/^\d+/);
  });

  test("starts a /bin/sleep unit, reports it running, and stops it so it is collected", async () => {
    const name = await start("sleep", serviceProperties({ execStart: [command(["/bin/sleep", "1000"])] }));
    const running = await manager.getUnitState(name);
    expect(running).toMatchObject({ name, loadState: "loaded", activeState: "active", subState: "running" });
    expect(running?.mainPID).toBeGreaterThan(0);
    expect(running?.description).toBe("vks systemd test");

    const listed = await manager.listUnits([name]);
    expect(listed).toEqual([expect.objectContaining({ name, activeState: "active", subState: "running" })]);

    await manager.stopUnit(name);
    expect(await manager.getUnitState(name)).toBeUndefined();
  });

  test("a unit exiting 3 with RemainAfterExit keeps ExecMainStatus=3 until stopped", async () => {
    const name = await start("exit3", serviceProperties({ execStart: [command(["/bin/sh", "-c", "exit 3"])] }));
    const finished = await waitForUnitState(manager, name, hasFinished);
    expect(finished).toMatchObject({ activeState: "failed", result: "exit-code", execMainCode: ExitKind.exited, execMainStatus: 3 });
    expect(finished.execMainExitTimestamp).toBeGreaterThan(0n);
    // Still there when read afresh: the failed unit is kept for its status.
    expect(await manager.getUnitState(name)).toMatchObject({ execMainStatus: 3, result: "exit-code" });

    await manager.stopUnit(name);
    expect(await manager.getUnitState(name)).toBeUndefined();
  });

  test("a unit exiting 0 with RemainAfterExit is active (exited) and stopUnit removes it", async () => {
    const name = await start("exit0", serviceProperties({ execStart: [command(["/bin/true"])] }));
    const finished = await waitForUnitState(manager, name, hasFinished);
    expect(finished).toMatchObject({ activeState: "active", subState: "exited", result: "success", execMainStatus: 0 });

    const removed = new Promise<string>((resolve) => {
      const off = manager.onUnitRemoved((unitName) => {
        if (unitName === name) {
          off();
          resolve(unitName);
        }
      });
    });
    await manager.stopUnit(name);
    expect(await removed).toBe(name);
    expect(await manager.getUnitState(name)).toBeUndefined();
  });

  test("Restart=always restarts an exiting process and counts NRestarts", async () => {
    const name = await start(
      "restart",
      serviceProperties({ execStart: [command(["/bin/sh", "-c", "exit 1"])], restart: "always", restartUSec: 1000n, remainAfterExit: false }),
    );
    const restarted = await waitForUnitState(manager, name, (state) => state.nRestarts >= 3);
    expect(restarted.nRestarts).toBeGreaterThanOrEqual(3);
    // StartLimitIntervalUSec=0 is what lets it go on: systemd's default would stop it after 5 starts.
    const later = await waitForUnitState(manager, name, (state) => state.nRestarts >= 8);
    expect(later.activeState).not.toBe("failed");
    await manager.stopUnit(name);
    expect(await manager.getUnitState(name)).toBeUndefined();
  });

  test("a process ignoring SIGTERM is SIGKILLed after TimeoutStopUSec", async () => {
    const dir = testDir("grace");
    const ready = join(dir, "trap-set");
    const name = await start(
      "grace",
      serviceProperties({
        // The marker file tells the test the trap is in place, so SIGTERM cannot arrive before it.
        execStart: [command(["/bin/sh", "-c", `trap "" TERM; touch ${ready}; sleep 100 & wait; sleep 100`])],
        timeoutStopUSec: 300_000n,
      }),
    );
    await waitForFile(manager, name, ready);
    await manager.stopUnit(name);
    // stopUnit resets the failed (timeout) state, so the unit is gone once the SIGKILL did its work.
    expect(await manager.getUnitState(name)).toBeUndefined();
  });

  test("the SIGKILL after the stop timeout is what ends the unit (Result=timeout, signal 9)", async () => {
    const dir = testDir("grace-state");
    const ready = join(dir, "trap-set");
    const name = await start(
      "grace-state",
      serviceProperties({
        execStart: [command(["/bin/sh", "-c", `trap "" TERM; touch ${ready}; while :; do sleep 1; done`])],
        timeoutStopUSec: 300_000n,
      }),
    );
    await waitForFile(manager, name, ready);
    const killed = waitForUnitState(manager, name, (state) => state.activeState === "failed");
    // StopUnit directly, without stopUnit's reset, so the failed state can be observed.
    const stopping = manager.stopUnit(name);
    const state = await killed;
    expect(state).toMatchObject({ result: "timeout", execMainCode: ExitKind.killed, execMainStatus: 9 });
    await stopping;
  });

  test("StandardOutputFileToAppend and StandardErrorFileToAppend append to the files", async () => {
    const dir = testDir("output");
    const out = join(dir, "stdout.log");
    const err = join(dir, "stderr.log");
    await Bun.write(out, "before\n");
    const name = await start(
      "output",
      serviceProperties({
        execStart: [command(["/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"])],
        standardOutputFile: out,
        standardErrorFile: err,
      }),
    );
    await waitForUnitState(manager, name, hasFinished);
    expect(readFileSync(out, "utf8")).toBe("before\nto-stdout\n");
    expect(readFileSync(err, "utf8")).toBe("to-stderr\n");
  });

  test("ExecStartPre, Environment, EnvironmentFiles and WorkingDirectory reach the process", async () => {
    const dir = testDir("context");
    const envFile = join(dir, "env");
    await Bun.write(envFile, "FROM_FILE=file-value\n");
    const out = join(dir, "out");
    const name = await start(
      "context",
      serviceProperties({
        execStartPre: [command(["/bin/sh", "-c", `echo pre > ${join(dir, "pre")}`])],
        execStart: [command(["/bin/sh", "-c", `echo "$PWD $GREETING $FROM_FILE" > ${out}`])],
        environment: ["GREETING=hello"],
        environmentFiles: [
          { path: envFile, optional: false },
          { path: join(dir, "missing"), optional: true },
        ],
        workingDirectory: dir,
        logExtraFields: ["VKS_TEST=1"],
      }),
    );
    await waitForUnitState(manager, name, hasFinished);
    expect(readFileSync(join(dir, "pre"), "utf8")).toBe("pre\n");
    expect(readFileSync(out, "utf8")).toBe(`${dir} hello file-value\n`);
  });

  test("onUnitChanged delivers running, then exited, as full states", async () => {
    await manager.startWatching();
    const name = uniqueUnitName("events");
    started.push(name);
    const seen: UnitState[] = [];
    const exited = new Promise<void>((resolve) => {
      const off = manager.onUnitChanged((state) => {
        if (state.name !== name) return;
        seen.push(state);
        if (hasFinished(state)) {
          off();
          resolve();
        }
      });
    });
    const dir = testDir("events");
    const gate = join(dir, "gate");
    // The process waits for the test to see it running, so the running state cannot be skipped.
    await manager.startUnit(
      plan(name, serviceProperties({ execStart: [command(["/bin/sh", "-c", `while [ ! -e ${gate} ]; do sleep 0.05; done`])] })),
    );
    await waitForUnitState(manager, name, (state) => state.subState === "running");
    await Bun.write(gate, "");
    await exited;

    const running = seen.find((state) => state.subState === "running");
    expect(running).toMatchObject({ activeState: "active", loadState: "loaded", description: "vks systemd test" });
    expect(running?.mainPID).toBeGreaterThan(0);
    const last = seen[seen.length - 1];
    expect(last).toMatchObject({ activeState: "active", subState: "exited", execMainCode: ExitKind.exited, execMainStatus: 0, mainPID: 0 });
    expect(seen.indexOf(running as UnitState)).toBeLessThan(seen.length - 1);
    // Repeats of an unchanged state are not delivered.
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toEqual(seen[i - 1]);
    expect(manager.cachedUnitState(name)).toEqual(last);
  });

  test("starting a unit that already exists fails with a conflict naming the unit", async () => {
    const name = await start("dup", serviceProperties({ execStart: [command(["/bin/sleep", "1000"])] }));
    const second = manager.startUnit(plan(name, serviceProperties({ execStart: [command(["/bin/sleep", "1000"])] })));
    const err = await second.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SystemdError);
    expect((err as SystemdError).exitCode).toBe(ExitCode.conflict);
    expect((err as SystemdError).message).toContain(`${name} (container c) already exists`);
    expect((err as SystemdError).hint).toContain("stop");
  });

  test("a property systemd rejects is reported as invalid input with systemd's reason", async () => {
    const name = uniqueUnitName("invalid");
    const err = await manager
      .startUnit(plan(name, serviceProperties({ execStart: [command(["relative/path"])] })))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SystemdError);
    expect((err as SystemdError).exitCode).toBe(ExitCode.invalidInput);
    expect((err as SystemdError).message).toContain(name);
    expect(await manager.getUnitState(name)).toBeUndefined();
  });

  test("a Type=exec unit whose binary is missing fails its start job with EXEC", async () => {
    const name = uniqueUnitName("noexec");
    started.push(name);
    const err = await manager
      .startUnit(plan(name, serviceProperties({ type: "exec", execStart: [command(["/nonexistent/vks-test-binary"])] })))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SystemdError);
    expect((err as SystemdError).message).toContain(`start job for ${name} ended "failed"`);
    expect((err as SystemdError).message).toContain("203");
    expect((err as SystemdError).hint).toContain("journalctl");
  });

  test("stopping a unit that does not exist is not an error", async () => {
    await manager.stopUnit(uniqueUnitName("never-started"));
  });

  test("getUnitState of an unknown unit is undefined and does not make systemd load a stub", async () => {
    const name = uniqueUnitName("unknown");
    expect(await manager.getUnitState(name)).toBeUndefined();
    expect(await manager.listUnits([name])).toEqual([]);
  });

  test("concurrent stops of one unit share its stop job and both return", async () => {
    const name = await start("double-stop", serviceProperties({ execStart: [command(["/bin/sleep", "1000"])] }));
    await Promise.all([manager.stopUnit(name), manager.stopUnit(name), manager.stopUnit(name)]);
    expect(await manager.getUnitState(name)).toBeUndefined();
  });
});

/** Resolves once `path` exists; the unit's own state changes (or its absence) are what wake the check. */
async function waitForFile(manager: SystemdManager, unitName: string, path: string): Promise<void> {
  while (!(await Bun.file(path).exists())) {
    const state = await manager.getUnitState(unitName);
    if (!state || state.activeState === "failed") throw new Error(`${unitName} ended before creating ${path}`);
    await Bun.sleep(20);
  }
}
