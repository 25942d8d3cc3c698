/**
 * What probes and the restart back-off cost, through the in-process PodEngine (as pods.ts does), on the
 * sandbox's user manager. Two parts, figures printed, never asserted:
 *
 *   probes      BENCH_PROBE_PODS pods (`/bin/sleep infinity`), each with an httpGet readiness probe every
 *               1 s against one small HTTP server (Bun.serve) in its own process (a probe passes once the
 *               pod's file exists there). Once every pod runs, the files appear one by one; probe → Ready
 *               latency is from a file's creation to the engine reporting that pod Ready (its notifyPods
 *               listener), p50/p99 (goal: p99 < period + 100 ms). Then, all pods ready and probed every
 *               second, this process's CPU (the engine and its prober, nothing else runs here) over
 *               BENCH_PROBE_SECONDS, as a share of one core (goal < 5 %).
 *   crash loop  a container that exits at once, under the kubelet's back-off (the engine's pod: the unit's
 *               restart gate) and under the fixed 1 s RestartSec vks used before (a bare transient unit,
 *               Restart=always RestartSec=1), one after the other for BENCH_CRASH_SECONDS each (default
 *               120 s, a shorter window than 10 minutes): restarts counted (NRestarts) and the user
 *               manager's CPU time. The 10-minute figures are extrapolated: linearly for 1 s restarts, by
 *               the back-off schedule (restarts after 0, 10, 20, 40, 80, 160, 300 s) for the back-off.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { randomUUID } from "node:crypto";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PodEngine } from "../internal/pod/engine.ts";
import { Observer, systemctl } from "./engine-bench.ts";
import { positiveInt } from "./knobs.ts";

const PODS = positiveInt("BENCH_PROBE_PODS", 100);
const STEADY_SECONDS = positiveInt("BENCH_PROBE_SECONDS", 30);
const CRASH_SECONDS = positiveInt("BENCH_CRASH_SECONDS", 120);
const NAMESPACE = "benchprobe";
const PERIOD_SECONDS = 1;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function probedPod(index: number, port: number): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: `probed-${index}`, namespace: NAMESPACE, uid: randomUUID() },
    spec: {
      terminationGracePeriodSeconds: 2,
      containers: [
        {
          name: "c",
          image: "/bin/sleep",
          args: ["infinity"],
          readinessProbe: { httpGet: { host: "127.0.0.1", port, path: `/ready-${index}` }, periodSeconds: PERIOD_SECONDS },
        },
      ],
    },
  };
}

const isReady = (pod: V1Pod) => (pod.status?.conditions ?? []).some((condition) => condition.type === "Ready" && condition.status === "True");

/** CPU seconds (user + system) of a process, from /proc. */
function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The sandbox's user manager: the `systemd` process of this PID namespace that is not PID 1's init. */
function managerPid(): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.startsWith("/lib/systemd/systemd\0--user") || cmdline.startsWith("/usr/lib/systemd/systemd\0--user")) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

async function nRestarts(unit: string): Promise<number> {
  const proc = Bun.spawn(["systemctl", "--user", "show", "-p", "NRestarts", "--value", unit], { stdout: "pipe", stderr: "ignore" });
  return Number((await new Response(proc.stdout).text()).trim() || 0);
}

/** Restarts the back-off allows in `seconds` after the first exit: at 0, 10, 20, 40, … 300 s between them. */
function backOffRestarts(seconds: number): number {
  let t = 0;
  let count = 0;
  let wait = 0;
  for (;;) {
    t += wait + 1;
    if (t > seconds) return count;
    count++;
    wait = wait === 0 ? 10 : Math.min(wait * 2, 300);
  }
}

