import type { V1ContainerStateTerminated, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { randomUUID } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { podSecretEnvDirectory } from "./env-file.ts";
import { fetchEnvObjects, type EnvObjects } from "./env-sources.ts";
import { skippedEnvKeys } from "./env.ts";
import { NO_OBJECTS, type PodObjectSource } from "./objects.ts";
import { hostAllocatable, writeSecretEnvFile } from "./secret-env.ts";
import type { Allocatable } from "./resource-field.ts";
import { ExitCode, NotFoundError, VksError, errorMessage } from "../errors.ts";
import { ContainerNotRunningError, startExec, type ExecProcess, type ExecRequest } from "../exec/exec.ts";
import { detectHostIP } from "../host/address.ts";
import { ImageError, ImageResolver, PullBackOff, defaultPullPolicy } from "../image/resolve.ts";
import type { PullPolicy, ResolvedImage } from "../image/types.ts";
import { chooseLogMode, containerLogFile, podLogDirectory, type LogModeSetting } from "../logs/logs.ts";
import { PodRecordStore, stateDirFor, type PodLogs, type PodOrigin, type PodRecord } from "../state/records.ts";
import { isSystemdDisconnected, retryWhenConnected } from "../systemd/disconnected.ts";
import { SystemdManager, type SystemdReconnection } from "../systemd/manager.ts";
import type { UnitAccounting } from "../systemd/accounting.ts";
import { VKS_UNIT_GLOB, parseUnitName } from "../unit/name.ts";
import { ExitKind, type ManagerScope, type UnitPlan, type UnitState } from "../systemd/types.ts";
import { DEFAULT_GRACE_PERIOD_SECONDS, MINIMUM_GRACE_PERIOD_SECONDS, executablesNeeded, planPod } from "./plan.ts";
import type { PodEvent, PodProvider } from "./provider.ts";
import { type InitStep, nextInitStep, sidecars, sidecarsToStop } from "./init-sequence.ts";
import { containerStateOfUnit, podStatus, terminatedFromRecordedExit, terminatedFromUnit } from "./status.ts";
import { validatePod } from "./validate.ts";
import { DEADLINE_EXCEEDED, admissionFailure, failedPodStatus, subtractReserved, type PodFailure } from "./admission.ts";
import { containerCgroup, nodeSliceCgroup, planPodSlice, podHasLimits, qosSliceWeights } from "./resources.ts";
import { parseQuantity, wholeValue } from "./quantity.ts";
import { totalmem } from "node:os";
import { unitOomKilled } from "../host/kernel-oom.ts";
import { knownGroupIds } from "../host/groups.ts";
import { dateFromMicros } from "./timestamps.ts";
import { unenforcedLimits } from "./enforcement.ts";
import { VKS_SLICE, VKS_SLICE_GLOB, qosSliceName } from "../unit/slice.ts";
import { ProbeManager, type ContainerRun } from "./probes/manager.ts";
import type { ExecRunner } from "./probes/handlers.ts";
import { hookHandler, runHook } from "./probes/hooks.ts";
import { probeResultsFile, readProbeResults, writeProbeResults } from "./probes/results-file.ts";
import { findOrphanState, removeOrphanState } from "./orphan-state.ts";
import type { ProbeHost, ProbeStatus } from "./probes/manager.ts";
import type { ProbeKind } from "./probes/spec.ts";
import { forgetBackOff, installRestartBackOffScript, podBackOffDirectory, readBackOffEntry, readRecordedExit, removePodBackOff, restartBackOffScript, type RestartBackOffPaths } from "./restart-backoff.ts";
import type { ServiceAccountToken } from "./objects.ts";
import { VolumeSetupError, type VolumeSetupOptions, createSubPathDirectories, podHasVolumeData, podVolumeDirectory, preparePodVolumes, refreshPodVolumes, removePodVolumes } from "./volume-data.ts";

export interface PodEngineOptions {
  scope: ManagerScope;
  stateDir?: string;
  /** The address pods report as hostIP and podIP (they share the host's network). Detected when absent. */
  hostIP?: string;
  logMode?: LogModeSetting;
  aptSources?: Record<string, string>;
  /** Install progress and other things a person waiting on a pod wants to see. */
  onProgress?: (message: string) => void;
  /**
   * Where pods' ConfigMaps and Secrets come from: the manifest's documents (pod up) or the API server
   * (serve). Absent: none exist, and a pod referring to one that is not optional fails to plan.
   */
  objects?: PodObjectSource;
  /** The node's allocatable resources (resourceFieldRef without a limit); computed from the host when absent. */
  allocatable?: Allocatable;
  /** Written into the records of pods this engine creates (who restores them after a reboot). */
  origin?: PodOrigin;
  /** Pods this engine creates are started again at boot by `vks pod restore` (`pod up -d`). */
  restoreAtBoot?: boolean;
  /** `--system-reserved` and `--kube-reserved`: taken off allocatable, for admission and resourceFieldRef. */
  reserved?: Allocatable[];
  /** `--pod-max-pids`: TasksMax of every pod's slice. */
  podMaxPids?: number;
  /**
   * Wait out any systemd outage (serve, pod up in the foreground). Otherwise calls fail once systemd has
   * been unreachable for 30 s, so a one-shot command never hangs.
   */
  keepReconnecting?: boolean;
  /**
   * Whether this process probes its pods' containers (serve, and pod up in the foreground): a process that
   * only lists or stops pods, or returns at once (pod up -d), leaves probing to the one that runs them.
   */
  runProbes?: "all" | "driving";
}

/**
 * The unit that runs `vks pod restore` at boot (examples/vks-pods.service). Pods it restores are ordered
 * before it, so at shutdown its ExecStop (`vks pod checkpoint`) runs while they still run.
 */
export const RESTORE_UNIT = "vks-pods.service";

/** How soon serve retries a pod whose volume waits for an object (the kubelet retries its mounts like this). */
const VOLUME_RETRY_MS = 10_000;
/** The kubelet's sync period for configMap/secret volume content: changes show within about a minute. */
const VOLUME_RESYNC_MS = 60_000;
/** How often init sequences are looked at again without a unit change (armInitResync). */
const INIT_RESYNC_MS = 5_000;

export interface PodKey {
  namespace: string;
  name: string;
}

/** One pod as the kubelet's stats see it: with status, where its logs go, and each container's unit. */
export interface PodContainerUnits {
  pod: V1Pod;
  logs: PodLogs;
  containers: { name: string; unitName: string; unit: UnitState | undefined }[];
}

/** What the engine knows about one pod beyond its record: what it is waiting for and how it last exited. */
interface TrackedPod {
  record: PodRecord;
  /** Waiting reasons the engine itself knows (ContainerCreating while installing, ErrImagePull, …). */
  waiting: Record<string, { reason: string; message?: string }>;
  /** The last termination of each container, kept because systemd forgets it when the unit restarts. */
  lastTerminated: Record<string, V1ContainerStateTerminated>;
  units: Record<string, UnitState | undefined>;
  /** The back-off (seconds) a restarting container waits, from its unit's restart gate (restart-backoff.ts). */
  backOff: Record<string, number>;
  /** Each container's resolved image ID, known once its image was resolved in this process. */
  imageIDs: Record<string, string>;
  /**
   * Every container's unit plan, init containers included, kept for the ones the init sequence starts
   * later; absent after a vks restart until the pod needs one (then planned again from the record).
   */
  plans?: UnitPlan[];
  /** Sidecars vks stopped because the app containers finished: not to be stopped (or restarted) again. */
  stoppedSidecars: Set<string>;
  /** Projected service account tokens issued for the pod, renewed at 80 % of their lifetime. */
  tokens?: Map<string, ServiceAccountToken & { issuedAt: Date }>;
  /**
   * Whether this process drives the pod's init sequence: it created or resumed the pod. A `pod ls` or
   * `pod down` opening the records must never start a unit because it saw one change.
   */
  driving: boolean;
  /** Set when the node itself failed the pod: rejected at admission, or past activeDeadlineSeconds. */
  failure?: PodFailure;
  /** The activeDeadlineSeconds timer, armed while this process drives the pod. */
  deadlineTimer?: ReturnType<typeof setTimeout>;
  /** Exits (container → finishedAt ms) the kernel log shows were OOM kills (cgroup v1, see kernel-oom.ts). */
  oomExits?: Map<string, Set<number>>;
  /** Exits already looked up in the kernel log, as `container@exit µs`. */
  oomChecked?: Set<string>;
  /** The pod's slice was made (or updated) by this process: later init steps need not again. */
  sliceStarted?: boolean;
  /** Being deleted: no more probes (a liveness kill must not race the pod's own stop). */
  deleting?: boolean;
}

const SIGKILL = 9;
const SIGTERM = 15;
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games";

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;

/**
 * The pod engine: turns pods into systemd units and units back into pod status. `pod up` and `serve`
 * both drive it through the PodProvider interface; it owns the systemd connection and the records.
 */
export class PodEngine implements PodProvider {
  private readonly tracked = new Map<string, TrackedPod>();
  private readonly podByUnit = new Map<string, string>();
  private readonly podListeners: ((pod: V1Pod) => void)[] = [];
  private readonly eventListeners: ((pod: V1Pod, event: PodEvent) => void)[] = [];
  private readonly podLocks = new Map<string, Promise<unknown>>();
  private readonly pullBackOff = new PullBackOff();
  /** Why the last health check failed, for the node's NotReady message. */
  private healthProblem: string | undefined;
  /** The periodic volume sync; unref'd, so it never keeps a `pod up` process alive. */
  private volumeResync: ReturnType<typeof setInterval> | undefined;
  /** The periodic look at init sequences this process drives (resyncInitSequences); unref'd too. */
  private initResync: ReturnType<typeof setInterval> | undefined;
  /** The prober (probes/), when this process runs probes. */
  private readonly probes: ProbeManager | undefined;
  private readonly probeWrites = new Map<string, Promise<void>>();

  private constructor(
    readonly systemd: SystemdManager,
    readonly records: PodRecordStore,
    private readonly images: ImageResolver,
    readonly stateDir: string,
    private readonly options: PodEngineOptions & { hostIP: string },
  ) {
    this.probes = options.runProbes !== undefined ? new ProbeManager(this.probeHost()) : undefined;
  }

  static async open(options: PodEngineOptions): Promise<PodEngine> {
    const stateDir = options.stateDir ?? stateDirFor(options.scope);
    const systemd = await SystemdManager.connect({ scope: options.scope, ...(options.keepReconnecting ? { outageLimitMs: Infinity } : {}) });
    const records = new PodRecordStore(stateDir);
    await installRestartBackOffScript(stateDir);
    const images = new ImageResolver({ stateDir, aptSources: options.aptSources ?? {}, onProgress: options.onProgress });
    const engine = new PodEngine(systemd, records, images, stateDir, {
      ...options,
      hostIP: options.hostIP ?? detectHostIP() ?? "127.0.0.1",
    });
    for (const record of await records.list()) engine.track(record);
    systemd.onUnitChanged((state) => engine.onUnitChanged(state));
    systemd.onReconnected((reconnection) => engine.onReconnected(reconnection));
    if (options.objects !== undefined) {
      engine.volumeResync = setInterval(() => void engine.resyncVolumes(), VOLUME_RESYNC_MS);
      engine.volumeResync.unref();
    }
    return engine;
  }

  async close(): Promise<void> {
    clearInterval(this.volumeResync);
    clearInterval(this.initResync);
    this.probes?.close();
    await this.systemd.close();
  }

  /** The cgroup controllers the manager can enforce pod limits with (serve reports them on the node). */
  enforceableControllers(): Promise<ReadonlySet<string>> {
    return this.systemd.enforceableControllers();
  }

  get scope(): ManagerScope {
    return this.options.scope;
  }

  systemdVersion(): Promise<string> {
    return this.systemd.version();
  }

  async isHealthy(): Promise<boolean> {
    if (!this.systemd.connected) return false;
    // An outage that begins while the call is on its way decides at once: the call itself may wait for
    // its timeout (25 s) when the bus goes down without closing the connection first, and the node would
    // stay Ready all that time.
    let stopListening = (): void => {};
    const outage = new Promise<"outage">((resolve) => {
      stopListening = this.systemd.onOutage(() => resolve("outage"));
    });
    try {
      const answer = await Promise.race([this.systemd.version().then(() => "answered" as const), outage]);
      if (answer === "outage") return false;
      this.healthProblem = undefined;
      return true;
    } catch (err) {
      // The call can fail a moment before the manager has taken note of the outage behind it.
      this.healthProblem = errorMessage(err);
      return false;
    } finally {
      stopListening();
    }
  }

  /** Why systemd cannot be reached right now (the node's NotReady message), or undefined when it can. */
  systemdOutage(): string | undefined {
    return this.systemd.currentOutage()?.error.message ?? this.healthProblem;
  }

  /** Calls `listener` when systemd becomes unreachable and when it is reachable again. */
  onSystemdAvailability(listener: () => void): void {
    this.systemd.onOutage(() => listener());
    this.systemd.onReconnected(() => listener());
  }

  notifyPods(onPodChanged: (pod: V1Pod) => void): void {
    this.podListeners.push(onPodChanged);
  }

  notifyEvents(onEvent: (pod: V1Pod, event: PodEvent) => void): void {
    this.eventListeners.push(onEvent);
  }

  /** Fills in what a pod from a manifest lacks (namespace, uid, creation time) and validates it. */
  normalize(pod: V1Pod, source: string): V1Pod {
    const normalized: V1Pod = structuredClone(pod);
    normalized.metadata = { ...normalized.metadata };
    normalized.metadata.namespace ||= "default";
    normalized.metadata.uid ||= randomUUID();
    normalized.metadata.creationTimestamp ??= new Date();
    validatePod(normalized, source);
    return normalized;
  }

  async createPod(pod: V1Pod): Promise<void> {
    const normalized = this.normalize(pod, describePod(pod));
    const { namespace, name } = podKey(normalized);
    await this.withPodLock(namespace, name, () => this.createLocked(normalized));
  }

  private async createLocked(pod: V1Pod): Promise<void> {
    const { namespace, name, uid } = podIdentity(pod);
    const existing = this.tracked.get(keyOf(namespace, name));
    if (existing) {
      if (existing.record.uid === uid) return;
      throw new VksError(`pod ${namespace}/${name} already exists (uid ${existing.record.uid})`, {
        exitCode: ExitCode.conflict,
        hint: `remove it first (vks pod down ${name}${namespace === "default" ? "" : ` -n ${namespace}`}) or use --replace`,
      });
    }
    const logs = this.podLogs(namespace, name, uid);
    const record: PodRecord = {
      version: 1,
      namespace,
      name,
      uid,
      createdAt: new Date().toISOString(),
      manifest: pod,
      units: [],
      logs,
      ...(this.options.origin === undefined ? {} : { origin: this.options.origin }),
      ...(this.options.restoreAtBoot ? { restoreAtBoot: true } : {}),
    };
    const tracked = this.track(record);
    tracked.driving = true;
    const rejection = admissionFailure(pod, this.allocatable(), () => this.activePods(tracked));
    if (rejection !== undefined) {
      // The kubelet's admission: the pod fails on the spot, nothing of it is created.
      tracked.failure = rejection;
      record.failure = rejection;
      await this.records.put(record);
      this.emitEvent(pod, { type: "Warning", reason: rejection.reason, message: rejection.message });
      this.emitPod(tracked);
      return;
    }
    await this.warnUnenforcedLimits(pod);
    // With init containers, every container waits as PodInitializing (status.ts) until its turn.
    if ((pod.spec?.initContainers ?? []).length === 0) {
      for (const container of pod.spec?.containers ?? []) tracked.waiting[container.name] = { reason: "ContainerCreating" };
    }
    this.emitPod(tracked);

    let plans: UnitPlan[];
    try {
      const images = await this.resolveImages(pod, tracked);
      const envInput = await this.envPlanInput(pod);
      for (const skipped of skippedEnvKeys(pod, envInput.envObjects)) {
        // The kubelet's event for keys it cannot pass; systemd takes fewer names than Kubernetes does.
        const message = `Keys [${skipped.keys.join(", ")}] from the EnvFrom ${skipped.source} were skipped since they are invalid environment variable names.`;
        this.emitEvent(pod, { type: "Warning", reason: "InvalidEnvironmentVariableNames", message, container: skipped.container });
        this.options.onProgress?.(`warning: ${describePod(pod)} container ${skipped.container}: ${message}`);
      }
      plans = planPod({ pod, images, executables: resolveExecutables(pod, images, envInput.envObjects), logs, hostIP: this.options.hostIP, ...envInput, volumeDirectory: podVolumeDirectory(this.stateDir, uid), restartBackOff: this.backOffPaths(uid) });
      checkSandboxPrivileges(pod, plans);
      this.resolveGroups(pod, plans);
    } catch (err) {
      this.untrack(tracked);
      throw err;
    }
    record.units = plans.map((plan) => ({
      container: plan.containerName,
      unitName: plan.unitName,
      image: containerImage(pod, plan.containerName),
    }));
    tracked.plans = plans;
    this.track(record);
    // The record is written before any unit starts so that a crash in between leaves something gc and
    // reconcile can find, never an anonymous unit.
    await this.records.put(record);
    try {
      await this.prepareVolumes(tracked);
      // Without init containers that is every unit; with them, the first init container only: the rest
      // start as unit changes show each one done (advance).
      await this.startDue(tracked);
    } catch (err) {
      // The pod's log directory goes with it, so what the container said before failing goes into the error.
      const output = logs.mode === "file" ? await lastLogLines(logs.directory, plans) : "";
      await this.removePodUnits(tracked).catch(() => undefined);
      await this.systemd.stopUnit(planPodSlice(pod).unitName).catch(() => undefined);
      await this.records.delete(namespace, name).catch(() => undefined);
      if (logs.mode === "file") await rm(logs.directory, { recursive: true, force: true });
      await rm(podSecretEnvDirectory(this.stateDir, uid), { recursive: true, force: true });
      await removePodVolumes(podVolumeDirectory(this.stateDir, uid)).catch(() => undefined);
      await removePodBackOff(podBackOffDirectory(this.stateDir, uid));
      this.untrack(tracked);
      if (output && err instanceof VksError) {
        throw new VksError(`${err.message}\n${output}`, { hint: err.hint, exitCode: err.exitCode, cause: err });
      }
      throw err;
    }
  }

  /**
   * Starts what the init sequence says is due (init-sequence.ts), and stops sidecars once the app
   * containers finished for good. Reads nothing but the tracked unit states, so it is the same after a
   * vks restart. Call with the pod's lock held.
   */
  private async startDue(tracked: TrackedPod): Promise<void> {
    const pod = tracked.record.manifest;
    this.armInitResync();
    const step = this.initStep(tracked);
    if (step.kind === "start") {
      const plans = (await this.plansOf(tracked)).filter((plan) => step.containers.includes(plan.containerName));
      await this.startUnits(tracked, plans);
      // A container that is done the moment it started (an init container exiting at once) may have
      // reported so before its unit state was read back: look again rather than wait for another signal.
      const next = this.initStep(tracked);
      if (next.kind === "start" && !next.containers.some((container) => step.containers.includes(container))) await this.startDue(tracked);
      return;
    }
    if (step.kind === "failed") return;
    for (const container of sidecarsToStop(pod, tracked.units)) {
      const unit = tracked.units[container];
      if (tracked.stoppedSidecars.has(container) || unit === undefined || unit.activeState === "inactive" || unit.activeState === "failed") continue;
      tracked.stoppedSidecars.add(container);
      this.emitEvent(pod, { type: "Normal", reason: "Killing", message: `Stopping container ${container}: the app containers finished`, container });
      const unitName = tracked.record.units.find((candidate) => candidate.container === container)?.unitName;
      if (unitName !== undefined) await this.retrying(() => this.systemd.stopUnit(unitName));
    }
  }

  /** Runs startDue for a unit change, under the pod's lock; failures become events, not crashes. */
  private advance(tracked: TrackedPod): void {
    const pod = tracked.record.manifest;
    if (!tracked.driving || (pod.spec?.initContainers ?? []).length === 0) return;
    void this.withPodLock(tracked.record.namespace, tracked.record.name, async () => {
      // The pod may have been deleted (or replaced) while this waited for the lock.
      if (this.tracked.get(keyOf(tracked.record.namespace, tracked.record.name)) !== tracked) return;
      await this.startDue(tracked);
    }).catch((err: unknown) => {
      this.emitEvent(pod, { type: "Warning", reason: "Failed", message: errorMessage(err) });
      this.options.onProgress?.(`${describePod(pod)}: ${errorMessage(err)}`);
    });
  }

  /**
   * The kubelet's periodic pod sync, for init sequences: a sequence moves on unit changes (advance), so
   * one change never seen, or one step that failed (a start refused while systemd was overloaded), would
   * leave the pod waiting for good, and `pod up -d` waiting with it. Every INIT_RESYNC_MS the units of
   * each pod still in its sequence are read again and what is due is started. Runs only while such a pod
   * exists; says so when it had to start something, since that means a signal or a step was lost.
   */
  private armInitResync(): void {
    if (this.initResync !== undefined) return;
    this.initResync = setInterval(() => void this.resyncInitSequences(), INIT_RESYNC_MS);
    this.initResync.unref();
  }

  private async resyncInitSequences(): Promise<void> {
    const due = [...this.tracked.values()].filter((tracked) => this.inInitSequence(tracked));
    if (due.length === 0) {
      clearInterval(this.initResync);
      this.initResync = undefined;
      return;
    }
    for (const tracked of due) {
      const pod = tracked.record.manifest;
      await this.withPodLock(tracked.record.namespace, tracked.record.name, async () => {
        if (this.tracked.get(keyOf(tracked.record.namespace, tracked.record.name)) !== tracked || !this.inInitSequence(tracked)) return;
        await this.refreshUnits(tracked);
        const step = this.initStep(tracked);
        const stopping = sidecarsToStop(pod, tracked.units).filter((container) => !tracked.stoppedSidecars.has(container));
        if (step.kind !== "start" && stopping.length === 0) return;
        const what = step.kind === "start" ? `starting ${step.containers.join(", ")}` : `stopping sidecars ${stopping.join(", ")}`;
        this.options.onProgress?.(`${describePod(pod)}: ${what}, which no unit change had done (resync)`);
        await this.startDue(tracked);
        this.emitPod(tracked);
      }).catch((err: unknown) => this.options.onProgress?.(`${describePod(pod)}: ${errorMessage(err)}`));
    }
  }

  /** Where the pod's init sequence stands, with its sidecars' startup probe results from this process' prober. */
  private initStep(tracked: TrackedPod): InitStep {
    const results = this.probes?.statusOf(keyOf(tracked.record.namespace, tracked.record.name)) ?? {};
    const notStarted = new Set(Object.entries(results).flatMap(([container, result]) => (result.started === false ? [container] : [])));
    return nextInitStep(tracked.record.manifest, tracked.units, notStarted);
  }

  /** A pod whose init containers or sidecars this process still has to start or stop. */
  private inInitSequence(tracked: TrackedPod): boolean {
    const pod = tracked.record.manifest;
    if (!tracked.driving || tracked.deleting === true || tracked.failure !== undefined || (pod.spec?.initContainers ?? []).length === 0) return false;
    const step = this.initStep(tracked);
    if (step.kind === "start" || step.kind === "wait") return true;
    if (step.kind === "failed") return false;
    // Initialized: left to do is stopping the sidecars once the app containers finish for good.
    return (pod.spec?.restartPolicy ?? "Always") !== "Always" && sidecars(pod).some((container) => !tracked.stoppedSidecars.has(container.name));
  }

  /** The pod's unit plans: kept from creation, or planned again (images resolved) after a vks restart. */
  private async plansOf(tracked: TrackedPod): Promise<UnitPlan[]> {
    if (tracked.plans !== undefined) return tracked.plans;
    const pod = tracked.record.manifest;
    const images = await this.resolveImages(pod, tracked);
    const envInput = await this.envPlanInput(pod);
    tracked.plans = planPod({
      pod,
      images,
      executables: resolveExecutables(pod, images, envInput.envObjects),
      logs: tracked.record.logs,
      hostIP: this.options.hostIP,
      ...envInput,
      volumeDirectory: podVolumeDirectory(this.stateDir, tracked.record.uid),
      restartBackOff: this.backOffPaths(tracked.record.uid),
    });
    this.resolveGroups(pod, tracked.plans);
    return tracked.plans;
  }

  /**
   * Makes the pod's volume content before any of its units starts. A volume that cannot be set up is the
   * kubelet's FailedMount: the containers stay ContainerCreating, and under serve the work queue tries
   * the pod again (retryAfterMs) until the object exists.
   */
  private async prepareVolumes(tracked: TrackedPod): Promise<void> {
    const pod = tracked.record.manifest;
    if ((pod.spec?.volumes ?? []).length === 0) return;
    // Bind mounts into a unit's namespace need a manager that may mount: the system manager, or a user
    // manager running as root. An unprivileged user manager would fail every such unit (226/NAMESPACE).
    if (!canMountVolumes()) {
      throw new VksError(`${describePod(pod)}: spec.volumes needs vks to run as root`, {
        exitCode: ExitCode.permission,
        hint: "an unprivileged user manager cannot bind-mount into a unit's mount namespace (systemd would need PrivateUsers=, which vks does not set); run vks as root, with or without --user",
      });
    }
    const directory = podVolumeDirectory(this.stateDir, tracked.record.uid);
    try {
      await preparePodVolumes(pod, directory, this.volumeSetupOptions(tracked));
      const binds = (tracked.plans ?? []).flatMap((plan) => [...(plan.properties.bindPaths ?? []), ...(plan.properties.bindReadOnlyPaths ?? [])]);
      await createSubPathDirectories(pod, directory, binds);
    } catch (err) {
      if (!(err instanceof VolumeSetupError)) throw err;
      for (const container of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
        tracked.waiting[container.name] = { reason: "ContainerCreating" };
      }
      this.emitEvent(pod, { type: "Warning", reason: "FailedMount", message: `MountVolume.SetUp failed for volume "${err.volume}" : ${err.reason}` });
      this.emitPod(tracked);
      throw err;
    }
  }

  private volumeSetupOptions(tracked: TrackedPod): VolumeSetupOptions {
    tracked.tokens ??= new Map();
    return {
      objects: this.options.objects ?? NO_OBJECTS,
      canMount: canMountVolumes(),
      tokens: tracked.tokens,
      ...(this.options.allocatable === undefined ? {} : { allocatable: this.options.allocatable }),
      // serve's work queue retries the pod then; pod up reports the error once and ends.
      retryAfterMs: VOLUME_RETRY_MS,
    };
  }

  /**
   * The kubelet's periodic volume sync (serve calls it about once a minute): configMap, secret,
   * downwardAPI and projected content follows changes with the atomic swap; subPath mounts keep what they
   * bound, as with the kubelet.
   */
  async resyncVolumes(): Promise<void> {
    for (const tracked of [...this.tracked.values()]) {
      const pod = tracked.record.manifest;
      if (!podHasVolumeData(pod) || tracked.record.units.length === 0) continue;
      await this.withPodLock(tracked.record.namespace, tracked.record.name, async () => {
        if (this.tracked.get(keyOf(tracked.record.namespace, tracked.record.name)) !== tracked) return;
        await refreshPodVolumes(pod, podVolumeDirectory(this.stateDir, tracked.record.uid), this.volumeSetupOptions(tracked));
      }).catch((err: unknown) => {
        const message = err instanceof VolumeSetupError ? `MountVolume.SetUp failed for volume "${err.volume}" : ${err.reason}` : errorMessage(err);
        this.emitEvent(pod, { type: "Warning", reason: "FailedMount", message });
      });
    }
  }

  private async startUnits(tracked: TrackedPod, plans: UnitPlan[]): Promise<void> {
    const pod = tracked.record.manifest;
    const { logs } = tracked.record;
    // Made at every start, not only at the pod's creation: a vks killed between writing the record and
    // making the directory leaves a record whose units a later vks makes (pod restore, serve adopting),
    // and every start of those would fail 209/STDOUT, the log file not openable (bench/chaos.ts, serve).
    if (logs.mode === "file") await mkdir(logs.directory, { recursive: true });
    // The pod's slice first: a unit naming a slice that does not exist would get an empty one from systemd.
    if (plans.length > 0 && tracked.sliceStarted !== true) {
      await this.retrying(() => this.systemd.startSlice(planPodSlice(pod, this.sliceOptions())));
      tracked.sliceStarted = true;
      // Retried through a daemon-reexec like the slice itself (chaos: a pod up -d failed with 69 here).
      await this.retrying(() => this.updateSharedSlices());
    }
    this.armDeadline(tracked);
    await Promise.all(
      plans.map(async (plan) => {
        this.emitEvent(pod, {
          type: "Normal",
          reason: "Created",
          message: `Created container ${plan.containerName} as ${plan.unitName}`,
          container: plan.containerName,
        });
        // A new unit is a new container: it starts without an old one's back-off (a reboot, a lost unit).
        await forgetBackOff(podBackOffDirectory(this.stateDir, tracked.record.uid), plan.containerName);
        await this.startUnit(tracked.record.restoreAtBoot ? { ...plan, properties: { ...plan.properties, before: [RESTORE_UNIT] } } : plan);
        delete tracked.waiting[plan.containerName];
        this.emitEvent(pod, { type: "Normal", reason: "Started", message: `Started container ${plan.containerName}`, container: plan.containerName });
      }),
    );
    // Read the units back before reporting: a status built before their first signal arrives would say
    // the containers are gone (ContainerStatusUnknown) and, for restartPolicy Never, that the pod Failed.
    await this.refreshUnits(tracked);
    this.emitPod(tracked);
  }

  /**
   * A container that exits (even with an error) before systemd finishes its start job makes the job end
   * "failed"; for a pod that is a container that ran, and its exit is the pod's status, not a start error.
   * Only a process that never ran (systemd's own 200-243 exit statuses: no such binary, user, directory…)
   * is a failure to start.
   */
  /**
   * What planning needs for env sources: the ConfigMaps and Secrets the pod refers to (fetched now, so a
   * pod planned again after a restart sees their current content), allocatable and the secret file place.
   */
  private async envPlanInput(pod: V1Pod): Promise<{ envObjects: EnvObjects; allocatable: Allocatable; secretEnvDirectory: string; memoryCapacityBytes: bigint }> {
    return {
      envObjects: await fetchEnvObjects(pod, this.options.objects ?? NO_OBJECTS),
      allocatable: this.allocatable(),
      // Not strictly env, but planned with it: Burstable containers' OOMScoreAdjust weighs their request.
      memoryCapacityBytes: BigInt(totalmem()),
      secretEnvDirectory: podSecretEnvDirectory(this.stateDir, pod.metadata?.uid ?? ""),
    };
  }

  private async startUnit(plan: UnitPlan): Promise<void> {
    // Written before every start, so a unit started again (reboot, adoption) reads what its plan says.
    if (plan.secretEnvironment !== undefined) await writeSecretEnvFile(plan.secretEnvironment.path, plan.secretEnvironment.assignments);
    let interrupted = false;
    for (;;) {
      try {
        await this.systemd.startUnit(plan);
        return;
      } catch (err) {
        if (isSystemdDisconnected(err)) {
          // The start may or may not have reached systemd: try again once it answers.
          interrupted = true;
          await this.systemd.whenConnected();
          continue;
        }
        // The interrupted attempt did create it; the name carries the pod's UID, so it is this pod's unit.
        if (interrupted && err instanceof VksError && err.exitCode === ExitCode.conflict) return;
        const state = await this.systemd.getUnitState(plan.unitName).catch(() => undefined);
        const ran = state !== undefined && state.execMainStartTimestamp !== 0n && !isSystemdSetupFailure(state);
        if (!ran) throw err;
        return;
      }
    }
  }

  /** A systemd call that must not be lost to an outage (creating, deleting, reading status): retried once reconnected. */
  private retrying<T>(operation: () => Promise<T>): Promise<T> {
    return retryWhenConnected(this.systemd, operation);
  }

  private async resolveImages(pod: V1Pod, tracked: TrackedPod): Promise<Record<string, ResolvedImage>> {
    const images: Record<string, ResolvedImage> = {};
    const containers = [
      ...(pod.spec?.initContainers ?? []).map((container, index) => ({ container, path: `spec.initContainers[${index}]` })),
      ...(pod.spec?.containers ?? []).map((container, index) => ({ container, path: `spec.containers[${index}]` })),
    ];
    for (const { container, path } of containers) {
      const reference = container.image ?? "";
      const policy = (container.imagePullPolicy as PullPolicy | undefined) ?? defaultPullPolicy(reference);
      const fieldPath = `${path}.image`;
      // The kubelet's back-off between failed pulls: a retry within it fails at once with ImagePullBackOff.
      const backOffKey = `${keyOf(podKey(pod).namespace, podKey(pod).name)}/${container.name}/${reference}`;
      const started = performance.now();
      try {
        this.pullBackOff.check(backOffKey, reference);
        this.emitEvent(pod, { type: "Normal", reason: "Pulling", message: `Pulling image "${reference}"`, container: container.name });
        const image = await this.images.resolve(reference, policy, fieldPath);
        this.pullBackOff.recordSuccess(backOffKey);
        images[container.name] = image;
        tracked.imageIDs[container.name] = image.imageID;
        // Parts of a package's own unit vks cannot carry over (e.g. `+` prefixes) are worth a warning.
        for (const warning of image.warnings ?? []) {
          this.emitEvent(pod, { type: "Warning", reason: "ImageWarning", message: `${reference}: ${warning}`, container: container.name });
          this.options.onProgress?.(`warning: ${reference}: ${warning}`);
        }
      } catch (err) {
        const reason = err instanceof ImageError ? err.reason : "ErrImagePull";
        tracked.waiting[container.name] = { reason, message: errorMessage(err) };
        if (reason === "ImagePullBackOff") {
          this.emitEvent(pod, { type: "Normal", reason: "BackOff", message: `Back-off pulling image "${reference}"`, container: container.name });
        } else {
          this.emitEvent(pod, { type: "Warning", reason: "Failed", message: `Failed to pull image "${reference}": ${errorMessage(err)}`, container: container.name });
        }
        this.emitPod(tracked);
        if (reason === "ErrImagePull" && err instanceof ImageError) {
          // The caller's retry belongs at the end of the kubelet's back-off, not on a schedule of its own.
          const retryAfterMs = this.pullBackOff.recordFailure(backOffKey);
          throw new ImageError(reason, err.message, { hint: err.hint, exitCode: err.exitCode, cause: err, retryAfterMs });
        }
        throw err;
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(3);
      this.emitEvent(pod, { type: "Normal", reason: "Pulled", message: `Image "${reference}" ready in ${seconds}s`, container: container.name });
    }
    return images;
  }

  async updatePod(pod: V1Pod): Promise<void> {
    // Kubernetes lets only a running pod's image and a few metadata fields change; vks has no in-place
    // image update, so the recorded manifest is refreshed for status and nothing is restarted.
    const { namespace, name, uid } = podIdentity(pod);
    const tracked = this.tracked.get(keyOf(namespace, name));
    if (!tracked || tracked.record.uid !== uid) return;
    tracked.record.manifest = { ...tracked.record.manifest, metadata: pod.metadata };
    await this.records.put(tracked.record);
  }

  async deletePod(pod: V1Pod): Promise<void> {
    const namespace = pod.metadata?.namespace || "default";
    const name = pod.metadata?.name ?? "";
    await this.withPodLock(namespace, name, async () => {
      const tracked = this.tracked.get(keyOf(namespace, name));
      if (!tracked) return;
      // A delete for an older pod of the same name must not touch the newer one.
      if (pod.metadata?.uid && pod.metadata.uid !== tracked.record.uid) return;
      tracked.deleting = true;
      this.probes?.forget(keyOf(namespace, name));
      for (const unit of tracked.record.units) {
        this.emitEvent(tracked.record.manifest, { type: "Normal", reason: "Killing", message: `Stopping container ${unit.container}`, container: unit.container });
      }
      // A delete may ask for less time than the pod's own grace period (kubectl delete --grace-period):
      // systemd's stop still sends SIGTERM, and vks sends SIGKILL itself when the shorter period is over.
      const ownGrace = Math.max(tracked.record.manifest.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_PERIOD_SECONDS, MINIMUM_GRACE_PERIOD_SECONDS);
      const requested = pod.metadata?.deletionGracePeriodSeconds;
      const grace = requested === undefined || requested === null ? ownGrace : Math.max(requested, MINIMUM_GRACE_PERIOD_SECONDS);
      const killer =
        grace < ownGrace
          ? setTimeout(() => {
              for (const unit of tracked.record.units) void this.systemd.killUnit(unit.unitName, SIGKILL).catch(() => undefined);
            }, grace * 1000)
          : undefined;
      try {
        await this.removePodUnits(tracked, grace);
      } finally {
        clearTimeout(killer);
      }
      clearTimeout(tracked.deadlineTimer);
      await this.retrying(() => this.systemd.stopUnit(planPodSlice(tracked.record.manifest).unitName));
      await this.records.delete(namespace, name);
      if (tracked.record.logs.mode === "file") await rm(tracked.record.logs.directory, { recursive: true, force: true });
      await rm(podSecretEnvDirectory(this.stateDir, tracked.record.uid), { recursive: true, force: true });
      await removePodVolumes(podVolumeDirectory(this.stateDir, tracked.record.uid));
      await removePodBackOff(podBackOffDirectory(this.stateDir, tracked.record.uid));
      await rm(probeResultsFile(this.stateDir, tracked.record.uid), { force: true });
      this.untrack(tracked);
      await this.updateSharedSlices().catch(() => undefined);
    });
  }

  /**
   * Stops the pod's units as the kubelet ends a pod: app containers (and finished init containers)
   * first, then its sidecars one by one, last first, so a sidecar outlives what depends on it.
   */
  private async removePodUnits(tracked: TrackedPod, graceSeconds?: number): Promise<void> {
    const sidecarNames = sidecars(tracked.record.manifest).map((container) => container.name);
    const isSidecar = (container: string) => sidecarNames.includes(container);
    const grace = graceSeconds ?? podGraceSeconds(tracked.record.manifest);
    await Promise.all(tracked.record.units.filter((unit) => !isSidecar(unit.container)).map((unit) => this.killContainer(tracked, unit.container, grace, "stop")));
    for (const container of [...sidecarNames].reverse()) await this.killContainer(tracked, container, grace, "stop");
  }

  /**
   * The kubelet's killContainer: the preStop hook first (bounded by the grace period, which it uses up),
   * then SIGTERM (systemd's stop, or a signal when the unit is to restart the container itself), and
   * SIGKILL once what is left of the grace period (at least 2 s) is over.
   */
  private async killContainer(tracked: TrackedPod, container: string, graceSeconds: number, how: "stop" | "signal"): Promise<void> {
    const unit = tracked.record.units.find((candidate) => candidate.container === container);
    if (unit === undefined) return;
    const pod = tracked.record.manifest;
    const spec = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((candidate) => candidate.name === container);
    const began = performance.now();
    const preStop = spec === undefined ? undefined : hookHandler(spec, "preStop");
    // Read only when it matters: a preStop runs in a live container, and a signal must hit the same run.
    const state = preStop !== undefined || how === "signal" ? await this.systemd.getUnitState(unit.unitName).catch(() => undefined) : undefined;
    const runPreStop = preStop !== undefined && state !== undefined && state.mainPID > 0 && state.activeState !== "deactivating";
    if (runPreStop) {
      const failure = await runHook(preStop, pod, container, {
        podIP: this.options.hostIP,
        exec: (command, timeoutMs) => this.execForProbe(pod, container, command, timeoutMs),
        timeoutMs: graceSeconds * 1000,
      }).catch((err: unknown) => (err instanceof ContainerNotRunningError ? undefined : errorMessage(err)));
      if (failure !== undefined) {
        this.emitEvent(pod, { type: "Warning", reason: "FailedPreStopHook", message: failure, container });
      }
    }
    const remaining = Math.max(graceSeconds - (performance.now() - began) / 1000, MINIMUM_GRACE_PERIOD_SECONDS);
    const instance = state?.execMainStartTimestamp;
    const killLater = (seconds: number) =>
      setTimeout(() => {
        void this.systemd
          .getUnitState(unit.unitName)
          .then((now) => (now !== undefined && now.mainPID > 0 && now.execMainStartTimestamp === instance ? this.systemd.killUnit(unit.unitName, SIGKILL) : undefined))
          .catch(() => undefined);
      }, seconds * 1000);
    if (how === "signal") {
      await this.systemd.killUnit(unit.unitName, SIGTERM);
      killLater(remaining).unref();
      return;
    }
    // The unit's own TimeoutStopSec is the pod's grace period; a preStop that used part of it shortens it.
    const killer = runPreStop && remaining < podGraceSeconds(pod) ? killLater(remaining) : undefined;
    try {
      // Retried through a systemd outage, as every stop of a pod's units is.
      await this.retrying(() => this.systemd.stopUnit(unit.unitName));
    } finally {
      clearTimeout(killer);
    }
  }

  async getPod(namespace: string, name: string): Promise<V1Pod | undefined> {
    const tracked = this.tracked.get(keyOf(namespace, name));
    if (!tracked || !this.manages(tracked)) return undefined;
    await this.refreshUnits(tracked);
    await Promise.all([...this.oomChecks]);
    return this.podWithStatus(tracked);
  }

  /** Where a pod's containers write their output, and each container's unit; undefined for an unknown pod. */
  logSource(namespace: string, name: string): { logs: PodLogs; units: { container: string; unitName: string }[] } | undefined {
    const record = this.tracked.get(keyOf(namespace, name))?.record;
    if (record === undefined) return undefined;
    return { logs: record.logs, units: record.units.map((unit) => ({ container: unit.container, unitName: unit.unitName })) };
  }

  async getPodStatus(namespace: string, name: string): Promise<V1PodStatus | undefined> {
    return (await this.getPod(namespace, name))?.status;
  }

  /**
   * Runs a command in a running container's context (internal/exec). Fails as the kubelet does: with
   * NotFoundError "pod does not exist" or `container not found ("c")` for a pod or container this node
   * does not run, and with ContainerNotRunningError (the kubelet's `container not found ("c")` too, but
   * a VksError, not a NotFoundError) for a container that exists but has no running process.
   */
  async exec(namespace: string, name: string, container: string, request: ExecRequest): Promise<ExecProcess> {
    const tracked = this.tracked.get(keyOf(namespace, name));
    if (!tracked) throw new NotFoundError("pod does not exist", `this node runs no pod ${namespace}/${name}; see vks pod ls`);
    const unit = tracked.record.units.find((candidate) => candidate.container === container);
    if (!unit) {
      const containers = tracked.record.units.map((candidate) => candidate.container).join(", ");
      throw new NotFoundError(`container not found ("${container}")`, `pod ${namespace}/${name} has containers: ${containers}`);
    }
    const context = await this.systemd.getExecContext(unit.unitName);
    if (context === undefined) throw new ContainerNotRunningError(container, "not loaded");
    return startExec(context, request, { scope: this.options.scope, container });
  }

  /** systemd's cgroup accounting of the given units (for the kubelet API's stats). */
  getUnitAccounting(unitNames: string[]): Promise<Map<string, UnitAccounting>> {
    return this.systemd.getUnitAccounting(unitNames);
  }

  /** Every pod with its status and each container's unit and unit state: one unit listing, like listPods. */
  async containerUnits(): Promise<PodContainerUnits[]> {
    const pods = await this.listPods();
    const byKey = new Map(pods.map((pod) => [keyOf(podKey(pod).namespace, podKey(pod).name), pod]));
    return [...this.tracked.values()].flatMap((tracked) => {
      const pod = byKey.get(keyOf(tracked.record.namespace, tracked.record.name));
      if (pod === undefined) return [];
      const containers = tracked.record.units.map((unit) => ({ name: unit.container, unitName: unit.unitName, unit: tracked.units[unit.container] }));
      return [{ pod, logs: tracked.record.logs, containers }];
    });
  }

  async listPods(): Promise<V1Pod[]> {
    const pods = [...this.tracked.values()].filter((tracked) => this.manages(tracked));
    const states = await this.retrying(() => this.systemd.listUnits([VKS_UNIT_GLOB]));
    const stateByUnit = new Map(states.map((state) => [state.name, state]));
    for (const tracked of pods) {
      for (const unit of tracked.record.units) tracked.units[unit.container] = stateByUnit.get(unit.unitName);
      this.unitsObserved(tracked);
    }
    await Promise.all([...this.oomChecks]);
    return pods.map((tracked) => this.podWithStatus(tracked));
  }

  /**
   * Makes this host match `desired` (the pods the API server assigns to it): running units of known pods
   * are adopted as they are, missing ones are created, and vks units and records of any other pod are
   * removed. Finished pods are never started again. One pod that cannot be created does not stop the
   * others; the failures are thrown together at the end.
   */
  async reconcile(desired: V1Pod[]): Promise<void> {
    await this.removePodsExcept(desired);
    const failures: string[] = [];
    for (const pod of desired) {
      try {
        await this.ensurePod(pod);
      } catch (err) {
        failures.push(`${describePod(pod)}: ${errorMessage(err)}`);
      }
    }
    if (failures.length > 0) {
      throw new VksError(`could not start ${failures.length} pod(s):\n  ${failures.join("\n  ")}`, { exitCode: ExitCode.failure });
    }
  }

  /**
   * Stops and forgets every pod not in `desired` (or recorded under another UID), then removes vks units
   * no record owns. Returns the pods and units removed. This is `vks units gc --kubeconfig`.
   */
  async removePodsExcept(desired: V1Pod[], dryRun = false): Promise<{ pods: string[]; units: string[] }> {
    const wanted = new Map(desired.map((pod) => [keyOf(pod.metadata?.namespace || "default", pod.metadata?.name ?? ""), pod]));
    const pods: string[] = [];
    for (const tracked of [...this.tracked.values()]) {
      // Static pods (kubernetes.io/config.source: file) follow their manifest files, not the API server.
      if (!this.manages(tracked) || tracked.record.manifest.metadata?.annotations?.["kubernetes.io/config.source"] === "file") continue;
      const pod = wanted.get(keyOf(tracked.record.namespace, tracked.record.name));
      if (pod && pod.metadata?.uid === tracked.record.uid) continue;
      pods.push(`${tracked.record.namespace}/${tracked.record.name}`);
      if (!dryRun) await this.deletePod(tracked.record.manifest);
    }
    const units = await this.removeOrphanUnits(dryRun);
    return { pods, units };
  }

  /** Creates a desired pod vks does not have, or the units it lost; adopts what runs. */
  private async ensurePod(pod: V1Pod): Promise<void> {
    const phase = pod.status?.phase;
    const finished = phase === "Succeeded" || phase === "Failed";
    const tracked = this.tracked.get(keyOf(pod.metadata?.namespace || "default", pod.metadata?.name ?? ""));
    if (!tracked) {
      if (!finished && !pod.metadata?.deletionTimestamp) await this.createPod(pod);
      return;
    }
    await this.refreshUnits(tracked);
    // A pod the node failed (admission, deadline) keeps its units stopped even before the API says Failed.
    if (finished || tracked.failure !== undefined) return;
    // An adopted pod's deadline still runs from its start, across vks restarts.
    this.armDeadline(tracked);
    if (nextInitStep(tracked.record.manifest, tracked.units).kind !== "initialized") {
      // Mid-initialization (vks restarted, or the host rebooted and took every unit): resume the sequence.
      // Without init containers that means every unit is gone: the containers ran and restart now.
      if ((tracked.record.manifest.spec?.initContainers ?? []).length === 0) {
        const lost = tracked.record.units.filter((unit) => tracked.units[unit.container] === undefined).map((unit) => unit.container);
        if (lost.length > 0) await this.withPodLock(tracked.record.namespace, tracked.record.name, () => this.carryRestarts(tracked, lost, pod));
      }
      await this.resumePod(tracked.record.namespace, tracked.record.name);
      return;
    }
    // Init containers that ran to completion are not run again once app containers exist.
    const runToCompletion = new Set(
      (tracked.record.manifest.spec?.initContainers ?? []).filter((container) => container.restartPolicy !== "Always").map((container) => container.name),
    );
    const missing = tracked.record.units.filter(
      (unit) => tracked.units[unit.container] === undefined && !runToCompletion.has(unit.container) && !tracked.stoppedSidecars.has(unit.container),
    );
    if (missing.length === 0) return;
    // Units vanish when the host reboots or vks died between writing the record and starting them.
    await this.withPodLock(tracked.record.namespace, tracked.record.name, async () => {
      const plans = (await this.plansOf(tracked)).filter((plan) => missing.some((unit) => unit.unitName === plan.unitName));
      // A reboot also took the volumes' tmpfs mounts (Memory emptyDirs, secrets): make them again.
      await this.prepareVolumes(tracked);
      await this.carryRestarts(tracked, plans.map((plan) => plan.containerName), pod);
      await this.startUnits(tracked, plans);
    });
  }

  /**
   * Before making a lost unit again: its container's restartCount continues from the highest count known
   * (the record's, or the API server's under serve), plus one for the restart the reboot caused, as the
   * kubelet counts a container it has to create again.
   */
  private async carryRestarts(tracked: TrackedPod, containers: string[], reported?: V1Pod): Promise<void> {
    const statuses = [...(reported?.status?.containerStatuses ?? []), ...(reported?.status?.initContainerStatuses ?? [])];
    const restarts = { ...tracked.record.restarts };
    for (const container of containers) {
      const known = restarts[container] ?? { before: 0, seen: 0 };
      const fromApi = statuses.find((status) => status.name === container)?.restartCount ?? 0;
      const before = Math.max(known.seen, known.before, fromApi) + 1;
      restarts[container] = { before, seen: before };
    }
    tracked.record.restarts = restarts;
    await this.records.put(tracked.record);
  }

  /**
   * Records every pod's current restart counts (`vks pod checkpoint`, run by the restore unit's ExecStop at
   * shutdown while the pods still run), so they continue after the reboot. Returns the pods updated.
   */
  async checkpointRestarts(): Promise<string[]> {
    await this.listPods();
    const updated: string[] = [];
    for (const tracked of [...this.tracked.values()]) {
      const restarts = { ...tracked.record.restarts };
      let changed = false;
      for (const unit of tracked.record.units) {
        const state = tracked.units[unit.container];
        if (state === undefined) continue;
        const known = restarts[unit.container] ?? { before: 0, seen: 0 };
        const count = known.before + state.nRestarts;
        if (count > known.seen) {
          restarts[unit.container] = { before: known.before, seen: count };
          changed = true;
        }
      }
      if (!changed) continue;
      await this.withPodLock(tracked.record.namespace, tracked.record.name, async () => {
        // A pod deleted meanwhile must not come back as a record.
        if (this.tracked.get(keyOf(tracked.record.namespace, tracked.record.name)) !== tracked) return;
        tracked.record.restarts = restarts;
        await this.records.put(tracked.record);
        updated.push(`${tracked.record.namespace}/${tracked.record.name}`);
      });
    }
    return updated;
  }

  /**
   * `vks pod restore` (at boot): pods `pod up -d` made persistent get the units a reboot took, with their
   * restart counts continued; records of other `pod up` pods (foreground, --ephemeral) whose units are
   * all gone are removed with their data. Only pods with restartPolicy Always are started again: a pod
   * that runs to completion (a Job's) is never run a second time on a guess. Pods of serve are left to
   * serve, which knows from the API server what should run. Returns what was done, per pod.
   */
  async restore(): Promise<{ restored: string[]; removed: string[]; kept: string[]; failed: string[] }> {
    const result = { restored: [] as string[], removed: [] as string[], kept: [] as string[], failed: [] as string[] };
    for (const tracked of [...this.tracked.values()]) {
      const { record } = tracked;
      if (record.origin !== "pod-up") continue;
      const key = `${record.namespace}/${record.name}`;
      await this.refreshUnits(tracked);
      const anyUnit = record.units.some((unit) => tracked.units[unit.container] !== undefined);
      if (!record.restoreAtBoot) {
        if (anyUnit || record.units.length === 0) continue;
        await this.deletePod(record.manifest);
        result.removed.push(key);
        continue;
      }
      if ((record.manifest.spec?.restartPolicy ?? "Always") !== "Always") {
        result.kept.push(key);
        continue;
      }
      try {
        const before = record.units.filter((unit) => tracked.units[unit.container] === undefined).length;
        tracked.driving = true;
        await this.ensurePod(record.manifest);
        if (before > 0) result.restored.push(key);
      } catch (err) {
        result.failed.push(`${key}: ${errorMessage(err)}`);
      }
    }
    return result;
  }

  /**
   * Continues a pod's init sequence from where its units say it is: starts what is due, or nothing.
   * For a pod adopted by a new vks process (serve restarted, or `pod up` finding a pod it created
   * earlier); a pod whose app containers have units is left alone.
   */
  async resumePod(namespace: string, name: string): Promise<void> {
    await this.withPodLock(namespace, name, async () => {
      const tracked = this.tracked.get(keyOf(namespace, name));
      if (tracked === undefined) return;
      tracked.driving = true;
      this.armDeadline(tracked);
      await this.refreshUnits(tracked);
      if (nextInitStep(tracked.record.manifest, tracked.units).kind === "initialized") return;
      // After a reboot the volumes' tmpfs mounts are gone too; plans first, for the subPath directories.
      await this.plansOf(tracked);
      await this.prepareVolumes(tracked);
      await this.startDue(tracked);
      this.emitPod(tracked);
    });
  }

  /**
   * Stops and removes vks units that belong to no recorded pod, failed or not. Units outside vks' naming
   * scheme are never touched. Returns the unit names removed (with dryRun, that would be).
   */
  async removeOrphanUnits(dryRun: boolean): Promise<string[]> {
    const owned = new Set<string>();
    for (const tracked of this.tracked.values()) for (const unit of tracked.record.units) owned.add(unit.unitName);
    const names = await this.retrying(() => this.systemd.listUnitNames([VKS_UNIT_GLOB]));
    const orphans = names.filter((name) => parseUnitName(name) !== undefined && !owned.has(name));
    if (!dryRun) await Promise.all(orphans.map((name) => this.retrying(() => this.systemd.stopUnit(name))));
    // Pod slices (their names hold a `_`; the QoS slices do not) of pods vks no longer knows.
    const slices = new Set([...this.tracked.values()].map((tracked) => planPodSlice(tracked.record.manifest).unitName));
    const qos = new Set([qosSliceName("Burstable"), qosSliceName("BestEffort")]);
    const sliceOrphans = (await this.retrying(() => this.systemd.listSliceNames([VKS_SLICE_GLOB]))).filter((name) => name.includes("_") && !slices.has(name) && !qos.has(name));
    if (!dryRun) await Promise.all(sliceOrphans.map((name) => this.retrying(() => this.systemd.stopUnit(name))));
    return [...orphans, ...sliceOrphans];
  }

  /**
   * Per-pod state (secret env files, volumes, back-off entries, probe results, log files) of pods vks
   * has no record of: left by a vks killed mid-way, collected by `units gc`. Returns the paths.
   */
  async removeOrphanState(dryRun: boolean): Promise<string[]> {
    // Records read afresh: a pod another vks process created since this one opened them is no orphan.
    const records = [...(await this.records.list()), ...[...this.tracked.values()].map((tracked) => tracked.record)];
    const known = {
      uids: new Set(records.map((record) => record.uid)),
      logDirectories: new Set(records.flatMap((record) => (record.logs.mode === "file" ? [record.logs.directory] : []))),
    };
    const orphans = await findOrphanState(this.stateDir, known);
    if (!dryRun) await removeOrphanState(orphans);
    return orphans.map((orphan) => orphan.path);
  }

  /**
   * serve shares the state directory with `pod up`, but the pods `pod up` made are not the API server's:
   * serve neither lists nor removes them (their units still count as owned, never as orphans).
   */
  private manages(tracked: TrackedPod): boolean {
    return !(this.options.origin === "serve" && tracked.record.origin === "pod-up");
  }

  private track(record: PodRecord): TrackedPod {
    const key = keyOf(record.namespace, record.name);
    const tracked = this.tracked.get(key) ?? { record, waiting: {}, lastTerminated: {}, units: {}, backOff: {}, imageIDs: {}, stoppedSidecars: new Set<string>(), driving: false };
    tracked.record = record;
    if (record.failure !== undefined) tracked.failure = record.failure;
    this.tracked.set(key, tracked);
    for (const unit of record.units) this.podByUnit.set(unit.unitName, key);
    return tracked;
  }

  private untrack(tracked: TrackedPod): void {
    const key = keyOf(tracked.record.namespace, tracked.record.name);
    if (this.tracked.get(key) === tracked) this.probes?.forget(key);
    if (this.tracked.get(key) === tracked) this.tracked.delete(key);
    for (const unit of tracked.record.units) this.podByUnit.delete(unit.unitName);
  }

  private async refreshUnits(tracked: TrackedPod): Promise<void> {
    const states = await Promise.all(tracked.record.units.map((unit) => this.retrying(() => this.systemd.getUnitState(unit.unitName))));
    tracked.record.units.forEach((unit, i) => (tracked.units[unit.container] = states[i]));
    this.unitsObserved(tracked);
  }

  private onUnitChanged(state: UnitState): void {
    const key = this.podByUnit.get(state.name);
    const tracked = key === undefined ? undefined : this.tracked.get(key);
    const unit = tracked?.record.units.find((u) => u.unitName === state.name);
    if (!tracked || !unit) return;
    const previous = tracked.units[unit.container];
    tracked.units[unit.container] = state;
    this.unitsObserved(tracked);
    // The unit's restart gate starts waiting out the back-off: the kubelet's BackOff event.
    const backOff = tracked.backOff[unit.container];
    if (inBackOffWait(state) && !(previous !== undefined && inBackOffWait(previous)) && backOff !== undefined && backOff > 0) {
      const pod = tracked.record.manifest;
      this.emitEvent(pod, {
        type: "Warning",
        reason: "BackOff",
        message: `Back-off restarting failed container ${unit.container} in pod ${pod.metadata?.name ?? ""}_${tracked.record.namespace}(${tracked.record.uid})`,
        container: unit.container,
      });
    }
    this.emitPod(tracked);
    this.advance(tracked);
  }

  /**
   * After an outage the manager reports every loaded vks unit again (onUnitChanged, read afresh). A unit it
   * no longer has was collected or lost with its manager while vks was away: its container is reported
   * gone (a terminal ContainerStatusUnknown, as the kubelet does), never left showing its last state.
   */
  private onReconnected(reconnection: SystemdReconnection): void {
    for (const tracked of this.tracked.values()) {
      let vanished = false;
      for (const unit of tracked.record.units) {
        if (tracked.units[unit.container] === undefined || reconnection.vksUnits.has(unit.unitName)) continue;
        tracked.units[unit.container] = undefined;
        vanished = true;
      }
      if (vanished) this.emitPod(tracked);
    }
  }

  /** After any read of the pod's units: what status needs remembered, and the prober told. */
  private unitsObserved(tracked: TrackedPod): void {
    this.rememberExits(tracked);
    if (this.probes === undefined || tracked.deleting === true) return;
    // pod up probes the pods it runs; serve every pod of the node, adopted ones too.
    if (this.options.runProbes === "driving" && !tracked.driving) return;
    const pod = tracked.record.manifest;
    const runs: Record<string, ContainerRun | undefined> = {};
    for (const [container, unit] of Object.entries(tracked.units)) {
      if (unit === undefined) continue;
      const running = containerStateOfUnit(unit, pod, container).running !== undefined && unit.mainPID > 0;
      runs[container] = { running, instance: runInstance(unit), startedAt: Number(unit.execMainStartTimestamp / 1000n) };
    }
    this.probes.sync(keyOf(tracked.record.namespace, tracked.record.name), pod, runs);
  }

  /** What the prober uses of the engine: exec, status and event delivery, and the liveness kill. */
  private probeHost(): ProbeHost {
    return {
      podIP: this.options.hostIP,
      exec: (pod: V1Pod, container: string): ExecRunner => (command, timeoutMs) => this.execForProbe(pod, container, command, timeoutMs),
      changed: (pod: V1Pod) => {
        const tracked = this.tracked.get(keyOf(podKey(pod).namespace, podKey(pod).name));
        if (tracked === undefined) return;
        this.emitPod(tracked);
        // A sidecar's startup probe that passed lets the next init container start.
        this.advance(tracked);
      },
      event: (pod: V1Pod, event: PodEvent) => this.emitEvent(pod, event),
      persist: (pod: V1Pod, status: Record<string, ProbeStatus> | undefined) => {
        // One write at a time per pod, in order: the file always ends with the latest results.
        const path = probeResultsFile(this.stateDir, pod.metadata?.uid ?? "");
        const previous = this.probeWrites.get(path) ?? Promise.resolve();
        const next = previous.then(() => writeProbeResults(path, status)).catch(() => undefined);
        this.probeWrites.set(path, next);
        void next.then(() => {
          if (this.probeWrites.get(path) === next) this.probeWrites.delete(path);
        });
      },
      kill: (pod: V1Pod, container: string, kind: ProbeKind | "postStart", graceSeconds: number | undefined) => this.killForProbe(pod, container, kind, graceSeconds),
    };
  }

  /** An exec probe: the command in the container's context (as kubectl exec), its output, killed at the timeout. */
  private async execForProbe(pod: V1Pod, container: string, command: string[], timeoutMs: number): Promise<{ exitCode: number; output: string; timedOut: boolean }> {
    const { namespace, name } = podKey(pod);
    const process = await this.exec(namespace, name, container, { command, stdin: false, tty: false });
    process.closeStdin();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      process.kill();
    }, timeoutMs);
    const chunks: Uint8Array[] = [];
    const collect = async (stream: AsyncIterable<Uint8Array> | undefined) => {
      if (stream === undefined) return;
      for await (const chunk of stream) chunks.push(chunk);
    };
    try {
      const [, , exited] = await Promise.all([collect(process.stdout), collect(process.stderr), process.exited]);
      return { exitCode: exited.exitCode, output: Buffer.concat(chunks).toString("utf8"), timedOut };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The kubelet's kill after a failed liveness or startup probe: event Killing, SIGTERM to the container,
   * SIGKILL once the grace period (the probe's own, else the pod's) is over; the unit's Restart= then
   * restarts it per the pod's policy (through the restart back-off).
   */
  private async killForProbe(pod: V1Pod, container: string, kind: ProbeKind | "postStart", graceSeconds: number | undefined): Promise<void> {
    const tracked = this.tracked.get(keyOf(podKey(pod).namespace, podKey(pod).name));
    const unit = tracked?.record.units.find((candidate) => candidate.container === container);
    if (tracked === undefined || unit === undefined) return;
    const restart = (pod.spec?.restartPolicy ?? "Always") !== "Never";
    const message = kind === "postStart" ? "FailedPostStartHook" : `Container ${container} failed ${kind} probe${restart ? ", will be restarted" : ""}`;
    this.emitEvent(pod, { type: "Normal", reason: "Killing", message, container });
    const grace = Math.max(graceSeconds ?? podGraceSeconds(pod), MINIMUM_GRACE_PERIOD_SECONDS);
    await this.killContainer(tracked, container, grace, "signal");
  }

  /** systemd zeroes ExecMain* when a unit restarts; keep the last exit for lastState. */
  private rememberExits(tracked: TrackedPod): void {
    for (const [container, state] of Object.entries(tracked.units)) {
      if (state && state.execMainExitTimestamp !== 0n) {
        tracked.lastTerminated[container] = terminatedFromUnit(state);
        this.checkOomKill(tracked, container, state);
      }
      if (state !== undefined && state.execMainExitTimestamp === 0n && tracked.lastTerminated[container] === undefined && state.nRestarts > 0) {
        // Restarted before this process saw it exit (pod up -d, a restarted vks): what the unit recorded.
        const recorded = readRecordedExit(podBackOffDirectory(this.stateDir, tracked.record.uid), container);
        const terminated = recorded === undefined ? undefined : terminatedFromRecordedExit(recorded, state.name);
        if (terminated !== undefined) tracked.lastTerminated[container] = terminated;
      }
      // How long a restarting container waits, for its CrashLoopBackOff message: its gate's entry.
      if (state !== undefined && (state.subState === "auto-restart" || inBackOffWait(state))) {
        const entry = readBackOffEntry(podBackOffDirectory(this.stateDir, tracked.record.uid), container);
        if (entry !== undefined) tracked.backOff[container] = entry.backOffSeconds;
      }
    }
  }

  /** OOM-kill look-ups in flight: a status is built once they are settled. */
  private readonly oomChecks = new Set<Promise<void>>();

  /**
   * On cgroup v1 systemd reports an OOM kill as a plain SIGKILL (Result=signal); the kernel's log says
   * which it was. Only a SIGKILLed container with a memory limit is looked up, once per exit.
   */
  private checkOomKill(tracked: TrackedPod, container: string, state: UnitState): void {
    if (state.result !== "signal" || state.execMainCode !== ExitKind.killed || state.execMainStatus !== SIGKILL) return;
    const key = `${container}@${state.execMainExitTimestamp}`;
    tracked.oomChecked ??= new Set();
    if (tracked.oomChecked.has(key)) return;
    tracked.oomChecked.add(key);
    const pod = tracked.record.manifest;
    const spec = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((candidate) => candidate.name === container);
    if (spec === undefined || (containerCgroup(pod, spec)?.memoryMax === undefined && planPodSlice(pod).cgroup.memoryMax === undefined)) return;
    const finished = dateFromMicros(state.execMainExitTimestamp)?.getTime();
    if (finished === undefined) return;
    const started = dateFromMicros(state.execMainStartTimestamp)?.getTime() ?? finished;
    const check = unitOomKilled(state.name, started, Number(state.execMainExitTimestamp / 1000n))
      .then((killed) => {
        if (!killed) return;
        tracked.oomExits ??= new Map();
        const exits = tracked.oomExits.get(container) ?? new Set<number>();
        exits.add(finished);
        tracked.oomExits.set(container, exits);
        this.emitPod(tracked);
      })
      .finally(() => this.oomChecks.delete(check));
    this.oomChecks.add(check);
  }

  private backOffPaths(uid: string): RestartBackOffPaths {
    return { script: restartBackOffScript(this.stateDir), directory: podBackOffDirectory(this.stateDir, uid) };
  }

  private podWithStatus(tracked: TrackedPod): V1Pod {
    const status = podStatus({
      pod: tracked.record.manifest,
      units: tracked.units,
      waiting: tracked.waiting,
      lastTerminated: tracked.lastTerminated,
      hostIP: this.options.hostIP,
      startTime: new Date(tracked.record.createdAt),
      imageIDs: tracked.imageIDs,
      restartsBefore: Object.fromEntries(Object.entries(tracked.record.restarts ?? {}).map(([container, counts]) => [container, counts.before])),
      backOff: tracked.backOff,
      ...this.probeResults(tracked),
    });
    if (tracked.oomExits !== undefined) markOomKilled(status, tracked.oomExits);
    if (tracked.failure !== undefined) return { ...tracked.record.manifest, status: failedPodStatus(status, tracked.failure, tracked.lastTerminated) };
    return { ...tracked.record.manifest, status };
  }

  /**
   * systemd adds only groups the host knows (216/GROUP otherwise), where Kubernetes passes bare numbers.
   * An unknown `supplementalGroups` entry is refused (the pod asked for that group); an unknown fsGroup is
   * left out of the groups with a warning (its volume files are still owned by it, as before).
   */
  private resolveGroups(pod: V1Pod, plans: UnitPlan[]): void {
    const context = pod.spec?.securityContext;
    const explicit = context?.supplementalGroups ?? [];
    const fsGroup = context?.fsGroup ?? undefined;
    if (explicit.length === 0 && fsGroup === undefined) return;
    const known = knownGroupIds([...explicit, ...(fsGroup === undefined ? [] : [fsGroup])]);
    const missing = explicit.filter((gid) => !known.has(gid));
    if (missing.length > 0) {
      throw new VksError(`${describePod(pod)}: spec.securityContext.supplementalGroups: group ${missing.join(", ")} does not exist on this host`, {
        exitCode: ExitCode.invalidInput,
        hint: `systemd adds only groups the host knows; create it (groupadd -g ${missing[0]} NAME) or leave it out`,
      });
    }
    if (fsGroup === undefined || known.has(fsGroup)) return;
    for (const plan of plans) {
      const sandbox = plan.properties.sandbox;
      if (sandbox?.supplementaryGroups === undefined) continue;
      const kept = sandbox.supplementaryGroups.filter((gid) => gid !== String(fsGroup) || explicit.includes(fsGroup));
      if (kept.length > 0) sandbox.supplementaryGroups = kept;
      else delete sandbox.supplementaryGroups;
      if (Object.keys(sandbox).length === 0) delete plan.properties.sandbox;
    }
    const message = `spec.securityContext.fsGroup: group ${fsGroup} does not exist on this host, so the containers do not get it as a supplementary group (volume files are still owned by it); create it with groupadd -g ${fsGroup} NAME`;
    this.emitEvent(pod, { type: "Warning", reason: "FSGroupUnknown", message });
    this.options.onProgress?.(`warning: ${describePod(pod)}: ${message}`);
  }

  /** The node's allocatable: the host's (or the one given), less what --system/kube-reserved keep. */
  private allocatable(): Allocatable {
    this.options.allocatable ??= subtractReserved(hostAllocatable(this.stateDir), this.options.reserved ?? []);
    return this.options.allocatable;
  }

  /**
   * The slices pods share, weighed as the kubelet's QoS cgroups (qosSliceWeights), and vks.slice bounded
   * by capacity less --system/kube-reserved memory. Best effort: a failure costs fairness, not a pod.
   */
  private async updateSharedSlices(): Promise<void> {
    const pods = [...this.tracked.values()].filter((tracked) => tracked.failure === undefined).map((tracked) => tracked.record.manifest);
    const weights = qosSliceWeights(pods);
    await this.systemd.setCgroupProperties(qosSliceName("Burstable"), { cpuWeight: weights.burstable });
    await this.systemd.setCgroupProperties(qosSliceName("BestEffort"), { cpuWeight: weights.besteffort });
    const reservedMemory = (this.options.reserved ?? []).reduce((sum, list) => {
      const quantity = list.memory === undefined ? undefined : parseQuantity(list.memory);
      return sum + (quantity === undefined ? 0n : wholeValue(quantity));
    }, 0n);
    const node = nodeSliceCgroup(BigInt(totalmem()), reservedMemory);
    if (node !== undefined) await this.systemd.setCgroupProperties(VKS_SLICE, node);
  }

  private sliceOptions(): { podMaxPids?: number } {
    return this.options.podMaxPids === undefined ? {} : { podMaxPids: this.options.podMaxPids };
  }

  /** Pods whose requests count against the node: not finished, not failed by the node. */
  private activePods(except: TrackedPod): V1Pod[] {
    return [...this.tracked.values()].flatMap((tracked) => {
      if (tracked === except || tracked.failure !== undefined) return [];
      const phase = this.podWithStatus(tracked).status?.phase;
      return phase === "Succeeded" || phase === "Failed" ? [] : [tracked.record.manifest];
    });
  }

  /**
   * Limits the manager cannot enforce (a user manager on a cgroup v1 host, controllers not delegated)
   * are said, never silently accepted: a warning for `pod up`, an event for `serve`.
   */
  private async warnUnenforcedLimits(pod: V1Pod): Promise<void> {
    if (!podHasLimits(pod, this.sliceOptions())) return;
    const controllers = await this.systemd.enforceableControllers().catch(() => new Set<never>());
    const message = unenforcedLimits(pod, this.sliceOptions(), controllers, this.options.scope);
    if (message === undefined) return;
    this.emitEvent(pod, { type: "Warning", reason: "LimitsNotEnforced", message });
    this.options.onProgress?.(`warning: ${describePod(pod)}: ${message}`);
  }

  /**
   * activeDeadlineSeconds, counted from when vks accepted the pod (its startTime): then the pod fails
   * with DeadlineExceeded and its containers are stopped, as the kubelet does. Armed only by the process
   * driving the pod (serve, or pod up in the foreground).
   */
  private armDeadline(tracked: TrackedPod): void {
    const seconds = tracked.record.manifest.spec?.activeDeadlineSeconds;
    if (seconds === undefined || seconds === null || tracked.deadlineTimer !== undefined || tracked.failure !== undefined) return;
    const due = new Date(tracked.record.createdAt).getTime() + seconds * 1000;
    tracked.deadlineTimer = setTimeout(() => void this.deadlineExceeded(tracked), Math.max(0, due - Date.now()));
    // A `pod up -d` must not wait for it; serve and a foreground pod up stay alive on their own.
    tracked.deadlineTimer.unref();
  }

  private async deadlineExceeded(tracked: TrackedPod): Promise<void> {
    const { namespace, name } = tracked.record;
    await this.withPodLock(namespace, name, async () => {
      if (this.tracked.get(keyOf(namespace, name)) !== tracked || tracked.failure !== undefined) return;
      const phase = this.podWithStatus(tracked).status?.phase;
      if (phase === "Succeeded" || phase === "Failed") return;
      tracked.failure = { ...DEADLINE_EXCEEDED, rejected: false };
      tracked.record.failure = tracked.failure;
      await this.records.put(tracked.record);
      const pod = tracked.record.manifest;
      this.emitEvent(pod, { type: "Normal", reason: DEADLINE_EXCEEDED.reason, message: DEADLINE_EXCEEDED.message });
      this.options.onProgress?.(`${describePod(pod)}: ${DEADLINE_EXCEEDED.reason}: ${DEADLINE_EXCEEDED.message}`);
      for (const unit of tracked.record.units) {
        this.emitEvent(pod, { type: "Normal", reason: "Killing", message: `Stopping container ${unit.container}`, container: unit.container });
      }
      await this.removePodUnits(tracked);
      this.emitPod(tracked);
    }).catch((err: unknown) => this.options.onProgress?.(`${describePod(tracked.record.manifest)}: ${errorMessage(err)}`));
  }

  /** Probe results for status: this process's prober's, or those of the process that probes the pod. */
  private probeResults(tracked: TrackedPod): { probes?: Record<string, ProbeStatus> } {
    const own = this.probes?.statusOf(keyOf(tracked.record.namespace, tracked.record.name));
    if (own !== undefined) return { probes: own };
    const pod = tracked.record.manifest;
    if (![...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].some((c) => c.livenessProbe != null || c.readinessProbe != null || c.startupProbe != null || c.lifecycle?.postStart != null)) return {};
    const instances = Object.fromEntries(Object.entries(tracked.units).map(([container, unit]) => [container, unit === undefined ? undefined : runInstance(unit)]));
    const shared = readProbeResults(probeResultsFile(this.stateDir, tracked.record.uid), instances);
    return shared === undefined ? {} : { probes: shared };
  }

  private emitPod(tracked: TrackedPod): void {
    if (this.podListeners.length === 0) return;
    const pod = this.podWithStatus(tracked);
    for (const listener of this.podListeners) listener(pod);
  }

  private emitEvent(pod: V1Pod, event: PodEvent): void {
    for (const listener of this.eventListeners) listener(pod, event);
  }

  private podLogs(namespace: string, name: string, uid: string): PodLogs {
    const mode = chooseLogMode(this.options.logMode ?? "auto");
    return mode === "journal" ? { mode } : { mode, directory: podLogDirectory(this.stateDir, namespace, name, uid) };
  }

  /** One operation at a time per pod: serve may see a create and a delete for one pod back to back. */
  private async withPodLock<T>(namespace: string, name: string, operation: () => Promise<T>): Promise<T> {
    const key = keyOf(namespace, name);
    const previous = this.podLocks.get(key) ?? Promise.resolve();
    const current = previous.catch(() => undefined).then(operation);
    this.podLocks.set(key, current);
    try {
      return await current;
    } finally {
      if (this.podLocks.get(key) === current) this.podLocks.delete(key);
    }
  }
}

/** The pod's terminationGracePeriodSeconds as its units have it (TimeoutStopSec): at least 2 s. */
function podGraceSeconds(pod: V1Pod): number {
  return Math.max(pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_PERIOD_SECONDS, MINIMUM_GRACE_PERIOD_SECONDS);
}

function podKey(pod: V1Pod): PodKey {
  return { namespace: pod.metadata?.namespace || "default", name: pod.metadata?.name ?? "" };
}

function podIdentity(pod: V1Pod): PodKey & { uid: string } {
  return { ...podKey(pod), uid: pod.metadata?.uid ?? "" };
}

/** Only root can mount tmpfs and have a user manager bind-mount (the system manager always can). */
function canMountVolumes(): boolean {
  return process.geteuid?.() === 0;
}

function describePod(pod: V1Pod): string {
  return `pod ${pod.metadata?.namespace || "default"}/${pod.metadata?.name ?? "<unnamed>"}`;
}

function containerImage(pod: V1Pod, container: string): string {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === container)?.image ?? "";
}

/** Bare command names are looked up on the container's PATH, as a container runtime does in the image. */
function resolveExecutables(pod: V1Pod, images: Record<string, ResolvedImage>, envObjects?: EnvObjects): Record<string, string> {
  const executables: Record<string, string> = {};
  for (const name of executablesNeeded(pod, images, envObjects)) {
    const found = Bun.which(name, { PATH: DEFAULT_PATH });
    if (found) executables[name] = found;
  }
  return executables;
}

/** The last lines each container wrote, indented, for an error message; "" when none wrote anything. */
async function lastLogLines(directory: string, plans: UnitPlan[], lines = 10): Promise<string> {
  const parts: string[] = [];
  for (const plan of plans) {
    const file = Bun.file(containerLogFile(directory, plan.containerName));
    if (!(await file.exists())) continue;
    const tail = (await file.text()).trimEnd().split("\n").slice(-lines).filter(Boolean);
    if (tail.length > 0) parts.push(`output of ${plan.containerName}:\n${tail.map((line) => `  | ${line}`).join("\n")}`);
  }
  return parts.join("\n");
}

/** One run of a container: its unit's main process, which a restart replaces. */
function runInstance(unit: UnitState): string {
  return `${unit.execMainStartTimestamp}/${unit.mainPID}`;
}

/** A unit restarted by systemd whose ExecStartPre (the restart gate first) runs: waiting out its back-off. */
function inBackOffWait(state: UnitState): boolean {
  return state.activeState === "activating" && state.subState === "start-pre" && state.nRestarts > 0;
}

/** systemd reports its own failures to set up a process (EXIT_CHDIR … EXIT_*) as exit statuses 200-243. */
function isSystemdSetupFailure(state: UnitState): boolean {
  return state.execMainCode === ExitKind.exited && state.execMainStatus >= 200 && state.execMainStatus <= 243;
}

/** The kubelet's OOMKilled for exits the kernel log attributes to the OOM killer (checkOomKill). */
function markOomKilled(status: V1PodStatus, exits: Map<string, Set<number>>): void {
  for (const container of [...(status.containerStatuses ?? []), ...(status.initContainerStatuses ?? [])]) {
    for (const terminated of [container.state?.terminated, container.lastState?.terminated]) {
      const finished = terminated?.finishedAt === undefined ? undefined : new Date(terminated.finishedAt).getTime();
      if (terminated !== undefined && finished !== undefined && exits.get(container.name)?.has(finished) === true) terminated.reason = "OOMKilled";
    }
  }
}

/**
 * Sandboxing that only a privileged manager can apply: an unprivileged user manager would fail each such
 * unit at start (226/NAMESPACE for ProtectSystem=, 218/CAPABILITIES, 216/GROUP), so the pod is refused
 * up front, naming the field, as volumes are.
 */
function checkSandboxPrivileges(pod: V1Pod, plans: UnitPlan[]): void {
  if (canMountVolumes()) return;
  for (const plan of plans) {
    const sandbox = plan.properties.sandbox;
    if (sandbox === undefined) continue;
    const field =
      sandbox.protectSystem !== undefined
        ? "securityContext.readOnlyRootFilesystem"
        : sandbox.capabilityBoundingSet !== undefined || sandbox.ambientCapabilities !== undefined
          ? "securityContext.capabilities"
          : sandbox.appArmorProfile !== undefined
            ? "securityContext.appArmorProfile"
            : sandbox.supplementaryGroups !== undefined
              ? "spec.securityContext.supplementalGroups / fsGroup"
              : undefined;
    if (field === undefined) continue;
    throw new VksError(`${describePod(pod)} container ${plan.containerName}: ${field} needs vks to run as root`, {
      exitCode: ExitCode.permission,
      hint: "an unprivileged user manager cannot set up this sandboxing (mount namespace, capability bounding set, groups, AppArmor); run vks as root, with or without --user",
    });
  }
}
