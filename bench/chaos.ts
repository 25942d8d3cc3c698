/**
 * Chaos: create/delete cycles through `vks serve` and through `vks pod up -d` / `pod down`, with faults
 * injected at random points (issue 9 §4), then what was left behind counted. Prints figures; never
 * asserts (a non-zero count is a vks bug to find, not a failed run).
 *
 * Faults, one per create and one per delete (chosen by the seeded generator, at a random delay):
 *   kill      SIGKILL of the vks process (serve: restarted at once; pod up/down: run again, as a user would)
 *   reexec    systemctl --user daemon-reexec
 *   reload    systemctl --user daemon-reload
 *   none
 *
 * After every cycle the run waits (bounded) for the node to converge, then counts:
 *   orphan units   vks units of a pod that is not wanted (deleted from the API / `pod down` done)
 *   lost pods      wanted pods with no unit (or, under pod up, no record)
 *   duplicates     a wanted pod with more than one unit per container, or units under another UID
 *   unconverged    wanted pods whose status never showed Running and ready (serve: in the API; pod up:
 *                  in `pod ls`), and deleted pods still in the API
 * Each problem (a pod or unit) is counted once however many cycles it lasts; what cleanup can do (stop
 * orphan units, remove pods stuck deleting) is done so later cycles start clean.
 *
 * Run inside test/sandbox.sh: `test/sandbox.sh bun bench/chaos.ts --cycles 10`.
 * Flags: --cycles N (BENCH_CHAOS_CYCLES, 100), --mode serve|up|both (both), --seed S (random; printed),
 * --timeout SECONDS to converge per cycle (60). Needs dist/vks (`bun run build`).
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { BusConnection } from "../internal/systemd/bus.ts";
import { parseUnitName } from "../internal/unit/name.ts";
import { startTestApiServer, type RunningTestApiServer } from "../test/apiserver/client.ts";
import type { JsonObject } from "../test/apiserver/json.ts";
import { positiveInt } from "./knobs.ts";
import { seededRandom } from "../test/seeded-random.ts";

const { values: flags } = parseArgs({
  options: {
    cycles: { type: "string" },
    mode: { type: "string", default: "both" },
    seed: { type: "string" },
    timeout: { type: "string", default: "60" },
  },
});
const CYCLES = flags.cycles === undefined ? positiveInt("BENCH_CHAOS_CYCLES", 100) : Number(flags.cycles);
const MODE = flags.mode ?? "both";
const SEED = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(flags.seed);
const CONVERGE_MS = Number(flags.timeout) * 1000;
if (!Number.isInteger(CYCLES) || CYCLES < 1) throw new Error("--cycles must be a positive integer");
if (!["serve", "up", "both"].includes(MODE)) throw new Error("--mode must be serve, up or both");

const VKS = resolve(import.meta.dir, "../dist/vks");
const NODE = "chaos-node";
const SYSTEMD = { destination: "org.freedesktop.systemd1", path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager" };
/** Pods alive at once under serve: each cycle creates one and deletes the one created WINDOW cycles ago. */
const WINDOW = 3;

type Fault = "kill" | "reexec" | "reload" | "none";
const FAULTS: Fault[] = ["kill", "reexec", "reload", "none"];

const random = seededRandom(SEED);
const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)] as T;
const between = (low: number, high: number): number => Math.floor(low + random() * (high - low));

interface Figures {
  cycles: number;
  faults: Record<Fault, number>;
  orphanUnits: number;
  lostPods: number;
  duplicateUnits: number;
  unconverged: number;
  /** Exits of vks other than 0 and SIGKILL (the kills are ours), e.g. 70: each one a finding. */
  unexpectedExits: string[];
  details: string[];
  /** Problems already counted (kind and pod or unit): one stuck over several cycles counts once. */
  counted: Set<string>;
}

