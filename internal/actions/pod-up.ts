import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { consola } from "consola";
import type { ManagerScope } from "../systemd/types.ts";
import { ValidationError, errorMessage } from "../errors.ts";
import { streamContainerLog, syncJournal, type LogModeSetting } from "../logs/logs.ts";
import { PodEngine } from "../pod/engine.ts";
import type { PodEvent } from "../pod/provider.ts";
import { podWarnings } from "../pod/validate.ts";
import { initialPods, jobStep, podWorkload, templateProblemPath, workloadKey, workloadPod, type Workload } from "../pod/workloads.ts";
import { checkEnvReferences, fetchEnvObjects } from "../pod/env-sources.ts";
import { manifestObjectSource } from "../pod/manifest-objects.ts";
import { readPodManifests } from "./manifest-input.ts";

export interface PodUpOptions {
  file: string;
  scope: ManagerScope;
  stateDir?: string;
  logMode: LogModeSetting;
  detach: boolean;
  /** With detach: the pods are not started again at boot (vks pod restore removes their records instead). */
  ephemeral?: boolean;
  replace: boolean;
  aptSources?: Record<string, string>;
}

/**
 * `vks pod up`: validates every pod of the manifest before creating any, creates them, and either returns
 * (--detach) or stays in the foreground showing state changes and logs until the pods finish or the user
 * presses Ctrl-C, which tears them down. Returns the process exit code.
 */
export async function podUp(options: PodUpOptions): Promise<number> {
  const { pods, workloads, configMaps, secrets, source } = await readPodManifests(options.file);
  // The file's ConfigMap and Secret documents are the pods' env (and volume) sources.
  const objects = manifestObjectSource(configMaps, secrets, source);
  const engine = await PodEngine.open({
    objects,
    scope: options.scope,
    stateDir: options.stateDir,
    logMode: options.logMode,
    aptSources: options.aptSources,
    onProgress: (message) => consola.info(message),
    origin: "pod-up",
    // A foreground pod belongs to this terminal session (Ctrl-C tears it down); -d pods outlive it, and a
    // reboot too unless --ephemeral: their records say they exist, so they run again at boot.
    restoreAtBoot: options.detach && !options.ephemeral,
    // In the foreground pod up runs for as long as its pods do, through any systemd outage.
    keepReconnecting: !options.detach,
    // Probes run in the process that stays with the pods; pod up -d leaves none behind.
    ...(options.detach ? {} : { runProbes: "driving" as const }),
  });
  // From before the first create: a postStart hook can fail (and the container be killed) before the
  // foreground view exists, and its events would be lost (seen under load).
  const events = options.detach ? undefined : new HeldEvents(engine);
  try {
    const normalized = pods.map((pod, index) => engine.normalize(pod, pods.length > 1 ? `${source} (document ${index + 1})` : source));
    for (const pod of normalized) {
      for (const warning of podWarnings(pod)) consola.warn(`${describe(pod)}: ${warning.path}: ${warning.message}`);
      if (options.detach && pod.spec?.activeDeadlineSeconds !== undefined) {
        consola.warn(`${describe(pod)}: spec.activeDeadlineSeconds: not enforced with --detach (nothing stays to end the pod); run pod up in the foreground, or under vks serve`);
      }
    }
    // Every workload's pods are validated (with paths in the workload document) before any pod starts.
    const workloadPods = workloads.map((workload) => ({ workload, pods: initialPods(workload).map((pod) => normalizeWorkloadPod(engine, workload, pod)) }));
    for (const { workload, pods: created } of workloadPods) {
      const label = `${workload.namespace}/${workloadKey(workload)}`;
      for (const warning of workload.warnings) consola.warn(`${label}: ${warning.path}: ${warning.message}`);
      const [sample] = created;
      for (const warning of sample === undefined ? [] : podWarnings(sample)) consola.warn(`${label}: ${templateProblemPath(warning.path)}: ${warning.message}`);
    }
    // A missing ConfigMap/Secret is found before any pod exists, not after the first ones started.
    for (const pod of [...normalized, ...workloadPods.flatMap((entry) => entry.pods)]) checkEnvReferences(pod, await fetchEnvObjects(pod, objects));
    const started: V1Pod[] = [];
    let rejected = false;
    const jobs: Workload[] = [];
    try {
      for (const pod of normalized) {
        if (await prepareSlot(engine, pod, options.replace)) {
          await engine.createPod(pod);
          started.push(pod);
          if (await wasRejected(engine, pod)) rejected = true;
          else consola.success(`pod ${describe(pod)} created`);
        }
      }
      for (const { workload, pods: created } of workloadPods) {
        if (!(await prepareWorkloadSlot(engine, workload, options.replace))) continue;
        for (const pod of created) {
          await engine.createPod(pod);
          started.push(pod);
          consola.success(`pod ${describe(pod)} created (${workloadKey(workload)})`);
        }
        if (workload.job) jobs.push(workload);
      }
    } catch (err) {
      // All or nothing: a manifest whose third pod fails leaves no first two behind.
      for (const pod of started) await engine.deletePod(pod).catch(() => undefined);
      throw err;
    }
    if (options.detach) {
      for (const job of jobs) warnDetachedJob(job);
      for (const pod of started) {
        const probed = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].filter((c) => c.livenessProbe != null || c.readinessProbe != null || c.startupProbe != null || c.lifecycle?.postStart != null);
        if (probed.length > 0) {
          consola.warn(`${describe(pod)}: with --detach no vks process stays to run the probes and postStart hooks of ${probed.map((c) => c.name).join(", ")}: running containers count as ready and started, and no liveness probe restarts them; run pod up in the foreground, or serve (preStop hooks run with pod down)`);
        }
      }
      const code = await waitForInitialization(engine, started);
      return rejected ? 1 : code;
    }
    if (started.length === 0) return 0;
    return await runInForeground(engine, started, jobs, events ?? new HeldEvents(engine));
  } finally {
    await engine.close();
  }
}

