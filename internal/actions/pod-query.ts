import type { V1Pod } from "@kubernetes/client-node";
import { consola } from "consola";
import { stringify } from "yaml";
import type { ManagerScope } from "../systemd/types.ts";
import { formatAge, renderTable, type OutputFormat } from "../cli/output.ts";
import { ExitCode, NotFoundError, VksError } from "../errors.ts";
import { streamContainerLog } from "../logs/logs.ts";
import { PodEngine } from "../pod/engine.ts";
import { podWorkload, workloadKey } from "../pod/workloads.ts";
import { PodRecordStore, stateDirFor } from "../state/records.ts";
import { looksLikeManifestPath, readPodManifests } from "./manifest-input.ts";

export interface EngineSelection {
  scope: ManagerScope;
  stateDir?: string;
}

async function withEngine<T>(selection: EngineSelection, work: (engine: PodEngine) => Promise<T>): Promise<T> {
  const engine = await PodEngine.open({ scope: selection.scope, stateDir: selection.stateDir });
  try {
    return await work(engine);
  } finally {
    await engine.close();
  }
}

/** `vks pod down NAME...|FILE`: stops the pods' units (honouring their grace periods) and forgets them. */
export async function podDown(
  options: EngineSelection & { targets: string[]; namespace?: string; ignoreNotFound: boolean },
): Promise<void> {
  const wanted: { namespace: string; name: string }[] = [];
  /** The file's workloads: their pods are found by the group marker, not by their generated names. */
  const workloads: { namespace: string; key: string }[] = [];
  for (const target of options.targets) {
    if (looksLikeManifestPath(target)) {
      const { pods, workloads: fileWorkloads } = await readPodManifests(target);
      for (const pod of pods) {
        wanted.push({ namespace: pod.metadata?.namespace || options.namespace || "default", name: pod.metadata?.name ?? "" });
      }
      for (const workload of fileWorkloads) {
        workloads.push({ namespace: workload.namespace === "default" ? options.namespace || "default" : workload.namespace, key: workloadKey(workload) });
      }
    } else {
      wanted.push({ namespace: options.namespace ?? "default", name: target });
    }
  }
  await withEngine(options, async (engine) => {
    // A preStop hook that fails is worth knowing about: the container was stopped without it.
    engine.notifyEvents((pod, event) => {
      if (event.reason === "FailedPreStopHook") consola.warn(`pod ${pod.metadata?.namespace ?? "default"}/${pod.metadata?.name ?? ""} ${event.container ?? ""}: FailedPreStopHook: ${event.message}`);
    });
    const missing = [];
    if (workloads.length > 0) {
      const recorded = await engine.listPods();
      for (const { namespace, key } of workloads) {
        const members = recorded.filter((pod) => (pod.metadata?.namespace ?? "default") === namespace && podWorkload(pod) === key);
        if (members.length === 0) missing.push(`${namespace}/${key} (no pods)`);
        for (const pod of members) {
          await engine.deletePod(pod);
          consola.success(`pod ${namespace}/${pod.metadata?.name ?? ""} removed (${key})`);
        }
      }
    }
    for (const { namespace, name } of wanted) {
      const pod = await engine.getPod(namespace, name);
      if (!pod) {
        missing.push(`${namespace}/${name}`);
        continue;
      }
      await engine.deletePod(pod);
      consola.success(`pod ${namespace}/${name} removed`);
    }
    if (missing.length > 0 && !options.ignoreNotFound) {
      throw new NotFoundError(`no such pod: ${missing.join(", ")}`, "see `vks pod ls`; --ignore-not-found makes this not an error");
    }
  });
}

/** `vks pod ls`: the pods vks runs, with kubectl's columns. */
export async function podList(options: EngineSelection & { namespace?: string; output: OutputFormat }): Promise<string> {
  return withEngine(options, async (engine) => {
    const pods = (await engine.listPods())
      .filter((pod) => options.namespace === undefined || pod.metadata?.namespace === options.namespace)
      .sort((a, b) => `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace}/${b.metadata?.name}`));
    if (options.output === "json") return JSON.stringify(listObject(pods), null, 2);
    if (options.output === "yaml") return stringify(JSON.parse(JSON.stringify(listObject(pods))));
    if (pods.length === 0) return "No pods.";
    // Pods a workload created show it (Deployment/web), as kubectl describe's "Controlled By"; the column
    // appears only when there is something to show.
    const grouped = pods.some((pod) => podWorkload(pod) !== undefined);
    return renderTable(
      ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", ...(grouped ? ["WORKLOAD"] : [])],
      pods.map((pod) => {
        const statuses = pod.status?.containerStatuses ?? [];
        const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp) : new Date();
        return [
          pod.metadata?.namespace ?? "",
          pod.metadata?.name ?? "",
          readyColumn(pod),
          displayStatus(pod),
          String([...(pod.status?.initContainerStatuses ?? []), ...statuses].reduce((sum, s) => sum + (s.restartCount ?? 0), 0)),
          formatAge(created),
          ...(grouped ? [podWorkload(pod) ?? ""] : []),
        ];
      }),
    );
  });
}

