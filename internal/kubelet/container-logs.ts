/**
 * `/containerLogs/{namespace}/{pod}/{container}`: one container instance's output, with the kubelet's
 * options. The kubelet keeps one log per container instance; vks keeps one stream per container (journal
 * or file), so an instance is the stretch of the journal between its start and the next instance's start,
 * read from the pod's status.
 */
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { errorMessage } from "../errors.ts";
import { logModeHasTimes, streamContainerLog } from "../logs/logs.ts";
import type { ManagerScope } from "../systemd/types.ts";
import type { PodLogs } from "../state/records.ts";
import { Query, RequestError } from "./query.ts";

export const CONTAINER_LOG_PARAMETERS = ["follow", "tailLines", "limitBytes", "sinceSeconds", "sinceTime", "timestamps", "previous"] as const;

export interface ContainerLogOptions {
  follow: boolean;
  tailLines?: number;
  limitBytes?: number;
  since?: Date;
  timestamps: boolean;
  previous: boolean;
}

export function parseContainerLogOptions(params: URLSearchParams, now: Date = new Date()): ContainerLogOptions {
  const query = new Query(params, CONTAINER_LOG_PARAMETERS);
  const sinceSeconds = query.integer("sinceSeconds", 1);
  const sinceTime = query.time("sinceTime");
  if (sinceSeconds !== undefined && sinceTime !== undefined) throw new RequestError(400, "at most one of sinceTime or sinceSeconds may be specified");
  const tailLines = query.integer("tailLines", 0);
  const limitBytes = query.integer("limitBytes", 1);
  return {
    follow: query.bool("follow"),
    timestamps: query.bool("timestamps"),
    previous: query.bool("previous"),
    ...(tailLines === undefined ? {} : { tailLines }),
    ...(limitBytes === undefined ? {} : { limitBytes }),
    ...(sinceTime !== undefined ? { since: sinceTime } : sinceSeconds !== undefined ? { since: new Date(now.getTime() - sinceSeconds * 1000) } : {}),
  };
}

/** What the handler needs of the engine for one pod. */
export interface PodLogSource {
  pod: V1Pod;
  logs: PodLogs;
  units: { container: string; unitName: string }[];
}

interface Window {
  since?: Date;
  until?: Date;
}

function startOf(status: V1ContainerStatus | undefined, which: "current" | "last"): Date | undefined {
  const state = which === "current" ? status?.state : status?.lastState;
  return state?.running?.startedAt ?? state?.terminated?.startedAt;
}

/**
 * The time window of the instance asked for, as the kubelet picks the container: the current one (or,
 * while it waits to restart, the one that just ended) or with `previous` the one before it.
 */
function instanceWindow(source: PodLogSource, container: string, previous: boolean): Window {
  const status = [...(source.pod.status?.containerStatuses ?? []), ...(source.pod.status?.initContainerStatuses ?? [])].find((s) => s.name === container);
  const podName = source.pod.metadata?.name ?? "";
  const current = startOf(status, "current");
  const last = startOf(status, "last");
  if (!previous) {
    if (current !== undefined) return { since: current };
    if (last !== undefined) return { since: last };
    const waiting = status?.state?.waiting?.reason;
    if (waiting !== undefined) throw new RequestError(400, `container "${container}" in pod "${podName}" is waiting to start: ${waiting}`);
    return {};
  }
  if (current !== undefined && last !== undefined) return { since: last, until: current };
  // Waiting to restart: the instance that just ended is "current"; the one before it started earlier.
  if (current === undefined && last !== undefined && (status?.restartCount ?? 0) > 1) return { until: last };
  throw new RequestError(400, `previous terminated container "${container}" in pod "${podName}" not found`);
}

/** RFC 3339 with the fraction trimmed of trailing zeros, as Go's RFC3339Nano prints it. */
export function formatLogTimestamp(realtimeMicros: bigint): string {
  const millis = Number(realtimeMicros / 1000n);
  const micros = Number(realtimeMicros % 1_000_000n);
  const base = new Date(millis).toISOString().slice(0, 19);
  const fraction = micros === 0 ? "" : `.${String(micros).padStart(6, "0").replace(/0+$/, "")}`;
  return `${base}${fraction}Z`;
}

/**
 * Streams the log to `write`; a promise from `write` holds the reader back until the client takes the
 * chunk. Resolves when the log ends, at limitBytes, or (with follow) when `signal` aborts.
 */
export async function streamContainerInstanceLog(
  source: PodLogSource,
  container: string,
  options: ContainerLogOptions,
  scope: ManagerScope,
  write: (chunk: string) => void | Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  const podName = source.pod.metadata?.name ?? "";
  const unit = source.units.find((candidate) => candidate.container === container);
  if (unit === undefined) throw new RequestError(404, `container "${container}" not found in pod "${podName}"`);
  const timed = logModeHasTimes(source.logs);
  if (!timed && (options.timestamps || options.since !== undefined || options.previous)) {
    throw new RequestError(
      400,
      `this node keeps container output in files without times (vks --log-mode file), so timestamps, sinceSeconds, sinceTime and previous cannot be served; run vks with journald (--log-mode journal)`,
    );
  }
  const window = timed ? instanceWindow(source, container, options.previous) : {};
  const since = latest(window.since, options.since);
  let remaining = options.limitBytes;
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    await streamContainerLog(
      {
        logs: source.logs,
        unitName: unit.unitName,
        container,
        scope,
        follow: options.follow && window.until === undefined,
        ...(options.tailLines === undefined ? {} : { tail: options.tailLines }),
        ...(since === undefined ? {} : { since }),
        ...(window.until === undefined ? {} : { until: window.until }),
      },
      (line, realtimeMicros) => {
        if (stop.signal.aborted) return;
        let text = `${options.timestamps && realtimeMicros !== undefined ? `${formatLogTimestamp(realtimeMicros)} ` : ""}${line}\n`;
        if (remaining !== undefined) {
          const bytes = Buffer.from(text);
          if (bytes.length >= remaining) {
            text = bytes.subarray(0, remaining).toString("utf8");
            remaining = 0;
            stop.abort();
            return write(text);
          }
          remaining -= bytes.length;
        }
        return write(text);
      },
      stop.signal,
    );
  } catch (err) {
    if (err instanceof RequestError) throw err;
    if (stop.signal.aborted) return;
    throw new RequestError(500, `reading the log of container "${container}" in pod "${podName}": ${errorMessage(err)}`);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

function latest(a: Date | undefined, b: Date | undefined): Date | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}
