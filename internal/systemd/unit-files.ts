/**
 * The few manager calls `vks service install` needs for unit files (not transient units): reload after
 * writing them, enable them for boot, start one. Separate from SystemdManager, which follows vks' own
 * transient units and needs none of its signal machinery for this.
 */
import { ExitCode, SystemdError, errorMessage } from "../errors.ts";
import { BusConnection } from "./bus.ts";
import type { ManagerScope } from "./types.ts";

const MANAGER = { destination: "org.freedesktop.systemd1", path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager" };
/** Reload re-reads every unit file; on a busy host that can take a while. */
const RELOAD_TIMEOUT_MS = 120_000;

export class UnitFiles {
  private constructor(private readonly bus: BusConnection) {}

  static async connect(scope: ManagerScope): Promise<UnitFiles> {
    return new UnitFiles(await BusConnection.open({ scope }));
  }

  close(): void {
    this.bus.close();
  }

  /** systemctl daemon-reload. */
  async reload(): Promise<void> {
    await this.call({ ...MANAGER, member: "Reload" }, "reload unit files", RELOAD_TIMEOUT_MS);
  }

  /** systemctl enable: the [Install] section's symlinks, replacing any that point elsewhere. */
  async enable(unitNames: string[]): Promise<void> {
    await this.call({ ...MANAGER, member: "EnableUnitFiles", signature: "asbb", body: [unitNames, false, true] }, `enable ${unitNames.join(", ")}`);
  }

  /** systemctl restart --no-block: queues the job and returns; the unit's own readiness decides when it is active. */
  async restart(unitName: string): Promise<void> {
    await this.call({ ...MANAGER, member: "RestartUnit", signature: "ss", body: [unitName, "replace"] }, `restart ${unitName}`);
  }

  private async call(call: Parameters<BusConnection["call"]>[0], doing: string, timeoutMs?: number): Promise<void> {
    try {
      await this.bus.call(call, timeoutMs);
    } catch (err) {
      throw new SystemdError(`cannot ${doing}: ${errorMessage(err)}`, {
        exitCode: ExitCode.unavailable,
        hint: "run as root for the system manager, or pass --user for your own",
        cause: err,
      });
    }
  }
}
