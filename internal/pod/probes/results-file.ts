/**
 * Probe results shared with other vks processes: the process that probes a pod (serve, pod up in the
 * foreground) writes them to `<state dir>/probes/<pod uid>.json` when they change; `pod ls` and the
 * kubelet API of another process read them. Results count only while the writer lives and for the
 * container run they were taken on; otherwise nobody probes the pod and a running container counts as
 * ready, as without probes.
 */
import { readFileSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ProbeStatus } from "./manager.ts";

interface ResultsFile {
  pid: number;
  containers: Record<string, ProbeStatus>;
}

export function probeResultsFile(stateDir: string, uid: string): string {
  return join(stateDir, "probes", `${uid}.json`);
}

export async function writeProbeResults(path: string, containers: Record<string, ProbeStatus> | undefined): Promise<void> {
  if (containers === undefined) {
    await rm(path, { force: true });
    return;
  }
  await mkdir(join(path, ".."), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify({ pid: process.pid, containers } satisfies ResultsFile));
  await rename(temporary, path);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The results another live process keeps for the pod, for the given container runs only. */
export function readProbeResults(path: string, instances: Record<string, string | undefined>): Record<string, ProbeStatus> | undefined {
  let parsed: ResultsFile;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8")) as ResultsFile;
  } catch {
    return undefined;
  }
  if (typeof parsed.pid !== "number" || parsed.pid === process.pid || !alive(parsed.pid)) return undefined;
  const results: Record<string, ProbeStatus> = {};
  for (const [container, status] of Object.entries(parsed.containers ?? {})) {
    const current = instances[container];
    // A result for another run (the container restarted since) says nothing about this one: not ready yet.
    results[container] = current !== undefined && status.instance === current ? status : { ...(status.started === undefined ? {} : { started: false }), ...(status.ready === undefined ? {} : { ready: false }) };
  }
  return results;
}
