/**
 * Writing to the byte transport under a streaming protocol (a TLS or TCP socket, or a WebSocket tunnel)
 * with backpressure: a write is enqueued at once, in call order, and its promise settles when the
 * transport has room again, so a producer that awaits each write never buffers without bound.
 */
import type { Duplex } from "node:stream";

export class TransportClosed extends Error {
  override readonly name = "TransportClosed";
  constructor() {
    super("the connection is closed");
  }
}

export class TransportWriter {
  private waiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private closed = false;

  constructor(private readonly transport: Duplex) {
    transport.on("drain", () => this.release());
    transport.once("close", () => this.fail());
  }

  get isClosed(): boolean {
    return this.closed || this.transport.destroyed || this.transport.writableEnded;
  }

  /** Enqueues now; resolves when the transport is below its high-water mark again. */
  write(data: Uint8Array): Promise<void> {
    if (this.isClosed) return Promise.reject(new TransportClosed());
    const hasRoom = this.transport.write(data);
    if (hasRoom) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Half-closes after everything written so far. */
  end(): void {
    if (this.isClosed) return;
    this.closed = true;
    this.transport.end();
    this.release();
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  private fail(): void {
    this.closed = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(new TransportClosed());
  }
}