/** A pod the node's admission refused (OutOfcpu, OutOfmemory) is Failed at once; say so as an error. */
async function wasRejected(engine: PodEngine, pod: V1Pod): Promise<boolean> {
  const status = (await engine.getPod(pod.metadata?.namespace ?? "default", pod.metadata?.name ?? ""))?.status;
  if (status?.phase !== "Failed" || status.reason === undefined) return false;
  consola.error(`pod ${describe(pod)} ${status.reason}: ${status.message ?? ""}`);
  return true;
}

/** Validates a workload's pod as the engine will, reporting problems where they are in the workload document. */
function normalizeWorkloadPod(engine: PodEngine, workload: Workload, pod: V1Pod): V1Pod {
  try {
    return engine.normalize(pod, workload.source);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw new ValidationError(err.source, err.problems.map((problem) => ({ ...problem, path: templateProblemPath(problem.path) })));
  }
}

/**
 * True when the workload's pods should be created. Its pods are found by the group marker: while any of
 * them runs the workload is left alone unless --replace; finished ones (a Job that ran) are replaced.
 */
async function prepareWorkloadSlot(engine: PodEngine, workload: Workload, replace: boolean): Promise<boolean> {
  const key = workloadKey(workload);
  const existing = (await engine.listPods()).filter((pod) => (pod.metadata?.namespace ?? "default") === workload.namespace && podWorkload(pod) === key);
  if (existing.length === 0) return true;
  const running = existing.filter((pod) => pod.status?.phase !== "Succeeded" && pod.status?.phase !== "Failed");
  if (!replace && running.length > 0) {
    consola.info(`${workload.namespace}/${key} already has pods (${existing.map((pod) => pod.metadata?.name).join(", ")}); nothing to do (use --replace to recreate them)`);
    return false;
  }
  consola.info(`replacing the pods of ${workload.namespace}/${key}: ${existing.map((pod) => pod.metadata?.name).join(", ")}`);
  for (const pod of existing) await engine.deletePod(pod);
  return true;
}

