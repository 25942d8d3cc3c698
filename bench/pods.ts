/**
 * Pod start throughput: N one-container pods (`/bin/sleep infinity`) created concurrently through the
 * in-process PodEngine, against N bare `systemd-run --user` calls, in the same systemd manager, same run.
 *
 * Variants, measured from the first start request until a single ListUnitsByPatterns says every unit is
 * active/running (the same check for all of them):
 *   engine        PodEngine.createPod for all pods at once (what `serve` does when the API server sends
 *                 many pods): validation, image resolution, record writes, StartTransientUnit, job wait.
 *   manager       the plans the engine produced, replayed through engine.systemd.startUnit directly: the
 *                 D-Bus and systemd part of `engine` alone, so engine − manager is vks' own overhead.
 *   systemd-run   `systemd-run --user --unit=… /bin/sleep infinity`, BENCH_PARALLEL processes at a time
 *                 (the engine's bus client keeps at most 16 calls in flight, so 16 is the comparable width).
 *   systemd-run×1 the same, one process at a time.
 * Rounds rotate the order so no variant always runs on a warmer (or more fragmented) manager.
 *
 * Figures are printed, never asserted: the machine is shared and noisy. Run inside test/sandbox.sh (or
 * where systemd is PID 1 with a user manager); bench/run.sh does that.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { randomUUID } from "node:crypto";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PodEngine } from "../internal/pod/engine.ts";
import { BusConnection, type MethodCall } from "../internal/systemd/bus.ts";
import type { UnitPlan } from "../internal/systemd/types.ts";
import { Observer, ms, run, systemctl } from "./engine-bench.ts";
import { positiveInt, median } from "./knobs.ts";

const PODS = positiveInt("BENCH_PODS", 100);
const ROUNDS = positiveInt("BENCH_ROUNDS", 3);
const PARALLEL = positiveInt("BENCH_PARALLEL", 16);
/** Sequential systemd-run costs PODS × ~10–50 ms per round; BENCH_SEQUENTIAL=0 skips it. */
const SEQUENTIAL = process.env.BENCH_SEQUENTIAL !== "0";
const NAMESPACE = "bench";
const GOAL_RATIO = 1.5;

/** Runs `task` on every item with at most `width` running at once. */
async function pool<T>(items: T[], width: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

function sleepPod(name: string): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NAMESPACE, uid: randomUUID() },
    spec: { containers: [{ name: "c", image: "/bin/sleep", args: ["infinity"] }] },
  };
}

/** Where the engine spends its time, gathered by wrapping two of its collaborators (nothing is changed). */
interface EngineProfile {
  /** Wall time from the first createPod call to the first startUnit call. */
  firstStartAt: number;
  /** Summed time inside records.put (record writes happen before each pod's units start). */
  recordPutMs: number;
  /** Summed time inside systemd.startUnit, concurrently running calls each counted. */
  startUnitMs: number;
  plans: UnitPlan[];
  /** D-Bus method calls the engine's connection made, by member (Get, StartTransientUnit, …). */
  busCalls: Map<string, number>;
}

function instrument(engine: PodEngine): { profile: EngineProfile; reset: (t0: number) => void } {
  let t0 = 0;
  const profile: EngineProfile = { firstStartAt: -1, recordPutMs: 0, startUnitMs: 0, plans: [], busCalls: new Map() };
  const startUnit = engine.systemd.startUnit.bind(engine.systemd);
  engine.systemd.startUnit = async (plan: UnitPlan) => {
    const started = performance.now();
    if (profile.firstStartAt < 0) profile.firstStartAt = started - t0;
    profile.plans.push(plan);
    try {
      return await startUnit(plan);
    } finally {
      profile.startUnitMs += performance.now() - started;
    }
  };
  const put = engine.records.put.bind(engine.records);
  engine.records.put = async (...args: Parameters<typeof put>) => {
    const started = performance.now();
    try {
      return await put(...args);
    } finally {
      profile.recordPutMs += performance.now() - started;
    }
  };
  // The manager's connection is private; reaching it by name is for counting only, and is skipped
  // should it ever be renamed.
  const bus: unknown = Reflect.get(engine.systemd, "bus");
  if (bus instanceof BusConnection) {
    const call = bus.call.bind(bus);
    bus.call = (message: MethodCall, timeoutMs?: number) => {
      profile.busCalls.set(message.member, (profile.busCalls.get(message.member) ?? 0) + 1);
      return timeoutMs === undefined ? call(message) : call(message, timeoutMs);
    };
  }
  return {
    profile,
    reset: (start: number) => {
      t0 = start;
      Object.assign(profile, { firstStartAt: -1, recordPutMs: 0, startUnitMs: 0, plans: [], busCalls: new Map() });
    },
  };
}

