import { describe, expect, test } from "bun:test";
import { IdleTrim } from "../../internal/kube/memory-trim.ts";

/** Resolves once `check` holds; polls without any time limit of its own (the test's timeout bounds it). */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await Bun.sleep(5);
}

describe("IdleTrim", () => {
  test("trims once after a burst goes quiet, not during it", async () => {
    let trims = 0;
    const trim = new IdleTrim({ quietMs: 20, minIntervalMs: 0, minActivities: 3, trim: () => trims++ });
    for (let i = 0; i < 10; i++) trim.activity();
    // Activity keeps pushing the trim back: none has run while the burst went on.
    expect(trims).toBe(0);
    await until(() => trims === 1);
    await Bun.sleep(60);
    expect(trims).toBe(1);
    trim.stop();
  });

  test("a lull after too little work does not trim", async () => {
    let trims = 0;
    const trim = new IdleTrim({ quietMs: 5, minIntervalMs: 0, minActivities: 3, trim: () => trims++ });
    trim.activity();
    trim.activity();
    await Bun.sleep(60);
    expect(trims).toBe(0);
    // The count carries over: the next activity makes it worth one.
    trim.activity();
    await until(() => trims === 1);
    trim.stop();
  });

  test("bursts closer together than minIntervalMs share one trim", async () => {
    let trims = 0;
    const trim = new IdleTrim({ quietMs: 5, minIntervalMs: 2_000, minActivities: 1, trim: () => trims++ });
    trim.activity();
    await until(() => trims === 1);
    trim.activity();
    // Quiet again, but the last trim was too recent: this one waits for the interval.
    await Bun.sleep(30);
    expect(trims).toBe(1);
    await until(() => trims === 2);
    trim.stop();
  });

  test("stop cancels a pending trim", async () => {
    let trims = 0;
    const trim = new IdleTrim({ quietMs: 5, minIntervalMs: 0, minActivities: 1, trim: () => trims++ });
    trim.activity();
    trim.stop();
    trim.activity();
    await Bun.sleep(40);
    expect(trims).toBe(0);
  });
});
