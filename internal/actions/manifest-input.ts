import type { V1Pod } from "@kubernetes/client-node";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { ExitCode, NotFoundError, VksError } from "../errors.ts";
import { parseManifests } from "../pod/manifest.ts";

/** Reads pod manifests from a file, or from standard input for `-`. */
export async function readPodManifests(file: string): Promise<{ pods: V1Pod[]; source: string }> {
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
  const pods = parseManifests(text, source);
  if (pods.length === 0) {
    throw new VksError(`${source}: no pod in the manifest`, { exitCode: ExitCode.invalidInput, hint: "a manifest holds one or more YAML documents of kind Pod" });
  }
  return { pods, source };
}

/** `pod down` takes a name or a manifest: a path that exists, `-`, or a name ending in .yaml/.yml is a file. */
export function looksLikeManifestPath(argument: string): boolean {
  return argument === "-" || existsSync(argument) || /\.ya?ml$/.test(argument);
}
