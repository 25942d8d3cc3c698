/** Time as the certificate sources see it, so renewal schedules can be tested without waiting months. */

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`, or as soon as `signal` aborts (callers check `signal.aborted`). */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** setTimeout cannot wait longer than 2^31-1 ms (~24.8 days); longer waits are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep(ms, signal) {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const deadline = Date.now() + ms;
      let timer: ReturnType<typeof setTimeout>;
      const arm = () => {
        timer = setTimeout(() => {
          if (Date.now() >= deadline) done();
          else arm();
        }, Math.min(MAX_TIMER_MS, Math.max(0, deadline - Date.now())));
      };
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done);
      arm();
    });
  },
};
