/**
 * ServiceProperties → the typed `a(sv)` list StartTransientUnit takes. Pure: no bus, no I/O.
 *
 * Every property goes over the wire as a typed D-Bus value, never as unit-file text, so no value from a
 * manifest can add a directive; the only rewriting is escapeExecArgument's, which undoes systemd's own
 * exec-time `$` expansion.
 */
import { Variant } from "dbus-next";
import { escapeExecArgument } from "./escape.ts";
import { capabilityMask } from "./capabilities.ts";
import type { BindMount, CgroupProperties, ExecCommand, SandboxProperties, ServiceProperties, SlicePlan } from "./types.ts";

export type DbusProperty = [name: string, value: Variant];

/** One `(sasb)` entry: path, argv (argv[0] first), ignore-failure. */
type ExecCommandTuple = [string, string[], boolean];

function execCommandTuple(command: ExecCommand): ExecCommandTuple {
  return [command.path, command.argv.map(escapeExecArgument), command.ignoreFailure];
}

/** One `(sasas)` entry: path, argv, flags ("ignore-failure", "privileged", …). */
function execCommandExTuple(command: ExecCommand): [string, string[], string[]] {
  const flags = [...(command.ignoreFailure ? ["ignore-failure"] : []), ...(command.privileged === true ? ["privileged"] : [])];
  return [command.path, command.argv.map(escapeExecArgument), flags];
}

/** systemd reads 32-bit KillSignal as `i` and rejects signal numbers outside 1..64 itself. */
/** MS_REC from <sys/mount.h>: the flag systemd's `(ssbt)` bind entries carry for a recursive bind. */
const MS_REC = 16384n;

/** One `(ssbt)` entry: source, destination, ignore a missing source, mount flags. */
function bindMountTuple(mount: BindMount): [string, string, boolean, bigint] {
  return [mount.source, mount.destination, mount.ignoreMissing, mount.recursive ? MS_REC : 0n];
}

function signalNumber(value: number): number {
  if (!Number.isInteger(value)) throw new RangeError(`killSignal must be an integer signal number, got ${value}`);
  return value;
}

function nonNegativeMicroseconds(name: string, value: bigint): bigint {
  if (value < 0n) throw new RangeError(`${name} must not be negative, got ${value}`);
  return value;
}

export function toDbusProperties(properties: ServiceProperties): DbusProperty[] {
  const list: DbusProperty[] = [
    ["Description", new Variant("s", properties.description)],
    ["Type", new Variant("s", properties.type)],
    ["ExecStart", new Variant("a(sasb)", properties.execStart.map(execCommandTuple))],
  ];
  if (properties.execStartPre.some((command) => command.privileged === true)) {
    // Only the Ex form carries flags such as "privileged" (systemd >= 243).
    list.push(["ExecStartPreEx", new Variant("a(sasas)", properties.execStartPre.map(execCommandExTuple))]);
  } else if (properties.execStartPre.length > 0) {
    list.push(["ExecStartPre", new Variant("a(sasb)", properties.execStartPre.map(execCommandTuple))]);
  }
  if (properties.execStopPost !== undefined && properties.execStopPost.length > 0) {
    list.push(["ExecStopPostEx", new Variant("a(sasas)", properties.execStopPost.map(execCommandExTuple))]);
  }
  if (properties.environment.length > 0) {
    list.push(["Environment", new Variant("as", properties.environment)]);
  }
  if (properties.environmentFiles.length > 0) {
    list.push([
      "EnvironmentFiles",
      new Variant(
        "a(sb)",
        properties.environmentFiles.map((file): [string, boolean] => [file.path, file.optional]),
      ),
    ]);
  }
  if (properties.workingDirectory !== undefined) {
    list.push(["WorkingDirectory", new Variant("s", properties.workingDirectory)]);
  }
  if (properties.user !== undefined) list.push(["User", new Variant("s", properties.user)]);
  if (properties.group !== undefined) list.push(["Group", new Variant("s", properties.group)]);
  if (properties.runtimeDirectory.length > 0) {
    list.push(["RuntimeDirectory", new Variant("as", properties.runtimeDirectory)]);
  }
  list.push(
    ["Restart", new Variant("s", properties.restart)],
    ["RestartUSec", new Variant("t", nonNegativeMicroseconds("restartUSec", properties.restartUSec))],
    ["RemainAfterExit", new Variant("b", properties.remainAfterExit)],
    // A [Unit] setting, yet StartTransientUnit accepts it alongside the service's own (systemd 252).
    [
      "StartLimitIntervalUSec",
      new Variant("t", nonNegativeMicroseconds("startLimitIntervalUSec", properties.startLimitIntervalUSec)),
    ],
    ["KillSignal", new Variant("i", signalNumber(properties.killSignal))],
    ["SendSIGKILL", new Variant("b", properties.sendSIGKILL)],
    ["TimeoutStopUSec", new Variant("t", nonNegativeMicroseconds("timeoutStopUSec", properties.timeoutStopUSec))],
    ...(properties.timeoutStartUSec === undefined
      ? []
      : [["TimeoutStartUSec", new Variant("t", nonNegativeMicroseconds("timeoutStartUSec", properties.timeoutStartUSec))] satisfies DbusProperty]),
    outputProperty("StandardOutput", properties.standardOutputFile),
    outputProperty("StandardError", properties.standardErrorFile),
  );
  if (properties.bindPaths !== undefined && properties.bindPaths.length > 0) {
    list.push(["BindPaths", new Variant("a(ssbt)", properties.bindPaths.map(bindMountTuple))]);
  }
  if (properties.bindReadOnlyPaths !== undefined && properties.bindReadOnlyPaths.length > 0) {
    list.push(["BindReadOnlyPaths", new Variant("a(ssbt)", properties.bindReadOnlyPaths.map(bindMountTuple))]);
  }
  if (properties.before !== undefined && properties.before.length > 0) list.push(["Before", new Variant("as", properties.before)]);
  if (properties.slice !== undefined) list.push(["Slice", new Variant("s", properties.slice)]);
  if (properties.cgroup !== undefined) list.push(...cgroupProperties(properties.cgroup));
  if (properties.sandbox !== undefined) list.push(...sandboxProperties(properties.sandbox));
  // systemd skips this when it lacks the privilege to lower the score (an unprivileged user manager).
  if (properties.oomScoreAdjust !== undefined) list.push(["OOMScoreAdjust", new Variant("i", properties.oomScoreAdjust)]);
  if (properties.syslogIdentifier !== undefined) list.push(["SyslogIdentifier", new Variant("s", properties.syslogIdentifier)]);
  if (properties.logExtraFields.length > 0) {
    list.push([
      "LogExtraFields",
      new Variant(
        "aay",
        properties.logExtraFields.map((field) => Buffer.from(field, "utf8")),
      ),
    ]);
  }
  return list;
}

