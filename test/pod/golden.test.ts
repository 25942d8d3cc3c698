/**
 * Golden plans: every `testdata/<case>.yaml` is parsed, validated and planned with fixed images and
 * executables; the result must equal `<case>.plan.json`, or, when planning fails, `<case>.error.txt`.
 * `UPDATE_GOLDEN=1 bun test test/pod` rewrites the expectations; review the diff before committing.
 * An optional `<case>.input.json` overrides the plan input (`logs`, `hostIP`, `podMaxPids`). A pod that
 * declares resources also has its slice recorded in `<case>.slice.json`.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import type { ResolvedImage } from "../../internal/image/types.ts";
import type { SlicePlan } from "../../internal/systemd/types.ts";
import { parseManifestContents } from "../../internal/pod/manifest.ts";
import type { EnvObjects } from "../../internal/pod/env-sources.ts";
import { LAUNCHER_SCRIPT } from "../../internal/pod/launcher.ts";
import { executablesNeeded, planPod, type PlanLogs } from "../../internal/pod/plan.ts";
import { validatePod } from "../../internal/pod/validate.ts";
import { planPodSlice } from "../../internal/pod/resources.ts";
import { VksError } from "../../internal/errors.ts";

const TESTDATA = join(import.meta.dir, "testdata");
const UPDATE = process.env.UPDATE_GOLDEN === "1";
const DEFAULT_UID = "6f1c2d3e-0000-4000-8000-000000000001";
const HOST_IP = "192.0.2.10";
/** A fixed node for resourceFieldRef on limits a container does not set. */
const ALLOCATABLE = { cpu: "4", memory: "8047772Ki", "ephemeral-storage": "94311376Ki" };
/** The node's memory capacity (8 GiB), for Burstable containers' OOMScoreAdjust. */
const MEMORY_CAPACITY = 8n << 30n;

interface CaseInput {
  logs?: PlanLogs;
  hostIP?: string;
  /** `--pod-max-pids`, for the slice. */
  podMaxPids?: number;
}

const imagesByReference: Record<string, ResolvedImage> = JSON.parse(readFileSync(join(TESTDATA, "images.json"), "utf8"));
const executablesOnHost: Record<string, string> = JSON.parse(readFileSync(join(TESTDATA, "executables.json"), "utf8"));

/** The launcher's own text is tested in launcher.test.ts; in golden files it would only add noise. */
const LAUNCHER_ENTRY = `VKS_EXEC_SCRIPT=${LAUNCHER_SCRIPT}`;
const LAUNCHER_PLACEHOLDER = "VKS_EXEC_SCRIPT=<LAUNCHER_SCRIPT from internal/pod/launcher.ts>";

/** JSON with sorted keys and bigints as strings, so files diff cleanly and never depend on build order. */
function stableJSON(value: unknown): string {
  const normalize = (item: unknown): unknown => {
    if (typeof item === "bigint") return item.toString();
    if (item === LAUNCHER_ENTRY) return LAUNCHER_PLACEHOLDER;
    if (Array.isArray(item)) return item.map(normalize);
    if (typeof item === "object" && item !== null) {
      const entries = Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return Object.fromEntries(entries.map(([key, nested]) => [key, normalize(nested)]));
    }
    return item;
  };
  return JSON.stringify(normalize(value), null, 2) + "\n";
}

function errorText(err: VksError): string {
  return `${err.message}\nhint: ${err.hint ?? ""}\nexit code: ${err.exitCode}\n`;
}

/** Whether a case's pod declares resources: those cases also record the pod's slice (`<case>.slice.json`). */
function declaresResources(pod: V1Pod): boolean {
  const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  return pod.spec?.resources !== undefined || containers.some((container) => container.resources !== undefined);
}

