/**
 * What volumes cost a pod's start, measured side by side in one run on the same systemd manager, through
 * the in-process PodEngine (as bench/pods.ts does). Two parts:
 *
 *   one pod       a one-container pod (`/bin/sleep infinity`) with 5 volumes (3 configMap + 2 secret, each
 *                 with BENCH_VOLUME_KEYS keys, served by the PodObjectSource `pod up` builds from ConfigMap
 *                 and Secret documents) against the same pod without volumes: createPod until the unit
 *                 runs, p50 over BENCH_VOLUME_ROUNDS rounds, the order alternating per round. The volume
 *                 data alone (preparePodVolumes, the engine's own step) is timed apart in the same run, so
 *                 the rest of the difference is systemd setting up the unit's mount namespace.
 *   burst         BENCH_PODS pods each mounting an emptyDir against BENCH_PODS pods without, created
 *                 concurrently as pods.ts does: first createPod until every unit runs, median over
 *                 BENCH_ROUNDS rounds, the order alternating per round.
 *
 * "Runs" is what one ListUnitsByPatterns call, made over the benchmark's own bus connection, reports as
 * active/running: the same check for every variant. Figures are printed, never asserted. Volumes need root
 * (bind mounts into a unit's namespace): run inside test/sandbox.sh, as root; bench/run.sh does that.
 */
import type { V1ConfigMap, V1Pod, V1Secret, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import { randomUUID } from "node:crypto";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PodEngine } from "../internal/pod/engine.ts";
import { manifestObjectSource } from "../internal/pod/manifest-objects.ts";
import { preparePodVolumes, removePodVolumes } from "../internal/pod/volume-data.ts";
import { Observer, ms, systemctl } from "./engine-bench.ts";
import { median, positiveInt } from "./knobs.ts";

const VOLUME_ROUNDS = positiveInt("BENCH_VOLUME_ROUNDS", 20);
const KEYS = positiveInt("BENCH_VOLUME_KEYS", 4);
const PODS = positiveInt("BENCH_PODS", 100);
const ROUNDS = positiveInt("BENCH_ROUNDS", 3);
const NAMESPACE = "benchvol";
const CONFIG_MAPS = 3;
const SECRETS = 2;

/** The p-th percentile (nearest rank) of `values`. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Small config-file-like values, a few hundred bytes per key, as ConfigMaps and Secrets usually hold. */
function keys(prefix: string): Record<string, string> {
  return Object.fromEntries(Array.from({ length: KEYS }, (_, i) => [`${prefix}-${i}.conf`, `# ${prefix} ${i}\n${"setting=value\n".repeat(20)}`]));
}

function objects(): { configMaps: V1ConfigMap[]; secrets: V1Secret[] } {
  const configMaps = Array.from({ length: CONFIG_MAPS }, (_, i): V1ConfigMap => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: `config-${i}`, namespace: NAMESPACE },
    data: keys(`config-${i}`),
  }));
  const secrets = Array.from({ length: SECRETS }, (_, i): V1Secret => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: `creds-${i}`, namespace: NAMESPACE },
    data: Object.fromEntries(Object.entries(keys(`creds-${i}`)).map(([key, value]) => [key, Buffer.from(value).toString("base64")])),
  }));
  return { configMaps, secrets };
}

/** A one-container `/bin/sleep infinity` pod; mount paths lie under the bench's own directory. */
function sleepPod(name: string, volumes: V1Volume[], mounts: string): V1Pod {
  const volumeMounts: V1VolumeMount[] = volumes.map((volume) => ({ name: volume.name, mountPath: join(mounts, volume.name) }));
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NAMESPACE, uid: randomUUID() },
    spec: {
      ...(volumes.length > 0 ? { volumes } : {}),
      containers: [{ name: "c", image: "/bin/sleep", args: ["infinity"], ...(volumeMounts.length > 0 ? { volumeMounts } : {}) }],
    },
  };
}