/** Adds the items not counted before to figure `kind`. */
function countOnce(figures: Figures, kind: "orphanUnits" | "lostPods" | "duplicateUnits" | "unconverged", items: string[]): void {
  for (const item of items) {
    const key = `${kind} ${item}`;
    if (figures.counted.has(key)) continue;
    figures.counted.add(key);
    figures[kind]++;
  }
}

function newFigures(): Figures {
  return { cycles: 0, faults: { kill: 0, reexec: 0, reload: 0, none: 0 }, orphanUnits: 0, lostPods: 0, duplicateUnits: 0, unconverged: 0, unexpectedExits: [], details: [], counted: new Set() };
}

interface LoadedUnit {
  name: string;
  namespace: string;
  pod: string;
  container: string;
  uid: string;
  activeState: string;
}

async function vksUnits(bus: BusConnection, namespace: string): Promise<LoadedUnit[]> {
  const list = () => bus.call({ ...SYSTEMD, member: "ListUnitsByPatterns", signature: "asas", body: [[], [`vks.${namespace}.*`]] }, 120_000);
  // The benchmark's own reads meet the re-execs it causes: systemd is off the bus for a moment.
  let reply: Awaited<ReturnType<typeof list>> | undefined;
  for (let attempt = 0; reply === undefined; attempt++) {
    try {
      reply = await list();
    } catch (err) {
      if (attempt >= 50) throw err;
      await Bun.sleep(100);
    }
  }
  const rows = Array.isArray(reply.body[0]) ? (reply.body[0] as unknown[][]) : [];
  return rows.flatMap((row) => {
    const name = String(row[0]);
    const parsed = parseUnitName(name);
    if (parsed === undefined || row[2] === "not-found") return [];
    return [{ name, namespace: parsed.namespace, pod: parsed.pod, container: parsed.container, uid: parsed.uid, activeState: String(row[3]) }];
  });
}

function systemctl(...args: string[]): void {
  const run = Bun.spawnSync(["systemctl", "--user", ...args], { stdout: "ignore", stderr: "pipe" });
  if (run.exitCode !== 0) throw new Error(`systemctl --user ${args.join(" ")}: ${run.stderr.toString().trim()}`);
}

async function injectManagerFault(fault: Fault): Promise<void> {
  if (fault === "reexec") systemctl("daemon-reexec");
  if (fault === "reload") systemctl("daemon-reload");
}

async function untilDeadline<T>(deadline: number, check: () => Promise<T | undefined>): Promise<T | undefined> {
  for (;;) {
    const value = await check();
    if (value !== undefined || performance.now() > deadline) return value;
    await Bun.sleep(100);
  }
}

/** Problems of one namespace's units against the pods wanted there (name → uid, containers). */
function unitProblems(units: LoadedUnit[], wanted: Map<string, string>): { orphans: LoadedUnit[]; lost: string[]; duplicates: string[] } {
  const orphans = units.filter((unit) => wanted.get(unit.pod) !== unit.uid && !wanted.has(unit.pod));
  const lost: string[] = [];
  const duplicates: string[] = [];
  for (const [pod, uid] of wanted) {
    const mine = units.filter((unit) => unit.pod === pod);
    if (mine.length === 0) lost.push(pod);
    else if (mine.length > 1 || mine.some((unit) => unit.uid !== uid)) duplicates.push(`${pod}: ${mine.map((unit) => unit.name).join(", ")}`);
  }
  return { orphans, lost, duplicates };
}

// ---------------------------------------------------------------------------------------------------
// serve

class ServeProcess {
  private proc: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
  output = "";

  constructor(
    private readonly cluster: RunningTestApiServer,
    private readonly stateDir: string,
    private readonly figures: Figures,
  ) {}

