/**
 * The kubelet's prober for the pods this process runs: one worker per container and probe kind, run by
 * one ProbeScheduler. Results follow the kubelet's worker (pkg/kubelet/prober/worker.go):
 * - a new container instance (its unit's main process started again) starts from the initial results:
 *   readiness failure (not ready), liveness success, startup unknown (not started);
 * - nothing is probed before initialDelaySeconds have passed since the container started, nor while it
 *   does not run; liveness and readiness wait until the startup probe succeeded, which then stops;
 * - a result only changes after successThreshold / failureThreshold consecutive runs agree;
 * - a liveness or startup failure kills the container (the host's killContainer), and its workers hold
 *   until the next instance.
 * Every failed run is an Unhealthy event with the probe's output, as the kubelet records it.
 */
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import type { PodEvent } from "../provider.ts";
import { runHandler, type ExecRunner, type ProbeOutcome, type ProbeResult } from "./handlers.ts";
import { ProbeScheduler } from "./scheduler.ts";
import { PROBE_NAMES, probeSpec, type ProbeHandler, type ProbeKind, type ProbeSpec } from "./spec.ts";
import { hookHandler, runHook } from "./hooks.ts";

/** What the prober needs from the engine. */
export interface ProbeHost {
  podIP: string;
  /** Runs a command in the container's context (the same as kubectl exec). */
  exec(pod: V1Pod, container: string): ExecRunner;
  /** A probe result changed the container's ready/started flags: the pod's status changed. */
  changed(pod: V1Pod): void;
  /** Keeps the pod's results where other vks processes (pod ls) find them; undefined: the pod is gone. */
  persist(pod: V1Pod, status: Record<string, ProbeStatus> | undefined): void;
  event(pod: V1Pod, event: PodEvent): void;
  /** A liveness/startup failure: stop the container (preStop, SIGTERM, grace) so its policy restarts it. */
  kill(pod: V1Pod, container: string, kind: ProbeKind | "postStart", graceSeconds: number | undefined): Promise<void>;
}

/** The container as the prober sees its unit: running since when (an instance), or not running. */
export interface ContainerRun {
  running: boolean;
  /** Identifies this run of the container (its main process' start); changes on every restart. */
  instance: string;
  /** Milliseconds since the epoch. */
  startedAt: number;
}

export interface ProbeStatus {
  /** The container run these results are for (ContainerRun.instance). */
  instance?: string;
  /** True once the container passed its readiness probe (and started); undefined without a readiness probe. */
  ready?: boolean;
  /** False until the startup probe passed; undefined without a startup probe. */
  started?: boolean;
  /** True while the postStart hook runs: the container does not count as running yet. */
  postStartPending?: boolean;
}

interface Worker {
  kind: ProbeKind;
  spec: ProbeSpec;
  key: string;
  /** The kubelet's results manager value for the current instance. */
  result: ProbeOutcome | undefined;
  lastOutcome: ProbeOutcome | undefined;
  run: number;
  onHold: boolean;
}

interface ContainerProbes {
  name: string;
  postStart: ProbeHandler | undefined;
  /** The instance whose postStart hook runs, until it succeeded. */
  postStartPending: string | undefined;
  run: ContainerRun | undefined;
  workers: Partial<Record<ProbeKind, Worker>>;
}

interface PodProbes {
  pod: V1Pod;
  containers: Map<string, ContainerProbes>;
}

const KINDS: ProbeKind[] = ["startup", "liveness", "readiness"];

export interface ProbeManagerOptions {
  concurrency?: number;
}

/** Probes due within this many milliseconds start together (see ProbeScheduler): at most this early, never late. */
const PROBE_BATCH_MS = 50;

export class ProbeManager {
  readonly scheduler: ProbeScheduler;
  private readonly pods = new Map<string, PodProbes>();
  private readonly startedAt = performance.now();

  constructor(
    private readonly host: ProbeHost,
    options: ProbeManagerOptions = {},
  ) {
    this.scheduler = new ProbeScheduler({ concurrency: options.concurrency ?? 16, batchMs: PROBE_BATCH_MS });
  }

  close(): void {
    this.scheduler.close();
    this.pods.clear();
  }

