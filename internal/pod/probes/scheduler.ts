/**
 * One scheduler for every probe of every pod: a min-heap of due times behind a single timer, and at most
 * `concurrency` runs at once (the rest wait their turn in due order), instead of a timer per probe. A job
 * runs at a fixed rate, like the kubelet's ticker: the next run is due one period after the previous one
 * was due; a run that overruns its period delays the next (it never runs twice at once), and missed
 * ticks are dropped, not caught up.
 *
 * A tick also starts the jobs due within the next `batchMs`: probes spread evenly over a period each woke
 * the event loop several times (timer, connect, data, close), and with 100 httpGet probes a second those
 * wake-ups, not the probes, were most of vks' CPU (measured: 100 loopback connects a second cost 4.3 % of a
 * core spread evenly, 1.9 % started 5 at a time every 50 ms). A job started early keeps its fixed rate: the
 * next run is due one period after the one it was due for.
 */

export interface ScheduledJob {
  /** Milliseconds between runs. */
  periodMs: number;
  run: () => Promise<void>;
}

interface Entry {
  key: string;
  job: ScheduledJob;
  due: number;
  running: boolean;
  removed: boolean;
}

export interface SchedulerOptions {
  concurrency?: number;
  /** A tick starts jobs due up to this many milliseconds later too (0: only those already due). */
  batchMs?: number;
  /** Monotonic milliseconds; performance.now() unless a test supplies its clock. */
  now?: () => number;
}

export class ProbeScheduler {
  private readonly heap: Entry[] = [];
  private readonly entries = new Map<string, Entry>();
  private readonly ready: Entry[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerDue = Number.POSITIVE_INFINITY;
  private active = 0;
  private readonly concurrency: number;
  private readonly batchMs: number;
  private readonly now: () => number;
  private closed = false;

  constructor(options: SchedulerOptions = {}) {
    this.concurrency = options.concurrency ?? 16;
    this.batchMs = Math.max(0, options.batchMs ?? 0);
    this.now = options.now ?? (() => performance.now());
  }

  /** Schedules `job` under `key` (replacing one there), first due `firstDelayMs` from now. */
  add(key: string, job: ScheduledJob, firstDelayMs: number): void {
    this.remove(key);
    const entry: Entry = { key, job, due: this.now() + Math.max(0, firstDelayMs), running: false, removed: false };
    this.entries.set(key, entry);
    this.push(entry);
    this.arm();
  }

  remove(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    entry.removed = true;
    this.entries.delete(key);
    // Left in the heap or queue and skipped when it comes up: removal stays O(1).
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get size(): number {
    return this.entries.size;
  }

  /** How many runs are under way (for tests and the bench). */
  get running(): number {
    return this.active;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const key of [...this.entries.keys()]) this.remove(key);
  }

  private arm(): void {
    if (this.closed) return;
    const next = this.peekLive();
    if (next === undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.timerDue = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.timer !== undefined && this.timerDue <= next.due) return;
    clearTimeout(this.timer);
    this.timerDue = next.due;
    this.timer = setTimeout(() => this.tick(), Math.max(0, next.due - this.now()));
    // Probes never keep a process alive on their own: the engine's owner decides when it ends.
    this.timer.unref?.();
  }

  private tick(): void {
    this.timer = undefined;
    this.timerDue = Number.POSITIVE_INFINITY;
    const horizon = this.now() + this.batchMs;
    for (let next = this.peekLive(); next !== undefined && next.due <= horizon; next = this.peekLive()) {
      this.pop();
      this.ready.push(next);
    }
    this.drain();
    this.arm();
  }

  private drain(): void {
    while (this.active < this.concurrency && this.ready.length > 0) {
      const entry = this.ready.shift();
      if (entry === undefined || entry.removed) continue;
      this.start(entry);
    }
  }

  private start(entry: Entry): void {
    entry.running = true;
    this.active++;
    const scheduled = entry.due;
    void entry.job
      .run()
      .catch(() => undefined)
      .finally(() => {
        entry.running = false;
        this.active--;
        if (!entry.removed && !this.closed) {
          // Fixed rate from the scheduled time; ticks missed while it ran (or waited for a slot) are dropped.
          const period = entry.job.periodMs;
          const now = this.now();
          let due = scheduled + period;
          if (due < now) due += Math.ceil((now - due) / period) * period;
          entry.due = due;
          this.push(entry);
        }
        this.drain();
        this.arm();
      });
  }

  private peekLive(): Entry | undefined {
    while (this.heap.length > 0 && this.heap[0]?.removed === true) this.pop();
    return this.heap[0];
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const above = heap[parent] as Entry;
      if (above.due <= entry.due) break;
      heap[index] = above;
      index = parent;
    }
    heap[index] = entry;
  }

  private pop(): Entry | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length === 0 || last === undefined) return top;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      let smallestDue = last.due;
      if (left < heap.length && (heap[left] as Entry).due < smallestDue) {
        smallest = left;
        smallestDue = (heap[left] as Entry).due;
      }
      if (right < heap.length && (heap[right] as Entry).due < smallestDue) smallest = right;
      if (smallest === index) break;
      heap[index] = heap[smallest] as Entry;
      index = smallest;
    }
    heap[index] = last;
    return top;
  }
}
