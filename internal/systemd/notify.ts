/**
 * sd_notify(3) for a service started with Type=notify: READY=1, STATUS=…, WATCHDOG=1, STOPPING=1 sent as
 * one datagram to $NOTIFY_SOCKET (a path, or an abstract socket written `@name`). Node's and Bun's dgram
 * have no unix datagram sockets, so this calls libc through bun:ffi (which works in the compiled binary).
 * Sent by vks' own PID, so the unit needs no NotifyAccess=all, and there is no race with a short-lived
 * systemd-notify process that exits before systemd can attribute its message.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(struct sockaddr_un): sa_family_t, then sun_path[108]. */
const SOCKADDR_UN_SIZE = 110;

type Libc = ReturnType<typeof openLibc>;
let libc: Libc | undefined;

function openLibc() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  }).symbols;
}

/** The sockaddr_un for `socketPath` and its length; undefined for a value systemd would never set. */
export function notifyAddress(socketPath: string): { address: Uint8Array; length: number } | undefined {
  const abstract = socketPath.startsWith("@");
  if (!abstract && !socketPath.startsWith("/")) return undefined;
  const path = Buffer.from(abstract ? `\0${socketPath.slice(1)}` : socketPath);
  // A path socket's name is NUL-terminated within sun_path; an abstract name is exactly its bytes.
  if (path.length + (abstract ? 0 : 1) > SOCKADDR_UN_SIZE - 2) return undefined;
  const address = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(path, 2);
  return { address, length: 2 + path.length + (abstract ? 0 : 1) };
}

/**
 * Sends `state` (newline-separated assignments) to the service manager. Returns false when vks was not
 * started by one that listens ($NOTIFY_SOCKET unset) or the send failed; never throws, as a notification
 * must not take the service down.
 */
export function sdNotify(state: string, env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  const socketPath = env.NOTIFY_SOCKET;
  if (!socketPath) return false;
  const target = notifyAddress(socketPath);
  if (target === undefined) return false;
  try {
    libc ??= openLibc();
    const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    try {
      const message = Buffer.from(state);
      const sent = libc.sendto(fd, ptr(message), message.length, MSG_NOSIGNAL, ptr(target.address), target.length);
      return Number(sent) === message.length;
    } finally {
      libc.close(fd);
    }
  } catch {
    return false;
  }
}

/**
 * The watchdog interval systemd expects keep-alives within (WatchdogSec=), in milliseconds; undefined
 * when there is none or it is meant for another process (WATCHDOG_PID names the one that must ping).
 */
export function watchdogIntervalMs(env: Readonly<Record<string, string | undefined>> = process.env, pid: number = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return usec / 1000;
}