  start(): void {
    const proc = Bun.spawn(
      // Port 0: the sandbox shares the host's network, where another serve may hold 10250.
      [VKS, "serve", "--user", "--kubeconfig", this.cluster.kubeconfigPath, "--nodename", NODE, "--node-ip", "127.0.0.1", "--kubelet-address", "127.0.0.1", "--kubelet-port", "0", "--state-dir", this.stateDir],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } },
    );
    this.proc = proc;
    const decoder = new TextDecoder();
    for (const stream of [proc.stdout, proc.stderr]) {
      void stream
        .pipeTo(new WritableStream({ write: (chunk) => void (this.output = (this.output + decoder.decode(chunk)).slice(-20_000)) }))
        .catch(() => undefined);
    }
    void proc.exited.then((code) => {
      if (this.proc === proc && proc.signalCode !== "SIGKILL" && proc.signalCode !== "SIGTERM") {
        this.figures.unexpectedExits.push(`serve exited ${code} on its own: ${this.output.slice(-600)}`);
        // Counted; started again (as its service unit would) so one failure does not spoil every later cycle.
        this.start();
      }
    });
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    if (proc === undefined) return;
    proc.kill("SIGKILL");
    await proc.exited;
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc === undefined) return;
    proc.kill("SIGTERM");
    await proc.exited;
  }
}

function podSpec(name: string): JsonObject {
  return {
    metadata: { name, namespace: "default" },
    spec: { nodeName: NODE, terminationGracePeriodSeconds: 5, containers: [{ name: "c", image: "/bin/sleep", args: ["infinity"] }] },
  };
}

function runningAndReady(pod: JsonObject | undefined): boolean {
  const status = pod?.["status"] as JsonObject | undefined;
  const containers = (status?.["containerStatuses"] ?? []) as JsonObject[];
  return status?.["phase"] === "Running" && containers.length === 1 && containers[0]?.["ready"] === true;
}

async function serveChaos(bus: BusConnection): Promise<Figures> {
  const figures = newFigures();
  const stateDir = mkdtempSync(join(tmpdir(), "vks-chaos-serve-"));
  const cluster = await startTestApiServer({ nodeName: NODE, historyLimit: 100_000 });
  const serve = new ServeProcess(cluster, stateDir, figures);
  const api = cluster.admin;
  /** Wanted pods: name → uid. */
  const wanted = new Map<string, string>();
  const order: string[] = [];

  const fault = async (where: string): Promise<void> => {
    const chosen = pick(FAULTS);
    figures.faults[chosen]++;
    await Bun.sleep(between(0, 400));
    if (chosen === "kill") {
      await serve.kill();
      serve.start();
    } else {
      await injectManagerFault(chosen);
    }
    void where;
  };

  try {
    serve.start();
    await api.waitFor("nodes", NODE, "", (node) =>
      (((node?.["status"] as JsonObject | undefined)?.["conditions"] ?? []) as JsonObject[]).some((c) => c["type"] === "Ready" && c["status"] === "True"),
    );
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      figures.cycles++;
      const name = `chaos-${cycle}`;
      const created = await api.create("pods", podSpec(name));
      wanted.set(name, String((created["metadata"] as JsonObject)["uid"]));
      order.push(name);
      await fault(`create ${name}`);
      const victim = order.length > WINDOW ? order.shift() : undefined;
      if (victim !== undefined) {
        wanted.delete(victim);
        await api.delete("pods", victim).catch(() => undefined);
        await fault(`delete ${victim}`);
      }
      await checkServe(bus, api, wanted, figures, cycle);
      if ((cycle + 1) % 10 === 0) console.log(`  serve: ${cycle + 1}/${CYCLES} cycles; so far ${summary(figures)}`);
    }
    for (const name of order) await api.delete("pods", name).catch(() => undefined);
    wanted.clear();
    await checkServe(bus, api, wanted, figures, CYCLES);
  } catch (err) {
    console.error(serve.output.slice(-4000));
    throw err;
  } finally {
    await serve.stop();
    await cluster.stop();
    for (const unit of await vksUnits(bus, "default")) Bun.spawnSync(["systemctl", "--user", "stop", unit.name]);
    rmSync(stateDir, { recursive: true, force: true });
  }
  return figures;
}

