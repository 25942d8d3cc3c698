/**
 * SystemdManager: everything vks asks of systemd, over org.freedesktop.systemd1 on D-Bus. No other module
 * talks to systemd; they hand over UnitPlans and get UnitStates back.
 */
import { consola } from "consola";
import { ExitCode, SystemdError, errorMessage } from "../errors.ts";
import { BusConnection, DbusErrorReply, DEFAULT_CONNECT_TIMEOUT_MS, type BusSignal, type MethodCall, type MethodReply } from "./bus.ts";
import { ReconnectBackoff, SystemdDisconnectedError, isSystemdDisconnected } from "./disconnected.ts";
import { expectArray, expectNumber, expectString, expectStringArray, expectVariantDict, expectVariantValue } from "./dbus-values.ts";
import { ACCOUNTING_PROPERTIES, unitAccounting, type UnitAccounting } from "./accounting.ts";
import { describeSystemdExitStatus } from "./exit-status.ts";
import { EXEC_CONTEXT_PROPERTIES, decodeExecContext, type UnitExecContext } from "./exec-context.ts";
import { JobTracker, type FinishedJob } from "./jobs.ts";
import { unitNameFromObjectPath, unitObjectPath } from "./object-path.ts";
import { cgroupProperties, toDbusProperties, toSliceDbusProperties } from "./properties.ts";
import { ExitKind, type CgroupProperties, type ManagerScope, type SlicePlan, type UnitPlan, type UnitState, type UnitSummary } from "./types.ts";
import { enforceableControllers, parseControllerMounts, readControllersFile, readMountInfo, type LimitController } from "./controllers.ts";
import { UnitStateCache, serviceLagsBehind, type FetchedProperties } from "./unit-cache.ts";
import {
  FIELD_SOURCES,
  SERVICE_INTERFACE,
  UNIT_INTERFACE,
  type PartialUnitState,
  type StateInterface,
  completeState,
  fieldSourceOf,
} from "./unit-state.ts";

const SYSTEMD_BUS_NAME = "org.freedesktop.systemd1";
const MANAGER_PATH = "/org/freedesktop/systemd1";
const MANAGER_INTERFACE = "org.freedesktop.systemd1.Manager";
const PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties";
const BUS_DAEMON_NAME = "org.freedesktop.DBus";
const MANAGER = { destination: SYSTEMD_BUS_NAME, path: MANAGER_PATH, interface: MANAGER_INTERFACE };
const SUBSCRIBE: MethodCall = { ...MANAGER, member: "Subscribe" };
const BUS_DAEMON = { destination: BUS_DAEMON_NAME, path: "/org/freedesktop/DBus", interface: BUS_DAEMON_NAME };

/** Only units vks creates are followed, which spares a state cache entry for every unit on the host. */
const VKS_UNIT_PREFIX = "vks.";
/** Reads of one unit's state before a torn-looking one is taken as what systemd really says. */
const COHERENT_READ_ATTEMPTS = 3;
const SERVICE_SUFFIX = ".service";

const MATCH_MANAGER_SIGNALS = `type='signal',sender='${SYSTEMD_BUS_NAME}',path='${MANAGER_PATH}',interface='${MANAGER_INTERFACE}'`;
/** One rule for every unit: a proxy (and a rule) per unit would cost more than the unit's whole life. */
const MATCH_UNIT_PROPERTIES = `type='signal',sender='${SYSTEMD_BUS_NAME}',interface='${PROPERTIES_INTERFACE}',member='PropertiesChanged',path_namespace='/org/freedesktop/systemd1/unit'`;
const MATCH_SYSTEMD_OWNER = `type='signal',sender='${BUS_DAEMON_NAME}',interface='${BUS_DAEMON_NAME}',member='NameOwnerChanged',arg0='${SYSTEMD_BUS_NAME}'`;

const DBUS_ERROR = {
  noSuchUnit: "org.freedesktop.systemd1.NoSuchUnit",
  unitExists: "org.freedesktop.systemd1.UnitExists",
  unknownObject: "org.freedesktop.DBus.Error.UnknownObject",
  serviceUnknown: "org.freedesktop.DBus.Error.ServiceUnknown",
  nameHasNoOwner: "org.freedesktop.DBus.Error.NameHasNoOwner",
  invalidArgs: "org.freedesktop.DBus.Error.InvalidArgs",
  noReply: "org.freedesktop.DBus.Error.NoReply",
  alreadySubscribed: "org.freedesktop.systemd1.AlreadySubscribed",
  accessDenied: "org.freedesktop.DBus.Error.AccessDenied",
  interactiveAuthorizationRequired: "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
} as const;

/**
 * How long a manager opened without `outageLimitMs` waits for systemd to come back before its calls fail for
 * good: long enough for a dbus-daemon restart or a daemon-reexec (well under a second each), short enough
 * that a one-shot command does not hang on a manager that is gone.
 */
const DEFAULT_OUTAGE_LIMIT_MS = 30_000;
/** Reconnect attempts: the first soon (a restarted bus is usually back within 100 ms), then at most every 5 s. */
const RECONNECT_INITIAL_MS = 100;
const RECONNECT_MAX_MS = 5_000;
/** While the bus is up without systemd on it, systemd's name is asked for again at this pace. */
const OWNER_POLL_INITIAL_MS = 500;
const OWNER_POLL_MAX_MS = 5_000;

/**
 * Calls that create jobs get longer than the usual 25 s: giving up on one does not undo it (the unit may
 * exist all the same), and a busy systemd forking hundreds of units can take that long to get to it.
 */
const JOB_CALL_TIMEOUT_MS = 120_000;

export interface SystemdConnectOptions {
  scope: ManagerScope;
  /** Overrides DBUS_SESSION_BUS_ADDRESS / DBUS_SYSTEM_BUS_ADDRESS. */
  busAddress?: string;
  /** Bounds the bus handshake and systemd's first answer. */
  connectTimeoutMs?: number;
  callTimeoutMs?: number;
  /** Calls outstanding at once; more wait their turn. */
  maxCallsInFlight?: number;
  /**
   * How long to keep reconnecting after the bus or systemd went away before failing for good (default
   * 30 s). `serve` and `pod up` in the foreground pass Infinity: they outlast any outage.
   */
  outageLimitMs?: number;
}

/** A stretch of time in which systemd could not be reached; calls fail with `error` meanwhile. */
export interface SystemdOutage {
  /** Date.now() when the connection was lost. */
  since: number;
  error: SystemdDisconnectedError;
}

/** What a reconnection found: how long the outage lasted and which vks units systemd has loaded now. */
export interface SystemdReconnection {
  outageMs: number;
  /** Every loaded vks unit, listed once systemd was back; units not in it are gone (collected, or the manager restarted). */
  vksUnits: ReadonlySet<string>;
}

