/**
 * Hands the memory of a burst back to the system once the burst is over.
 *
 * Measured with 100 pods created at once (bench/serve.ts): serve's live JavaScript heap grows by ~4 MiB,
 * but the garbage of the burst (watch events, status patches, D-Bus signals decoded by dbus-next) takes
 * the heap's high-water mark from ~13 to ~40 MiB, and JavaScriptCore's scavenger gives those pages back
 * only ~10 s later: RSS stayed ~30 MiB above its steady state meanwhile. A full collection plus a shrink
 * once work has been quiet for a moment returns them at once. It costs one full GC (tens of ms) per
 * burst, never more often than `minIntervalMs`, and nothing while serve is idle.
 */
export interface IdleTrimOptions {
  /** How long without activity counts as the end of a burst. */
  quietMs: number;
  /** At most one trim per this long, however bursty the work. */
  minIntervalMs: number;
  /** Activities since the last trim below which it is not worth one. */
  minActivities: number;
  /** The trim itself; serve passes Bun's collector. */
  trim: () => void;
}

export class IdleTrim {
  private activities = 0;
  private lastTrimAt = Number.NEGATIVE_INFINITY;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(private readonly options: IdleTrimOptions) {}

  /** Something allocated on behalf of a pod (a sync, a status write): a trim is due when it goes quiet. */
  activity(): void {
    if (this.stopped) return;
    this.activities++;
    clearTimeout(this.timer);
    const sinceLast = performance.now() - this.lastTrimAt;
    const delay = Math.max(this.options.quietMs, this.options.minIntervalMs - sinceLast);
    this.timer = setTimeout(() => this.run(), delay);
    // Never what keeps serve (or a test) alive.
    this.timer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private run(): void {
    this.timer = undefined;
    if (this.stopped || this.activities < this.options.minActivities) return;
    this.activities = 0;
    this.lastTrimAt = performance.now();
    this.options.trim();
  }
}

/** A full collection, then JavaScriptCore returns the freed heap pages (Bun.shrink) as soon as it is idle. */
export function trimBunHeap(): void {
  Bun.gc(true);
  Bun.shrink();
}