async function checkServe(bus: BusConnection, api: RunningTestApiServer["admin"], wanted: Map<string, string>, figures: Figures, cycle: number): Promise<void> {
  const deadline = performance.now() + CONVERGE_MS;
  const converged = await untilDeadline(deadline, async () => {
    const pods = await api.list("pods", { namespace: "default" });
    const units = await vksUnits(bus, "default");
    const problems = unitProblems(units, wanted);
    const stuck = pods.filter((pod) => !wanted.has(String((pod["metadata"] as JsonObject)["name"])));
    const notReady = [...wanted.keys()].filter((name) => !runningAndReady(pods.find((pod) => (pod["metadata"] as JsonObject)["name"] === name)));
    const clean = problems.orphans.length + problems.lost.length + problems.duplicates.length + stuck.length + notReady.length === 0;
    return clean ? true : undefined;
  });
  if (converged) return;
  // Not converged in time: count what is wrong now, then clean it up for the next cycle.
  const pods = await api.list("pods", { namespace: "default" });
  const units = await vksUnits(bus, "default");
  const problems = unitProblems(units, wanted);
  const stuck = pods.filter((pod) => !wanted.has(String((pod["metadata"] as JsonObject)["name"])));
  const notReady = [...wanted.keys()].filter((name) => {
    if (problems.lost.includes(name)) return false;
    return !runningAndReady(pods.find((pod) => (pod["metadata"] as JsonObject)["name"] === name));
  });
  countOnce(figures, "orphanUnits", problems.orphans.map((unit) => unit.name));
  countOnce(figures, "lostPods", problems.lost);
  countOnce(figures, "duplicateUnits", problems.duplicates);
  countOnce(figures, "unconverged", [...notReady, ...stuck.map((pod) => String((pod["metadata"] as JsonObject)["name"]))]);
  const note = (kind: string, items: string[]) => items.length > 0 && figures.details.push(`serve cycle ${cycle}: ${kind}: ${items.join("; ")}`);
  note("orphan units", problems.orphans.map((unit) => `${unit.name} (${unit.activeState})`));
  note("lost pods", problems.lost);
  note("duplicate units", problems.duplicates);
  note("never Running+ready", notReady.map((name) => {
    const status = pods.find((pod) => (pod["metadata"] as JsonObject)["name"] === name)?.["status"] as JsonObject | undefined;
    const unit = units.find((candidate) => candidate.pod === name);
    return `${name} phase ${JSON.stringify(status?.["phase"])}, containerStatuses ${JSON.stringify(status?.["containerStatuses"])}, unit ${unit?.activeState ?? "none"}`;
  }));
  note("deleted pods still in the API", stuck.map((pod) => String((pod["metadata"] as JsonObject)["name"])));
  for (const pod of stuck) await api.remove("pods", String((pod["metadata"] as JsonObject)["name"])).catch(() => undefined);
  for (const unit of problems.orphans) Bun.spawnSync(["systemctl", "--user", "stop", unit.name]);
}

// ---------------------------------------------------------------------------------------------------
// pod up / pod down

interface VksRun {
  code: number | null;
  killed: boolean;
  stdout: string;
  output: string;
}

/** Runs dist/vks; with `killAfterMs`, SIGKILLs it then if it still runs. */
async function runVks(stateDir: string, args: string[], killAfterMs?: number): Promise<VksRun> {
  const proc = Bun.spawn([VKS, ...args, "--user", "--state-dir", stateDir], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  let killed = false;
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => {
    if (proc.exitCode === null) {
      killed = true;
      proc.kill("SIGKILL");
    }
  }, killAfterMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, killed: killed && proc.signalCode === "SIGKILL", stdout, output: stdout + stderr };
}

interface ListedPod {
  metadata: { name: string; uid: string };
  status?: { phase?: string; containerStatuses?: { ready?: boolean }[] };
}

async function listedPods(stateDir: string): Promise<ListedPod[] | undefined> {
  const run = await runVks(stateDir, ["pod", "ls", "-o", "json"]);
  if (run.code !== 0) return undefined;
  const parsed = JSON.parse(run.stdout) as ListedPod[] | { items: ListedPod[] };
  return Array.isArray(parsed) ? parsed : parsed.items;
}

