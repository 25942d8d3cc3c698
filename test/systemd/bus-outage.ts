/**
 * Taking the sandbox's bus away and bringing it back, for the reconnect tests.
 *
 * In the user sandbox the bus vks talks to is the manager's own dbus.socket and dbus.service (systemd binds
 * dbus.socket over the address test/sandbox.sh prepared, and starts the daemon on the first
 * connection), so the manager restarts it as it would on a host: stopping dbus.socket takes the bus
 * away (connections are refused), starting it brings it back, and a SIGKILLed daemon is started again
 * by the next connection. systemctl reaches the manager over its private socket meanwhile. systemd 252
 * attaches itself to the new bus as soon as dbus.service runs again; nothing needs re-executing.
 *
 * The system sandbox (test/sandbox.sh --system) has the same pair for its system bus. Only inside a
 * sandbox (VKS_SANDBOX=1 or system): on a host this would take the machine's bus away.
 */
import { ExitCode } from "../../internal/errors.ts";
import { testScope } from "./harness.ts";

export const canRestartBus = process.env.VKS_SANDBOX === "1" || process.env.VKS_SANDBOX === "system";

const scopeFlag = testScope === "user" ? ["--user"] : [];

export function systemctl(...args: string[]): string {
  const run = Bun.spawnSync(["systemctl", ...scopeFlag, ...args], { stdout: "pipe", stderr: "pipe" });
  if (run.exitCode !== ExitCode.ok) throw new Error(`systemctl ${args.join(" ")}: ${run.stderr.toString().trim()}`);
  return run.stdout.toString();
}

/** The bus is gone until startBus(): the daemon stops and its socket refuses connections. */
export function stopBus(): void {
  systemctl("stop", "dbus.socket", "dbus.service");
}

/**
 * The bus is back, its daemon started at once rather than by the next connection: systemctl returns once
 * it runs, so no start job is left over to race with the next test.
 */
export function startBus(): void {
  resetStartLimit();
  systemctl("start", "dbus.socket", "dbus.service");
  awaitSystemdOnBus();
}

/**
 * systemd joins a restarted bus a moment after dbus.service runs; until then its name has no owner, and a
 * test that connects in that moment (the next file in the same run) fails with NameHasNoOwner.
 */
function awaitSystemdOnBus(): void {
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    const asked = Bun.spawnSync(
      ["busctl", ...scopeFlag, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", "org.freedesktop.systemd1"],
      { stdout: "pipe", stderr: "ignore" },
    );
    if (asked.stdout.toString().trim() === "b true") return;
    Bun.sleepSync(25);
  }
  throw new Error("systemd did not return to the bus within 30 s of dbus.service starting again");
}

/**
 * These tests start the bus more often than systemd's default start limit allows (5 in 10 s): past it
 * systemd refuses to start dbus.service, fails dbus.socket, and the bus stays away.
 */
function resetStartLimit(): void {
  Bun.spawnSync(["systemctl", ...scopeFlag, "reset-failed", "dbus.socket", "dbus.service"], { stdout: "ignore", stderr: "ignore" });
}

/** The daemon dies at once (as in a crash); the socket stays, so the next connection starts a new one. */
export function killBus(): void {
  resetStartLimit();
  systemctl("kill", "--signal=SIGKILL", "dbus.service");
}

/** Unit properties as systemctl show prints them, read over the manager's private socket. */
export function showUnit(unitName: string, properties: string[]): Record<string, string> {
  const shown: Record<string, string> = {};
  for (const line of systemctl("show", unitName, ...properties.map((property) => `--property=${property}`)).split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) shown[line.slice(0, at)] = line.slice(at + 1);
  }
  return shown;
}

/** Milliseconds since `start` (performance.now()), rounded, for the figures the tests print. */
export function elapsedMs(start: number): number {
  return Math.round(performance.now() - start);
}

/**
 * Polls a synchronous check (a systemctl reading, a list of reports) every 50 ms for up to 30 s: while the
 * bus is down, the manager's private socket still answers systemctl.
 */
export async function waitFor<T>(what: string, check: () => T | undefined | false): Promise<T> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}
