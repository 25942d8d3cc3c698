/**
 * Connecting when there is no bus, a bus that never answers, or a bus without systemd: each must fail
 * promptly with a SystemdError that says what to do, and a lost bus must fail what is pending. None of
 * this needs systemd; the private dbus-daemon used here is an ordinary unprivileged process.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode, SystemdError } from "../../internal/errors.ts";
import { BusConnection, busAddressFor } from "../../internal/systemd/bus.ts";
import { SystemdManager } from "../../internal/systemd/manager.ts";

async function connectError(options: Parameters<typeof SystemdManager.connect>[0]): Promise<SystemdError> {
  const err = await SystemdManager.connect(options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SystemdError);
  return err as SystemdError;
}

describe("bus addresses", () => {
  test("come from the environment first, then the well-known sockets", () => {
    expect(busAddressFor("system", { DBUS_SYSTEM_BUS_ADDRESS: "unix:path=/x" })).toBe("unix:path=/x");
    expect(busAddressFor("system", {})).toBe("unix:path=/run/dbus/system_bus_socket");
    expect(busAddressFor("user", { DBUS_SESSION_BUS_ADDRESS: "unix:path=/y" })).toBe("unix:path=/y");
    expect(busAddressFor("user", { XDG_RUNTIME_DIR: "/run/user/1000" })).toBe("unix:path=/run/user/1000/bus");
  });
});

describe("connecting without systemd", () => {
  const dir = mkdtempSync(join(tmpdir(), "vks-connect-"));

  test("no socket: unavailable, with a hint about the user manager", async () => {
    const err = await connectError({ scope: "user", busAddress: `unix:path=${join(dir, "absent")}` });
    expect(err.exitCode).toBe(ExitCode.unavailable);
    expect(err.message).toContain(join(dir, "absent"));
    expect(err.hint).toContain("DBUS_SESSION_BUS_ADDRESS");
  });

  test("no socket on the system scope: the hint suggests --user", async () => {
    const err = await connectError({ scope: "system", busAddress: `unix:path=${join(dir, "absent")}` });
    expect(err.exitCode).toBe(ExitCode.unavailable);
    expect(err.hint).toContain("--user");
  });

  test("an address dbus-next cannot use is reported, not thrown raw", async () => {
    const err = await connectError({ scope: "user", busAddress: "bogus:nothing=1" });
    expect(err.message).toContain("bogus");
  });

  describe("a socket that accepts and never answers", () => {
    let server: Server;
    const clients: Socket[] = [];
    const path = join(dir, "silent");
    beforeAll(async () => {
      server = createServer((socket) => clients.push(socket));
      await new Promise<void>((resolve) => server.listen(path, resolve));
    });
    afterAll(() => {
      for (const socket of clients) socket.destroy();
      server.close();
    });

    test("fails once the connect timeout is over instead of hanging", async () => {
      const err = await connectError({ scope: "user", busAddress: `unix:path=${path}`, connectTimeoutMs: 200 });
      expect(err.exitCode).toBe(ExitCode.unavailable);
      expect(err.message).toContain("no answer");
    });
  });

  describe.skipIf(!existsSync("/usr/bin/dbus-daemon"))("a bus without systemd on it", () => {
    let daemon: ReturnType<typeof Bun.spawn> | undefined;
    const address = `unix:path=${join(dir, "bus")}`;

    beforeAll(async () => {
      daemon = Bun.spawn(["/usr/bin/dbus-daemon", "--session", "--nofork", "--nopidfile", `--address=${address}`, "--print-address=1"], {
        stdout: "pipe",
        stderr: "ignore",
      });
      // The daemon prints its address once it listens.
      const reader = (daemon.stdout as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      reader.releaseLock();
    });

    afterAll(() => {
      daemon?.kill();
    });

    test("connect says no systemd manager answers there", async () => {
      const err = await connectError({ scope: "user", busAddress: address });
      expect(err.exitCode).toBe(ExitCode.unavailable);
      expect(err.message).toContain("no systemd user manager");
      expect(err.hint).toContain("test/sandbox.sh");
    });

    test("a D-Bus error reply names its error", async () => {
      const bus = await BusConnection.open({ scope: "user", busAddress: address });
      const err = await bus
        .call({ destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "NoSuchMethod" })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ errorName: "org.freedesktop.DBus.Error.UnknownMethod" });
      bus.close();
    });

    test("losing the bus fails pending calls and reports the disconnection once", async () => {
      const bus = await BusConnection.open({ scope: "user", busAddress: address });
      const reasons: Error[] = [];
      bus.onDisconnected((reason) => reasons.push(reason));
      // A stopped daemon reads nothing, so this call is still pending when the daemon dies.
      daemon?.kill("SIGSTOP");
      const pending = bus
        .call({ destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "ListNames" })
        .catch((e: unknown) => e);
      const waiting = new Promise<void>((resolve) => bus.onDisconnected(() => resolve()));
      daemon?.kill("SIGKILL");
      await daemon?.exited;
      await waiting;
      const failed = await pending;
      expect(failed).toBeInstanceOf(SystemdError);
      expect((failed as SystemdError).message).toContain("lost the connection");
      expect(reasons).toHaveLength(1);
      expect(bus.isConnected).toBe(false);
      const after = await bus
        .call({ destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "ListNames" })
        .catch((e: unknown) => e);
      expect(after).toBeInstanceOf(SystemdError);
      expect((after as SystemdError).message).toContain("lost the connection");
    });
  });
});
