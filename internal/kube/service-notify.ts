/**
 * What `vks serve` tells systemd when it runs as a Type=notify service: READY=1 once the node is
 * registered, STATUS= lines for `systemctl status`, STOPPING=1 on a clean stop, and WATCHDOG=1 keep-alives
 * fed only while serve's loops are alive. Outside a service ($NOTIFY_SOCKET unset) every call is a no-op.
 */
import { sdNotify, watchdogIntervalMs } from "../systemd/notify.ts";

/** A loop serve runs forever; it is alive while it keeps completing iterations. */
export interface WatchedLoop {
  name: string;
  /** How often an iteration normally completes (a failed iteration counts: it was handled). */
  intervalMs: number;
}

export interface ServiceNotifierOptions {
  env?: Readonly<Record<string, string | undefined>>;
  now?: () => number;
  send?: (state: string) => boolean;
}

export class ServiceNotifier {
  private readonly env: Readonly<Record<string, string | undefined>>;
  private readonly now: () => number;
  private readonly send: (state: string) => boolean;
  private readonly lastTick = new Map<string, number>();
  private readonly loops = new Map<string, WatchedLoop>();
  private timer: ReturnType<typeof setInterval> | undefined;
  readonly watchdogMs: number | undefined;

  constructor(options: ServiceNotifierOptions = {}) {
    this.env = options.env ?? process.env;
    this.now = options.now ?? (() => performance.now());
    this.send = options.send ?? ((state) => sdNotify(state, this.env));
    this.watchdogMs = watchdogIntervalMs(this.env);
  }

  get enabled(): boolean {
    return Boolean(this.env.NOTIFY_SOCKET);
  }

  status(text: string): void {
    if (this.enabled) this.send(`STATUS=${oneLine(text)}`);
  }

  ready(text: string): void {
    if (this.enabled) this.send(`READY=1\nSTATUS=${oneLine(text)}`);
  }

  stopping(text: string): void {
    this.stopWatchdog();
    if (this.enabled) this.send(`STOPPING=1\nSTATUS=${oneLine(text)}`);
  }

  /** Follows `loop` from now on: it must tick (see tick) for the watchdog to be fed. */
  watch(loop: WatchedLoop): void {
    this.loops.set(loop.name, loop);
    this.lastTick.set(loop.name, this.now());
  }

  /** The loop completed an iteration. */
  tick(name: string): void {
    if (this.loops.has(name)) this.lastTick.set(name, this.now());
  }

  /**
   * Loops that have not ticked within their allowance: three of their own intervals, or the watchdog
   * interval if that is longer. A slow API server makes iterations fail, not stop; only a wedged loop
   * (a call that never returns, a blocked event loop) goes silent.
   */
  stalled(): string[] {
    const now = this.now();
    return [...this.loops.values()]
      .filter((loop) => now - (this.lastTick.get(loop.name) ?? 0) > Math.max(3 * loop.intervalMs, this.watchdogMs ?? 0))
      .map((loop) => loop.name);
  }

  /**
   * Sends WATCHDOG=1 every half watchdog interval while no loop is stalled. A stalled loop stops the
   * keep-alives, so systemd kills and restarts vks (Restart=always); pods are separate units and keep running.
   */
  startWatchdog(): void {
    if (!this.enabled || this.watchdogMs === undefined || this.timer !== undefined) return;
    let reported = false;
    this.timer = setInterval(() => {
      const stalled = this.stalled();
      if (stalled.length === 0) {
        reported = false;
        this.send("WATCHDOG=1");
      } else if (!reported) {
        reported = true;
        this.send(`STATUS=${stalled.join(", ")} stalled; watchdog keep-alives withheld`);
      }
    }, Math.max(10, this.watchdogMs / 2));
    this.timer.unref();
  }

  stopWatchdog(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ");
}
