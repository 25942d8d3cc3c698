/**
 * The one failure a caller may simply retry: systemd could not be reached because the bus connection was
 * lost, or systemd itself was briefly off the bus (a daemon-reexec, a restarted dbus-daemon). A call that
 * was in flight may or may not have taken effect; SystemdManager.whenConnected() says when to try again.
 */
import { ExitCode, SystemdError } from "../errors.ts";

export class SystemdDisconnectedError extends SystemdError {
  readonly retriable = true;

  constructor(message: string, hint?: string, cause?: unknown) {
    super(message, { exitCode: ExitCode.unavailable, hint, cause });
  }
}

export function isSystemdDisconnected(err: unknown): err is SystemdDisconnectedError {
  return err instanceof SystemdDisconnectedError;
}

/** Delays between reconnect attempts: doubling, capped, with jitter so that many vks do not reconnect in step. */
export class ReconnectBackoff {
  private attempt = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const nominal = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt++;
    // Between half and all of the nominal delay: spread out, and never above the cap.
    return Math.round(nominal * (0.5 + this.random() * 0.5));
  }

  get attempts(): number {
    return this.attempt;
  }
}

/** What retryWhenConnected needs of SystemdManager. */
export interface ReconnectingManager {
  readonly connected: boolean;
  whenConnected(): Promise<void>;
}

/**
 * Runs `operation` (a systemd call that is safe to repeat) until it succeeds or fails for another reason
 * than a lost connection, waiting for the manager to reconnect in between. Rejects with the manager's
 * error once it is closed or gives up.
 */
export async function retryWhenConnected<T>(manager: ReconnectingManager, operation: () => Promise<T>): Promise<T> {
  // A failure seen before the manager noticed the outage would otherwise be retried at once, in a loop.
  const pace = new ReconnectBackoff(20, 1_000);
  for (;;) {
    try {
      return await operation();
    } catch (err) {
      if (!isSystemdDisconnected(err)) throw err;
      if (manager.connected) await new Promise((resolve) => setTimeout(resolve, pace.next()));
      else await manager.whenConnected();
    }
  }
}