/** What the golden files record for one case: the plans, or the error planning raised; and slices. */
function runCase(name: string): { kind: "plan" | "error"; text: string; slices?: string } {
  const text = readFileSync(join(TESTDATA, `${name}.yaml`), "utf8");
  const inputPath = join(TESTDATA, `${name}.input.json`);
  const overrides: CaseInput = existsSync(inputPath) ? JSON.parse(readFileSync(inputPath, "utf8")) : {};
  try {
    const contents = parseManifestContents(text, `${name}.yaml`);
    const pods = contents.pods;
    // The case's ConfigMap and Secret documents are its pods' env sources, as under `pod up`.
    const envObjects: EnvObjects = {
      configMaps: Object.fromEntries(contents.configMaps.map((object) => [object.metadata?.name ?? "", object])),
      secrets: Object.fromEntries(contents.secrets.map((object) => [object.metadata?.name ?? "", object])),
    };
    const slices: SlicePlan[] = [];
    const plans = pods.map((parsed) => {
      validatePod(parsed, `${name}.yaml`);
      // What the engine does before planning: a namespace and a uid.
      const pod = structuredClone(parsed);
      pod.metadata = { ...pod.metadata, namespace: pod.metadata?.namespace || "default", uid: pod.metadata?.uid || DEFAULT_UID };
      const images: Record<string, ResolvedImage> = {};
      for (const container of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
        const image = imagesByReference[container.image ?? ""];
        if (image === undefined) throw new Error(`testdata/images.json has no image "${container.image}"`);
        images[container.name] = image;
      }
      const executables: Record<string, string> = {};
      for (const needed of executablesNeeded(pod, images, envObjects)) {
        const found = executablesOnHost[needed];
        if (found !== undefined) executables[needed] = found;
      }
      // The engine's per-pod volume directory (volume-data.ts podVolumeDirectory) under the system state dir.
      const volumeDirectory = `/var/lib/vks/volumes/${pod.metadata.uid}`;
      // Env sources as the engine passes them (env-file.ts podSecretEnvDirectory under the system state dir).
      const env = { envObjects, allocatable: ALLOCATABLE, secretEnvDirectory: `/var/lib/vks/secret-env/${pod.metadata.uid}` };
      if (declaresResources(pod)) slices.push(planPodSlice(pod, overrides.podMaxPids === undefined ? {} : { podMaxPids: overrides.podMaxPids }));
      // The restart back-off gate as the engine passes it (restart-backoff.ts, under the system state dir).
      const restartBackOff = { script: "/var/lib/vks/restart-backoff.sh", directory: `/var/lib/vks/backoff/${pod.metadata.uid}` };
      return planPod({ pod, images, executables, logs: overrides.logs ?? { mode: "journal" }, hostIP: overrides.hostIP ?? HOST_IP, volumeDirectory, restartBackOff, memoryCapacityBytes: MEMORY_CAPACITY, ...env });
    });
    const sliceText = slices.length === 0 ? undefined : stableJSON(slices.length === 1 ? slices[0] : slices);
    return { kind: "plan", text: stableJSON(plans.length === 1 ? plans[0] : plans), ...(sliceText === undefined ? {} : { slices: sliceText }) };
  } catch (err) {
    if (err instanceof VksError) return { kind: "error", text: errorText(err) };
    throw err;
  }
}

const cases = readdirSync(TESTDATA)
  .filter((file) => file.endsWith(".yaml"))
  .map((file) => file.slice(0, -".yaml".length))
  .sort();

describe("golden plans", () => {
  test("there are enough cases to mean something", () => {
    expect(cases.length).toBeGreaterThanOrEqual(10);
  });

  for (const name of cases) {
    test(name, () => {
      const { kind, text, slices } = runCase(name);
      const slicePath = join(TESTDATA, `${name}.slice.json`);
      if (UPDATE) {
        if (slices === undefined) rmSync(slicePath, { force: true });
        else writeFileSync(slicePath, slices);
      } else if (slices !== undefined || existsSync(slicePath)) {
        expect(slices ?? "(no slice: the pod declares no resources)").toBe(existsSync(slicePath) ? readFileSync(slicePath, "utf8") : "(no golden slice file)");
      }
      const expectedPath = join(TESTDATA, `${name}.${kind === "plan" ? "plan.json" : "error.txt"}`);
      const otherPath = join(TESTDATA, `${name}.${kind === "plan" ? "error.txt" : "plan.json"}`);
      if (UPDATE) {
        writeFileSync(expectedPath, text);
        rmSync(otherPath, { force: true });
        return;
      }
      if (!existsSync(expectedPath)) {
        const expected = existsSync(otherPath) ? `${otherPath} (the case was expected to ${kind === "plan" ? "fail" : "plan"})` : "no golden file";
        throw new Error(`${name}: got a ${kind}, but there is ${expected}; rerun with UPDATE_GOLDEN=1 if this is intended`);
      }
      expect(text).toBe(readFileSync(expectedPath, "utf8"));
    });
  }
});