async function probesPart(lines: string[]): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), "vks-bench-probes-"));
  const stateDir = join(directory, "state");
  const www = join(directory, "www");
  Bun.spawnSync(["mkdir", "-p", www]);
  const port = await freePort();
  // Its own process, so this one's CPU is vks' alone. Not python's http.server: its listen backlog of 5
  // drops connections when many probes arrive together, which would measure the server, not vks.
  const serverScript = `const root = ${JSON.stringify(www)}; Bun.serve({ port: ${port}, hostname: "127.0.0.1", async fetch(request) { const file = Bun.file(root + new URL(request.url).pathname); return (await file.exists()) ? new Response("ok") : new Response("not yet", { status: 404 }); } }); console.log("listening");`;
  const server = Bun.spawn([process.execPath, "-e", serverScript], { stdout: "pipe", stderr: "ignore" });
  const reader = server.stdout.getReader();
  await reader.read();
  reader.releaseLock();
  const engine = await PodEngine.open({ scope: "user", stateDir, hostIP: "127.0.0.1", runProbes: "all" });
  const observer = await Observer.open();
  const readyAt = new Map<string, number>();
  engine.notifyPods((pod) => {
    const name = pod.metadata?.name ?? "";
    if (isReady(pod) && !readyAt.has(name)) readyAt.set(name, performance.now());
  });
  const pods = Array.from({ length: PODS }, (_, index) => probedPod(index, port));
  try {
    for (const pod of pods) await engine.createPod(pod);
    await observer.waitRunning(`vks.${NAMESPACE}.*`, PODS, 120_000);
    // Files appear one by one, spread over two periods, so probes find them at every phase of their tick.
    const createdAt = new Map<string, number>();
    const spacing = (2 * PERIOD_SECONDS * 1000) / PODS;
    for (const pod of pods) {
      const name = pod.metadata?.name ?? "";
      writeFileSync(join(www, `ready-${name.slice("probed-".length)}`), "ok");
      createdAt.set(name, performance.now());
      await Bun.sleep(spacing);
    }
    const deadline = performance.now() + 30_000;
    while (readyAt.size < PODS && performance.now() < deadline) await Bun.sleep(50);
    const latencies = [...createdAt].flatMap(([name, at]) => (readyAt.has(name) ? [(readyAt.get(name) ?? 0) - at] : []));
    const notReady = PODS - latencies.length;
    // Steady state: every pod probed once a second, all passing.
    const before = process.cpuUsage();
    const wallStart = performance.now();
    await Bun.sleep(STEADY_SECONDS * 1000);
    const used = process.cpuUsage(before);
    const share = (used.user + used.system) / 1000 / (performance.now() - wallStart);
    lines.push(
      `probes: ${PODS} pods, httpGet readiness every ${PERIOD_SECONDS} s: probe → Ready p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms (goal p99 < ${PERIOD_SECONDS * 1000 + 100} ms)${notReady > 0 ? `, ${notReady} never Ready` : ""}`,
      `probes: vks CPU with ${PODS} probes/s over ${STEADY_SECONDS} s: ${(share * 100).toFixed(1)} % of one core (goal < 5 %)`,
    );
  } finally {
    for (const pod of pods) await engine.deletePod(pod).catch(() => undefined);
    await observer.waitGone(`vks.${NAMESPACE}.*`).catch(() => undefined);
    observer.close();
    await engine.close();
    server.kill();
    await server.exited;
    rmSync(directory, { recursive: true, force: true });
  }
}

async function crashPart(lines: string[]): Promise<void> {
  const manager = managerPid();
  const directory = mkdtempSync(join(tmpdir(), "vks-bench-crash-"));
  const engine = await PodEngine.open({ scope: "user", stateDir: join(directory, "state"), hostIP: "127.0.0.1" });
  const results: Record<string, { restarts: number; managerCpu: number }> = {};
  try {
    // The kubelet's back-off: the engine's own unit, with its restart gate.
    const pod: V1Pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "crasher", namespace: NAMESPACE, uid: randomUUID() },
      spec: { containers: [{ name: "c", image: "/bin/sh", args: ["-c", "exit 1"] }] },
    };
    let cpu = manager === undefined ? 0 : processCpuSeconds(manager);
    await engine.createPod(pod);
    await Bun.sleep(CRASH_SECONDS * 1000);
    const unit = `vks.${NAMESPACE}.crasher.c.${pod.metadata?.uid}.service`;
    results["back-off"] = { restarts: await nRestarts(unit), managerCpu: manager === undefined ? Number.NaN : processCpuSeconds(manager) - cpu };
    await engine.deletePod(pod);

    // Before: Restart=always with a fixed RestartSec=1.
    cpu = manager === undefined ? 0 : processCpuSeconds(manager);
    const fixed = "vks-bench-crash-fixed.service";
    await systemctl(["reset-failed", fixed]).catch(() => undefined);
    await Bun.spawn(["systemd-run", "--user", "--quiet", `--unit=${fixed}`, "-p", "Restart=always", "-p", "RestartSec=1", "-p", "StartLimitIntervalSec=0", "/bin/sh", "-c", "exit 1"]).exited;
    await Bun.sleep(CRASH_SECONDS * 1000);
    results["fixed 1 s"] = { restarts: await nRestarts(fixed), managerCpu: manager === undefined ? Number.NaN : processCpuSeconds(manager) - cpu };
    await systemctl(["stop", fixed]).catch(() => undefined);
  } finally {
    await engine.close();
    rmSync(directory, { recursive: true, force: true });
  }
  const backOff = results["back-off"];
  const fixed = results["fixed 1 s"];
  if (backOff === undefined || fixed === undefined) return;
  const perRestart = fixed.restarts > 0 ? fixed.managerCpu / fixed.restarts : Number.NaN;
  lines.push(
    `crash loop over ${CRASH_SECONDS} s (measured): back-off ${backOff.restarts} restarts, manager CPU ${backOff.managerCpu.toFixed(2)} s; fixed 1 s ${fixed.restarts} restarts, manager CPU ${fixed.managerCpu.toFixed(2)} s`,
    `crash loop over 10 min (extrapolated from ${CRASH_SECONDS} s: linear for 1 s, the back-off's schedule for it): back-off ${backOffRestarts(600)} restarts ≈ ${(backOffRestarts(600) * perRestart).toFixed(2)} s manager CPU; fixed 1 s ≈ ${Math.round((fixed.restarts * 600) / CRASH_SECONDS)} restarts ≈ ${((fixed.managerCpu * 600) / CRASH_SECONDS).toFixed(1)} s manager CPU`,
  );
}

const lines: string[] = [];
await probesPart(lines);
for (const line of lines) console.log(line);
const crashLines: string[] = [];
await crashPart(crashLines);
for (const line of crashLines) console.log(line);
const summary = process.env.BENCH_SUMMARY;
if (summary) appendFileSync(summary, [...lines, ...crashLines].map((line) => `probes.ts  ${line}\n`).join(""));
