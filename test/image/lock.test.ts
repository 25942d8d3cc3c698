import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AsyncMutex, withHostLock } from "../../internal/image/lock.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "vks-lock-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Whether another process could take the lock right now. */
async function lockIsFree(path: string): Promise<boolean> {
  return (await Bun.spawn(["flock", "--nonblock", "--exclusive", path, "true"]).exited) === 0;
}

describe("AsyncMutex", () => {
  test("tasks run one at a time, in call order, and a failure releases the lock", async () => {
    const mutex = new AsyncMutex();
    const events: string[] = [];
    let releaseFirst: () => void = () => {};
    const first = mutex.runExclusive(async () => {
      events.push("first start");
      await new Promise<void>((resolve) => {
        releaseFirst = resolve;
      });
      events.push("first end");
    });
    const failing = mutex.runExclusive(async () => {
      events.push("second");
      throw new Error("boom");
    });
    const third = mutex.runExclusive(async () => {
      events.push("third");
    });
    await Promise.resolve();
    releaseFirst();
    await first;
    await expect(failing).rejects.toThrow("boom");
    await third;
    expect(events).toEqual(["first start", "first end", "second", "third"]);
  });
});

describe("withHostLock", () => {
  test("holds an flock other processes see for the task's length, with the holder's PID", async () => {
    const path = join(dir, "sub", "install.lock");
    const seen = await withHostLock(path, 5, () => {}, async () => ({
      free: await lockIsFree(path),
      holder: readFileSync(path, "utf8").trim(),
    }));
    expect(seen).toEqual({ free: false, holder: String(process.pid) });
    expect(await lockIsFree(path)).toBe(true);
  });

  test("waits for another holder and says whom it waits for", async () => {
    const path = join(dir, "install.lock");
    // The other holder: flock(1) keeps the lock until its stdin (a pipe vks controls) closes.
    const holder = Bun.spawn(["flock", "--exclusive", path, "cat"], { stdin: "pipe", stdout: "ignore" });
    while (await lockIsFree(path)) await Bun.sleep(10);
    const messages: string[] = [];
    const acquired = withHostLock(path, 30, (message) => {
      messages.push(message);
      holder.stdin.end();
    }, async () => "ran");
    expect(await acquired).toBe("ran");
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/waiting for another vks process/);
    await holder.exited;
  });

  test("gives up after the timeout with a clear error", async () => {
    const path = join(dir, "install.lock");
    const holder = Bun.spawn(["flock", "--exclusive", path, "cat"], { stdin: "pipe", stdout: "ignore" });
    while (await lockIsFree(path)) await Bun.sleep(10);
    await expect(withHostLock(path, 0, () => {}, async () => "ran")).rejects.toThrow(/kept installing packages/);
    holder.stdin.end();
    await holder.exited;
  });
});
