import type { V1ConfigMap, V1Pod, V1Secret } from "@kubernetes/client-node";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { ExitCode, NotFoundError, VksError } from "../errors.ts";
import { parseManifestContents } from "../pod/manifest.ts";
import type { Workload } from "../pod/workloads.ts";

/** Reads pod manifests (Pods and workloads) from a file, or from standard input for `-`. */
export async function readPodManifests(
  file: string,
): Promise<{ pods: V1Pod[]; workloads: Workload[]; configMaps: V1ConfigMap[]; secrets: V1Secret[]; source: string }> {
  const source = file === "-" ? "<stdin>" : file;
  let text: string;
  if (file === "-") {
    text = await Bun.stdin.text();
  } else {
    if (!existsSync(file)) throw new NotFoundError(`${file}: no such file`, "give the path of a pod manifest (YAML), or - for standard input");
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      throw new VksError(`${file}: cannot read: ${(err as Error).message}`, { exitCode: ExitCode.notFound });
    }
  }
  const { pods, workloads, configMaps, secrets } = parseManifestContents(text, source);
  if (pods.length === 0 && workloads.length === 0) {
    throw new VksError(`${source}: no pod in the manifest`, {
      exitCode: ExitCode.invalidInput,
      hint: "a manifest holds one or more YAML documents of kind Pod (or Deployment, ReplicaSet, StatefulSet, DaemonSet, Job)",
    });
  }
  return { pods, workloads, configMaps, secrets, source };
}

/** `pod down` takes a name or a manifest: a path that exists, `-`, or a name ending in .yaml/.yml is a file. */
export function looksLikeManifestPath(argument: string): boolean {
  return argument === "-" || existsSync(argument) || /\.ya?ml$/.test(argument);
}