type LinkState = "up" | "down" | "closed";

function isDbusError(err: unknown, ...names: string[]): err is DbusErrorReply {
  return err instanceof DbusErrorReply && names.includes(err.errorName);
}

function isVksService(unitName: string | undefined): unitName is string {
  return unitName !== undefined && unitName.startsWith(VKS_UNIT_PREFIX) && unitName.endsWith(SERVICE_SUFFIX);
}

function getProperty(path: string, iface: string, property: string): MethodCall {
  return { destination: SYSTEMD_BUS_NAME, path, interface: PROPERTIES_INTERFACE, member: "Get", signature: "ss", body: [iface, property] };
}

/** One row of ListUnitsByPatterns. */
interface ListedUnit {
  name: string;
  description: string;
  loadState: string;
  activeState: string;
  subState: string;
  path: string;
}

/** Raised inside the state cache's fetcher when the unit turned out not to exist (any more). */
class UnitGone extends Error {
  override readonly name = "UnitGone";
}

/**
 * The connection survives the bus and systemd going away: it reconnects with back-off (logging once per
 * outage), subscribes again, and re-reads every vks unit, reporting each as changed, so nothing that
 * happened meanwhile is missed. While disconnected every call fails at once with SystemdDisconnectedError;
 * whenConnected() says when to retry.
 */
/** A connection's first call is sent again when a daemon-reexec cut it (see firstCall). */
const FIRST_CALL_ATTEMPTS = 3;
/** How long connecting waits for a systemd that is not on the bus at all (it may be mid-reexec). */
const ABSENT_SYSTEMD_WAIT_MS = 3_000;
/** How long connecting waits for a systemd that left the bus with the call unanswered (a re-exec). */
const LEFT_SYSTEMD_WAIT_MS = 30_000;

/**
 * The first call of a connection (systemd's version), sent again when a daemon-reexec cut it: `vks pod up`
 * or a restarted serve connecting at that moment exited 69 "no user manager" (found by bench/chaos.ts).
 * NoReply means systemd was there and left, so it is waited for; no owner at all only briefly, so a host
 * without a manager is still reported within seconds.
 */
async function firstCall(bus: BusConnection, call: MethodCall, timeoutMs: number): Promise<MethodReply> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await bus.call(call, timeoutMs);
    } catch (err) {
      const left = isDbusError(err, DBUS_ERROR.noReply);
      if (attempt >= FIRST_CALL_ATTEMPTS || (!left && !isDbusError(err, DBUS_ERROR.serviceUnknown, DBUS_ERROR.nameHasNoOwner))) throw err;
      if (!(await systemdOnBus(bus, left ? LEFT_SYSTEMD_WAIT_MS : ABSENT_SYSTEMD_WAIT_MS))) throw err;
    }
  }
}

/** Polls the bus daemon (for at most `boundMs`) until someone owns systemd's name. */
async function systemdOnBus(bus: BusConnection, boundMs: number): Promise<boolean> {
  const deadline = performance.now() + boundMs;
  while (performance.now() < deadline) {
    try {
      await bus.call({ ...BUS_DAEMON, member: "GetNameOwner", signature: "s", body: [SYSTEMD_BUS_NAME] });
      return true;
    } catch (err) {
      if (!isDbusError(err, DBUS_ERROR.nameHasNoOwner)) return false;
    }
    await Bun.sleep(50);
  }
  return false;
}

export class SystemdManager {
  private readonly jobs = new JobTracker();
  private readonly cache: UnitStateCache;
  private readonly changedListeners = new Set<(state: UnitState) => void>();
  private readonly removedListeners = new Set<(unitName: string) => void>();
  private readonly errorListeners = new Set<(err: SystemdError) => void>();
  private readonly disconnectedListeners = new Set<(reason: SystemdError) => void>();
  private readonly outageListeners = new Set<(outage: SystemdOutage) => void>();
  private readonly reconnectedListeners = new Set<(reconnection: SystemdReconnection) => void>();
  private readonly connectedWaiters = new Set<{ resolve: () => void; reject: (err: Error) => void }>();
  private bus: BusConnection;
  /** Match rules added on the current connection: dbus-daemon keeps each until the connection ends. */
  private matches = new Set<string>();
  /** The Subscribe of the current connection and systemd instance; undefined until asked for or after a loss. */
  private subscribed: Promise<void> | undefined;
  private watching: Promise<void> | undefined;
  /** Unit changes were asked for: every reconnection restores them. */
  private watchRequested = false;
  /** systemd's unique bus name: signals from anyone else are ignored. */
  private systemdOwner: string;
  private link: LinkState = "up";
  private outage: SystemdOutage | undefined;
  /** Why calls fail now that the manager is closed or gave up. */
  private finalError: SystemdError | undefined;
  private giveUpTimer: ReturnType<typeof setTimeout> | undefined;
  /** The recovery loop's pause between attempts, cut short by close(). */
  private pauseTimer: { timer: ReturnType<typeof setTimeout>; resolve: () => void } | undefined;
  /** The recovery loop waiting for systemd to take its name on the bus. */
  private ownerWaiter: { resolve: (owner: string) => void; reject: (err: Error) => void } | undefined;
  private readonly outageLimitMs: number;

  private constructor(
    bus: BusConnection,
    readonly scope: ManagerScope,
    systemdOwner: string,
    readonly systemdVersion: string,
    private readonly options: SystemdConnectOptions & { connectTimeoutMs: number },
  ) {
    this.bus = bus;
    this.systemdOwner = systemdOwner;
    this.outageLimitMs = options.outageLimitMs ?? DEFAULT_OUTAGE_LIMIT_MS;
    this.cache = new UnitStateCache({
      fetch: (unitName, iface, properties) => this.fetchProperties(unitName, iface, properties),
      changed: (state) => this.emit(this.changedListeners, state),
      fetchFailed: (unitName, err) => this.reportError(`cannot read the state of ${unitName}: ${errorMessage(err)}`, err),
      isGone: (err) => err instanceof UnitGone || isDbusError(err, DBUS_ERROR.unknownObject, DBUS_ERROR.noSuchUnit),
    });
    this.attach(bus);
  }

