/**
 * `vks units ls` with many units: BENCH_UNITS (default 1,000) running units with vks-style names
 * (`vks.bench.p<N>.c.<uuid>.service`), then, interleaved run by run:
 *   vks ls        dist/vks units ls --user            (table)
 *   vks ls json   dist/vks units ls --user -o json
 *   systemctl     systemctl --user list-units 'vks.*'
 *   vks --version dist/vks --version                  (the binary's start cost alone, for the breakdown)
 *   systemctl show  systemctl --user show -p MainPID,NRestarts,… 'vks.*': a native tool reading the
 *                 per-unit fields `vks units ls` shows beyond ListUnitsByPatterns' row (reference only)
 * and, in this process, the two halves of what `vks units ls` does once started: connecting plus
 * SystemdManager.listUnits, and the single ListUnitsByPatterns call systemctl makes.
 *
 * Medians are printed with ratios; nothing is asserted. Run inside test/sandbox.sh; bench/run.sh does.
 */
import { randomUUID } from "node:crypto";
import { appendFileSync } from "node:fs";
import { resolve } from "node:path";
import { Variant } from "dbus-next";
import { BusConnection } from "../internal/systemd/bus.ts";
import { SystemdManager } from "../internal/systemd/manager.ts";
import { VKS_UNIT_GLOB } from "../internal/unit/name.ts";
import { positiveInt, median } from "./knobs.ts";

const UNITS = positiveInt("BENCH_UNITS", 1000);
const RUNS = positiveInt("BENCH_RUNS", 9);
const VKS = resolve(process.env.VKS_BIN ?? "dist/vks");
const GOAL_RATIO = 1.2;
/** `vks units ls` against `systemctl show` of the same columns (issue 9). */
const GOAL_SHOW_RATIO = 0.5;
const PATTERN = "vks.bench.*";

