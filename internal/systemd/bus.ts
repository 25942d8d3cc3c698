/**
 * One connection to a D-Bus message bus, on top of dbus-next's wire protocol only.
 *
 * dbus-next's own call() never fails a call whose connection has gone (the promise just hangs) and has no
 * timeouts, and its proxy objects introspect and add one match rule per object. So vks sends raw messages
 * and matches replies by serial itself: every call is bounded in time, fails at once when the bus goes
 * away, and carries the position at which its reply arrived among all incoming messages, which lets a
 * caller tell whether a signal is older or newer than a reply (see unit-cache.ts).
 */
import { EventEmitter } from "node:events";
import { Message, sessionBus, type MessageBus } from "dbus-next";
import { ExitCode, SystemdError, errorMessage } from "../errors.ts";
import { SystemdDisconnectedError } from "./disconnected.ts";
import { ConcurrencyLimiter } from "./limiter.ts";
import { encodeStringMethodCall, flushRaw, writeRaw } from "./wire.ts";
import { MESSAGE_TYPE, type IncomingMessage } from "./wire-decode.ts";
import { routeMessages } from "./wire-reader.ts";
import type { ManagerScope } from "./types.ts";


/**
 * Without it a bus whose systemd is gone would try to start one from its activation files (and answer
 * with the failure of that, not with "no such name").
 */
const FLAG_NO_AUTO_START = 2;