  static async connect(options: SystemdConnectOptions): Promise<SystemdManager> {
    const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const bus = await BusConnection.open({ ...options, connectTimeoutMs });
    try {
      // systemd leaving the bus (daemon-reexec) must be seen by every manager, subscribed or not.
      const [reply] = await Promise.all([
        firstCall(bus, getProperty(MANAGER_PATH, MANAGER_INTERFACE, "Version"), connectTimeoutMs),
        bus.addMatch(MATCH_SYSTEMD_OWNER),
      ]);
      const version = expectString(expectVariantValue(reply.body[0], "Version"), "Version");
      const manager = new SystemdManager(bus, options.scope, reply.sender, version, { ...options, connectTimeoutMs });
      manager.matches.add(MATCH_SYSTEMD_OWNER);
      return manager;
    } catch (err) {
      bus.close();
      const noSystemd = isDbusError(err, DBUS_ERROR.serviceUnknown, DBUS_ERROR.nameHasNoOwner);
      const where = options.scope === "user" ? "user" : "system";
      throw new SystemdError(
        noSystemd
          ? `no systemd ${where} manager on the ${where} bus (${bus.address})`
          : `systemd on the ${where} bus (${bus.address}) did not answer: ${errorMessage(err)}`,
        {
          exitCode: ExitCode.unavailable,
          hint:
            options.scope === "user"
              ? "no user manager: is DBUS_SESSION_BUS_ADDRESS set? run inside test/sandbox.sh or use the system manager"
              : "is systemd PID 1? try --user (inside test/sandbox.sh where systemd is not PID 1)",
          cause: err,
        },
      );
    }
  }

  /** Closes the connection and stops reconnecting; pending job waits fail. Safe to call twice. */
  async close(): Promise<void> {
    if (this.link === "closed") return;
    this.finish(new SystemdError("the systemd connection was closed by vks", { exitCode: ExitCode.unavailable }));
  }

  /** Whether systemd can be called now (false during an outage and once closed). */
  get connected(): boolean {
    return this.link === "up";
  }

  /** The outage under way, if any: since when, and why. */
  currentOutage(): SystemdOutage | undefined {
    return this.outage;
  }

  /**
   * Resolves once systemd can be called again (at once when it can now); rejects when the manager was
   * closed or gave up reconnecting. What a caller that must not lose work awaits before retrying.
   */
  whenConnected(): Promise<void> {
    if (this.link === "up") return Promise.resolve();
    if (this.link === "closed") return Promise.reject(this.closedError());
    return new Promise<void>((resolve, reject) => this.connectedWaiters.add({ resolve, reject }));
  }

  /** systemd's version string, e.g. "252.38-1~deb12u1". */
  async version(): Promise<string> {
    const reply = await this.call(getProperty(MANAGER_PATH, MANAGER_INTERFACE, "Version"), "read systemd's version");
    return expectString(expectVariantValue(reply.body[0], "Version"), "Version");
  }

  /**
   * Creates the transient unit and waits for its start job. Rejects when systemd refuses the unit (it
   * already exists, a property is invalid) or the job does not end "done"; a unit whose start failed
   * stays loaded as failed until stopUnit (so its status can be read), and its name cannot be reused
   * until then.
   */
  async startUnit(plan: UnitPlan): Promise<void> {
    const unitName = plan.unitName;
    const properties = toDbusProperties(plan.properties);
    await this.ensureSubscribed();
    // What vks sets need not be read back: with these known, the unit's signals alone complete its state.
    if (this.watching) this.cache.seed(unitName, { description: plan.properties.description, loadState: "loaded" });
    let job: FinishedJob;
    try {
      job = await this.jobs.run(async () => {
        const reply = await this.rpc(
          { ...MANAGER, member: "StartTransientUnit", signature: "ssa(sv)a(sa(sv))", body: [unitName, "fail", properties, []] },
          JOB_CALL_TIMEOUT_MS,
        );
        return expectString(reply.body[0], "StartTransientUnit job");
      });
    } catch (err) {
      // The seeded description may not be the one of a unit that already existed under this name.
      this.cache.forget(unitName);
      throw this.startRefused(unitName, plan.containerName, err);
    }
    if (job.result !== "done") throw await this.jobFailed("start", unitName, job.result);
  }

  /**
   * Stops the unit and waits for the stop job, then clears a failed state so systemd unloads the
   * transient unit. A unit that does not exist is already stopped: not an error.
   */
  async stopUnit(unitName: string): Promise<void> {
    await this.ensureSubscribed();
    let job: FinishedJob;
    try {
      job = await this.jobs.run(async () => {
        const reply = await this.rpc(
          { ...MANAGER, member: "StopUnit", signature: "ss", body: [unitName, "replace"] },
          JOB_CALL_TIMEOUT_MS,
        );
        return expectString(reply.body[0], "StopUnit job");
      });
    } catch (err) {
      if (isDbusError(err, DBUS_ERROR.noSuchUnit)) return;
      throw this.refused(`cannot stop ${unitName}`, err);
    }
    if (job.result !== "done") throw await this.jobFailed("stop", unitName, job.result);
    try {
      // A stopped unit that failed (or was SIGKILLed after its stop timeout) stays loaded until reset.
      await this.rpc({ ...MANAGER, member: "ResetFailedUnit", signature: "s", body: [unitName] });
    } catch (err) {
      if (!isDbusError(err, DBUS_ERROR.noSuchUnit)) throw this.refused(`cannot reset ${unitName} after stopping it`, err);
    }
  }

  /**
   * Sends `signal` to every process of the unit (KillUnit, whom "all"). A pod deleted with a grace period
   * shorter than its own needs this: systemd 252 cannot change TimeoutStopUSec of a running service.
   * A unit that does not exist, or has no process left, is not an error.
   */
  async killUnit(unitName: string, signal: number): Promise<void> {
    try {
      await this.rpc({ ...MANAGER, member: "KillUnit", signature: "ssi", body: [unitName, "all", signal] });
    } catch (err) {
      if (isDbusError(err, DBUS_ERROR.noSuchUnit, "org.freedesktop.systemd1.NoSuchProcess")) return;
      throw this.refused(`cannot signal ${unitName}`, err);
    }
  }

  /**
   * What each unit's processes use (see accounting.ts for where each figure comes from when systemd has
   * none). Units systemd does not have loaded are left out. Reads go through the bus' in-flight limit.
   */
  async getUnitAccounting(unitNames: string[]): Promise<Map<string, UnitAccounting>> {
    const read = async (unitName: string): Promise<UnitAccounting | undefined> => {
      try {
        // GetUnit first, as in getUnitState: a Get on an unloaded unit's path would load a stub for it.
        const unit = await this.rpc({ ...MANAGER, member: "GetUnit", signature: "s", body: [unitName] });
        const unitPath = expectString(unit.body[0], "GetUnit path");
        const values = await Promise.all(
          ACCOUNTING_PROPERTIES.map(async (property) => {
            const reply = await this.rpc(getProperty(unitPath, SERVICE_INTERFACE, property));
            return [property, expectVariantValue(reply.body[0], `${unitName} ${property}`)] as const;
          }),
        );
        return unitAccounting(unitName, new Map(values));
      } catch (err) {
        if (isDbusError(err, DBUS_ERROR.noSuchUnit, DBUS_ERROR.unknownObject)) return undefined;
        throw this.refused(`cannot read the resource use of ${unitName}`, err);
      }
    };
    const readings = await Promise.all(unitNames.map(read));
    return new Map(readings.filter((reading) => reading !== undefined).map((reading) => [reading.unitName, reading]));
  }