async function podUpChaos(bus: BusConnection): Promise<Figures> {
  const figures = newFigures();
  const stateDir = mkdtempSync(join(tmpdir(), "vks-chaos-up-"));
  const namespace = "chaos";
  const wanted = new Map<string, string>();
  const manifest = (name: string): string => {
    const file = join(stateDir, `${name}.yaml`);
    writeFileSync(
      file,
      `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n  terminationGracePeriodSeconds: 5\n  containers:\n    - {name: c, image: /bin/sleep, args: ["infinity"]}\n`,
    );
    return file;
  };
  const expectExit = (what: string, run: VksRun): void => {
    if (!run.killed && run.code !== 0) figures.unexpectedExits.push(`${what} exited ${run.code}: ${run.output.trim().slice(-400)}`);
  };
  /** Runs a vks command with a fault at a random point; a killed run is run again, as a user would. */
  const withFault = async (what: string, args: string[]): Promise<void> => {
    const chosen = pick(FAULTS);
    figures.faults[chosen]++;
    const delay = between(0, 600);
    if (chosen === "kill") {
      const run = await runVks(stateDir, args, delay);
      expectExit(what, run);
      if (run.killed) expectExit(`${what} (again after kill -9)`, await runVks(stateDir, args));
      return;
    }
    const running = runVks(stateDir, args);
    await Bun.sleep(delay);
    await injectManagerFault(chosen);
    expectExit(what, await running);
  };

  // A pod that lives through every cycle: faults must never take it.
  const witness = "chaos-witness";
  try {
    expectExit("pod up witness", await runVks(stateDir, ["pod", "up", "-d", manifest(witness)]));
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      figures.cycles++;
      const name = `chaos-up-${cycle}`;
      const file = manifest(name);
      await withFault(`pod up -d ${name}`, ["pod", "up", "-d", file]);
      await checkPodUp(bus, stateDir, namespace, [witness, name], wanted, figures, cycle, "after up");
      await withFault(`pod down ${name}`, ["pod", "down", name, "-n", namespace, "--ignore-not-found"]);
      await checkPodUp(bus, stateDir, namespace, [witness], wanted, figures, cycle, "after down");
      if ((cycle + 1) % 10 === 0) console.log(`  pod up: ${cycle + 1}/${CYCLES} cycles; so far ${summary(figures)}`);
    }
    expectExit("pod down witness", await runVks(stateDir, ["pod", "down", witness, "-n", namespace]));
    await checkPodUp(bus, stateDir, namespace, [], wanted, figures, CYCLES, "at the end");
  } finally {
    for (const unit of await vksUnits(bus, namespace)) Bun.spawnSync(["systemctl", "--user", "stop", unit.name]);
    rmSync(stateDir, { recursive: true, force: true });
  }
  return figures;
}

