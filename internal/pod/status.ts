/**
 * Pod status derived from what systemd says about the pod's units, written the way the kubelet writes
 * it: the same phases, condition types, container state reasons and exit code conventions, so that
 * kubectl and controllers read a vks pod exactly like any other.
 */
import type {
  V1Container,
  V1ContainerState,
  V1ContainerStateTerminated,
  V1ContainerStatus,
  V1Pod,
  V1PodCondition,
  V1PodStatus,
} from "@kubernetes/client-node";
import { constants as osConstants } from "node:os";
import { ExitKind, type UnitState } from "../systemd/types.ts";
import { unitNameFor } from "../unit/name.ts";
import { podQOSClass } from "./qos.ts";
import { dateFromMicros, latestDate } from "./timestamps.ts";

export interface WaitingReason {
  reason: string;
  message?: string;
}

export interface PodStatusInput {
  pod: V1Pod;
  /** Each container's unit as systemd reports it; undefined when systemd has no such unit. */
  units: Record<string, UnitState | undefined>;
  /** Waiting reasons only the engine knows (ContainerCreating while installing, ErrImagePull, …). */
  waiting: Record<string, WaitingReason>;
  /** Each container's termination before its current run, remembered by the engine across restarts. */
  lastTerminated: Record<string, V1ContainerStateTerminated>;
  /** The host's address, which is also the pod's: pods share the host network. */
  hostIP: string;
  /** When vks accepted the pod (the kubelet's "pod started"). */
  startTime?: Date;
  /** Each container's imageID (ResolvedImage.imageID); "" until the image is resolved, as in the kubelet. */
  imageIDs?: Record<string, string>;
  /** Each container's restarts before its current unit (a reboot took the earlier one), added to NRestarts. */
  restartsBefore?: Record<string, number>;
  /** The back-off (seconds) each restarting container waits, from its unit's restart gate. */
  backOff?: Record<string, number>;
  /**
   * Probe results of the containers this process probes (probes/manager.ts): readiness sets `ready`, a
   * startup probe `started`. Absent (no probes, or a process that does not run them): a running
   * container counts as started and ready.
   */
  probes?: Record<string, { ready?: boolean; started?: boolean; postStartPending?: boolean }>;
}

/** Exit code of a container killed by signal N: 128 + N, the shell convention the kubelet reports. */
const SIGNAL_EXIT_BASE = 128;
/** The kubelet's exit code for a container whose state was lost (ContainerStatusUnknown) or never ran. */
const UNKNOWN_EXIT_CODE = 137;
const START_ERROR_EXIT_CODE = 128;

/**
 * Exit statuses with which systemd itself reports that it could not set up or exec the process. The
 * kubelet calls such a failure StartError; the program never ran, so its own exit codes are not at stake.
 */
const SYSTEMD_SETUP_FAILURES: Readonly<Record<number, string>> = {
  200: "200/CHDIR: the working directory does not exist or is not accessible",
  203: "203/EXEC: the program could not be executed",
  209: "209/STDOUT: standard output (the log file) could not be opened",
  216: "216/GROUP: the group does not exist",
  217: "217/USER: the user does not exist",
  222: "222/STDERR: standard error (the log file) could not be opened",
  233: "233/RUNTIME_DIRECTORY: the runtime directory could not be created",
};

interface ObservedContainer {
  state: V1ContainerState;
  ready: boolean;
  /** The state before this one when this observation knows it better than the engine's memory. */
  lastTerminated?: V1ContainerStateTerminated;
}

function containerIDOf(unitName: string): string {
  return `systemd://${unitName}`;
}

function withOptionalDates(
  terminated: V1ContainerStateTerminated,
  startedAt: Date | undefined,
  finishedAt: Date | undefined,
): V1ContainerStateTerminated {
  return {
    ...terminated,
    ...(startedAt === undefined ? {} : { startedAt }),
    ...(finishedAt === undefined ? {} : { finishedAt }),
  };
}