  /**
   * What running a command in the unit's context needs (its identity, environment, working directory,
   * limits and main process), or undefined when systemd has no such unit loaded.
   */
  async getExecContext(unitName: string): Promise<UnitExecContext | undefined> {
    try {
      // GetUnit first, as in getUnitState: a Get on an unloaded unit's path would load a stub for it.
      const unit = await this.rpc({ ...MANAGER, member: "GetUnit", signature: "s", body: [unitName] });
      const unitPath = expectString(unit.body[0], "GetUnit path");
      const [managerEnvironment, ...values] = await Promise.all([
        this.rpc(getProperty(MANAGER_PATH, MANAGER_INTERFACE, "Environment")),
        ...EXEC_CONTEXT_PROPERTIES.map((entry) => this.rpc(getProperty(unitPath, entry.interface, entry.property))),
      ]);
      const environment = expectStringArray(expectVariantValue(managerEnvironment?.body[0], "Manager Environment"), "Manager Environment");
      return decodeExecContext(unitName, values.map((reply) => reply.body[0]), environment);
    } catch (err) {
      if (isDbusError(err, DBUS_ERROR.noSuchUnit, DBUS_ERROR.unknownObject)) return undefined;
      throw this.refused(`cannot read the execution context of ${unitName}`, err);
    }
  }

  /** The unit's current state, or undefined when systemd has no such unit loaded. */
  async getUnitState(unitName: string): Promise<UnitState | undefined> {
    let unitPath: string;
    try {
      // GetUnit first: reading properties of an unloaded unit's path would make systemd load a
      // "not-found" stub for it.
      const reply = await this.rpc({ ...MANAGER, member: "GetUnit", signature: "s", body: [unitName] });
      unitPath = expectString(reply.body[0], "GetUnit path");
    } catch (err) {
      if (isDbusError(err, DBUS_ERROR.noSuchUnit)) return undefined;
      throw this.refused(`cannot read the state of ${unitName}`, err);
    }
    const state: PartialUnitState = { name: unitName };
    try {
      await this.readCoherentFields(state, unitPath, FIELD_SOURCES);
    } catch (err) {
      if (isDbusError(err, DBUS_ERROR.unknownObject, DBUS_ERROR.noSuchUnit)) return undefined;
      throw this.refused(`cannot read the state of ${unitName}`, err);
    }
    if (state.loadState === "not-found") return undefined;
    return completeState(state);
  }

  /**
   * ListUnitsByPatterns, decoded: the loaded service units matching the globs. A "not-found" entry is a
   * stub for a name something merely referred to: no unit behind it.
   */
  private async listServiceRows(patterns: string[], suffix = SERVICE_SUFFIX): Promise<ListedUnit[]> {
    let rows: unknown[];
    try {
      const reply = await this.rpc({ ...MANAGER, member: "ListUnitsByPatterns", signature: "asas", body: [[], patterns] });
      rows = expectArray(reply.body[0], "ListUnitsByPatterns");
    } catch (err) {
      throw this.refused("cannot list units", err);
    }
    const listed: ListedUnit[] = [];
    rows.forEach((row, index) => {
      // (name, description, load, active, sub, following, path, job id, job type, job path)
      const [name, description, loadState, activeState, subState, , path] = expectArray(row, `ListUnitsByPatterns[${index}]`);
      const unitName = expectString(name, "unit name");
      const unit: ListedUnit = {
        name: unitName,
        description: expectString(description, `${unitName} description`),
        loadState: expectString(loadState, `${unitName} load state`),
        activeState: expectString(activeState, `${unitName} active state`),
        subState: expectString(subState, `${unitName} sub state`),
        path: expectString(path, `${unitName} path`),
      };
      if (unitName.endsWith(suffix) && unit.loadState !== "not-found") listed.push(unit);
    });
    return listed;
  }

  /** The names of the loaded slices matching the globs (`vks-*.slice`). */
  async listSliceNames(patterns: string[]): Promise<string[]> {
    return (await this.listServiceRows(patterns, ".slice")).map((row) => row.name);
  }

  /**
   * Creates the pod's slice with its cgroup settings, or applies them to the slice that exists (adopted
   * after a vks restart, or loaded implicitly). Slices have no process: the start job is immediate.
   */
  async startSlice(plan: SlicePlan): Promise<void> {
    const properties = toSliceDbusProperties(plan);
    await this.ensureSubscribed();
    let job: FinishedJob;
    try {
      job = await this.jobs.run(async () => {
        const reply = await this.rpc(
          { ...MANAGER, member: "StartTransientUnit", signature: "ssa(sv)a(sa(sv))", body: [plan.unitName, "fail", properties, []] },
          JOB_CALL_TIMEOUT_MS,
        );
        return expectString(reply.body[0], "StartTransientUnit job");
      });
    } catch (err) {
      if (!isDbusError(err, DBUS_ERROR.unitExists)) throw this.refused(`cannot create slice ${plan.unitName}`, err);
      const settable = properties.filter(([name]) => name !== "Description");
      try {
        if (settable.length > 0) await this.rpc({ ...MANAGER, member: "SetUnitProperties", signature: "sba(sv)", body: [plan.unitName, true, settable] });
        // A stopped slice (its last unit went) is started again so the pod's units can join it.
        await this.rpc({ ...MANAGER, member: "StartUnit", signature: "ss", body: [plan.unitName, "replace"] });
      } catch (setErr) {
        throw this.refused(`cannot update slice ${plan.unitName}`, setErr);
      }
      return;
    }
    if (job.result !== "done") throw await this.jobFailed("start", plan.unitName, job.result);
  }

  /**
   * Sets resource properties of a loaded unit at runtime (a QoS slice systemd made for the pods' slices).
   * A unit that is not loaded is left alone: it has no pods to weigh.
   */
  async setCgroupProperties(unitName: string, cgroup: CgroupProperties): Promise<void> {
    const properties = cgroupProperties(cgroup);
    if (properties.length === 0) return;
    try {
      await this.rpc({ ...MANAGER, member: "SetUnitProperties", signature: "sba(sv)", body: [unitName, true, properties] });
    } catch (err) {
      if (isDbusError(err, DBUS_ERROR.noSuchUnit)) return;
      throw this.refused(`cannot set the resources of ${unitName}`, err);
    }
  }