/** With --detach nothing stays to act as the Job controller; say what that leaves out. */
function warnDetachedJob(job: Workload): void {
  const settings = job.job;
  if (settings === undefined) return;
  const missing: string[] = [];
  if (settings.restartPolicy === "Never" && settings.backoffLimit > 0) missing.push("a failed pod is not replaced (backoffLimit)");
  if (settings.restartPolicy === "OnFailure") missing.push("restarts are not limited by backoffLimit");
  if (settings.completions > settings.parallelism) missing.push(`only ${settings.parallelism} of ${settings.completions} completions run`);
  if (missing.length > 0) {
    consola.warn(`${job.namespace}/${workloadKey(job)}: with --detach no Job controller stays: ${missing.join("; ")}; run pod up in the foreground for those`);
  }
}

/**
 * With --detach, nothing stays to start a pod's next init container when one finishes: the engine of this
 * process drives the sequence, so `pod up -d` returns only once every pod with init containers is
 * initialized (its app containers started) or failed. Returns the exit code: 1 when one failed.
 */
async function waitForInitialization(engine: PodEngine, pods: V1Pod[]): Promise<number> {
  const pending = new Set(pods.filter((pod) => (pod.spec?.initContainers ?? []).length > 0).map(describe));
  if (pending.size === 0) return 0;
  let failed = false;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const shown = new Map<string, string>();
  const onChange = (pod: V1Pod) => {
    const key = describe(pod);
    if (!pending.has(key)) return;
    for (const status of pod.status?.initContainerStatuses ?? []) {
      const line = describeContainerState(status);
      if (shown.get(`${key}/${status.name}`) !== line) consola.info(`${key} init container ${status.name}: ${line}`);
      shown.set(`${key}/${status.name}`, line);
    }
    // Initialized turns True when the last init container exits, a moment before this process has started
    // the app containers' units; leaving then would leave them unstarted.
    const notYet = new Set(["PodInitializing", "ContainerCreating"]);
    const appStarted = !(pod.status?.containerStatuses ?? []).some((status) => notYet.has(status.state?.waiting?.reason ?? ""));
    const initialized = appStarted && pod.status?.conditions?.some((c) => c.type === "Initialized" && c.status === "True") === true;
    if (pod.status?.phase === "Failed") {
      failed = true;
      consola.error(`pod ${key} Failed during initialization`);
    } else if (!initialized) {
      return;
    }
    pending.delete(key);
    if (pending.size === 0) resolveDone();
  };
  engine.notifyPods(onChange);
  for (const pod of pods) {
    const current = await engine.getPod(pod.metadata?.namespace ?? "default", pod.metadata?.name ?? "");
    if (current) onChange(current);
  }
  if (pending.size > 0) consola.info(`waiting for init containers of ${[...pending].join(", ")} (Ctrl-C leaves the sequence where it is; vks pod up resumes it)`);
  const interrupted = new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await Promise.race([done, interrupted]);
  return failed ? 1 : 0;
}

/** True when the pod should be created; a running pod is left alone unless --replace. */
async function prepareSlot(engine: PodEngine, pod: V1Pod, replace: boolean): Promise<boolean> {
  const namespace = pod.metadata?.namespace ?? "default";
  const name = pod.metadata?.name ?? "";
  const existing = await engine.getPod(namespace, name);
  if (!existing) return true;
  const finished = existing.status?.phase === "Succeeded" || existing.status?.phase === "Failed";
  if (!replace && !finished) {
    consola.info(`pod ${namespace}/${name} is already running; nothing to do (use --replace to recreate it)`);
    // A pod whose init sequence lost its driver (an earlier vks stopped mid-way) continues from here.
    await engine.resumePod(namespace, name);
    return false;
  }
  consola.info(`replacing pod ${namespace}/${name}${finished ? ` (it had ${existing.status?.phase === "Succeeded" ? "succeeded" : "failed"})` : ""}`);
  await engine.deletePod(existing);
  return true;
}

