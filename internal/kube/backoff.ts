/** Retry pacing shared by every loop that talks to the API server. */

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number;
}

/**
 * Exponential back-off with jitter: many nodes (or many pods of one node) that lost the API server at the
 * same moment must not all come back in the same millisecond.
 */
export class Backoff {
  private attempt = 0;
  constructor(private readonly options: BackoffOptions) {}

  /** The delay before the next attempt; each call grows it until maxMs. */
  next(): number {
    const factor = this.options.factor ?? 2;
    const base = Math.min(this.options.maxMs, this.options.initialMs * factor ** this.attempt);
    this.attempt++;
    // Up to 20% jitter below the nominal delay keeps the cap a cap.
    return Math.round(base * (0.8 + Math.random() * 0.2));
  }

  reset(): void {
    this.attempt = 0;
  }

  get failures(): number {
    return this.attempt;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (callers check `signal.aborted`). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done);
  });
}
