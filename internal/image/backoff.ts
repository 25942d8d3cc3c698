/**
 * The kubelet's image pull back-off: after a failed pull the next attempt for the same key waits 10 s,
 * then 20 s, 40 s … up to 300 s; a key that has not failed for twice the maximum starts over at 10 s.
 * Meanwhile the container waits with reason ImagePullBackOff. Pure: the clock is injected.
 */
import { ImageError } from "./errors.ts";

export const PULL_BACKOFF_INITIAL_MS = 10_000;
export const PULL_BACKOFF_MAX_MS = 300_000;

interface BackOffEntry {
  durationMs: number;
  lastFailureMs: number;
}

export interface PullBackOffOptions {
  initialMs?: number;
  maxMs?: number;
  /** Milliseconds; Date.now unless a test supplies its own clock. */
  now?: () => number;
}

export class PullBackOff {
  private readonly entries = new Map<string, BackOffEntry>();
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;

  constructor(options: PullBackOffOptions = {}) {
    this.initialMs = options.initialMs ?? PULL_BACKOFF_INITIAL_MS;
    this.maxMs = options.maxMs ?? PULL_BACKOFF_MAX_MS;
    this.now = options.now ?? Date.now;
  }

  /** Milliseconds until `key` may be pulled again; 0 when it may be pulled now. */
  remainingMs(key: string): number {
    const entry = this.entries.get(key);
    if (entry === undefined) return 0;
    return Math.max(0, entry.lastFailureMs + entry.durationMs - this.now());
  }

  /**
   * Throws the ImagePullBackOff error when `key` is still backing off, so a caller writes
   * `backOff.check(key, image)` before a pull.
   */
  check(key: string, image: string): void {
    const remaining = this.remainingMs(key);
    if (remaining > 0) {
      throw new ImageError("ImagePullBackOff", `Back-off pulling image ${JSON.stringify(image)}`, {
        hint: `the last pull failed; vks tries again in ${Math.ceil(remaining / 1000)}s`,
        retryAfterMs: remaining,
      });
    }
  }

  /** Records a failed pull; returns the back-off now in force for `key`. */
  recordFailure(key: string): number {
    const now = this.now();
    const entry = this.entries.get(key);
    const durationMs =
      entry === undefined || now - entry.lastFailureMs > 2 * this.maxMs
        ? this.initialMs
        : Math.min(entry.durationMs * 2, this.maxMs);
    this.entries.set(key, { durationMs, lastFailureMs: now });
    return durationMs;
  }

  /** A successful pull ends the back-off for `key`. */
  recordSuccess(key: string): void {
    this.entries.delete(key);
  }

  /** Forgets keys idle for more than twice the maximum, as the kubelet's periodic GC does. */
  collectGarbage(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) {
      if (now - entry.lastFailureMs > 2 * this.maxMs) this.entries.delete(key);
    }
  }
}