function listObject(pods: V1Pod[]): { apiVersion: string; kind: string; items: V1Pod[] } {
  return { apiVersion: "v1", kind: "List", items: pods };
}

/** kubectl's READY column: ready app containers and sidecars over how many there are. */
function readyColumn(pod: V1Pod): string {
  const sidecarNames = new Set((pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === "Always").map((c) => c.name));
  const readySidecars = (pod.status?.initContainerStatuses ?? []).filter((s) => sidecarNames.has(s.name) && s.started === true && s.ready).length;
  const readyApps = (pod.status?.containerStatuses ?? []).filter((s) => s.ready).length;
  return `${readyApps + readySidecars}/${(pod.spec?.containers.length ?? 0) + sidecarNames.size}`;
}

/**
 * kubectl's STATUS for a pod still initializing: `Init:1/2` (index of the first init container not done,
 * over how many there are), `Init:Error`, `Init:CrashLoopBackOff`, …; undefined once initialization is
 * over. Sidecars that started count as done, as kubectl skips them.
 */
export function initDisplayStatus(pod: V1Pod): string | undefined {
  const initContainers = pod.spec?.initContainers ?? [];
  if (initContainers.length === 0) return undefined;
  if (pod.status?.conditions?.some((c) => c.type === "Initialized" && c.status === "True")) return undefined;
  const statuses = pod.status?.initContainerStatuses ?? [];
  for (const [index, status] of statuses.entries()) {
    const container = initContainers.find((c) => c.name === status.name);
    if (container?.restartPolicy === "Always") {
      if (status.started === true) continue;
    } else if (status.state?.terminated?.exitCode === 0) {
      continue;
    }
    const terminated = status.state?.terminated;
    if (terminated !== undefined) {
      if (terminated.reason) return `Init:${terminated.reason}`;
      return terminated.signal ? `Init:Signal:${terminated.signal}` : `Init:ExitCode:${terminated.exitCode}`;
    }
    const waiting = status.state?.waiting?.reason;
    if (waiting && waiting !== "PodInitializing") return `Init:${waiting}`;
    return `Init:${index}/${initContainers.length}`;
  }
  return undefined;
}

/** kubectl's STATUS column: a container's waiting or terminated reason beats the phase. */
export function displayStatus(pod: V1Pod): string {
  if (pod.metadata?.deletionTimestamp) return "Terminating";
  const initializing = initDisplayStatus(pod);
  if (initializing !== undefined) return initializing;
  for (const status of pod.status?.containerStatuses ?? []) {
    if (status.state?.waiting?.reason && status.state.waiting.reason !== "ContainerCreating") return status.state.waiting.reason;
  }
  for (const status of pod.status?.containerStatuses ?? []) {
    if (status.state?.waiting?.reason) return status.state.waiting.reason;
  }
  const phase = pod.status?.phase ?? "Unknown";
  // A pod the node itself failed (OutOfcpu at admission, DeadlineExceeded) shows why, as kubectl does.
  if (phase === "Failed" && pod.status?.reason) return pod.status.reason;
  if (phase === "Succeeded" || phase === "Failed") {
    const terminated = (pod.status?.containerStatuses ?? []).map((s) => s.state?.terminated).find((t) => t && t.exitCode !== 0);
    return terminated?.reason ?? (phase === "Succeeded" ? "Completed" : "Error");
  }
  return phase;
}

/** `vks pod logs NAME [-c C] [-f] [--tail N]`. */
export async function podLogs(
  options: EngineSelection & { name: string; namespace?: string; container?: string; follow: boolean; tail?: number },
): Promise<void> {
  const namespace = options.namespace ?? "default";
  // Reading a log needs the pod's record only, not a connection to systemd.
  const record = await new PodRecordStore(options.stateDir ?? stateDirFor(options.scope)).get(namespace, options.name);
  if (!record) throw new NotFoundError(`no such pod: ${namespace}/${options.name}`, "see `vks pod ls`");
  const containers = record.units.map((unit) => unit.container);
  let container = options.container;
  if (container === undefined) {
    if (containers.length !== 1) {
      throw new VksError(`pod ${namespace}/${options.name} has ${containers.length} containers: say which with -c`, {
        exitCode: ExitCode.usage,
        hint: `choose one of: ${containers.join(", ")}`,
      });
    }
    container = containers[0];
  }
  const unit = record.units.find((u) => u.container === container);
  if (!unit) {
    throw new NotFoundError(`pod ${namespace}/${options.name} has no container ${container}`, `choose one of: ${containers.join(", ")}`);
  }
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  await streamContainerLog(
    { logs: record.logs, unitName: unit.unitName, container: unit.container, scope: options.scope, follow: options.follow, tail: options.tail },
    (line) => {
      process.stdout.write(line + "\n");
    },
    abort.signal,
  );
}