const FIVE_VOLUMES: V1Volume[] = [
  ...Array.from({ length: CONFIG_MAPS }, (_, i): V1Volume => ({ name: `config-${i}`, configMap: { name: `config-${i}` } })),
  ...Array.from({ length: SECRETS }, (_, i): V1Volume => ({ name: `creds-${i}`, secret: { secretName: `creds-${i}` } })),
];
const EMPTY_DIR: V1Volume[] = [{ name: "scratch", emptyDir: {} }];

interface Timing {
  /** Until createPod returned (every pod's, in the burst). */
  calls: number;
  /** Until systemd reported every unit running. */
  running: number;
}

async function main(): Promise<void> {
  if (!process.env.DBUS_SESSION_BUS_ADDRESS) throw new Error("no user bus: run through bench/run.sh or test/sandbox.sh");
  if (process.geteuid?.() !== 0) throw new Error("volumes need root (bind mounts into a unit's namespace): run as root inside test/sandbox.sh");
  const stateDir = mkdtempSync(join(tmpdir(), "vks-bench-volumes-"));
  const mounts = join(stateDir, "mnt");
  const { configMaps, secrets } = objects();
  const source = manifestObjectSource(configMaps, secrets, "bench/volumes.ts");
  const observer = await Observer.open();
  const engine = await PodEngine.open({ scope: "user", stateDir, objects: source });
  const live = new Set<V1Pod>();

  /** Creates `pods` at once, waits until all their units run, then removes them and waits until they are gone. */
  const timeCreate = async (pods: V1Pod[], pattern: string): Promise<Timing> => {
    for (const pod of pods) live.add(pod);
    const t0 = performance.now();
    await Promise.all(pods.map((pod) => engine.createPod(pod)));
    const calls = performance.now() - t0;
    await observer.waitRunning(pattern, pods.length);
    const running = performance.now() - t0;
    await Promise.all(pods.map((pod) => engine.deletePod(pod)));
    for (const pod of pods) live.delete(pod);
    await observer.waitGone(pattern);
    return { calls, running };
  };

  const single: Record<"volumes" | "plain", Timing[]> = { volumes: [], plain: [] };
  const prepareMs: number[] = [];
  const burst: Record<"emptyDir" | "plain", Timing[]> = { emptyDir: [], plain: [] };
  try {
    console.log(`volumes, one pod: ${CONFIG_MAPS} configMap + ${SECRETS} secret volumes (${KEYS} keys each) vs none, ${VOLUME_ROUNDS} rounds`);
    for (let round = 0; round < VOLUME_ROUNDS; round++) {
      const order: Array<"volumes" | "plain"> = round % 2 === 0 ? ["volumes", "plain"] : ["plain", "volumes"];
      for (const variant of order) {
        const name = `s${round}-${variant === "volumes" ? "v" : "n"}`;
        const pod = sleepPod(name, variant === "volumes" ? FIVE_VOLUMES : [], mounts);
        single[variant].push(await timeCreate([pod], `vks.${NAMESPACE}.${name}.*.service`));
      }
      // The engine's volume step alone, on the same pod, into a directory no unit uses.
      const directory = join(stateDir, "prepare", String(round));
      const started = performance.now();
      await preparePodVolumes(sleepPod(`p${round}`, FIVE_VOLUMES, mounts), directory, { objects: source, canMount: true });
      prepareMs.push(performance.now() - started);
      await removePodVolumes(directory);
    }

    console.log(`volumes, burst: ${PODS} pods with an emptyDir each vs ${PODS} without, created concurrently, ${ROUNDS} rounds`);
    for (let round = 0; round < ROUNDS; round++) {
      const order: Array<"emptyDir" | "plain"> = round % 2 === 0 ? ["emptyDir", "plain"] : ["plain", "emptyDir"];
      const line: string[] = [];
      for (const variant of order) {
        const prefix = `b${round}-${variant === "emptyDir" ? "e" : "n"}`;
        const pods = Array.from({ length: PODS }, (_, i) => sleepPod(`${prefix}${i}`, variant === "emptyDir" ? EMPTY_DIR : [], mounts));
        const timing = await timeCreate(pods, `vks.${NAMESPACE}.${prefix}*.service`);
        burst[variant].push(timing);
        line.push(`${variant} ${ms(timing.running)}`);
      }
      console.log(`  round ${round + 1}: ${line.join(", ")}`);
    }
  } finally {
    // Whatever happened, leave nothing running and nothing mounted for the next benchmark.
    await Promise.allSettled([...live].map((pod) => engine.deletePod(pod)));
    await systemctl(["stop", `vks.${NAMESPACE}.*`]).catch(() => undefined);
    await systemctl(["reset-failed"]).catch(() => undefined);
    await engine.close();
    observer.close();
    await removePodVolumes(join(stateDir, "volumes")).catch(() => undefined);
    await removePodVolumes(join(stateDir, "prepare")).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  }

  const running = (timings: Timing[]) => timings.map((timing) => timing.running);
  const calls = (timings: Timing[]) => timings.map((timing) => timing.calls);
  const withP50 = percentile(running(single.volumes), 50);
  const withoutP50 = percentile(running(single.plain), 50);
  const singleRatio = withP50 / withoutP50;
  const prepareP50 = percentile(prepareMs, 50);
  console.log("");
  console.log(`  one pod           ${"p50".padStart(7)} ${"p90".padStart(7)}  createPod returned p50`);
  for (const [label, timings] of [["5 volumes", single.volumes], ["no volumes", single.plain]] as const) {
    const values = running(timings);
    console.log(`  ${label.padEnd(17)} ${ms(percentile(values, 50)).padStart(7)} ${ms(percentile(values, 90)).padStart(7)}  ${ms(percentile(calls(timings), 50))}`);
  }
  console.log(`  volume data alone (preparePodVolumes, 5 volumes): p50 ${prepareP50.toFixed(1)} ms`);
  console.log(`  5 volumes / none = ${singleRatio.toFixed(2)} (p50, +${(withP50 - withoutP50).toFixed(1)} ms)`);

  const emptyDirMs = median(running(burst.emptyDir));
  const plainMs = median(running(burst.plain));
  const burstRatio = emptyDirMs / plainMs;
  console.log("");
  console.log(`  burst of ${PODS}     ${"median".padStart(8)} ${"per pod".padStart(9)} ${"calls done".padStart(11)}   runs`);
  for (const [label, timings] of [["emptyDir each", burst.emptyDir], ["no volumes", burst.plain]] as const) {
    const values = running(timings);
    console.log(
      `  ${label.padEnd(17)} ${ms(median(values)).padStart(8)} ${(median(values) / PODS).toFixed(1).padStart(6)} ms ${ms(median(calls(timings))).padStart(11)}   ${values.map((v) => v.toFixed(0)).join(" ")}`,
    );
  }
  console.log(`  emptyDir / none = ${burstRatio.toFixed(2)} (median wall time until all ${PODS} run)`);

  const summary = process.env.BENCH_SUMMARY;
  if (summary) {
    const lines = [
      `volumes: pod with ${CONFIG_MAPS} configMap + ${SECRETS} secret volumes ${ms(withP50)} vs none ${ms(withoutP50)} (createPod→running p50): ratio ${singleRatio.toFixed(2)}`,
      `volumes: ${PODS} pods with an emptyDir each ${ms(emptyDirMs)} vs none ${ms(plainMs)} (all running, median): ratio ${burstRatio.toFixed(2)}`,
    ];
    appendFileSync(summary, lines.join("\n") + "\n");
  }
}

await main();
// The engine's bus may keep timers alive briefly after close; the figures are out, so leave now.
process.exit(0);