  /** The manager's own cgroup (Manager.ControlGroup): "" or "/" for a system manager at the root. */
  async controlGroup(): Promise<string> {
    const reply = await this.call(getProperty(MANAGER_PATH, MANAGER_INTERFACE, "ControlGroup"), "read the manager's control group");
    return expectString(expectVariantValue(reply.body[0], "ControlGroup"), "ControlGroup");
  }

  private controllers: Promise<Set<LimitController>> | undefined;

  /** The resource controllers this manager can enforce limits with (controllers.ts); read once. */
  enforceableControllers(): Promise<Set<LimitController>> {
    this.controllers ??= this.controlGroup().then((group) =>
      enforceableControllers(this.scope, group, parseControllerMounts(readMountInfo()), readControllersFile),
    );
    return this.controllers;
  }

  /** The names of the loaded service units matching the globs: one call, no property reads. */
  async listUnitNames(patterns: string[]): Promise<string[]> {
    return (await this.listServiceRows(patterns)).map((row) => row.name);
  }

  /**
   * Like listUnits, but reads only what a listing shows (main PID, restarts, start time): 3 property reads
   * per unit instead of 10, which is most of `vks units ls`' time with many units.
   */
  async listUnitSummaries(patterns: string[]): Promise<UnitSummary[]> {
    const rows = await this.listServiceRows(patterns);
    const summaries = await Promise.all(
      rows.map(async (row): Promise<UnitSummary | undefined> => {
        const read = async (property: string): Promise<unknown> => {
          const reply = await this.rpc(getProperty(row.path, SERVICE_INTERFACE, property));
          return expectVariantValue(reply.body[0], `${row.name} ${property}`);
        };
        try {
          const [mainPID, nRestarts, started] = await Promise.all([read("MainPID"), read("NRestarts"), read("ExecMainStartTimestamp")]);
          return {
            name: row.name,
            description: row.description,
            loadState: row.loadState,
            activeState: row.activeState,
            subState: row.subState,
            mainPID: expectNumber(mainPID, `${row.name} MainPID`),
            nRestarts: expectNumber(nRestarts, `${row.name} NRestarts`),
            execMainStartTimestamp: typeof started === "bigint" ? started : BigInt(expectNumber(started, `${row.name} ExecMainStartTimestamp`)),
          };
        } catch (err) {
          if (isDbusError(err, DBUS_ERROR.unknownObject, DBUS_ERROR.noSuchUnit)) return undefined;
          throw this.refused(`cannot read the state of ${row.name}`, err);
        }
      }),
    );
    return summaries.filter((summary): summary is UnitSummary => summary !== undefined);
  }

  /**
   * The loaded service units whose names match any of the glob patterns (`vks.*.service`), with their
   * full state. Costs one ListUnitsByPatterns plus twelve property reads per unit not already known from
   * watched signals, run concurrently (about 1 s per 1000 units; test/systemd/scale.test.ts measures it).
   */
  async listUnits(patterns: string[]): Promise<UnitState[]> {
    const rows = await this.listServiceRows(patterns);
    // The row's active and sub state are read again with the rest: on a busy system the listing can be
    // seconds older than the reads, and a row saying "running" next to an exit status would contradict it.
    const rowFields = new Set(["description", "loadState"]);
    const remaining = FIELD_SOURCES.filter((source) => !rowFields.has(source.field));
    const states = await Promise.all(
      rows.map(async (row): Promise<UnitState | undefined> => {
        const { path: unitPath, ...listedFields } = row;
        const unitName = row.name;
        const state: PartialUnitState = listedFields;
        // While watching, the cache holds every signal received so far, which includes every change
        // systemd made before answering the listing: it is at least as fresh as the row.
        const cached = this.watching ? this.cache.get(unitName) : undefined;
        // Not one caught between the Service and the Unit signal of a change (read apart under load).
        if (cached && !serviceLagsBehind(cached)) return cached;
        try {
          await this.readCoherentFields(state, unitPath, remaining);
        } catch (err) {
          // Unloaded between the listing and the reads: it is simply not there any more.
          if (isDbusError(err, DBUS_ERROR.unknownObject, DBUS_ERROR.noSuchUnit)) return undefined;
          throw this.refused(`cannot read the state of ${unitName}`, err);
        }
        return completeState(state);
      }),
    );
    return states.filter((state): state is UnitState => state !== undefined);
  }

  /**
   * Calls `listener` with the full state of a vks unit whenever systemd reports a change to it. Starts
   * watching on first use; await startWatching() to be sure no change after that point is missed.
   */
  onUnitChanged(listener: (state: UnitState) => void): () => void {
    this.changedListeners.add(listener);
    void this.startWatching().catch(() => undefined);
    return () => this.changedListeners.delete(listener);
  }

  /** Calls `listener` with the name of a vks unit systemd has unloaded (stopped and collected). */
  onUnitRemoved(listener: (unitName: string) => void): () => void {
    this.removedListeners.add(listener);
    void this.startWatching().catch(() => undefined);
    return () => this.removedListeners.delete(listener);
  }