const BUS_DAEMON = { destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus" };

/** The default reply timeout of libdbus and sd-bus, so vks gives up no sooner than systemctl would. */
export const DEFAULT_CALL_TIMEOUT_MS = 25_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_CALLS_IN_FLIGHT = 16;
/** Calls that queue a job: slow to answer under load, and never allowed to take every slot (limiter.ts). */
const JOB_METHODS = new Set(["StartTransientUnit", "StartUnit", "StopUnit", "RestartUnit"]);

import type { MethodCall } from "./wire.ts";
export type { MethodCall };

export interface MethodReply {
  body: unknown[];
  /** The unique name (`:1.23`) of the peer that answered. */
  sender: string;
  /** Position of this reply among every message received on the connection. */
  sequence: number;
}

export interface BusSignal {
  sender: string;
  path: string;
  interface: string;
  member: string;
  body: unknown[];
  sequence: number;
}

/** A method call answered with a D-Bus error. `errorName` says which (org.freedesktop.systemd1.NoSuchUnit, …). */
export class DbusErrorReply extends SystemdError {
  constructor(
    readonly errorName: string,
    readonly text: string,
    readonly call: Pick<MethodCall, "interface" | "member">,
  ) {
    super(`${call.member}: ${text || errorName}`, { exitCode: ExitCode.unavailable });
  }
}

export interface BusConnectOptions {
  scope: ManagerScope;
  /** Overrides the address found from the environment (see busAddressFor). */
  busAddress?: string;
  connectTimeoutMs?: number;
  callTimeoutMs?: number;
  maxCallsInFlight?: number;
}

interface PendingCall {
  call: MethodCall;
  resolve: (reply: MethodReply) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Where the bus of a scope listens, as sd-bus finds it: the environment first, then the well-known socket. */
export function busAddressFor(scope: ManagerScope, env: NodeJS.ProcessEnv = process.env): string {
  if (scope === "system") return env.DBUS_SYSTEM_BUS_ADDRESS || "unix:path=/run/dbus/system_bus_socket";
  if (env.DBUS_SESSION_BUS_ADDRESS) return env.DBUS_SESSION_BUS_ADDRESS;
  const runtimeDir = env.XDG_RUNTIME_DIR || `/run/user/${process.getuid?.() ?? 0}`;
  return `unix:path=${runtimeDir}/bus`;
}

function scopeHint(scope: ManagerScope): string {
  return scope === "user"
    ? "no user manager: is DBUS_SESSION_BUS_ADDRESS set? run inside test/sandbox.sh or use the system manager (drop --user)"
    : "is systemd PID 1 and dbus running (systemctl status dbus)? elsewhere try --user inside test/sandbox.sh";
}

function unavailable(scope: ManagerScope, message: string, cause?: unknown): SystemdError {
  return new SystemdError(message, { exitCode: ExitCode.unavailable, hint: scopeHint(scope), cause });
}

function isEventEmitter(value: unknown): value is EventEmitter {
  return value instanceof EventEmitter;
}

export class BusConnection {
  private readonly pending = new Map<number, PendingCall>();
  private readonly events = new EventEmitter();
  private readonly limiter: ConcurrencyLimiter;
  private receivedCount = 0;
  private lostReason: Error | undefined;

  private constructor(
    private readonly bus: MessageBus,
    readonly scope: ManagerScope,
    readonly address: string,
    private readonly callTimeoutMs: number,
    maxCallsInFlight: number,
  ) {
    this.limiter = new ConcurrencyLimiter(maxCallsInFlight);
    // Signal and disconnect listeners belong to callers; no cap, since a manager may have many of them.
    this.events.setMaxListeners(0);
  }

  static async open(options: BusConnectOptions): Promise<BusConnection> {
    const address = options.busAddress ?? busAddressFor(options.scope);
    const busName = options.scope === "user" ? "user (session) bus" : "system bus";
    let bus: MessageBus;
    try {
      bus = sessionBus({ busAddress: address });
    } catch (err) {
      throw unavailable(options.scope, `cannot connect to the ${busName} at ${address}: ${errorMessage(err)}`, err);
    }
    const connection = new BusConnection(
      bus,
      options.scope,
      address,
      options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
      options.maxCallsInFlight ?? DEFAULT_MAX_CALLS_IN_FLIGHT,
    );
    await connection.waitForHello(busName, options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    return connection;
  }

  private waitForHello(busName: string, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err === undefined) {
          this.watchConnection();
          resolve();
          return;
        }
        this.shutDown();
        reject(err);
      };
      const timer = setTimeout(
        () => settle(unavailable(this.scope, `no answer from the ${busName} at ${this.address} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.bus.once("connect", () => settle());
      this.bus.on("error", (err: unknown) => {
        if (!settled) settle(unavailable(this.scope, `cannot connect to the ${busName} at ${this.address}: ${errorMessage(err)}`, err));
      });
    });
  }

  private watchConnection(): void {
    // dbus-next's typings number message types from 0; at run time they are the specification's.
    this.bus.on("message", (message: Message) => this.dispatch(message as unknown as IncomingMessage));
    this.bus.on("error", (err: unknown) => this.lose(new Error(`D-Bus connection error: ${errorMessage(err)}`)));
    // The MessageBus does not re-emit the end of its stream; the connection object underneath does.
    const connection: unknown = Reflect.get(this.bus, "_connection");
    if (isEventEmitter(connection)) {
      connection.on("end", () => this.lose(new Error("the bus closed the connection")));
      // Replies and signals decoded by vks' own reader come straight here (wire-reader.ts).
      const stream: unknown = Reflect.get(connection, "stream");
      if (typeof stream === "object" && stream !== null) {
        routeMessages(stream, (message) => {
          this.dispatch(message);
          return true;
        });
      }
    }
  }

  get isConnected(): boolean {
    return this.lostReason === undefined;
  }

  /** Sends a method call and waits for its reply; at most maxCallsInFlight calls are outstanding at once. */
  call(call: MethodCall, timeoutMs: number = this.callTimeoutMs): Promise<MethodReply> {
    return this.limiter.run(() => this.send(call, timeoutMs), JOB_METHODS.has(call.member) ? "bulk" : "urgent");
  }

  private send(call: MethodCall, timeoutMs: number): Promise<MethodReply> {
    if (this.lostReason) return Promise.reject(this.lostError(call));
    return new Promise<MethodReply>((resolve, reject) => {
      const serial = this.bus.newSerial();
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(
          new SystemdError(`${call.member} on ${call.destination}: no reply within ${timeoutMs} ms`, {
            exitCode: ExitCode.unavailable,
            hint: "systemd may be overloaded or hung; check `systemctl status` and retry",
          }),
        );
      }, timeoutMs);
      this.pending.set(serial, { call, resolve, reject, timer });
      try {
        // Most calls are property Gets and the like: encoded directly (wire.ts), the rest by dbus-next.
        const bytes = encodeStringMethodCall(call, serial, FLAG_NO_AUTO_START);
        if (bytes === undefined || !writeRaw(this.bus, bytes)) {
          flushRaw(this.bus);
          this.bus.send(
            new Message({
              serial,
              destination: call.destination,
              path: call.path,
              interface: call.interface,
              member: call.member,
              signature: call.signature ?? "",
              body: call.body ?? [],
              flags: FLAG_NO_AUTO_START,
            }),
          );
        }
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(serial);
        // dbus-next throws here once its stream has ended, before the end event reached this connection.
        reject(new SystemdDisconnectedError(`${call.member}: cannot send: ${errorMessage(err)}`, scopeHint(this.scope), err));
      }
    });
  }

  addMatch(rule: string): Promise<MethodReply> {
    return this.call({ ...BUS_DAEMON, member: "AddMatch", signature: "s", body: [rule] });
  }

  onSignal(listener: (signal: BusSignal) => void): () => void {
    this.events.on("signal", listener);
    return () => this.events.off("signal", listener);
  }

  /** Called once when the connection is lost; every outstanding call has been failed by then. */
  onDisconnected(listener: (reason: Error) => void): () => void {
    this.events.on("disconnected", listener);
    return () => this.events.off("disconnected", listener);
  }

  close(): void {
    if (this.lostReason) return;
    this.lose(new Error("the connection was closed by vks"));
  }

  private dispatch(message: IncomingMessage): void {
    const sequence = ++this.receivedCount;
    const body: unknown[] = Array.isArray(message.body) ? message.body : [];
    if (message.type === MESSAGE_TYPE.methodReturn || message.type === MESSAGE_TYPE.error) {
      const serial = Number(message.replySerial);
      const waiting = this.pending.get(serial);
      if (!waiting) return;
      this.pending.delete(serial);
      clearTimeout(waiting.timer);
      if (message.type === MESSAGE_TYPE.methodReturn) {
        waiting.resolve({ body, sender: message.sender ?? "", sequence });
      } else {
        const text = typeof body[0] === "string" ? body[0] : "";
        waiting.reject(new DbusErrorReply(message.errorName ?? "org.freedesktop.DBus.Error.Failed", text, waiting.call));
      }
      return;
    }
    if (message.type === MESSAGE_TYPE.signal) {
      const signal: BusSignal = {
        sender: message.sender ?? "",
        path: message.path ?? "",
        interface: message.interface ?? "",
        member: message.member ?? "",
        body,
        sequence,
      };
      try {
        this.events.emit("signal", signal);
      } catch (err) {
        // A throwing listener must not take the connection down with it: dbus-next would answer the
        // signal with an error message and carry on, losing nothing but this one delivery.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  private lostError(call: MethodCall): SystemdDisconnectedError {
    return new SystemdDisconnectedError(
      `${call.member}: lost the connection to the ${this.scope} bus (${errorMessage(this.lostReason)})`,
      scopeHint(this.scope),
    );
  }

  private lose(reason: Error): void {
    if (this.lostReason) return;
    this.lostReason = reason;
    for (const [serial, waiting] of this.pending) {
      this.pending.delete(serial);
      clearTimeout(waiting.timer);
      waiting.reject(this.lostError(waiting.call));
    }
    this.shutDown();
    this.events.emit("disconnected", reason);
  }

  private shutDown(): void {
    try {
      this.bus.disconnect();
    } catch {
      // Already closed: nothing left to release.
    }
  }
}
