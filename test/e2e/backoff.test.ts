/**
 * The kubelet's restart back-off, kept by each unit's restart gate (internal/pod/restart-backoff.ts): a
 * container that keeps failing restarts after 0, 10, 20, 40 s. The pod runs detached, so no vks process
 * is there while it waits: the back-off lives in the unit, not in vks.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { eventually, haveSystemd, managerFlag, podNamed, testFileStateDir, vks, writePod } from "./helpers.ts";

setDefaultTimeout(240_000);
const stateDir = testFileStateDir();

describe.skipIf(!haveSystemd)("restart back-off (end to end, real systemd)", () => {
  test("a crashing container restarts after 0, 10, 20, 40 s, waiting in CrashLoopBackOff with the kubelet's message", async () => {
    const starts = join(stateDir, "starts");
    const file = writePod(
      stateDir,
      "crasher",
      `  containers:\n    - name: crash\n      image: /bin/sh\n      args: ["-c", "date +%s.%N >> ${starts}; exit 3"]\n`,
    );
    expect((await vks(stateDir, ["pod", "up", "-d", file, ...managerFlag])).exitCode).toBe(0);
    const times = (): number[] => {
      try {
        return readFileSync(starts, "utf8").trim().split("\n").map(Number);
      } catch {
        return [];
      }
    };
    // While the third restart waits, status says so the way the kubelet does.
    const waiting = await eventually(
      "CrashLoopBackOff with a 20 s back-off",
      async () => {
        const container = (await podNamed(stateDir, "crasher"))?.status.containerStatuses?.[0];
        const message = (container?.state.waiting as { message?: string } | undefined)?.message ?? "";
        return container?.state.waiting?.reason === "CrashLoopBackOff" && message.startsWith("back-off 20s") ? container : undefined;
      },
      600,
    );
    const uid = (await podNamed(stateDir, "crasher"))?.metadata.uid;
    expect((waiting.state.waiting as { message?: string }).message).toBe(`back-off 20s restarting failed container=crash pod=crasher_default(${uid})`);
    expect(waiting.restartCount).toBe(2);
    expect(waiting.lastState?.terminated?.exitCode).toBe(3);
    expect(waiting.ready).toBe(false);

    await eventually("five starts", async () => times().length >= 5, 1200);
    const [t0, t1, t2, t3, t4] = times() as [number, number, number, number, number];
    const gaps = [t1 - t0, t2 - t1, t3 - t2, t4 - t3];
    console.log(`restart gaps (s): ${gaps.map((gap) => gap.toFixed(1)).join(", ")}`);
    // Lower bounds are what the gate guarantees; the upper ones only say it is not the next step's wait.
    expect(gaps[0]).toBeLessThan(10);
    expect(gaps[1]).toBeGreaterThanOrEqual(9.5);
    expect(gaps[1]).toBeLessThan(20);
    expect(gaps[2]).toBeGreaterThanOrEqual(19.5);
    expect(gaps[2]).toBeLessThan(40);
    expect(gaps[3]).toBeGreaterThanOrEqual(39.5);
    expect(gaps[3]).toBeLessThan(80);
    expect((await podNamed(stateDir, "crasher"))?.status.containerStatuses?.[0]?.restartCount).toBeGreaterThanOrEqual(4);

    expect((await vks(stateDir, ["pod", "down", "crasher", ...managerFlag])).exitCode).toBe(0);
  });
});