const SYSTEMD = { destination: "org.freedesktop.systemd1", path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager" };



const ms = (value: number): string => `${value.toFixed(1)} ms`;

/**
 * Setup and cleanup calls get a long timeout: right after 1,000 starts systemd spends many seconds forking
 * (measured: ~18 s on 2 busy cores) and answers nothing meanwhile, beyond the bus's default 25 s at times.
 */
const SLOW_CALL_MS = 180_000;

async function listByPattern(bus: BusConnection, pattern: string, timeoutMs = SLOW_CALL_MS): Promise<Array<[string, string, string]>> {
  const reply = await bus.call({ ...SYSTEMD, member: "ListUnitsByPatterns", signature: "asas", body: [[], [pattern]] }, timeoutMs);
  const rows = reply.body[0];
  if (!Array.isArray(rows)) throw new Error("ListUnitsByPatterns: unexpected reply");
  return rows.map((row: unknown) => {
    if (!Array.isArray(row)) throw new Error("ListUnitsByPatterns: unexpected row");
    return [String(row[0]), String(row[3]), String(row[4])];
  });
}

/**
 * The cheapest way to get many vks-named units: StartTransientUnit with ExecStart only, without waiting
 * for each job (the bus client still bounds the calls in flight), then one poll until all run.
 */
async function createUnits(bus: BusConnection): Promise<void> {
  await Promise.all(
    Array.from({ length: UNITS }, (_, i) =>
      bus.call({
        ...SYSTEMD,
        member: "StartTransientUnit",
        signature: "ssa(sv)a(sa(sv))",
        body: [
          `vks.bench.p${i}.c.${randomUUID()}.service`,
          "fail",
          [
            ["Description", new Variant("s", `bench unit ${i}`)],
            ["ExecStart", new Variant("a(sasb)", [["/bin/sleep", ["/bin/sleep", "infinity"], false]])],
          ],
          [],
        ],
      }, SLOW_CALL_MS),
    ),
  );
  for (const deadline = performance.now() + SLOW_CALL_MS; ; ) {
    const running = (await listByPattern(bus, PATTERN)).filter(([, active, sub]) => active === "active" && sub === "running").length;
    if (running >= UNITS) return;
    if (performance.now() > deadline) throw new Error(`only ${running}/${UNITS} bench units running after ${SLOW_CALL_MS / 1000} s`);
    await Bun.sleep(20);
  }
}

async function removeUnits(bus: BusConnection): Promise<void> {
  const stop = Bun.spawn(["systemctl", "--user", "--no-pager", "stop", PATTERN], { stdout: "ignore", stderr: "inherit" });
  await stop.exited;
  for (const deadline = performance.now() + SLOW_CALL_MS; ; ) {
    const left = await listByPattern(bus, PATTERN);
    if (left.length === 0) return;
    if (left.every(([, active]) => active === "failed")) {
      await Bun.spawn(["systemctl", "--user", "reset-failed", PATTERN]).exited;
      continue;
    }
    if (performance.now() > deadline) throw new Error(`${left.length} bench units still loaded after ${SLOW_CALL_MS / 1000} s`);
    await Bun.sleep(20);
  }
}

interface Command {
  label: string;
  argv: string[];
  /** Whether the output lists every bench unit; a run that does not is counted as incomplete. */
  complete?: (stdout: string) => boolean;
}

const benchLines = (stdout: string): number => stdout.split("\n").filter((line) => line.includes("vks.bench.")).length;

function jsonRows(stdout: string): number {
  try {
    const rows: unknown = JSON.parse(stdout);
    return Array.isArray(rows) ? rows.length : -1;
  } catch {
    return -1;
  }
}

/** Wall time of one run, stdout read to the end (as a terminal or pipe would); fails on a non-zero exit. */
async function timeCommand(command: Command): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  const proc = Bun.spawn(command.argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  const elapsed = performance.now() - started;
  if (code !== 0) throw new Error(`${command.argv.join(" ")} exited ${code}: ${stderr.trim()}`);
  return { ms: elapsed, stdout };
}

async function main(): Promise<void> {
  if (!process.env.DBUS_SESSION_BUS_ADDRESS) throw new Error("no user bus: run through bench/run.sh or test/sandbox.sh");
  const bus = await BusConnection.open({ scope: "user" });
  const commands: Command[] = [
    { label: "vks ls", argv: [VKS, "units", "ls", "--user"], complete: (out) => benchLines(out) >= UNITS },
    { label: "systemctl", argv: ["systemctl", "--user", "--no-pager", "list-units", "vks.*"], complete: (out) => benchLines(out) >= UNITS },
    { label: "vks ls json", argv: [VKS, "units", "ls", "--user", "-o", "json"], complete: (out) => jsonRows(out) >= UNITS },
    { label: "vks --version", argv: [VKS, "--version"] },
    {
      label: "systemctl show",
      argv: ["systemctl", "--user", "--no-pager", "show", "-p", "MainPID,NRestarts,ExecMainStartTimestamp,ActiveEnterTimestamp", "vks.*"],
    },
  ];
  const times = new Map<string, number[]>(commands.map((c) => [c.label, []]));
  // Output cut short (e.g. an exit before stdout drained) would make a run look faster than it is.
  const incomplete = new Map<string, number>();
  const inProcess = { connect: [] as number[], listUnits: [] as number[], listByPattern: [] as number[] };

  const createStarted = performance.now();
  try {
    await createUnits(bus);
    console.log(`units-ls: ${UNITS} units started in ${(performance.now() - createStarted).toFixed(0)} ms; ${RUNS} interleaved runs each`);

    // Warm-up: page cache for the binary, systemd's unit lookups.
    for (const command of commands.slice(0, 3)) await timeCommand(command);

    for (let run = 0; run < RUNS; run++) {
      // Rotate the order so neither tool always runs right after the other's cache effects.
      const shift = run % commands.length;
      for (const command of commands.slice(shift).concat(commands.slice(0, shift))) {
        const result = await timeCommand(command);
        times.get(command.label)!.push(result.ms);
        if (command.complete && !command.complete(result.stdout)) incomplete.set(command.label, (incomplete.get(command.label) ?? 0) + 1);
      }
      const t0 = performance.now();
      const manager = await SystemdManager.connect({ scope: "user" });
      const t1 = performance.now();
      const states = await manager.listUnits([VKS_UNIT_GLOB]);
      const t2 = performance.now();
      await manager.close();
      if (states.length < UNITS) console.log(`  warning: SystemdManager.listUnits returned ${states.length} units`);
      await listByPattern(bus, VKS_UNIT_GLOB);
      const t3 = performance.now();
      inProcess.connect.push(t1 - t0);
      inProcess.listUnits.push(t2 - t1);
      inProcess.listByPattern.push(t3 - t2);
    }
  } finally {
    await removeUnits(bus).catch((err: unknown) => console.error(`units-ls: cleanup failed: ${String(err)}`));
    bus.close();
  }

  const med = (label: string): number => median(times.get(label) ?? []);
  console.log("");
  for (const command of commands) {
    const values = times.get(command.label) ?? [];
    console.log(`  ${command.label.padEnd(14)} median ${ms(med(command.label)).padStart(10)}   runs ${values.map((v) => v.toFixed(0)).join(" ")}`);
  }
  for (const [label, count] of incomplete) console.log(`  warning: ${label}: ${count}/${RUNS} runs printed fewer than ${UNITS} units`);
  const ratio = med("vks ls") / med("systemctl");
  const jsonRatio = med("vks ls json") / med("systemctl");
  const showRatio = med("vks ls") / med("systemctl show");
  const showRatios = (times.get("vks ls") ?? []).map((v, i) => v / ((times.get("systemctl show") ?? [])[i] ?? Number.NaN));
  console.log("");
  console.log(`  in-process (medians): SystemdManager.connect ${ms(median(inProcess.connect))}, listUnits(${UNITS}) ${ms(median(inProcess.listUnits))},`);
  console.log(`    one ListUnitsByPatterns call ${ms(median(inProcess.listByPattern))}`);
  console.log(`  vks ls / systemctl = ${ratio.toFixed(2)}  (goal ≤ ${GOAL_RATIO}: ${ratio <= GOAL_RATIO ? "met" : "MISSED"})`);
  console.log(`  vks ls json / systemctl = ${jsonRatio.toFixed(2)}`);
  console.log(
    `  vks ls / systemctl show (same columns) = ${showRatio.toFixed(2)}  (goal ≤ ${GOAL_SHOW_RATIO}: ${showRatio <= GOAL_SHOW_RATIO ? "met" : "MISSED"}; per run ${showRatios.map((r) => r.toFixed(2)).join(" ")})`,
  );
  console.log(`  systemctl show / systemctl list-units = ${(med("systemctl show") / med("systemctl")).toFixed(2)} (what per-unit property reads cost a native tool)`);
  console.log(`  vks ls − vks --version = ${ms(med("vks ls") - med("vks --version"))} (the listing itself, without process start)`);

  const summary = process.env.BENCH_SUMMARY;
  if (summary) {
    appendFileSync(
      summary,
      [
        `units-ls: ${UNITS} units, vks units ls ${ms(med("vks ls"))} vs systemctl list-units ${ms(med("systemctl"))}: ratio ${ratio.toFixed(2)} (goal ≤ ${GOAL_RATIO}, ${ratio <= GOAL_RATIO ? "met" : "MISSED"})`,
        `units-ls: vks units ls / systemctl show (same columns, ${ms(med("systemctl show"))}) = ${showRatio.toFixed(2)} (goal ≤ ${GOAL_SHOW_RATIO}, ${showRatio <= GOAL_SHOW_RATIO ? "met" : "MISSED"})`,
        `units-ls: -o json ${ms(med("vks ls json"))} (ratio ${jsonRatio.toFixed(2)}); in-process listUnits ${ms(median(inProcess.listUnits))} vs one ListUnitsByPatterns ${ms(median(inProcess.listByPattern))}`,
      ].join("\n") + "\n",
    );
  }
}

await main();
process.exit(0);