  /** The pod's probed containers' flags, or undefined when this manager does not probe the pod. */
  statusOf(podKey: string): Record<string, ProbeStatus> | undefined {
    const probes = this.pods.get(podKey);
    if (probes === undefined) return undefined;
    const status: Record<string, ProbeStatus> = {};
    for (const container of probes.containers.values()) {
      const startup = container.workers.startup;
      const readiness = container.workers.readiness;
      const started = startup === undefined ? undefined : startup.result === "success" || startup.result === "warning";
      status[container.name] = {
        ...(container.run === undefined ? {} : { instance: container.run.instance }),
        ...(container.postStartPending !== undefined && container.postStartPending === container.run?.instance ? { postStartPending: true } : {}),
        ...(started === undefined ? {} : { started }),
        ...(readiness === undefined ? {} : { ready: started !== false && (readiness.result === "success" || readiness.result === "warning") }),
      };
    }
    return status;
  }

  /**
   * Brings the pod's workers in line with its containers' runs: called whenever its units change. Pods
   * without probes cost nothing.
   */
  sync(podKey: string, pod: V1Pod, runs: Record<string, ContainerRun | undefined>): void {
    const containers = probedContainers(pod);
    if (containers.length === 0) return;
    let probes = this.pods.get(podKey);
    if (probes === undefined) {
      probes = { pod, containers: new Map() };
      this.pods.set(podKey, probes);
    }
    probes.pod = pod;
    for (const container of containers) {
      let entry = probes.containers.get(container.name);
      if (entry === undefined) {
        entry = { name: container.name, postStart: hookHandler(container, "postStart"), postStartPending: undefined, run: undefined, workers: {} };
        probes.containers.set(container.name, entry);
        for (const kind of KINDS) {
          const spec = probeSpec(container, kind);
          if (spec !== undefined) entry.workers[kind] = { kind, spec, key: `${podKey}/${container.name}/${kind}`, result: undefined, lastOutcome: undefined, run: 0, onHold: false };
        }
      }
      const run = runs[container.name];
      const previous = entry.run;
      entry.run = run;
      if (run?.running === true && !(previous?.running === true && previous.instance === run.instance)) this.startInstance(podKey, entry, run);
      else if (run?.running !== true && previous?.running === true) {
        entry.postStartPending = undefined;
        this.stopInstance(entry);
      }
    }
  }

  /** Stops probing the pod (deleted, or no longer this process's). */
  forget(podKey: string): void {
    const probes = this.pods.get(podKey);
    if (probes === undefined) return;
    for (const container of probes.containers.values()) this.stopInstance(container);
    this.pods.delete(podKey);
    this.host.persist(probes.pod, undefined);
  }

  private startInstance(podKey: string, container: ContainerProbes, run: ContainerRun): void {
    for (const worker of Object.values(container.workers)) if (worker !== undefined) this.scheduler.remove(worker.key);
    if (container.postStart !== undefined) {
      // The kubelet runs postStart right after the start, and the container counts as running (and is
      // probed) only once it succeeded; a failure kills the container.
      container.postStartPending = run.instance;
      this.notify(podKey);
      void this.runPostStart(podKey, container, container.postStart, run);
      return;
    }
    this.startWorkers(podKey, container, run);
  }

  private async runPostStart(podKey: string, container: ContainerProbes, handler: ProbeHandler, run: ContainerRun): Promise<void> {
    const probes = this.pods.get(podKey);
    if (probes === undefined) return;
    const pod = probes.pod;
    const failure = await runHook(handler, pod, container.name, { podIP: this.host.podIP, exec: this.host.exec(pod, container.name) }).catch((err: unknown) =>
      err instanceof Error ? err.message : String(err),
    );
    if (this.pods.get(podKey) !== probes || container.run?.instance !== run.instance || container.postStartPending !== run.instance) return;
    container.postStartPending = undefined;
    if (failure !== undefined) {
      this.host.event(pod, { type: "Warning", reason: "FailedPostStartHook", message: failure, container: container.name });
      await this.host.kill(pod, container.name, "postStart", undefined);
      return;
    }
    this.notify(podKey);
    this.startWorkers(podKey, container, run);
  }

