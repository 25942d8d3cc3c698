/**
 * Lifecycle hooks (postStart, preStop) as the kubelet runs them (pkg/kubelet/lifecycle/handlers.go):
 * exec in the container's context (a non-zero exit fails), httpGet (only a failed request fails: any
 * response status passes), sleep. Messages are the kubelet's, for the FailedPostStartHook and
 * FailedPreStopHook events.
 */
import type { V1Container, V1LifecycleHandler, V1Pod } from "@kubernetes/client-node";
import { handlerOf, type ProbeHandler } from "./spec.ts";
import type { ExecRunner } from "./handlers.ts";

export type HookKind = "postStart" | "preStop";

export interface HookContext {
  podIP: string;
  exec: ExecRunner;
  /** Abandons the hook after this long (preStop: the grace period); none for postStart, as the kubelet. */
  timeoutMs?: number;
}

export function hookHandler(container: V1Container, kind: HookKind): ProbeHandler | undefined {
  const handler: V1LifecycleHandler | undefined = container.lifecycle?.[kind];
  return handler === undefined || handler === null ? undefined : handlerOf(handler, container);
}

function formatPod(pod: V1Pod): string {
  return `${pod.metadata?.name ?? ""}_${pod.metadata?.namespace || "default"}(${pod.metadata?.uid ?? ""})`;
}

/** Runs the hook; resolves to undefined on success, else the kubelet's failure message. */
export async function runHook(handler: ProbeHandler, pod: V1Pod, container: string, context: HookContext): Promise<string | undefined> {
  const timeoutMs = context.timeoutMs ?? 2 ** 31 - 1;
  switch (handler.type) {
    case "exec": {
      const run = await context.exec(handler.command, timeoutMs);
      if (run.exitCode === 0 && !run.timedOut) return undefined;
      const error = run.timedOut ? "command timed out" : `command '${handler.command.join(" ")}' exited with ${run.exitCode}: ${run.output}`;
      return `Exec lifecycle hook ([${handler.command.join(" ")}]) for Container "${container}" in Pod "${formatPod(pod)}" failed - error: ${error}, message: ${JSON.stringify(run.output)}`;
    }
    case "httpGet": {
      const host = handler.host ?? context.podIP;
      const url = `${handler.scheme.toLowerCase()}://${host.includes(":") ? `[${host}]` : host}:${handler.port}${handler.path}`;
      const headers = new Headers();
      for (const header of handler.headers) headers.set(header.name, header.value);
      try {
        const response = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs), tls: { rejectUnauthorized: false } } as RequestInit);
        await response.body?.cancel().catch(() => undefined);
        return undefined;
      } catch (err) {
        return `HTTP lifecycle hook (${handler.path}) for Container "${container}" in Pod "${formatPod(pod)}" failed - error: ${err instanceof Error ? err.message : String(err)}`;
      }
    }
    case "sleep":
      await Bun.sleep(Math.min(handler.seconds * 1000, timeoutMs));
      return undefined;
    default:
      return `${handler.type} lifecycle hooks are not supported`;
  }
}