/** How the unit's main process last ended, in the kubelet's terms. */
export function terminatedFromUnit(unit: UnitState): V1ContainerStateTerminated {
  const containerID = containerIDOf(unit.name);
  const startedAt = dateFromMicros(unit.execMainStartTimestamp);
  const finishedAt =
    dateFromMicros(unit.execMainExitTimestamp) ?? dateFromMicros(unit.inactiveEnterTimestamp) ?? dateFromMicros(unit.stateChangeTimestamp);
  const oomKilled = unit.result === "oom-kill";
  switch (unit.execMainCode) {
    case ExitKind.exited: {
      const exitCode = unit.execMainStatus;
      const setupFailure = SYSTEMD_SETUP_FAILURES[exitCode];
      if (setupFailure !== undefined && !oomKilled) {
        return withOptionalDates(
          { exitCode, reason: "StartError", message: `systemd could not start the process: ${setupFailure}`, containerID },
          startedAt,
          finishedAt,
        );
      }
      const reason = oomKilled ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error";
      return withOptionalDates({ exitCode, reason, containerID }, startedAt, finishedAt);
    }
    case ExitKind.killed:
    case ExitKind.dumped: {
      const signal = unit.execMainStatus;
      const reason = oomKilled ? "OOMKilled" : "Error";
      return withOptionalDates({ exitCode: SIGNAL_EXIT_BASE + signal, signal, reason, containerID }, startedAt, finishedAt);
    }
    default:
      // The unit failed before its main process ran (ExecStartPre, resources, user lookup, …).
      return withOptionalDates(
        {
          exitCode: START_ERROR_EXIT_CODE,
          reason: "StartError",
          message: `the unit failed before the program started (systemd result "${unit.result}"); see journalctl -u ${unit.name}`,
          containerID,
        },
        undefined,
        finishedAt,
      );
  }
}

/** The kubelet's message: "back-off 40s restarting failed container=c pod=name_ns(uid)". */
/**
 * A termination the unit's ExecStopPost recorded (restart-backoff.ts), for a restarted unit whose
 * ExecMain* systemd has already cleared: $EXIT_CODE exited/killed/dumped, $EXIT_STATUS a number or a
 * signal name, $SERVICE_RESULT.
 */