  private startWorkers(podKey: string, container: ContainerProbes, run: ContainerRun): void {
    for (const worker of Object.values(container.workers)) {
      if (worker === undefined) continue;
      worker.result = undefined;
      worker.lastOutcome = undefined;
      worker.run = 0;
      worker.onHold = false;
      const spec = worker.spec;
      const periodMs = spec.periodSeconds * 1000;
      // First run once the initial delay has passed since the container started; within one period of
      // this process starting (a restarted vks adopting many pods), spread by a random part of a period,
      // as the kubelet does after its own restart.
      const sinceStart = Date.now() - run.startedAt;
      let delay = Math.max(0, spec.initialDelaySeconds * 1000 - sinceStart);
      if (performance.now() - this.startedAt < periodMs && sinceStart > periodMs) delay += Math.random() * periodMs;
      this.scheduler.add(worker.key, { periodMs, run: () => this.probe(podKey, container, worker, run.instance) }, delay);
    }
    // Always: the results file must name the new run at once, or other processes (pod ls) would count
    // it started and ready until its first result, which for a startup probe may take many periods.
    this.notify(podKey);
  }

  private stopInstance(container: ContainerProbes): void {
    for (const worker of Object.values(container.workers)) {
      if (worker === undefined) continue;
      this.scheduler.remove(worker.key);
      worker.result = undefined;
      worker.run = 0;
      worker.lastOutcome = undefined;
    }
  }

  private notify(podKey: string): void {
    const probes = this.pods.get(podKey);
    if (probes === undefined) return;
    this.host.persist(probes.pod, this.statusOf(podKey));
    this.host.changed(probes.pod);
  }

  private async probe(podKey: string, container: ContainerProbes, worker: Worker, instance: string): Promise<void> {
    const probes = this.pods.get(podKey);
    if (probes === undefined || container.run?.instance !== instance || container.run.running !== true || worker.onHold) return;
    const startup = container.workers.startup;
    if (worker.kind === "startup" && worker.result === "success") {
      // Started: the kubelet's startup worker stops probing this instance.
      this.scheduler.remove(worker.key);
      return;
    }
    if (worker.kind !== "startup" && startup !== undefined && startup.result !== "success") return;
    const pod = probes.pod;
    let result: ProbeResult;
    try {
      result = await runHandler(worker.spec.handler, {
        podIP: this.host.podIP,
        timeoutMs: worker.spec.timeoutSeconds * 1000,
        exec: this.host.exec(pod, container.name),
      });
    } catch (err) {
      result = { outcome: "failure", output: err instanceof Error ? err.message : String(err) };
      this.host.event(pod, { type: "Warning", reason: "Unhealthy", message: `${PROBE_NAMES[worker.kind]} probe errored: ${result.output}`, container: container.name });
    }
    // The container may have restarted (or the pod gone) while the probe ran: that result is stale.
    if (this.pods.get(podKey) !== probes || container.run?.instance !== instance) return;
    if (result.outcome === "failure") {
      this.host.event(pod, { type: "Warning", reason: "Unhealthy", message: `${PROBE_NAMES[worker.kind]} probe failed: ${result.output.trimEnd()}`, container: container.name });
    } else if (result.outcome === "warning") {
      this.host.event(pod, { type: "Warning", reason: "ProbeWarning", message: `${PROBE_NAMES[worker.kind]} probe warning: ${result.output.trimEnd()}`, container: container.name });
    }
    const outcome: ProbeOutcome = result.outcome === "failure" ? "failure" : "success";
    if (worker.lastOutcome === outcome) worker.run++;
    else {
      worker.lastOutcome = outcome;
      worker.run = 1;
    }
    if ((outcome === "failure" && worker.run < worker.spec.failureThreshold) || (outcome === "success" && worker.run < worker.spec.successThreshold)) return;
    const changed = worker.result !== outcome;
    worker.result = outcome;
    if (changed) this.notify(podKey);
    if (outcome === "failure" && (worker.kind === "liveness" || worker.kind === "startup")) {
      // Held until the next instance: the container is being stopped.
      worker.onHold = true;
      worker.run = 0;
      await this.host.kill(pod, container.name, worker.kind, worker.spec.terminationGracePeriodSeconds);
    }
    if (changed && worker.kind === "startup" && outcome === "success") this.notify(podKey);
  }
}

function probedContainers(pod: V1Pod): V1Container[] {
  const all = [...(pod.spec?.initContainers ?? []).filter((container) => container.restartPolicy === "Always"), ...(pod.spec?.containers ?? [])];
  return all.filter((container) => container.livenessProbe != null || container.readinessProbe != null || container.startupProbe != null || container.lifecycle?.postStart != null);
}