/**
 * StandardError defaults to "inherit" (whatever stdout is), so both streams are set explicitly: a file for
 * stdout alone must not drag stderr into it.
 */
function outputProperty(stream: "StandardOutput" | "StandardError", appendToFile: string | undefined): DbusProperty {
  return appendToFile === undefined
    ? [stream, new Variant("s", "journal")]
    : [`${stream}FileToAppend`, new Variant("s", appendToFile)];
}


/**
 * Resource control. Accounting is switched on with each limit: on cgroup v1 systemd attaches a unit to a
 * controller's hierarchy only when something of the unit needs that controller.
 */
export function cgroupProperties(cgroup: CgroupProperties): DbusProperty[] {
  const list: DbusProperty[] = [];
  const u64 = (name: string, value: bigint | undefined) => {
    if (value !== undefined) list.push([name, new Variant("t", nonNegativeMicroseconds(name, value))]);
  };
  if (cgroup.cpuWeight !== undefined || cgroup.cpuQuotaPerSecUSec !== undefined) list.push(["CPUAccounting", new Variant("b", true)]);
  u64("CPUWeight", cgroup.cpuWeight);
  u64("CPUQuotaPerSecUSec", cgroup.cpuQuotaPerSecUSec);
  u64("CPUQuotaPeriodUSec", cgroup.cpuQuotaPeriodUSec);
  if (cgroup.memoryMax !== undefined) list.push(["MemoryAccounting", new Variant("b", true)]);
  u64("MemoryMax", cgroup.memoryMax);
  u64("MemorySwapMax", cgroup.memorySwapMax);
  if (cgroup.tasksMax !== undefined) list.push(["TasksAccounting", new Variant("b", true)]);
  u64("TasksMax", cgroup.tasksMax);
  return list;
}

function sandboxProperties(sandbox: SandboxProperties): DbusProperty[] {
  const list: DbusProperty[] = [];
  if (sandbox.supplementaryGroups !== undefined && sandbox.supplementaryGroups.length > 0) {
    list.push(["SupplementaryGroups", new Variant("as", sandbox.supplementaryGroups)]);
  }
  if (sandbox.capabilityBoundingSet !== undefined) list.push(["CapabilityBoundingSet", new Variant("t", capabilityMask(sandbox.capabilityBoundingSet))]);
  if (sandbox.ambientCapabilities !== undefined && sandbox.ambientCapabilities.length > 0) {
    list.push(["AmbientCapabilities", new Variant("t", capabilityMask(sandbox.ambientCapabilities))]);
  }
  if (sandbox.noNewPrivileges !== undefined) list.push(["NoNewPrivileges", new Variant("b", sandbox.noNewPrivileges)]);
  if (sandbox.protectSystem !== undefined) list.push(["ProtectSystem", new Variant("s", sandbox.protectSystem)]);
  if (sandbox.readWritePaths !== undefined && sandbox.readWritePaths.length > 0) list.push(["ReadWritePaths", new Variant("as", sandbox.readWritePaths)]);
  // (bas): true makes the list an allow-list; names may be `@groups`.
  if (sandbox.systemCallFilter !== undefined) list.push(["SystemCallFilter", new Variant("(bas)", [true, sandbox.systemCallFilter])]);
  if (sandbox.systemCallErrorNumber !== undefined) list.push(["SystemCallErrorNumber", new Variant("i", sandbox.systemCallErrorNumber)]);
  // (bs): false = the profile must exist, or the unit fails to start rather than run unconfined.
  if (sandbox.appArmorProfile !== undefined) list.push(["AppArmorProfile", new Variant("(bs)", [false, sandbox.appArmorProfile])]);
  return list;
}

/** A pod's slice as StartTransientUnit takes it. */
export function toSliceDbusProperties(plan: SlicePlan): DbusProperty[] {
  return [["Description", new Variant("s", plan.description)], ...cgroupProperties(plan.cgroup)];
}
