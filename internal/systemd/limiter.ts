/**
 * A counting semaphore for bus calls, with two lanes. systemd handles one message at a time; thousands of
 * calls queued at once only grow dbus-daemon's buffers (it disconnects clients whose queue gets too
 * large) without making anything faster.
 *
 * Calls that create jobs (StartTransientUnit, StopUnit) are "bulk": when 100 pods arrive at once they fill
 * every slot for seconds while systemd forks, and the reads that turn a unit change into a pod status (a
 * unit's properties, GetUnit) would wait behind all of them. So bulk calls never hold the last
 * `reserved` slots, and a freed slot goes to a waiting urgent call first.
 */
export type Lane = "urgent" | "bulk";

export class ConcurrencyLimiter {
  private inFlight = 0;
  private bulkInFlight = 0;
  private readonly waiting: Record<Lane, Array<() => void>> = { urgent: [], bulk: [] };
  /** Slots only urgent calls may use. */
  readonly reserved: number;

  constructor(readonly maxInFlight: number) {
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new RangeError(`maxInFlight must be a positive integer, got ${maxInFlight}`);
    }
    // A quarter of the window, and never all of it: with one slot, bulk calls must still run.
    this.reserved = Math.min(maxInFlight - 1, Math.max(1, Math.floor(maxInFlight / 4)));
  }

  async run<T>(task: () => Promise<T>, lane: Lane = "urgent"): Promise<T> {
    if (this.canStart(lane)) this.take(lane);
    // The slot is taken on the waiter's behalf by release(), so a newcomer can never overtake the queue.
    else await new Promise<void>((resolve) => this.waiting[lane].push(resolve));
    try {
      return await task();
    } finally {
      this.release(lane);
    }
  }

  private canStart(lane: Lane): boolean {
    if (this.inFlight >= this.maxInFlight) return false;
    if (lane === "urgent") return this.waiting.urgent.length === 0;
    return this.waiting.urgent.length === 0 && this.waiting.bulk.length === 0 && this.bulkInFlight < this.maxInFlight - this.reserved;
  }

  private take(lane: Lane): void {
    this.inFlight++;
    if (lane === "bulk") this.bulkInFlight++;
  }

  private release(lane: Lane): void {
    this.inFlight--;
    if (lane === "bulk") this.bulkInFlight--;
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight) {
      const urgent = this.waiting.urgent.shift();
      if (urgent) {
        this.take("urgent");
        urgent();
        continue;
      }
      if (this.waiting.bulk.length === 0 || this.bulkInFlight >= this.maxInFlight - this.reserved) return;
      this.take("bulk");
      (this.waiting.bulk.shift() as () => void)();
    }
  }
}