/** A Job run in the foreground: vks acts as its controller (jobStep) for as long as pod up runs. */
interface JobRun {
  workload: Workload;
  /** Every pod created for the Job, by name, with its latest known state. */
  pods: Map<string, V1Pod>;
  /** Complete or Failed once decided; the Job's pods are then no longer watched for it. */
  outcome?: "Complete" | "Failed";
  /** Job steps run one after another, as pod changes arrive. */
  queue: Promise<void>;
}

/** The engine's events, held until a listener takes them (then replayed in order, and passed on live). */
class HeldEvents {
  private static readonly LIMIT = 1000;
  private readonly held: [V1Pod, PodEvent][] = [];
  private listener: ((pod: V1Pod, event: PodEvent) => void) | undefined;

  constructor(engine: PodEngine) {
    engine.notifyEvents((pod, event) => {
      if (this.listener !== undefined) this.listener(pod, event);
      else if (this.held.length < HeldEvents.LIMIT) this.held.push([pod, event]);
    });
  }

  deliverTo(listener: (pod: V1Pod, event: PodEvent) => void): void {
    this.listener = listener;
    for (const [pod, event] of this.held.splice(0)) listener(pod, event);
  }
}

async function runInForeground(engine: PodEngine, initial: V1Pod[], jobWorkloads: Workload[], events: HeldEvents): Promise<number> {
  const logsAbort = new AbortController();
  const lastShown = new Map<string, string>();
  const pods = [...initial];
  const jobByPod = new Map<string, JobRun>();
  const jobs: JobRun[] = jobWorkloads.map((workload) => ({ workload, pods: new Map(), queue: Promise.resolve() }));
  for (const job of jobs) {
    for (const pod of pods) {
      if (podWorkload(pod) === workloadKey(job.workload) && pod.metadata?.namespace === job.workload.namespace) {
        job.pods.set(describe(pod), pod);
        jobByPod.set(describe(pod), job);
      }
    }
  }
  // Pods outside a Job finish on their own; their results are the exit code with the Jobs' outcomes.
  const finished = new Map<string, boolean>();
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  const checkDone = () => {
    const standalone = pods.filter((pod) => !jobByPod.has(describe(pod)));
    if (standalone.some((pod) => !finished.has(describe(pod))) || jobs.some((job) => job.outcome === undefined)) return;
    const ok = standalone.every((pod) => finished.get(describe(pod))) && jobs.every((job) => job.outcome === "Complete");
    resolveDone(ok ? 0 : 1);
  };

  const onChange = (pod: V1Pod) => {
    const key = describe(pod);
    if (!pods.some((p) => describe(p) === key)) return;
    for (const status of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
      const line = describeContainerState(status);
      const id = `${key}/${status.name}`;
      if (lastShown.get(id) !== line) {
        lastShown.set(id, line);
        consola.info(`${key} ${status.name}: ${line}`);
      }
    }
    const phase = pod.status?.phase;
    if (phase === "Succeeded" || phase === "Failed") {
      if (!finished.has(key)) consola[phase === "Succeeded" ? "success" : "error"](`pod ${key} ${phase}`);
      finished.set(key, phase === "Succeeded");
    }
    const job = jobByPod.get(key);
    if (job !== undefined && job.outcome === undefined) {
      job.pods.set(key, pod);
      queueStep(job);
    }
    checkDone();
  };

  /** Job steps run one at a time per Job; one that cannot create its pod fails the Job. */
  const queueStep = (job: JobRun) => {
    job.queue = job.queue
      .then(() => stepJob(job))
      .catch((err) => {
        consola.error(`${job.workload.namespace}/${workloadKey(job.workload)}: ${errorMessage(err)}`);
        job.outcome = "Failed";
        checkDone();
      });
  };

  /** One step of the Job controller: create the pods it still needs, or settle its outcome. */
  const stepJob = async (job: JobRun): Promise<void> => {
    const settings = job.workload.job;
    if (settings === undefined || job.outcome !== undefined) return;
    const states = [...job.pods.values()];
    const phaseOf = (pod: V1Pod) => pod.status?.phase;
    const active = states.filter((pod) => phaseOf(pod) !== "Succeeded" && phaseOf(pod) !== "Failed");
    const verdict = jobStep(settings, {
      active: active.length,
      succeeded: states.filter((pod) => phaseOf(pod) === "Succeeded").length,
      failed: states.filter((pod) => phaseOf(pod) === "Failed").length,
      restarts: active.reduce((sum, pod) => sum + (pod.status?.containerStatuses ?? []).reduce((n, status) => n + (status.restartCount ?? 0), 0), 0),
    });
    const label = `${job.workload.namespace}/${workloadKey(job.workload)}`;
    if (verdict.state === "Running") {
      for (let i = 0; i < verdict.create; i++) {
        const pod = engine.normalize(workloadPod(job.workload, 0), job.workload.source);
        await engine.createPod(pod);
        pods.push(pod);
        job.pods.set(describe(pod), pod);
        jobByPod.set(describe(pod), job);
        consola.info(`${label}: created pod ${pod.metadata?.name}`);
        await follow(pod);
        const current = await engine.getPod(pod.metadata?.namespace ?? "default", pod.metadata?.name ?? "");
        if (current) onChange(current);
      }
      return;
    }
    job.outcome = verdict.state;
    if (verdict.state === "Complete") {
      consola.success(`${label} complete`);
    } else {
      consola.error(`${label} failed: ${verdict.reason}: ${verdict.message}`);
      // As the Job controller does, a failed Job's pods that still run (OnFailure restarts) are removed.
      for (const pod of active) {
        await engine.deletePod(pod);
        consola.info(`${label}: removed pod ${pod.metadata?.name}`);
      }
    }
    checkDone();
  };

  const followers: Promise<void>[] = [];
  let lastLinePrintedAt = 0;
  /** Journal followers and how many lines each printed, to check them against the journal at the end. */
  const journalFollowers: { request: Parameters<typeof streamContainerLog>[0]; printed: number }[] = [];
  const prefixed = pods.length > 1 || jobs.length > 0 || pods.some((pod) => (pod.spec?.containers.length ?? 0) + (pod.spec?.initContainers?.length ?? 0) > 1);
  const follow = async (pod: V1Pod): Promise<void> => {
    const podRecord = await engine.records.get(pod.metadata?.namespace ?? "default", pod.metadata?.name ?? "");
    if (!podRecord) return;
    for (const unit of podRecord.units) {
      const prefix = prefixed ? `[${pods.length > 1 || jobs.length > 0 ? `${pod.metadata?.name}/` : ""}${unit.container}] ` : "";
      const request = { logs: podRecord.logs, unitName: unit.unitName, container: unit.container, scope: engine.scope, follow: true };
      const tracked = { request, printed: 0 };
      if (podRecord.logs.mode === "journal") journalFollowers.push(tracked);
      followers.push(
        streamContainerLog(
          request,
          (line) => {
            lastLinePrintedAt = Date.now();
            tracked.printed++;
            process.stdout.write(`${prefix}${line}\n`);
          },
          logsAbort.signal,
        ).catch((err) => consola.warn(`logs of ${unit.container}: ${errorMessage(err)}`)),
      );
    }
  };

  engine.notifyPods(onChange);
  // What probes and hooks do is only visible through these events: show them as the kubelet records them.
  events.deliverTo((pod, event) => {
    if (!pods.some((p) => describe(p) === describe(pod)) || !SHOWN_EVENTS.has(event.reason)) return;
    const line = `${describe(pod)}${event.container === undefined ? "" : ` ${event.container}`}: ${event.reason}: ${event.message}`;
    if (event.type === "Warning") consola.warn(line);
    else consola.info(line);
  });
  for (const pod of [...pods]) {
    const current = await engine.getPod(pod.metadata?.namespace ?? "default", pod.metadata?.name ?? "");
    if (current) onChange(current);
  }
  for (const pod of [...pods]) await follow(pod);
  // A Job whose pods have not reported yet (or that needs none: completions 0) still gets its first step.
  for (const job of jobs) queueStep(job);

  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    consola.info("stopping (Ctrl-C again does not skip the grace period)…");
    resolveDone(0);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const code = await done;
  // Let the log readers print what the containers wrote last before they are stopped: journald may still
  // hold it (sync), and the readers print it a moment later, later still under load, so they are stopped
  // once quiet for a while (bounded: a container that keeps writing never goes quiet, and after Ctrl-C
  // the containers still run).
  const drainStart = Date.now();
  const QUIET_MS = 300;
  const drainLimitMs = interrupted ? QUIET_MS : 5000;
  if (journalFollowers.length > 0 && !interrupted) {
    // Once journald has written everything (sync), each follower must print as many lines as the journal
    // holds for its unit: a count, not a guess at how long a reader takes under load.
    await syncJournal();
    const held = await Promise.all(
      journalFollowers.map(async ({ request }) => {
        let lines = 0;
        await streamContainerLog({ ...request, follow: false }, () => {
          lines++;
        }).catch(() => undefined);
        return lines;
      }),
    );
    while (journalFollowers.some((follower, index) => follower.printed < (held[index] ?? 0)) && Date.now() - drainStart < drainLimitMs) await Bun.sleep(50);
  }
  while (Date.now() - Math.max(lastLinePrintedAt, drainStart) < QUIET_MS && Date.now() - drainStart < drainLimitMs) await Bun.sleep(50);
  logsAbort.abort();
  await Promise.allSettled(followers);
  if (interrupted) {
    // A Job step under way may still be creating a pod; let it finish so that pod is removed too.
    await Promise.allSettled(jobs.map((job) => job.queue));
    for (const pod of pods) {
      await engine.deletePod(pod);
      consola.success(`pod ${describe(pod)} removed`);
    }
  } else {
    const remaining = (await engine.listPods()).filter((pod) => pods.some((p) => describe(p) === describe(pod)));
    consola.info(`the pod's record and units stay for inspection: vks pod ls; vks pod down ${remaining.map((p) => p.metadata?.name).join(" ")}`);
  }
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  return code;
}

/** Events pod up prints: probe failures, the kills and back-offs they cause, failed hooks. */
const SHOWN_EVENTS = new Set(["Unhealthy", "ProbeWarning", "Killing", "BackOff", "FailedPostStartHook", "FailedPreStopHook"]);

function describe(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? "default"}/${pod.metadata?.name ?? ""}`;
}

export function describeContainerState(status: V1ContainerStatus): string {
  const state = status.state;
  if (state?.running) {
    // Probe results as they change: not started (startup probe), not ready (readiness probe).
    const probe = status.started === false ? ", not started" : status.ready ? "" : ", not ready";
    return `Running${probe}${status.restartCount ? ` (restarts: ${status.restartCount})` : ""}`;
  }
  if (state?.terminated) {
    const t = state.terminated;
    return `Terminated: ${t.reason ?? ""} (exit code ${t.exitCode}${t.signal ? `, signal ${t.signal}` : ""})`;
  }
  if (state?.waiting) return `Waiting: ${state.waiting.reason ?? ""}${state.waiting.message ? ` — ${state.waiting.message}` : ""}`;
  return "Unknown";
}