export function terminatedFromRecordedExit(
  recorded: { code: string; status: string; result: string; startedMicros: bigint; finishedMicros: bigint },
  unitName: string,
): V1ContainerStateTerminated | undefined {
  const containerID = containerIDOf(unitName);
  const oomKilled = recorded.result === "oom-kill";
  const dates = { ...(recorded.startedMicros > 0n ? { startedAt: dateFromMicros(recorded.startedMicros) } : {}), finishedAt: dateFromMicros(recorded.finishedMicros) };
  if (recorded.code === "exited") {
    const exitCode = Number(recorded.status);
    if (!Number.isInteger(exitCode)) return undefined;
    return { exitCode, reason: oomKilled ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error", containerID, ...dates };
  }
  if (recorded.code === "killed" || recorded.code === "dumped") {
    const signal = (osConstants.signals as Record<string, number | undefined>)[`SIG${recorded.status}`] ?? Number(recorded.status);
    if (!Number.isInteger(signal)) return undefined;
    return { exitCode: SIGNAL_EXIT_BASE + signal, signal, reason: oomKilled ? "OOMKilled" : "Error", containerID, ...dates };
  }
  return undefined;
}

function crashLoopMessage(pod: V1Pod, container: string, backOffSeconds: number | undefined): string {
  const namespace = pod.metadata?.namespace || "default";
  const wait = backOffSeconds === undefined || backOffSeconds <= 0 ? "" : ` ${backOffSeconds}s`;
  return `back-off${wait} restarting failed container=${container} pod=${pod.metadata?.name ?? ""}_${namespace}(${pod.metadata?.uid ?? ""})`;
}

/**
 * True when the Service properties show a main process that started and has not ended: with a sub state
 * that says the process ended, they are newer than the Unit properties beside them.
 */
function nextRunStarted(unit: UnitState): boolean {
  return unit.execMainCode === ExitKind.none && unit.execMainStartTimestamp !== 0n && unit.execMainExitTimestamp === 0n;
}

/** The container's state from its unit. */
function observeUnit(unit: UnitState, pod: V1Pod, container: string, backOffSeconds?: number): ObservedContainer {
  const startedAt = dateFromMicros(unit.execMainStartTimestamp) ?? dateFromMicros(unit.activeEnterTimestamp);
  const running: ObservedContainer = { state: { running: startedAt === undefined ? {} : { startedAt } }, ready: true };
  // systemd waits RestartSec in "activating (auto-restart)" before starting the process again.
  if (unit.subState === "auto-restart") {
    // A snapshot torn across the restart: systemd sends a change as a Service signal then a Unit signal,
    // and a reader can see the first without the second (or Gets answered on both sides of the restart).
    // The Service half is then the newer one and says the next run has started; its zeroed exit status
    // is no termination at all, and reading it as one would report StartError, exit 128.
    if (nextRunStarted(unit)) return unit.mainPID > 0 ? running : { state: { waiting: { reason: "ContainerCreating" } }, ready: false };
    return {
      state: { waiting: { reason: "CrashLoopBackOff", message: crashLoopMessage(pod, container, backOffSeconds) } },
      ready: false,
      lastTerminated: terminatedFromUnit(unit),
    };
  }
  // Restarted by systemd and in ExecStartPre, whose first command (the restart gate) waits out the
  // kubelet's back-off. systemd cleared ExecMain* for the new run: the engine remembers the last exit.
  if (unit.activeState === "activating" && unit.subState === "start-pre" && unit.nRestarts > 0) {
    return { state: { waiting: { reason: "CrashLoopBackOff", message: crashLoopMessage(pod, container, backOffSeconds) } }, ready: false };
  }
  switch (unit.activeState) {
    case "active":
    case "reloading":
    case "refreshing":
      // RemainAfterExit keeps a unit whose process exited "active (exited)".
      if (unit.subState === "exited") return { state: { terminated: terminatedFromUnit(unit) }, ready: false };
      return running;
    case "deactivating":
      // Still alive while it handles SIGTERM; the kubelet reports such a container running too.
      return unit.mainPID > 0 ? running : { state: { terminated: terminatedFromUnit(unit) }, ready: false };
    case "activating":
      // A notify/forking service whose process runs but has not reported readiness: like a container
      // whose readiness probe has not passed yet. Before that (ExecStartPre) nothing of it runs.
      if (unit.subState === "start" && unit.mainPID > 0) return { ...running, ready: false };
      return { state: { waiting: { reason: "ContainerCreating" } }, ready: false };
    case "failed":
      return { state: { terminated: terminatedFromUnit(unit) }, ready: false };
    default:
      // inactive: a unit that ran has ended; one that never ran is about to start.
      if (unit.execMainStartTimestamp > 0n || unit.execMainCode !== ExitKind.none) {
        return { state: { terminated: terminatedFromUnit(unit) }, ready: false };
      }
      return { state: { waiting: { reason: "ContainerCreating" } }, ready: false };
  }
}

/** The container's state as its unit shows it (for the init sequence, which must agree with status). */
export function containerStateOfUnit(unit: UnitState, pod: V1Pod, container: string): V1ContainerState {
  return observeUnit(unit, pod, container).state;
}

function unitNameOrUndefined(pod: V1Pod, container: string): string | undefined {
  const name = pod.metadata?.name;
  const uid = pod.metadata?.uid;
  if (!name || !uid) return undefined;
  try {
    return unitNameFor({ namespace: pod.metadata?.namespace || "default", pod: name, container, uid });
  } catch {
    return undefined;
  }
}

/** Not the same termination: the engine may already remember the very exit the unit still shows. */
function sameTermination(a: V1ContainerStateTerminated, b: V1ContainerStateTerminated): boolean {
  return a.exitCode === b.exitCode && a.finishedAt?.getTime() === b.finishedAt?.getTime() && a.startedAt?.getTime() === b.startedAt?.getTime();
}

/**
 * True while the pod has init containers and no app container has a unit yet: a container without a unit
 * is then one whose turn has not come, which the kubelet reports as waiting with reason PodInitializing.
 */
function initializing(input: PodStatusInput): boolean {
  const spec = input.pod.spec;
  if ((spec?.initContainers ?? []).length === 0) return false;
  return (spec?.containers ?? []).every((container) => input.units[container.name] === undefined);
}

/**
 * True once every app container has finished for good: restartPolicy Never, or OnFailure with every one
 * exited 0. The kubelet then stops the pod's sidecars so the pod can complete.
 */
export function appContainersFinished(pod: V1Pod, units: Readonly<Record<string, UnitState | undefined>>): boolean {
  const policy = pod.spec?.restartPolicy ?? "Always";
  if (policy === "Always") return false;
  return (pod.spec?.containers ?? []).every((container) => {
    const unit = units[container.name];
    if (unit === undefined || unit.loadState === "not-found") return false;
    const terminated = observeUnit(unit, pod, container.name).state.terminated;
    return terminated !== undefined && (policy === "Never" || terminated.exitCode === 0);
  });
}

function containerStatusOf(input: PodStatusInput, container: V1Container): V1ContainerStatus {
  const { pod } = input;
  const unit = input.units[container.name];
  const remembered = input.lastTerminated[container.name];
  let observed: ObservedContainer;
  let containerID: string | undefined;
  let restartCount = input.restartsBefore?.[container.name] ?? 0;
  if (unit !== undefined && unit.loadState !== "not-found") {
    observed = observeUnit(unit, pod, container.name, input.backOff?.[container.name]);
    containerID = containerIDOf(unit.name);
    restartCount += unit.nRestarts;
  } else {
    const waiting = input.waiting[container.name];
    if (waiting !== undefined) {
      observed = { state: { waiting: { ...waiting } }, ready: false };
    } else if (initializing(input)) {
      observed = { state: { waiting: { reason: "PodInitializing" } }, ready: false };
    } else if (isSidecar(container) && (input.pod.spec?.initContainers ?? []).includes(container) && appContainersFinished(pod, input.units)) {
      // vks stopped it once the app containers finished (systemd then unloads the unit): a clean stop,
      // which systemd counts as success. The exit the engine saw, if it saw it, is the better answer.
      observed = {
        state: { terminated: remembered ?? { exitCode: 0, reason: "Completed", message: "stopped by vks after the app containers finished" } },
        ready: false,
      };
    } else {
      // The pod is recorded but its unit is gone: the host rebooted or someone removed the unit.
      const unitName = unitNameOrUndefined(pod, container.name);
      containerID = unitName === undefined ? undefined : containerIDOf(unitName);
      observed = {
        state: {
          terminated: {
            exitCode: UNKNOWN_EXIT_CODE,
            reason: "ContainerStatusUnknown",
            message: `The container could not be located: its unit${unitName === undefined ? "" : ` ${unitName}`} is gone (host reboot, or removed outside vks)`,
            ...(containerID === undefined ? {} : { containerID }),
          },
        },
        ready: false,
      };
    }
  }
  const current = observed.state.terminated;
  const lastTerminated =
    observed.lastTerminated ?? (remembered !== undefined && (current === undefined || !sameTermination(current, remembered)) ? remembered : undefined);
  const probed = input.probes?.[container.name];
  // The kubelet reports a container whose postStart hook still runs as not running yet.
  if (probed?.postStartPending === true && observed.state.running !== undefined) observed = { state: { waiting: { reason: "ContainerCreating" } }, ready: false };
  const running = observed.state.running !== undefined;
  const started = running && probed?.started !== false;
  return {
    name: container.name,
    image: container.image ?? "",
    imageID: input.imageIDs?.[container.name] ?? "",
    ...(containerID === undefined ? {} : { containerID }),
    ready: observed.ready && started && (probed?.ready ?? true),
    started,
    restartCount,
    state: observed.state,
    lastState: lastTerminated === undefined ? {} : { terminated: lastTerminated },
  };
}

/** The kubelet's sidecar test: an init container with restartPolicy Always. */
function isSidecar(container: V1Container): boolean {
  return container.restartPolicy === "Always";
}

/**
 * The kubelet's count of init containers still to finish (run-to-completion ones not yet exited 0, or
 * sidecars not yet started) and of run-to-completion ones that failed, as getPhase counts them.
 */
function initProgress(pod: V1Pod, initStatuses: V1ContainerStatus[]): { pendingRegular: number; pendingSidecars: number; failed: number } {
  let pendingRegular = 0;
  let pendingSidecars = 0;
  let failed = 0;
  (pod.spec?.initContainers ?? []).forEach((container, index) => {
    const status = initStatuses[index];
    if (isSidecar(container)) {
      if (status?.state?.running !== undefined ? !status.started : status?.state?.waiting !== undefined && status.lastState?.terminated === undefined) {
        pendingSidecars++;
      }
      return;
    }
    const terminated = status?.state?.terminated;
    if (terminated !== undefined) {
      if (terminated.exitCode !== 0) failed++;
    } else if (status?.state?.waiting !== undefined && status.lastState?.terminated !== undefined) {
      if (status.lastState.terminated.exitCode !== 0) failed++;
    } else {
      pendingRegular++;
    }
  });
  return { pendingRegular, pendingSidecars, failed };
}

/**
 * The kubelet's phase rules (getPhase): init containers first (a failed one under restartPolicy Never
 * fails the pod; any still to finish keep it Pending), then the app containers and running sidecars.
 */
function podPhase(pod: V1Pod, statuses: V1ContainerStatus[], initStatuses: V1ContainerStatus[] = []): string {
  const init = initProgress(pod, initStatuses);
  if (init.failed > 0 && pod.spec?.restartPolicy === "Never") return "Failed";
  const anyAppStarted = statuses.some((status) => status.state?.running !== undefined || status.state?.terminated !== undefined || status.lastState?.terminated !== undefined);
  if (init.pendingRegular > 0 || (init.pendingSidecars > 0 && !anyAppStarted)) return "Pending";
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  // Running sidecars count as running; stopped ones are ignored, as the kubelet does.
  (pod.spec?.initContainers ?? []).forEach((container, index) => {
    if (isSidecar(container) && initStatuses[index]?.state?.running !== undefined) running++;
  });
  for (const status of statuses) {
    if (status.state?.running !== undefined) {
      running++;
    } else if (status.state?.terminated !== undefined) {
      stopped++;
      if (status.state.terminated.exitCode === 0) succeeded++;
    } else if (status.lastState?.terminated !== undefined) {
      // Waiting to restart after an exit counts as stopped, not as never started.
      stopped++;
    } else {
      waiting++;
    }
  }
  if (waiting > 0) return "Pending";
  if (running > 0) return "Running";
  if (stopped === 0) return "Pending";
  const policy = pod.spec?.restartPolicy ?? "Always";
  if (policy === "Always") return "Running";
  if (stopped === succeeded) return "Succeeded";
  return policy === "Never" ? "Failed" : "Running";
}

function condition(type: string, isTrue: boolean, lastTransitionTime: Date | undefined, reason?: string, message?: string): V1PodCondition {
  return {
    type,
    status: isTrue ? "True" : "False",
    ...(lastTransitionTime === undefined ? {} : { lastTransitionTime }),
    ...(reason === undefined ? {} : { reason }),
    ...(message === undefined ? {} : { message }),
  };
}

/**
 * The pod's conditions. vks keeps no condition history, so each transition time is derived from the
 * units: readiness changed when the last container started (or the first unready one stopped); the pod
 * was scheduled, initialized and ready to start containers when vks accepted it.
 */
function podConditions(
  input: PodStatusInput,
  statuses: V1ContainerStatus[],
  phase: string,
  initStatuses: V1ContainerStatus[] = [],
): V1PodCondition[] {
  const accepted = input.startTime ?? input.pod.metadata?.creationTimestamp;
  // Sidecars count toward readiness like app containers (the kubelet's ContainersReady).
  const sidecarStatuses = (input.pod.spec?.initContainers ?? []).flatMap((container, index) => {
    const status = initStatuses[index];
    return isSidecar(container) && status !== undefined ? [status] : [];
  });
  const unready = [...sidecarStatuses, ...statuses].filter((status) => !status.ready);
  const allReady = unready.length === 0;
  const readinessChanged = allReady
    ? latestDate([...sidecarStatuses, ...statuses].map((status) => status.state?.running?.startedAt))
    : latestDate(unready.map((status) => status.state?.terminated?.finishedAt ?? status.lastState?.terminated?.finishedAt));
  const readyTime = readinessChanged ?? accepted;
  const reason = allReady ? undefined : phase === "Succeeded" ? "PodCompleted" : "ContainersNotReady";
  const message = allReady || phase === "Succeeded" ? undefined : `containers with unready status: [${unready.map((status) => status.name).join(" ")}]`;
  return [
    condition("PodReadyToStartContainers", input.startTime !== undefined, accepted),
    initializedCondition(input, statuses, initStatuses, phase, accepted),
    condition("Ready", allReady, readyTime, reason, message),
    condition("ContainersReady", allReady, readyTime, reason, message),
    condition("PodScheduled", true, input.pod.metadata?.creationTimestamp ?? accepted),
  ];
}

/**
 * The kubelet's Initialized condition: False (ContainersNotInitialized) until every run-to-completion init
 * container exited 0 and every sidecar started, or once any app container started (a restarting sidecar
 * does not un-initialize a pod). It changed when the last init container finished or the last sidecar
 * started; without init containers, when vks accepted the pod.
 */
function initializedCondition(
  input: PodStatusInput,
  statuses: V1ContainerStatus[],
  initStatuses: V1ContainerStatus[],
  phase: string,
  accepted: Date | undefined,
): V1PodCondition {
  const initContainers = input.pod.spec?.initContainers ?? [];
  if (initContainers.length === 0) return condition("Initialized", true, accepted);
  const incomplete = initContainers.filter((container, index) => {
    const status = initStatuses[index];
    if (isSidecar(container)) return status?.started !== true;
    return status?.state?.terminated === undefined || status.state.terminated.exitCode !== 0;
  });
  const doneAt = latestDate(initStatuses.map((status) => status.state?.terminated?.finishedAt ?? status.state?.running?.startedAt)) ?? accepted;
  if (phase === "Succeeded") return condition("Initialized", true, doneAt, "PodCompleted");
  const anyAppStarted = statuses.some((status) => status.started === true || status.state?.terminated !== undefined || status.lastState?.terminated !== undefined);
  if (incomplete.length === 0 || anyAppStarted) return condition("Initialized", true, doneAt);
  return condition(
    "Initialized",
    false,
    accepted,
    "ContainersNotInitialized",
    `containers with incomplete status: [${incomplete.map((container) => container.name).join(" ")}]`,
  );
}

/** The pod's status as the kubelet would write it. Pure: everything it looks at is in `input`. */
export function podStatus(input: PodStatusInput): V1PodStatus {
  const { pod } = input;
  // The kubelet's prober marks an init container that exited 0 ready; a sidecar is ready while it runs.
  const initStatuses = (pod.spec?.initContainers ?? []).map((container) => {
    const status = containerStatusOf(input, container);
    return isSidecar(container) ? status : { ...status, ready: status.state?.terminated?.exitCode === 0 };
  });
  const statuses = (pod.spec?.containers ?? []).map((container) => containerStatusOf(input, container));
  const phase = podPhase(pod, statuses, initStatuses);
  return {
    phase,
    conditions: podConditions(input, statuses, phase, initStatuses),
    hostIP: input.hostIP,
    hostIPs: [{ ip: input.hostIP }],
    podIP: input.hostIP,
    podIPs: [{ ip: input.hostIP }],
    ...(input.startTime === undefined ? {} : { startTime: input.startTime }),
    // Immutable once the API server has set it, so an existing value is kept.
    qosClass: pod.status?.qosClass ?? podQOSClass(pod),
    ...(initStatuses.length === 0 ? {} : { initContainerStatuses: initStatuses }),
    containerStatuses: statuses,
  };
}