interface Measurement {
  /** Until every start call returned. */
  calls: number;
  /** Until systemd reported every unit running. */
  total: number;
}

async function main(): Promise<void> {
  if (!process.env.DBUS_SESSION_BUS_ADDRESS) throw new Error("no user bus: run through bench/run.sh or test/sandbox.sh");
  const stateDir = mkdtempSync(join(tmpdir(), "vks-bench-pods-"));
  const replayLogDir = join(stateDir, "replay-logs");
  const observer = await Observer.open();
  const openStarted = performance.now();
  const engine = await PodEngine.open({ scope: "user", stateDir });
  const openMs = performance.now() - openStarted;
  const { profile, reset } = instrument(engine);
  const results: Record<string, number[]> = { engine: [], manager: [], "systemd-run": [], "systemd-run×1": [] };
  const callTimes: Record<string, number[]> = { engine: [], manager: [], "systemd-run": [], "systemd-run×1": [] };
  const profiles: Array<Omit<EngineProfile, "plans" | "busCalls">> = [];
  /** Bus calls per variant, counted from the first start request until all units ran (last round). */
  const busCalls: Record<string, Map<string, number>> = {};
  let lastPlans: UnitPlan[] = [];
  let livePods: V1Pod[] = [];
  let lastBusCalls = new Map<string, number>();

  const measure = async (start: () => Promise<void>, pattern: string): Promise<Measurement> => {
    const t0 = performance.now();
    reset(t0);
    await start();
    const calls = performance.now() - t0;
    await observer.waitRunning(pattern, PODS);
    const total = performance.now() - t0;
    // Calls the engine's cache makes for signals that arrive after this point are not counted.
    lastBusCalls = new Map(profile.busCalls);
    return { calls, total };
  };

  const variants: Record<string, (round: number) => Promise<Measurement>> = {
    engine: async (round) => {
      const pods = Array.from({ length: PODS }, (_, i) => sleepPod(`r${round}-p${i}`));
      livePods = pods;
      const pattern = `vks.${NAMESPACE}.r${round}-p*.service`;
      const result = await measure(async () => {
        await Promise.all(pods.map((pod) => engine.createPod(pod)));
      }, pattern);
      profiles.push({ firstStartAt: profile.firstStartAt, recordPutMs: profile.recordPutMs, startUnitMs: profile.startUnitMs });
      lastPlans = [...profile.plans];
      await Promise.all(pods.map((pod) => engine.deletePod(pod)));
      livePods = [];
      await observer.waitGone(pattern);
      return result;
    },
    manager: async (round) => {
      if (lastPlans.length === 0) throw new Error("no engine plans to replay yet");
      // The engine's own plans under fresh names; output goes to files that exist, as in file log mode.
      await mkdir(replayLogDir, { recursive: true });
      const plans: UnitPlan[] = lastPlans.map((plan, i) => {
        const properties = { ...plan.properties };
        if (properties.standardOutputFile) properties.standardOutputFile = join(replayLogDir, `${i}.log`);
        if (properties.standardErrorFile) properties.standardErrorFile = join(replayLogDir, `${i}.log`);
        return { ...plan, unitName: `vks.${NAMESPACE}.m${round}-p${i}.c.${randomUUID()}.service`, properties };
      });
      const pattern = `vks.${NAMESPACE}.m${round}-p*.service`;
      const result = await measure(async () => {
        await Promise.all(plans.map((plan) => engine.systemd.startUnit(plan)));
      }, pattern);
      await Promise.all(plans.map((plan) => engine.systemd.stopUnit(plan.unitName)));
      await observer.waitGone(pattern);
      return result;
    },
    "systemd-run": async (round) => {
      const names = Array.from({ length: PODS }, (_, i) => `bench-r${round}-${i}`);
      const pattern = `bench-r${round}-*.service`;
      const result = await measure(
        () => pool(names, PARALLEL, (name) => run(["systemd-run", "--user", "--quiet", `--unit=${name}`, "/bin/sleep", "infinity"])),
        pattern,
      );
      await systemctl(["stop", pattern]);
      await observer.waitGone(pattern);
      return result;
    },
    "systemd-run×1": async (round) => {
      const names = Array.from({ length: PODS }, (_, i) => `bench-s${round}-${i}`);
      const pattern = `bench-s${round}-*.service`;
      const result = await measure(
        () => pool(names, 1, (name) => run(["systemd-run", "--user", "--quiet", `--unit=${name}`, "/bin/sleep", "infinity"])),
        pattern,
      );
      await systemctl(["stop", pattern]);
      await observer.waitGone(pattern);
      return result;
    },
  };

  const order = ["engine", "manager", "systemd-run", ...(SEQUENTIAL ? ["systemd-run×1"] : [])];
  // manager replays the plans engine just made, so the two stay together; the blocks rotate per round.
  const blocks = [["engine", "manager"], ["systemd-run"], ...(SEQUENTIAL ? [["systemd-run×1"]] : [])];
  console.log(`pods: ${PODS} pods × ${ROUNDS} rounds, systemd-run width ${PARALLEL}; PodEngine.open ${ms(openMs)}`);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const shift = round % blocks.length;
      const rotated = blocks.slice(shift).concat(blocks.slice(0, shift)).flat();
      const line: string[] = [];
      for (const name of rotated) {
        const result = await variants[name]!(round);
        results[name]!.push(result.total);
        if (name === "engine" || name === "manager") busCalls[name] = lastBusCalls;
        callTimes[name]!.push(result.calls);
        line.push(`${name} ${ms(result.total)}`);
      }
      console.log(`  round ${round + 1}: ${line.join(", ")}`);
    }
  } finally {
    // Whatever happened, leave nothing running for the next benchmark.
    await Promise.allSettled(livePods.map((pod) => engine.deletePod(pod)));
    await systemctl(["stop", `vks.${NAMESPACE}.*`, "bench-*"]).catch(() => undefined);
    await systemctl(["reset-failed"]).catch(() => undefined);
    await engine.close();
    observer.close();
    rmSync(stateDir, { recursive: true, force: true });
  }

  const med = (name: string): number => median(results[name] ?? []);
  const engineMs = med("engine");
  const runMs = med("systemd-run");
  const ratio = engineMs / runMs;
  console.log("");
  console.log(`  ${"variant".padEnd(15)} ${"median".padStart(8)} ${"per pod".padStart(9)} ${"calls done".padStart(11)}   runs`);
  for (const name of order) {
    const values = results[name] ?? [];
    if (values.length === 0) continue;
    console.log(
      `  ${name.padEnd(15)} ${ms(median(values)).padStart(8)} ${(median(values) / PODS).toFixed(1).padStart(6)} ms ${ms(median(callTimes[name] ?? [])).padStart(11)}   ${values.map((v) => v.toFixed(0)).join(" ")}`,
    );
  }
  const prof = {
    firstStart: median(profiles.map((p) => p.firstStartAt)),
    recordPut: median(profiles.map((p) => p.recordPutMs)),
    startUnit: median(profiles.map((p) => p.startUnitMs)),
  };
  console.log("");
  console.log(`  engine profile (medians): first startUnit after ${ms(prof.firstStart)}; Σ records.put ${ms(prof.recordPut)} (${(prof.recordPut / PODS).toFixed(1)} ms/pod);`);
  console.log(`    Σ startUnit ${ms(prof.startUnit)} (${(prof.startUnit / PODS).toFixed(1)} ms/call incl. queueing behind the 16-call limit)`);
  for (const [name, counts] of Object.entries(busCalls)) {
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const byMember = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([member, n]) => `${member} ${n}`);
    console.log(`  ${name} D-Bus calls (last round): ${total} = ${(total / PODS).toFixed(1)} per pod (${byMember.join(", ")})`);
  }
  console.log(`  engine / manager = ${(engineMs / med("manager")).toFixed(2)} (vks' own work on top of the D-Bus calls)`);
  console.log(`  engine / systemd-run (width ${PARALLEL}) = ${ratio.toFixed(2)}  (goal ≤ ${GOAL_RATIO}: ${ratio <= GOAL_RATIO ? "met" : "MISSED"})`);
  if (SEQUENTIAL) console.log(`  engine / systemd-run×1 = ${(engineMs / med("systemd-run×1")).toFixed(2)}`);

  const summary = process.env.BENCH_SUMMARY;
  if (summary) {
    const lines = [
      `pods: ${PODS} pods, engine ${ms(engineMs)} vs systemd-run (width ${PARALLEL}) ${ms(runMs)}: ratio ${ratio.toFixed(2)} (goal ≤ ${GOAL_RATIO}, ${ratio <= GOAL_RATIO ? "met" : "MISSED"})`,
      `pods: manager-only replay ${ms(med("manager"))}${SEQUENTIAL ? `, systemd-run sequential ${ms(med("systemd-run×1"))}` : ""}`,
    ];
    appendFileSync(summary, lines.join("\n") + "\n");
  }
}

await main();
// The engine's bus may keep timers alive briefly after close; the figures are out, so leave now.
process.exit(0);
