/**
 * What the benchmarks that drive the in-process PodEngine (pods.ts, volumes.ts) share: their own view of
 * the systemd manager, so "running" is decided the same way for every variant and by no code under test,
 * and the clean-up commands they run.
 */
import { BusConnection } from "../internal/systemd/bus.ts";

const SYSTEMD = { destination: "org.freedesktop.systemd1", path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager" };

export const ms = (value: number): string => `${value.toFixed(0)} ms`;

/** Runs `argv` to completion; throws with its stderr when it fails. */
export async function run(argv: string[]): Promise<void> {
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${stderr.trim()}`);
}

export const systemctl = (args: string[]): Promise<void> => run(["systemctl", "--user", "--no-pager", ...args]);

/** The bench's own view of systemd: one cheap call per check, independent of the code under test. */
export class Observer {
  private constructor(private readonly bus: BusConnection) {}

  static async open(): Promise<Observer> {
    return new Observer(await BusConnection.open({ scope: "user" }));
  }

  close(): void {
    this.bus.close();
  }

  /** [name, activeState, subState] of every loaded unit matching `pattern`. */
  async units(pattern: string): Promise<Array<[string, string, string]>> {
    // Long timeout: a manager busy forking a burst of units answers nothing for seconds at a time.
    const reply = await this.bus.call({ ...SYSTEMD, member: "ListUnitsByPatterns", signature: "asas", body: [[], [pattern]] }, 120_000);
    const rows = reply.body[0];
    if (!Array.isArray(rows)) throw new Error("ListUnitsByPatterns: unexpected reply");
    return rows.map((row: unknown) => {
      if (!Array.isArray(row)) throw new Error("ListUnitsByPatterns: unexpected row");
      return [String(row[0]), String(row[3]), String(row[4])];
    });
  }

  /** Polls until `count` units matching `pattern` run; throws with what it saw after `timeoutMs`. */
  async waitRunning(pattern: string, count: number, timeoutMs = 60_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const units = await this.units(pattern);
      const running = units.filter(([, active, sub]) => active === "active" && sub === "running").length;
      if (running >= count) return;
      if (performance.now() > deadline) {
        const failed = units.filter(([, active]) => active === "failed").map(([name]) => name);
        throw new Error(`${pattern}: ${running}/${count} running after ${timeoutMs} ms; failed: ${failed.slice(0, 5).join(", ") || "none"}`);
      }
      await Bun.sleep(2);
    }
  }

  /** Polls until no unit matching `pattern` is loaded any more, so the next variant starts on a quiet manager. */
  async waitGone(pattern: string, timeoutMs = 60_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const units = await this.units(pattern);
      if (units.length === 0) return;
      if (units.every(([, active]) => active === "failed")) {
        await systemctl(["reset-failed", pattern]);
        continue;
      }
      if (performance.now() > deadline) throw new Error(`${pattern}: ${units.length} units still loaded after ${timeoutMs} ms`);
      await Bun.sleep(10);
    }
  }
}
