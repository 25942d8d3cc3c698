import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { consola } from "consola";
import type { ManagerScope } from "../systemd/types.ts";
import { errorMessage } from "../errors.ts";
import { streamContainerLog, type LogModeSetting } from "../logs/logs.ts";
import { PodEngine } from "../pod/engine.ts";
import { podWarnings } from "../pod/validate.ts";
import { readPodManifests } from "./manifest-input.ts";

export interface PodUpOptions {
  file: string;
  scope: ManagerScope;
  stateDir?: string;
  logMode: LogModeSetting;
  detach: boolean;
  replace: boolean;
  aptSources?: Record<string, string>;
}

/**
 * `vks pod up`: validates every pod of the manifest before creating any, creates them, and either returns
 * (--detach) or stays in the foreground showing state changes and logs until the pods finish or the user
 * presses Ctrl-C, which tears them down. Returns the process exit code.
 */
export async function podUp(options: PodUpOptions): Promise<number> {
  const { pods, source } = await readPodManifests(options.file);
  const engine = await PodEngine.open({
    scope: options.scope,
    stateDir: options.stateDir,
    logMode: options.logMode,
    aptSources: options.aptSources,
    onProgress: (message) => consola.info(message),
  });
  try {
    const normalized = pods.map((pod, index) => engine.normalize(pod, pods.length > 1 ? `${source} (document ${index + 1})` : source));
    for (const pod of normalized) {
      for (const warning of podWarnings(pod)) consola.warn(`${describe(pod)}: ${warning.path}: ${warning.message}`);
    }
    const started: V1Pod[] = [];
    try {
      for (const pod of normalized) {
        if (await prepareSlot(engine, pod, options.replace)) {
          await engine.createPod(pod);
          started.push(pod);
          consola.success(`pod ${describe(pod)} created`);
        }
      }
    } catch (err) {
      // All or nothing: a manifest whose third pod fails leaves no first two behind.
      for (const pod of started) await engine.deletePod(pod).catch(() => undefined);
      throw err;
    }
    if (options.detach) return await waitForInitialization(engine, started);
    if (started.length === 0) return 0;
    return await runInForeground(engine, started);
  } finally {
    await engine.close();
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
    const initialized = pod.status?.conditions?.some((c) => c.type === "Initialized" && c.status === "True") === true;
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

async function runInForeground(engine: PodEngine, pods: V1Pod[]): Promise<number> {
  const logsAbort = new AbortController();
  const lastShown = new Map<string, string>();
  const finished = new Map<string, boolean>();
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));

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
      if (finished.size === pods.length) resolveDone([...finished.values()].every(Boolean) ? 0 : 1);
    }
  };
  engine.notifyPods(onChange);
  for (const pod of pods) {
    const current = await engine.getPod(pod.metadata?.namespace ?? "default", pod.metadata?.name ?? "");
    if (current) onChange(current);
  }

  const followers: Promise<void>[] = [];
  const prefixed = pods.length > 1 || pods.some((pod) => (pod.spec?.containers.length ?? 0) + (pod.spec?.initContainers?.length ?? 0) > 1);
  for (const pod of pods) {
    const podRecord = await engine.records.get(pod.metadata?.namespace ?? "default", pod.metadata?.name ?? "");
    if (!podRecord) continue;
    for (const unit of podRecord.units) {
      const prefix = prefixed ? `[${pods.length > 1 ? `${pod.metadata?.name}/` : ""}${unit.container}] ` : "";
      followers.push(
        streamContainerLog(
          { logs: podRecord.logs, unitName: unit.unitName, container: unit.container, scope: engine.scope, follow: true },
          (line) => {
            process.stdout.write(`${prefix}${line}\n`);
          },
          logsAbort.signal,
        ).catch((err) => consola.warn(`logs of ${unit.container}: ${errorMessage(err)}`)),
      );
    }
  }

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
  // Let the log readers print what the containers wrote last before they are stopped.
  await Bun.sleep(300);
  logsAbort.abort();
  await Promise.allSettled(followers);
  if (interrupted) {
    for (const pod of pods) {
      await engine.deletePod(pod);
      consola.success(`pod ${describe(pod)} removed`);
    }
  } else {
    consola.info(`the pod's record and units stay for inspection: vks pod ls; vks pod down ${pods.map((p) => p.metadata?.name).join(" ")}`);
  }
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  return code;
}

function describe(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? "default"}/${pod.metadata?.name ?? ""}`;
}

export function describeContainerState(status: V1ContainerStatus): string {
  const state = status.state;
  if (state?.running) return `Running${status.restartCount ? ` (restarts: ${status.restartCount})` : ""}`;
  if (state?.terminated) {
    const t = state.terminated;
    return `Terminated: ${t.reason ?? ""} (exit code ${t.exitCode}${t.signal ? `, signal ${t.signal}` : ""})`;
  }
  if (state?.waiting) return `Waiting: ${state.waiting.reason ?? ""}${state.waiting.message ? ` — ${state.waiting.message}` : ""}`;
  return "Unknown";
}
