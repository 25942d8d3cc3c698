/**
 * A keyed work queue in the manner of client-go's workqueue: a key is never processed by two workers at
 * once, adding a key that is already waiting coalesces, adding one that is being processed runs it once
 * more afterwards, and a failed key is retried with its own exponential back-off.
 */
import { VksError } from "../errors.ts";
import { Backoff, type BackoffOptions } from "./backoff.ts";

export interface WorkQueueOptions {
  concurrency: number;
  retry: BackoffOptions;
  /** Called when a key fails; the queue has already scheduled the retry after `retryInMs`. */
  onError?: (key: string, err: unknown, retryInMs: number) => void;
}

export class KeyedWorkQueue {
  private readonly waiting = new Set<string>();
  private readonly order: string[] = [];
  private readonly active = new Set<string>();
  /** Keys added while active: run again when the current run ends. */
  private readonly dirty = new Set<string>();
  private readonly retries = new Map<string, Backoff>();
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly idleWaiters: (() => void)[] = [];
  private stopped = false;
  private started = false;

  constructor(
    private readonly worker: (key: string) => Promise<void>,
    private readonly options: WorkQueueOptions,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    const timer = this.timers.get(key);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.timers.delete(key);
    }
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.waiting.has(key)) return;
    this.waiting.add(key);
    this.order.push(key);
    this.pump();
  }

  /** Adds `key` after `delayMs`, unless something adds it sooner. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped || this.timers.has(key)) return;
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        this.add(key);
      }, delayMs),
    );
  }

  /** Keys added before start() wait until then: serve queues the first list before reconciling. */
  start(): void {
    this.started = true;
    this.pump();
  }

  /** Forgets a key's failures, so its next failure starts the back-off from the beginning. */
  forget(key: string): void {
    this.retries.delete(key);
  }

  get length(): number {
    return this.waiting.size + this.active.size;
  }

  /** Resolves when nothing is waiting or running (scheduled retries do not count). */
  idle(): Promise<void> {
    if (this.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.waiting.clear();
    this.order.length = 0;
    this.dirty.clear();
    this.notifyIdle();
  }

  private pump(): void {
    while (this.started && !this.stopped && this.active.size < this.options.concurrency && this.order.length > 0) {
      const key = this.order.shift() as string;
      this.waiting.delete(key);
      this.active.add(key);
      void this.run(key);
    }
  }

  private async run(key: string): Promise<void> {
    try {
      await this.worker(key);
      this.retries.delete(key);
    } catch (err) {
      // A failure that knows its own back-off (an image pull's) says when to retry; others get the queue's.
      const known = err instanceof VksError ? err.retryAfterMs : undefined;
      let backoff = this.retries.get(key);
      if (!backoff) this.retries.set(key, (backoff = new Backoff(this.options.retry)));
      const delay = known ?? backoff.next();
      this.options.onError?.(key, err, delay);
      // A newer change to the key is worth trying at once; otherwise wait out the back-off.
      if (!this.dirty.has(key)) this.addAfter(key, delay);
    } finally {
      this.active.delete(key);
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
      this.notifyIdle();
    }
  }

  private notifyIdle(): void {
    if (this.length > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
