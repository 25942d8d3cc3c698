/**
 * A counting semaphore for bus calls. systemd handles one message at a time; thousands of calls queued at
 * once only grow dbus-daemon's buffers (it disconnects clients whose queue gets too large) without making
 * anything faster.
 */
export class ConcurrencyLimiter {
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly maxInFlight: number) {
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new RangeError(`maxInFlight must be a positive integer, got ${maxInFlight}`);
    }
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.inFlight >= this.maxInFlight) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.inFlight++;
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so a newcomer can never overtake the queue.
      if (next) next();
      else this.inFlight--;
    }
  }
}