async function checkPodUp(
  bus: BusConnection,
  stateDir: string,
  namespace: string,
  names: string[],
  wanted: Map<string, string>,
  figures: Figures,
  cycle: number,
  when: string,
): Promise<void> {
  const deadline = performance.now() + CONVERGE_MS;
  const look = async () => {
    const pods = ((await listedPods(stateDir)) ?? []).filter((pod) => names.includes(pod.metadata.name) || pod.metadata.name.startsWith("chaos"));
    wanted.clear();
    for (const pod of pods) if (names.includes(pod.metadata.name)) wanted.set(pod.metadata.name, pod.metadata.uid);
    const units = await vksUnits(bus, namespace);
    const problems = unitProblems(units, wanted);
    const missingRecords = names.filter((name) => !wanted.has(name));
    const extraRecords = pods.filter((pod) => !names.includes(pod.metadata.name)).map((pod) => pod.metadata.name);
    const notReady = names.filter((name) => {
      const pod = pods.find((candidate) => candidate.metadata.name === name);
      return pod !== undefined && !problems.lost.includes(name) && !(pod.status?.phase === "Running" && pod.status.containerStatuses?.[0]?.ready === true);
    });
    // A unit whose record is gone is an orphan too, whatever its name.
    return { problems, missingRecords, extraRecords, notReady };
  };
  const clean = (state: Awaited<ReturnType<typeof look>>) =>
    state.problems.orphans.length + state.problems.lost.length + state.problems.duplicates.length + state.missingRecords.length + state.extraRecords.length + state.notReady.length === 0;
  const converged = await untilDeadline(deadline, async () => (clean(await look()) ? true : undefined));
  if (converged) return;
  const state = await look();
  countOnce(figures, "orphanUnits", state.problems.orphans.map((unit) => unit.name));
  countOnce(figures, "lostPods", [...state.problems.lost, ...state.missingRecords]);
  countOnce(figures, "duplicateUnits", state.problems.duplicates);
  countOnce(figures, "unconverged", [...state.notReady, ...state.extraRecords]);
  const note = (kind: string, items: string[]) => items.length > 0 && figures.details.push(`pod up cycle ${cycle} ${when}: ${kind}: ${items.join("; ")}`);
  note("orphan units", state.problems.orphans.map((unit) => `${unit.name} (${unit.activeState})`));
  note("lost pods (no unit)", state.problems.lost);
  note("lost pods (no record)", state.missingRecords);
  note("duplicate units", state.problems.duplicates);
  note("never Running+ready", state.notReady);
  note("records left after pod down", state.extraRecords);
  // Clean up for the next cycle: what pod down leaves, and units no record owns.
  for (const name of state.extraRecords) await runVks(stateDir, ["pod", "down", name, "-n", namespace, "--ignore-not-found"]);
  for (const unit of state.problems.orphans) Bun.spawnSync(["systemctl", "--user", "stop", unit.name]);
  for (const name of state.missingRecords) {
    for (const unit of state.problems.orphans.filter((candidate) => candidate.pod === name)) Bun.spawnSync(["systemctl", "--user", "stop", unit.name]);
  }
}

// ---------------------------------------------------------------------------------------------------

function summary(figures: Figures): string {
  return `orphan units ${figures.orphanUnits}, lost pods ${figures.lostPods}, duplicate units ${figures.duplicateUnits}, unconverged ${figures.unconverged}, unexpected exits ${figures.unexpectedExits.length}`;
}

async function main(): Promise<void> {
  if (!process.env.DBUS_SESSION_BUS_ADDRESS) throw new Error("no user bus: run through test/sandbox.sh");
  const bus = await BusConnection.open({ scope: "user" });
  console.log(`chaos: seed ${SEED}, ${CYCLES} cycles per mode, mode ${MODE} (rerun with --seed ${SEED} for the same faults; timings still vary)`);
  const lines: string[] = [];
  try {
    for (const mode of MODE === "both" ? ["serve", "up"] : [MODE]) {
      const started = performance.now();
      const figures = mode === "serve" ? await serveChaos(bus) : await podUpChaos(bus);
      const seconds = ((performance.now() - started) / 1000).toFixed(0);
      const faults = Object.entries(figures.faults).map(([kind, count]) => `${kind} ${count}`).join(", ");
      const label = mode === "serve" ? "serve" : "pod up";
      lines.push(`chaos ${label}: ${figures.cycles} cycles (${seconds} s; faults: ${faults}): ${summary(figures)}`);
      for (const detail of figures.details) console.log(`  ${detail}`);
      for (const exit of figures.unexpectedExits) console.log(`  unexpected exit: ${exit}`);
    }
  } finally {
    bus.close();
  }
  for (const line of lines) console.log(line);
  if (process.env.BENCH_SUMMARY) appendFileSync(process.env.BENCH_SUMMARY, lines.map((line) => `chaos.ts  ${line} (seed ${SEED})\n`).join(""));
}

await main();
