/** The one scheduler for all probes: fixed-rate runs, never two of one job at once, bounded concurrency. */
import { describe, expect, test } from "bun:test";
import { ProbeScheduler } from "../../../internal/pod/probes/scheduler.ts";

describe("ProbeScheduler", () => {
  test("runs each job repeatedly, earliest first, and stops a removed job", async () => {
    const scheduler = new ProbeScheduler();
    const order: string[] = [];
    scheduler.add("b", { periodMs: 20, run: async () => void order.push("b") }, 10);
    scheduler.add("a", { periodMs: 20, run: async () => void order.push("a") }, 0);
    while (order.filter((key) => key === "b").length < 3) await Bun.sleep(5);
    expect(order[0]).toBe("a");
    scheduler.remove("a");
    const countA = order.filter((key) => key === "a").length;
    const before = order.length;
    while (order.length < before + 3) await Bun.sleep(5);
    // At most one run of "a" was already under way when it was removed.
    expect(order.filter((key) => key === "a").length).toBeLessThanOrEqual(countA + 1);
    expect(scheduler.size).toBe(1);
    scheduler.close();
  });

  test("never more than `concurrency` runs at once, and never one job twice at once", async () => {
    const scheduler = new ProbeScheduler({ concurrency: 3 });
    let active = 0;
    let peak = 0;
    const perJob = new Map<string, number>();
    let overlapping = false;
    let runs = 0;
    for (let i = 0; i < 20; i++) {
      const key = `job${i}`;
      scheduler.add(
        key,
        {
          periodMs: 5,
          run: async () => {
            active++;
            peak = Math.max(peak, active);
            perJob.set(key, (perJob.get(key) ?? 0) + 1);
            if ((perJob.get(key) ?? 0) > 1) overlapping = true;
            await Bun.sleep(15);
            perJob.set(key, (perJob.get(key) ?? 1) - 1);
            active--;
            runs++;
          },
        },
        0,
      );
    }
    while (runs < 40) await Bun.sleep(5);
    scheduler.close();
    expect(peak).toBe(3);
    expect(overlapping).toBe(false);
  });

  test("a failing run does not stop its job", async () => {
    const scheduler = new ProbeScheduler();
    let runs = 0;
    scheduler.add("x", { periodMs: 5, run: async () => { runs++; throw new Error("boom"); } }, 0);
    while (runs < 3) await Bun.sleep(5);
    scheduler.close();
    expect(runs).toBeGreaterThanOrEqual(3);
  });

  test("with a test clock: fixed rate from the scheduled time; missed ticks are dropped, not caught up", async () => {
    let now = 0;
    const scheduler = new ProbeScheduler({ now: () => now });
    const dues: number[] = [];
    let release: () => void = () => undefined;
    scheduler.add("slow", { periodMs: 100, run: () => { dues.push(now); return new Promise<void>((resolve) => (release = resolve)); } }, 0);
    await Bun.sleep(5);
    expect(dues).toEqual([0]);
    // The run takes 250 ms of the test clock: the ticks at 100 and 200 are dropped, the next is due at 300.
    now = 250;
    release();
    await Bun.sleep(5);
    // Re-armed for 50 ms of real time (300 - 250); by then the test clock says 300.
    now = 300;
    await Bun.sleep(120);
    expect(dues).toEqual([0, 300]);
    scheduler.close();
  });

  test("with batchMs, one tick starts the jobs due within the window, and each keeps its own rate", async () => {
    let now = 0;
    const scheduler = new ProbeScheduler({ now: () => now, batchMs: 50 });
    const runs: string[] = [];
    scheduler.add("a", { periodMs: 1000, run: async () => void runs.push(`a@${now}`) }, 0);
    scheduler.add("b", { periodMs: 1000, run: async () => void runs.push(`b@${now}`) }, 40);
    scheduler.add("c", { periodMs: 1000, run: async () => void runs.push(`c@${now}`) }, 60);
    await Bun.sleep(5);
    // a was due, b is within 50 ms of it: both run in the first tick; c waits for its own.
    expect(runs).toEqual(["a@0", "b@0"]);
    now = 60;
    await Bun.sleep(80);
    expect(runs).toEqual(["a@0", "b@0", "c@60"]);
    // b ran 40 ms early, yet its next run is due at 1040 (its own rate): at 960 only a's (due 1000) is in the window.
    now = 960;
    await Bun.sleep(1000);
    expect(runs.slice(3)).toEqual(["a@960"]);
    now = 1040;
    await Bun.sleep(100);
    expect(runs.slice(4).sort()).toEqual(["b@1040", "c@1040"]);
    scheduler.close();
  });
});
