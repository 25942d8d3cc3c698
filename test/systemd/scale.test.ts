/**
 * Many units at once: 200 concurrent starts all finish (JobRemoved may beat StartTransientUnit's reply,
 * about once in 400 starts) and are listed and stopped. With VKS_SYSTEMD_BENCH=1 it also times 1000 units
 * against `systemctl list-units`; timings are printed, never asserted.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { SystemdManager } from "../../internal/systemd/manager.ts";
import type { UnitState } from "../../internal/systemd/types.ts";
import { command, connectTestManager, noSystemd, plan, serviceProperties, systemctlScope } from "./harness.ts";

const runId = `${process.pid}x${Date.now().toString(36)}`;
const unitName = (group: string, index: number) => `vks.scale.${group}${runId}-${index}.c.uid${index}.service`;

describe.skipIf(noSystemd)("many units", () => {
  let manager: SystemdManager;

  beforeAll(async () => {
    manager = await connectTestManager();
  });

  afterAll(async () => {
    const leftovers = await manager.listUnits([`vks.scale.*${runId}*`]);
    await Promise.all(leftovers.map((state) => manager.stopUnit(state.name)));
    await manager.close();
  });

  test(
    "200 units started concurrently all finish, are listed, report changes, and stop",
    async () => {
      await manager.startWatching();
      const names = Array.from({ length: 200 }, (_, i) => unitName("c", i));
      const running = new Set<string>();
      const allRunning = new Promise<void>((resolve) => {
        const off = manager.onUnitChanged((state) => {
          if (!names.includes(state.name) || state.subState !== "running") return;
          running.add(state.name);
          if (running.size === names.length) {
            off();
            resolve();
          }
        });
      });

      const started = performance.now();
      await Promise.all(
        names.map((name) => manager.startUnit(plan(name, serviceProperties({ execStart: [command(["/bin/sleep", "1000"])] })))),
      );
      const startMs = performance.now() - started;
      console.log(`started 200 units in ${startMs.toFixed(0)} ms (${((200 / startMs) * 1000).toFixed(0)}/s)`);
      await allRunning;

      const listed = await manager.listUnits([`vks.scale.c${runId}-*`]);
      expect(listed.map((state) => state.name).sort()).toEqual([...names].sort());
      for (const state of listed) expect(state).toMatchObject({ activeState: "active", subState: "running" });

      const removed = new Set<string>();
      const allRemoved = new Promise<void>((resolve) => {
        const off = manager.onUnitRemoved((name) => {
          if (names.includes(name)) removed.add(name);
          if (removed.size === names.length) {
            off();
            resolve();
          }
        });
      });
      await Promise.all(names.map((name) => manager.stopUnit(name)));
      await allRemoved;
      expect(await manager.listUnits([`vks.scale.c${runId}-*`])).toEqual([]);
    },
    120_000,
  );

  test.skipIf(process.env.VKS_SYSTEMD_BENCH !== "1")(
    "benchmark: listing 1000 units",
    async () => {
      const names = Array.from({ length: 1000 }, (_, i) => unitName("b", i));
      let started = performance.now();
      await Promise.all(
        names.map((name) => manager.startUnit(plan(name, serviceProperties({ execStart: [command(["/bin/sleep", "1000"])] })))),
      );
      let elapsed = performance.now() - started;
      console.log(`started 1000 units in ${elapsed.toFixed(0)} ms (${((1000 / elapsed) * 1000).toFixed(0)}/s)`);

      // `vks units ls` connects, lists and leaves: a fresh connection that is not watching signals.
      let listed: UnitState[] = [];
      for (let round = 0; round < 3; round++) {
        started = performance.now();
        const cold = await connectTestManager();
        listed = await cold.listUnits(["vks.*"]);
        await cold.close();
        console.log(`connect + listUnits(vks.*): ${listed.length} units with full state in ${(performance.now() - started).toFixed(0)} ms`);
      }
      expect(listed.filter((state) => names.includes(state.name))).toHaveLength(1000);
      // `vks serve` lists through its watching connection, where signals have already filled the cache.
      for (let round = 0; round < 3; round++) {
        started = performance.now();
        listed = await manager.listUnits(["vks.*"]);
        console.log(`listUnits(vks.*) while watching: ${listed.length} units in ${(performance.now() - started).toFixed(0)} ms`);
      }

      const systemctl = ["systemctl", ...systemctlScope, "list-units", "--all", "--no-pager", "vks.*"];
      for (let round = 0; round < 3; round++) {
        started = performance.now();
        const result = Bun.spawnSync(systemctl, { stdout: "pipe" });
        console.log(`${systemctl.join(" ")}: ${(performance.now() - started).toFixed(0)} ms (exit ${result.exitCode})`);
      }

      started = performance.now();
      await Promise.all(names.map((name) => manager.stopUnit(name)));
      elapsed = performance.now() - started;
      console.log(`stopped 1000 units in ${elapsed.toFixed(0)} ms`);
    },
    600_000,
  );
});
