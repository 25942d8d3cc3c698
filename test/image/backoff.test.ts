import { describe, expect, test } from "bun:test";
import { ImageError } from "../../internal/image/errors.ts";
import { PullBackOff } from "../../internal/image/resolve.ts";

function clock(): { now: () => number; advance: (ms: number) => void } {
  let current = 1_000_000;
  return { now: () => current, advance: (ms) => (current += ms) };
}

describe("PullBackOff", () => {
  test("10 s doubling to 300 s, per key", () => {
    const time = clock();
    const backOff = new PullBackOff({ now: time.now });
    const durations = [];
    for (let i = 0; i < 7; i++) {
      durations.push(backOff.recordFailure("hello"));
      time.advance(backOff.remainingMs("hello"));
    }
    expect(durations).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
    expect(backOff.remainingMs("other")).toBe(0);
  });

  test("check throws ImagePullBackOff while backing off, then lets the pull through", () => {
    const time = clock();
    const backOff = new PullBackOff({ now: time.now });
    backOff.recordFailure("hello");
    time.advance(4_000);
    let caught: unknown;
    try {
      backOff.check("hello", "hello");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ImageError);
    expect((caught as ImageError).reason).toBe("ImagePullBackOff");
    expect((caught as ImageError).message).toBe('Back-off pulling image "hello"');
    expect((caught as ImageError).hint).toContain("6s");
    time.advance(6_000);
    expect(() => backOff.check("hello", "hello")).not.toThrow();
  });

  test("success resets; a long quiet period starts over at 10 s", () => {
    const time = clock();
    const backOff = new PullBackOff({ now: time.now });
    backOff.recordFailure("a");
    backOff.recordFailure("a");
    backOff.recordSuccess("a");
    expect(backOff.remainingMs("a")).toBe(0);
    expect(backOff.recordFailure("a")).toBe(10_000);
    expect(backOff.recordFailure("a")).toBe(20_000);
    time.advance(600_001);
    expect(backOff.recordFailure("a")).toBe(10_000);
    time.advance(600_001);
    backOff.collectGarbage();
    expect(backOff.remainingMs("a")).toBe(0);
  });
});