  /** Background problems (a state read that failed, a malformed signal); nothing is thrown for them. */
  onError(listener: (err: SystemdError) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  /**
   * Called once when the manager gives up on systemd for good: it did not come back within outageLimitMs.
   * Every pending and later call fails.
   */
  onDisconnected(listener: (reason: SystemdError) => void): () => void {
    this.disconnectedListeners.add(listener);
    return () => this.disconnectedListeners.delete(listener);
  }

  /** Called when the bus or systemd goes away (once per outage); the manager is already reconnecting. */
  onOutage(listener: (outage: SystemdOutage) => void): () => void {
    this.outageListeners.add(listener);
    return () => this.outageListeners.delete(listener);
  }

  /**
   * Called when systemd answers again after an outage, subscriptions restored. Watched units are being
   * re-read then: each is reported through onUnitChanged once read, changed or not.
   */
  onReconnected(listener: (reconnection: SystemdReconnection) => void): () => void {
    this.reconnectedListeners.add(listener);
    return () => this.reconnectedListeners.delete(listener);
  }

  /** Resolves once unit changes are being received (after an outage, once reconnected). Idempotent. */
  startWatching(): Promise<void> {
    this.watchRequested = true;
    if (this.link === "down") return this.whenConnected().then(() => this.startWatching());
    if (!this.watching) {
      const watching = Promise.all([this.ensureSubscribed(), this.addMatchOnce(this.bus, MATCH_UNIT_PROPERTIES)]).then(
        () => undefined,
        (err: unknown) => {
          if (this.watching === watching) this.watching = undefined;
          const failure = this.refused("cannot watch unit changes", err);
          this.reportError(failure.message, err);
          throw failure;
        },
      );
      this.watching = watching;
    }
    return this.watching;
  }

  /** The last known state of a unit seen through onUnitChanged, if any. */
  cachedUnitState(unitName: string): UnitState | undefined {
    return this.cache.get(unitName);
  }

  /** Manager signals (JobRemoved, UnitRemoved) only flow once subscribed and matched. */
  private ensureSubscribed(): Promise<void> {
    if (this.link !== "up") return Promise.reject(this.unavailableError());
    if (!this.subscribed) {
      const subscribed = this.subscribeOn(this.bus).catch((err: unknown) => {
        if (this.subscribed === subscribed) this.subscribed = undefined;
        throw this.refused("cannot subscribe to systemd's signals", err);
      });
      this.subscribed = subscribed;
    }
    return this.subscribed;
  }

  private async subscribeOn(bus: BusConnection): Promise<void> {
    await Promise.all([
      this.addMatchOnce(bus, MATCH_MANAGER_SIGNALS),
      this.addMatchOnce(bus, MATCH_SYSTEMD_OWNER),
      // A re-executed systemd restores its subscribers itself, and then says so. One that re-executes
      // while the call is out leaves it unanswered: retriable, as any call (chaos: pod up -d exited 69 here).
      bus.call(SUBSCRIBE).catch((err: unknown) => {
        if (!isDbusError(err, DBUS_ERROR.alreadySubscribed)) throw this.unanswered(bus, SUBSCRIBE, err);
      }),
    ]);
  }

  private async addMatchOnce(bus: BusConnection, rule: string): Promise<void> {
    if (bus === this.bus && this.matches.has(rule)) return;
    await bus.addMatch(rule);
    if (bus === this.bus) this.matches.add(rule);
  }

  /**
   * Every call to systemd goes through here: it fails at once while systemd is unreachable, and a reply
   * saying systemd is not on the bus (or left without answering) is the same retriable failure.
   */
  private async rpc(call: MethodCall, timeoutMs?: number): Promise<MethodReply> {
    if (this.link !== "up") throw this.unavailableError();
    try {
      return await this.bus.call(call, timeoutMs);
    } catch (err) {
      throw this.unanswered(this.bus, call, err);
    }
  }

  /** A reply saying systemd is not on `bus` (or left it without answering) as the retriable failure; other errors as they are. */
  private unanswered(bus: BusConnection, call: MethodCall, err: unknown): unknown {
    if (call.destination !== SYSTEMD_BUS_NAME || !isDbusError(err, DBUS_ERROR.serviceUnknown, DBUS_ERROR.nameHasNoOwner, DBUS_ERROR.noReply)) return err;
    // NoReply: systemd left the bus with the call unanswered; the owner change follows on its own.
    if (bus === this.bus && !isDbusError(err, DBUS_ERROR.noReply)) this.beginOutage(`systemd is not on the ${this.scope} bus`);
    return new SystemdDisconnectedError(`${call.member}: systemd did not answer (${err.text || err.errorName})`, this.reconnectHint(), err);
  }

  private async call(call: MethodCall, doing: string): Promise<{ body: unknown[] }> {
    try {
      return await this.rpc(call);
    } catch (err) {
      throw this.refused(`cannot ${doing}`, err);
    }
  }

  /**
   * readFields, again while the result is torn: systemd answers one Get per turn of its event loop, so a
   * unit that restarts (or exits) between two of them gives Unit and Service values from either side of
   * the change. A second read, answered after the change, agrees with itself.
   */
  private async readCoherentFields(state: PartialUnitState, unitPath: string, sources: typeof FIELD_SOURCES): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await this.readFields(state, unitPath, sources);
      const complete = completeState(state);
      if (complete === undefined || !serviceLagsBehind(complete) || attempt >= COHERENT_READ_ATTEMPTS) return;
    }
  }

  /** Reads `sources` with one Get each: measured cheaper than GetAll, which computes ~200 properties. */
  private async readFields(state: PartialUnitState, unitPath: string, sources: typeof FIELD_SOURCES): Promise<void> {
    const values = await Promise.all(
      sources.map(async (source) => {
        const reply = await this.rpc(getProperty(unitPath, source.interface, source.property));
        return expectVariantValue(reply.body[0], `${state.name} ${source.property}`);
      }),
    );
    sources.forEach((source, index) => source.assign(state, values[index]));
  }

  private async fetchProperties(unitName: string, iface: StateInterface, properties: string[]): Promise<FetchedProperties[]> {
    const path = unitObjectPath(unitName);
    // LoadState comes along with any Unit read: a "not-found" answer means the read itself just loaded a
    // stub because the unit was already collected.
    const wanted = iface === UNIT_INTERFACE && !properties.includes("LoadState") ? [...properties, "LoadState"] : properties;
    return Promise.all(
      wanted.map(async (property): Promise<FetchedProperties> => {
        const reply = await this.rpc(getProperty(path, iface, property));
        const value = expectVariantValue(reply.body[0], `${unitName} ${property}`);
        if (property === "LoadState" && value === "not-found") throw new UnitGone(unitName);
        return { values: new Map([[property, value]]), sequence: reply.sequence };
      }),
    );
  }

  private handleSignal(signal: BusSignal): void {
    try {
      if (signal.sender === this.systemdOwner) this.handleSystemdSignal(signal);
      else if (signal.member === "NameOwnerChanged" && signal.interface === BUS_DAEMON_NAME) this.handleOwnerChange(signal);
    } catch (err) {
      this.reportError(`ignored a malformed ${signal.member} signal from systemd: ${errorMessage(err)}`, err);
    }
  }

  private handleSystemdSignal(signal: BusSignal): void {
    if (signal.interface === PROPERTIES_INTERFACE && signal.member === "PropertiesChanged") {
      const unitName = unitNameFromObjectPath(signal.path);
      if (!isVksService(unitName)) return;
      const iface = expectString(signal.body[0], "PropertiesChanged interface");
      if (iface !== UNIT_INTERFACE && iface !== SERVICE_INTERFACE) return;
      const changed = expectVariantDict(signal.body[1], "PropertiesChanged changed");
      const invalidated = expectStringArray(signal.body[2], "PropertiesChanged invalidated");
      if (![...changed.keys(), ...invalidated].some((property) => fieldSourceOf(iface, property))) return;
      this.cache.propertiesChanged(unitName, iface, changed, invalidated, signal.sequence);
      return;
    }
    if (signal.path !== MANAGER_PATH || signal.interface !== MANAGER_INTERFACE) return;
    if (signal.member === "JobRemoved") {
      // (id, job path, unit, result)
      expectNumber(signal.body[0], "JobRemoved id");
      this.jobs.jobRemoved({
        jobPath: expectString(signal.body[1], "JobRemoved job"),
        unitName: expectString(signal.body[2], "JobRemoved unit"),
        result: expectString(signal.body[3], "JobRemoved result"),
      });
    } else if (signal.member === "UnitRemoved") {
      const unitName = expectString(signal.body[0], "UnitRemoved unit");
      if (isVksService(unitName)) this.confirmRemoved(unitName);
    }
  }

  /**
   * daemon-reload and daemon-reexec send UnitRemoved for every unit, running ones included, and load
   * them again straight away. systemd answers calls only after a reload has finished, so asking for the
   * unit tells a real removal from a reload.
   */
  private confirmRemoved(unitName: string): void {
    this.rpc({ ...MANAGER, member: "GetUnit", signature: "s", body: [unitName] }).then(
      () => undefined,
      (err: unknown) => {
        if (!isDbusError(err, DBUS_ERROR.noSuchUnit)) {
          this.reportError(`cannot confirm the removal of ${unitName}: ${errorMessage(err)}`, err);
          return;
        }
        this.cache.forget(unitName);
        this.emit(this.removedListeners, unitName);
      },
    );
  }

  /**
   * systemd leaves the bus while it re-executes (and when it exits); it comes back under a new unique
   * name. Signals it sent in between went nowhere, so its return is handled like a reconnection.
   */
  private handleOwnerChange(signal: BusSignal): void {
    if (signal.sender !== BUS_DAEMON_NAME) return;
    const [name, , newOwner] = expectStringArray(signal.body, "NameOwnerChanged");
    if (name !== SYSTEMD_BUS_NAME || newOwner === undefined) return;
    if (newOwner !== "") this.ownerWaiter?.resolve(newOwner);
    if (this.link === "up" && newOwner !== this.systemdOwner) {
      this.beginOutage(newOwner === "" ? `systemd left the ${this.scope} bus` : `systemd came back on the ${this.scope} bus under a new name`);
    }
  }

  private attach(bus: BusConnection): void {
    this.bus = bus;
    this.matches = new Set();
    // Events of a connection already replaced are stale and ignored.
    bus.onSignal((signal) => {
      if (this.bus === bus) this.handleSignal(signal);
    });
    bus.onDisconnected((reason) => {
      if (this.bus !== bus) return;
      this.ownerWaiter?.reject(reason);
      this.beginOutage(`lost the connection to the ${this.scope} bus (${reason.message})`);
    });
  }

  /** Starts an outage (once; later losses during it are the recovery loop's business). */
  private beginOutage(reason: string): void {
    if (this.link !== "up") return;
    this.link = "down";
    const error = new SystemdDisconnectedError(`systemd is unreachable: ${reason}`, this.reconnectHint());
    this.outage = { since: Date.now(), error };
    this.subscribed = undefined;
    this.watching = undefined;
    // JobRemoved and PropertiesChanged sent from now on may never arrive: waits fail, and the cache is
    // rebuilt from fresh reads once systemd is back.
    this.jobs.failPending(error);
    this.cache.clear();
    const patience = Number.isFinite(this.outageLimitMs) ? `for up to ${Math.round(this.outageLimitMs / 1000)} s` : "with back-off";
    consola.warn(`systemd: ${reason}; reconnecting ${patience} (running units are not affected)`);
    if (Number.isFinite(this.outageLimitMs)) {
      this.giveUpTimer = setTimeout(() => this.giveUp(reason), this.outageLimitMs);
    }
    this.emit(this.outageListeners, this.outage);
    void this.recover();
  }

  /**
   * Reconnects (bus first, if it went), waits for systemd to be on the bus, subscribes again and lists the
   * vks units, then reports them all for re-reading. Any failure on the way is retried with back-off.
   */
  private async recover(): Promise<void> {
    const backoff = new ReconnectBackoff(RECONNECT_INITIAL_MS, RECONNECT_MAX_MS);
    while (this.link === "down") {
      try {
        if (!this.bus.isConnected) {
          await this.pause(backoff.next());
          if (this.link !== "down") return;
          const bus = await BusConnection.open({ ...this.options, scope: this.scope });
          if (this.link !== "down") {
            bus.close();
            return;
          }
          this.attach(bus);
          await this.addMatchOnce(bus, MATCH_SYSTEMD_OWNER);
        }
        const bus = this.bus;
        const owner = await this.waitForOwner(bus);
        if (this.link !== "down" || this.bus !== bus) continue;
        this.systemdOwner = owner;
        await this.subscribeOn(bus);
        if (this.watchRequested) await this.addMatchOnce(bus, MATCH_UNIT_PROPERTIES);
        const listed = await this.listVksUnitNamesOn(bus);
        if (this.link !== "down" || this.bus !== bus || !bus.isConnected) continue;
        this.restore(listed);
        return;
      } catch {
        if (this.link !== "down") return;
        // Failed on a live connection (systemd left again half-way, a refused call): do not spin.
        if (this.bus.isConnected) await this.pause(backoff.next());
      }
    }
  }

  /**
   * systemd's unique name on `bus`, now or as soon as it takes its well-known name. The NameOwnerChanged
   * match is in place before asking, so a return after the answer is seen; asking again now and then
   * covers a signal dbus-daemon dropped (it drops messages for a client whose queue is full).
   */
  private waitForOwner(bus: BusConnection): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const pace = new ReconnectBackoff(OWNER_POLL_INITIAL_MS, OWNER_POLL_MAX_MS);
      let poll: ReturnType<typeof setTimeout> | undefined;
      const settle = (owner?: string, err?: Error): void => {
        if (this.ownerWaiter !== waiter) return;
        this.ownerWaiter = undefined;
        clearTimeout(poll);
        if (owner !== undefined) resolve(owner);
        else reject(err ?? new Error("no systemd owner"));
      };
      const waiter = { resolve: (owner: string) => settle(owner), reject: (err: Error) => settle(undefined, err) };
      this.ownerWaiter = waiter;
      const ask = (): void => {
        bus.call({ ...BUS_DAEMON, member: "GetNameOwner", signature: "s", body: [SYSTEMD_BUS_NAME] }).then(
          (reply) => waiter.resolve(expectString(reply.body[0], "GetNameOwner")),
          (err: unknown) => {
            if (!isDbusError(err, DBUS_ERROR.nameHasNoOwner)) waiter.reject(err instanceof Error ? err : new Error(String(err)));
            else if (this.ownerWaiter === waiter) poll = setTimeout(ask, pace.next());
          },
        );
      };
      ask();
    });
  }

  private async listVksUnitNamesOn(bus: BusConnection): Promise<string[]> {
    const reply = await bus.call({ ...MANAGER, member: "ListUnitsByPatterns", signature: "asas", body: [[], [`${VKS_UNIT_PREFIX}*${SERVICE_SUFFIX}`]] });
    return expectArray(reply.body[0], "ListUnitsByPatterns")
      .map((row, index) => expectArray(row, `ListUnitsByPatterns[${index}]`))
      .filter((row) => row[2] !== "not-found")
      .map((row) => expectString(row[0], "unit name"))
      .filter(isVksService);
  }

  private restore(vksUnits: string[]): void {
    const outageMs = Date.now() - (this.outage?.since ?? Date.now());
    this.link = "up";
    this.outage = undefined;
    clearTimeout(this.giveUpTimer);
    this.subscribed = Promise.resolve();
    if (this.watchRequested) this.watching = Promise.resolve();
    const reread = this.watchRequested ? `; re-reading ${vksUnits.length} vks unit(s)` : "";
    consola.info(`systemd: connected again after ${(outageMs / 1000).toFixed(1)} s${reread}`);
    if (this.watchRequested) for (const unitName of vksUnits) this.cache.refresh(unitName);
    this.emit(this.reconnectedListeners, { outageMs, vksUnits: new Set(vksUnits) });
    const waiters = [...this.connectedWaiters];
    this.connectedWaiters.clear();
    for (const waiter of waiters) waiter.resolve();
  }

  private giveUp(reason: string): void {
    if (this.link !== "down") return;
    const failure = new SystemdError(`systemd is unreachable: ${reason}; it did not come back within ${Math.round(this.outageLimitMs / 1000)} s`, {
      exitCode: ExitCode.unavailable,
      hint: this.reconnectHint(),
    });
    this.finish(failure);
    this.emit(this.disconnectedListeners, failure);
  }

  /** Ends the manager for good: closed by vks, or given up on. */
  private finish(failure: SystemdError): void {
    this.link = "closed";
    this.finalError = failure;
    this.outage = undefined;
    clearTimeout(this.giveUpTimer);
    if (this.pauseTimer) {
      clearTimeout(this.pauseTimer.timer);
      this.pauseTimer.resolve();
      this.pauseTimer = undefined;
    }
    this.ownerWaiter?.reject(failure);
    this.jobs.failAll(failure.message);
    this.cache.clear();
    this.bus.close();
    const waiters = [...this.connectedWaiters];
    this.connectedWaiters.clear();
    for (const waiter of waiters) waiter.reject(failure);
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.pauseTimer = undefined;
        resolve();
      }, ms);
      this.pauseTimer = { timer, resolve };
    });
  }

  private unavailableError(): SystemdError {
    if (this.link === "closed") return this.closedError();
    return this.outage?.error ?? new SystemdDisconnectedError(`systemd is unreachable on the ${this.scope} bus`, this.reconnectHint());
  }

  private closedError(): SystemdError {
    return this.finalError ?? new SystemdError("the systemd connection was closed by vks", { exitCode: ExitCode.unavailable });
  }

  private reconnectHint(): string {
    return this.scope === "user"
      ? `vks reconnects by itself; check the user bus and manager: ${this.systemctl("status dbus.socket")}`
      : "vks reconnects by itself; check the bus and systemd: systemctl status dbus.socket dbus.service";
  }

  private emit<T>(listeners: ReadonlySet<(value: T) => void>, value: T): void {
    for (const listener of listeners) {
      try {
        listener(value);
      } catch (err) {
        // One failing consumer must not starve the others of events.
        this.reportError(`a unit event listener threw: ${errorMessage(err)}`, err);
      }
    }
  }

  private reportError(message: string, cause: unknown): void {
    // Work in flight failing while systemd is unreachable (or after vks closed the connection) is
    // expected, not news: the outage itself was reported once.
    if (this.link !== "up" || isSystemdDisconnected(cause)) return;
    const err = cause instanceof SystemdError && cause.message === message ? cause : new SystemdError(message, { cause });
    if (this.errorListeners.size === 0) {
      console.warn(`vks: systemd: ${message}`);
      return;
    }
    for (const listener of this.errorListeners) listener(err);
  }

  private systemctl(args: string): string {
    return `systemctl ${this.scope === "user" ? "--user " : ""}${args}`;
  }

  private startRefused(unitName: string, containerName: string, err: unknown): SystemdError {
    if (isDbusError(err, DBUS_ERROR.unitExists)) {
      return new SystemdError(`unit ${unitName} (container ${containerName}) already exists`, {
        exitCode: ExitCode.conflict,
        hint: `stop it first: ${this.systemctl(`stop ${unitName}`)}; ${this.systemctl(`reset-failed ${unitName}`)}`,
        cause: err,
      });
    }
    if (isDbusError(err, DBUS_ERROR.invalidArgs)) {
      return new SystemdError(`systemd rejected unit ${unitName} (container ${containerName}): ${err.text}`, {
        exitCode: ExitCode.invalidInput,
        hint: "a container field maps to a unit setting systemd does not accept; fix it in the manifest",
        cause: err,
      });
    }
    return this.refused(`cannot start ${unitName} (container ${containerName})`, err);
  }

  private refused(doing: string, err: unknown): SystemdError {
    if (isDbusError(err, DBUS_ERROR.accessDenied, DBUS_ERROR.interactiveAuthorizationRequired)) {
      return new SystemdError(`${doing}: ${err.text}`, {
        exitCode: ExitCode.permission,
        hint: this.scope === "system" ? "run vks as root, or use --user" : "the user manager refused the call",
        cause: err,
      });
    }
    if (isSystemdDisconnected(err)) return new SystemdDisconnectedError(`${doing}: ${err.message}`, err.hint, err);
    if (err instanceof SystemdError && !(err instanceof DbusErrorReply)) {
      return new SystemdError(`${doing}: ${err.message}`, { exitCode: err.exitCode, hint: err.hint, cause: err });
    }
    return new SystemdError(`${doing}: ${errorMessage(err)}`, { exitCode: ExitCode.unavailable, cause: err });
  }

  /** A job that ended other than "done", explained with what the unit's own state says. */
  private async jobFailed(action: "start" | "stop", unitName: string, result: string): Promise<SystemdError> {
    let detail = "";
    const state = await this.getUnitState(unitName).catch(() => undefined);
    if (state) {
      detail = `; unit is ${state.activeState}/${state.subState}, result ${state.result}`;
      if (state.execMainCode === ExitKind.exited) {
        const known = describeSystemdExitStatus(state.execMainStatus);
        detail += `, exit status ${state.execMainStatus}${known ? ` (${known})` : ""}`;
      } else if (state.execMainCode !== ExitKind.none) {
        detail += `, killed by signal ${state.execMainStatus}`;
      }
    }
    return new SystemdError(`${action} job for ${unitName} ended "${result}"${detail}`, {
      exitCode: ExitCode.failure,
      hint: `see ${this.systemctl(`status ${unitName}`)} and journalctl ${this.scope === "user" ? "--user " : ""}-u ${unitName}`,
    });
  }
}
