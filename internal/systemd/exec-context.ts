/**
 * What running a command "in a container" needs to know of the container's unit: who its processes run
 * as, the environment and working directory systemd gave them, their limits, and which process to take
 * the cgroup and mount namespace from. Read from the unit's D-Bus properties (internal/exec builds the
 * process from it); this module only names the properties and decodes them.
 */
import { Variant } from "dbus-next";
import { UnexpectedDbusValue, expectArray, expectBigInt, expectBoolean, expectNumber, expectString, expectStringArray } from "./dbus-values.ts";
import { SERVICE_INTERFACE, UNIT_INTERFACE } from "./unit-state.ts";

export interface UnitExecContext {
  unitName: string;
  activeState: string;
  subState: string;
  /** 0 when the unit has no main process (not started, exited, or between restarts). */
  mainPID: number;
  /** The unit's cgroup relative to the manager's hierarchy root; "" when it has none. */
  controlGroup: string;
  /** User=, Group=, SupplementaryGroups= as configured (names or numbers); "" when unset. */
  user: string;
  group: string;
  supplementaryGroups: string[];
  /** Environment= as `NAME=value` entries, vks' launcher variables included. */
  environment: string[];
  environmentFiles: { path: string; optional: boolean }[];
  unsetEnvironment: string[];
  /** As systemd reports it: "" (none set), a path, or "~" (the user's home); a leading "!" means "if it exists". */
  workingDirectory: string;
  umask: number;
  /** RuntimeDirectory= names, relative to /run (system manager) or $XDG_RUNTIME_DIR (user manager). */
  runtimeDirectory: string[];
  /** RLIMIT_NOFILE; 2^64-1 is "infinity". */
  limitNOFILE: { soft: bigint; hard: bigint };
  /** The unit's invocation ID as 32 hex digits; "" when it has none. */
  invocationID: string;
  /** The manager's own environment block, the base of every environment it gives a unit's processes. */
  managerEnvironment: string[];
}

interface ContextProperty {
  interface: typeof UNIT_INTERFACE | typeof SERVICE_INTERFACE;
  property: string;
  assign: (context: Partial<UnitExecContext>, value: unknown, what: string) => void;
}

function environmentFiles(value: unknown, what: string): { path: string; optional: boolean }[] {
  return expectArray(value, what).map((entry, index) => {
    const [path, optional] = expectArray(entry, `${what}[${index}]`);
    return { path: expectString(path, `${what}[${index}] path`), optional: expectBoolean(optional, `${what}[${index}] optional`) };
  });
}

function hexBytes(value: unknown, what: string): string {
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  if (Array.isArray(value)) return Buffer.from(value.map((byte, i) => expectNumber(byte, `${what}[${i}]`))).toString("hex");
  throw new UnexpectedDbusValue(`${what}: expected bytes`);
}

const u = UNIT_INTERFACE;
const s = SERVICE_INTERFACE;

/** Each read with its own Get, as everywhere in vks: cheaper than a GetAll of ~200 properties. */
export const EXEC_CONTEXT_PROPERTIES: readonly ContextProperty[] = [
  { interface: u, property: "ActiveState", assign: (c, v, w) => (c.activeState = expectString(v, w)) },
  { interface: u, property: "SubState", assign: (c, v, w) => (c.subState = expectString(v, w)) },
  { interface: u, property: "InvocationID", assign: (c, v, w) => (c.invocationID = hexBytes(v, w)) },
  { interface: s, property: "MainPID", assign: (c, v, w) => (c.mainPID = expectNumber(v, w)) },
  { interface: s, property: "ControlGroup", assign: (c, v, w) => (c.controlGroup = expectString(v, w)) },
  { interface: s, property: "User", assign: (c, v, w) => (c.user = expectString(v, w)) },
  { interface: s, property: "Group", assign: (c, v, w) => (c.group = expectString(v, w)) },
  { interface: s, property: "SupplementaryGroups", assign: (c, v, w) => (c.supplementaryGroups = expectStringArray(v, w)) },
  { interface: s, property: "Environment", assign: (c, v, w) => (c.environment = expectStringArray(v, w)) },
  { interface: s, property: "EnvironmentFiles", assign: (c, v, w) => (c.environmentFiles = environmentFiles(v, w)) },
  { interface: s, property: "UnsetEnvironment", assign: (c, v, w) => (c.unsetEnvironment = expectStringArray(v, w)) },
  { interface: s, property: "WorkingDirectory", assign: (c, v, w) => (c.workingDirectory = expectString(v, w)) },
  { interface: s, property: "UMask", assign: (c, v, w) => (c.umask = expectNumber(v, w)) },
  { interface: s, property: "RuntimeDirectory", assign: (c, v, w) => (c.runtimeDirectory = expectStringArray(v, w)) },
  {
    interface: s,
    property: "LimitNOFILE",
    assign: (c, v, w) => (c.limitNOFILE = { soft: c.limitNOFILE?.soft ?? 0n, hard: expectBigInt(v, w) }),
  },
  {
    interface: s,
    property: "LimitNOFILESoft",
    assign: (c, v, w) => (c.limitNOFILE = { hard: c.limitNOFILE?.hard ?? 0n, soft: expectBigInt(v, w) }),
  },
];

/** Builds the context from the values read (in EXEC_CONTEXT_PROPERTIES order, each still a Variant). */
export function decodeExecContext(unitName: string, values: readonly unknown[], managerEnvironment: string[]): UnitExecContext {
  const context: Partial<UnitExecContext> = { unitName, managerEnvironment };
  EXEC_CONTEXT_PROPERTIES.forEach((entry, index) => {
    const variant = values[index];
    const what = `${unitName} ${entry.property}`;
    if (!(variant instanceof Variant)) throw new UnexpectedDbusValue(`${what}: expected a Variant`);
    const inner: unknown = variant.value;
    entry.assign(context, inner, what);
  });
  return {
    unitName,
    activeState: context.activeState ?? "",
    subState: context.subState ?? "",
    mainPID: context.mainPID ?? 0,
    controlGroup: context.controlGroup ?? "",
    user: context.user ?? "",
    group: context.group ?? "",
    supplementaryGroups: context.supplementaryGroups ?? [],
    environment: context.environment ?? [],
    environmentFiles: context.environmentFiles ?? [],
    unsetEnvironment: context.unsetEnvironment ?? [],
    workingDirectory: context.workingDirectory ?? "",
    umask: context.umask ?? 0o022,
    runtimeDirectory: context.runtimeDirectory ?? [],
    limitNOFILE: context.limitNOFILE ?? { soft: 0n, hard: 0n },
    invocationID: context.invocationID ?? "",
    managerEnvironment,
  };
}
