/**
 * `vks serve` under a burst: the compiled binary against the test API server, N one-container pods
 * (`/bin/sleep infinity`) created at once through the API, in the same systemd manager as N bare
 * `systemd-run --user` starts of the same program, same run.
 *
 * Figures (printed, never asserted):
 *   created→Running   per pod, from just before its create request until a watch (opened by the benchmark
 *                     on the API server) shows phase Running: what a kubectl user waits. p50/p99, and the
 *                     wall time until all N are Running.
 *   reported→written  per status write, from the engine reporting a unit change (notifyPods) until the
 *                     status patch is answered, as serve logs it at debug level. p50/p99 during the burst
 *                     (machine saturated by N units starting) and on a quiet node.
 *   kill→visible      on a quiet node, one pod at a time: from SIGKILL of a container's process until a
 *                     watch on the API server shows the container not ready (systemd → engine → serve →
 *                     API server → watcher). p50/p99 over BENCH_KILLS pods.
 *   systemd-run       wall time for N `systemd-run --user` (16 at a time, the engine's bus width) until
 *                     all units run; the ratio serve/systemd-run.
 *   RSS               serve's resident memory with the N pods running.
 *
 * Run inside test/sandbox.sh (or where systemd is PID 1 with a user manager): `test/sandbox.sh bun bench/serve.ts`.
 * Needs dist/vks (`bun run build`). Knobs: BENCH_PODS (100), BENCH_PARALLEL (16), BENCH_KILLS (20);
 * BENCH_SHOW_SERVE=1 prints serve's own log afterwards. Appends its figures to $BENCH_SUMMARY when set
 * (bench/run.sh's summary block).
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BusConnection } from "../internal/systemd/bus.ts";
import { startTestApiServer } from "../test/apiserver/client.ts";
import type { JsonObject } from "../test/apiserver/json.ts";
import { positiveInt } from "./knobs.ts";

const PODS = positiveInt("BENCH_PODS", 100);
const PARALLEL = positiveInt("BENCH_PARALLEL", 16);
const KILLS = positiveInt("BENCH_KILLS", 20);
const NODE = "bench-node";
/** Longer than serve's idle trim interval (internal/kube/serve.ts TRIM: 5 s). */
const RSS_SETTLE_MS = 6_000;
const VKS = resolve(process.env.VKS_BIN ?? resolve(import.meta.dir, "../dist/vks"));
const SYSTEMD = { destination: "org.freedesktop.systemd1", path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager" };


function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

const ms = (value: number): string => (Number.isNaN(value) ? "n/a" : `${value.toFixed(value < 10 ? 1 : 0)} ms`);

async function runningUnits(bus: BusConnection, pattern: string): Promise<number> {
  const reply = await bus.call({ ...SYSTEMD, member: "ListUnitsByPatterns", signature: "asas", body: [[], [pattern]] }, 120_000);
  const rows = reply.body[0];
  if (!Array.isArray(rows)) throw new Error("ListUnitsByPatterns: unexpected reply");
  return rows.filter((row: unknown) => Array.isArray(row) && row[3] === "active" && row[4] === "running").length;
}

async function loadedUnits(bus: BusConnection, pattern: string): Promise<number> {
  const reply = await bus.call({ ...SYSTEMD, member: "ListUnitsByPatterns", signature: "asas", body: [[], [pattern]] }, 120_000);
  return Array.isArray(reply.body[0]) ? reply.body[0].length : 0;
}

async function pool<T>(items: T[], width: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

function statusMiB(pid: number, field: "VmRSS" | "RssAnon" | "RssFile"): number {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

const rssMiB = (pid: number): number => statusMiB(pid, "VmRSS");

/** RSS split: anonymous memory (heaps) and file pages (the binary's own code and data, shared and reclaimable). */
function rssSplit(pid: number): string {
  return `anon ${statusMiB(pid, "RssAnon").toFixed(1)} + file ${statusMiB(pid, "RssFile").toFixed(1)}`;
}

/** Follows pod events over the admin endpoint's plain-HTTP API and calls `onPod` for each. */
async function watchPods(adminUrl: string, resourceVersion: string, onPod: (pod: JsonObject) => void, signal: AbortSignal): Promise<void> {
  const query = new URLSearchParams({ watch: "1", resourceVersion, fieldSelector: `spec.nodeName=${NODE}` });
  const response = await fetch(`${adminUrl}/api/v1/namespaces/default/pods?${query}`, { signal });
  if (!response.body) throw new Error("watch: no body");
  const decoder = new TextDecoder();
  let buffered = "";
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += decoder.decode(value, { stream: true });
      for (let newline = buffered.indexOf("\n"); newline !== -1; newline = buffered.indexOf("\n")) {
        const event = JSON.parse(buffered.slice(0, newline)) as { type: string; object: JsonObject };
        buffered = buffered.slice(newline + 1);
        if (event.type === "ADDED" || event.type === "MODIFIED") onPod(event.object);
      }
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  }
}

async function main(): Promise<void> {
  if (!process.env.DBUS_SESSION_BUS_ADDRESS) throw new Error("no user bus: run through test/sandbox.sh");
  if (!existsSync(VKS)) throw new Error(`${VKS} is missing: bun run build`);
  const stateDir = mkdtempSync(join(tmpdir(), "vks-bench-serve-"));
  const cluster = await startTestApiServer({ nodeName: NODE, historyLimit: 100_000 });
  const bus = await BusConnection.open({ scope: "user" });
  const writeLatencies: number[] = [];
  /** Epoch milliseconds at which the engine reported each change serve wrote, per pod. */
  const reportedAt = new Map<string, number[]>();
  let serveOutput = "";
  const serve = Bun.spawn(
    [VKS, "serve", "--user", "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, "--node-ip", "127.0.0.1", "--kubelet-port", "0", "--state-dir", stateDir],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1", CONSOLA_LEVEL: "4" } },
  );
  const decoder = new TextDecoder();
  for (const stream of [serve.stdout, serve.stderr]) {
    void stream
      .pipeTo(
        new WritableStream({
          write(chunk) {
            const text = decoder.decode(chunk);
            serveOutput += text;
            for (const match of text.matchAll(/status of ([^ ]+) \([^)]*\) written ([\d.]+)ms after the engine reported it \(at ([\d.]+)\)/g)) {
              writeLatencies.push(Number(match[2]));
              const pod = match[1] as string;
              reportedAt.set(pod, [...(reportedAt.get(pod) ?? []), Number(match[3])]);
            }
          },
        }),
      )
      .catch(() => undefined);
  }

  const abort = new AbortController();
  try {
    await cluster.admin.waitFor("nodes", NODE, "", (node) =>
      ((((node?.["status"] as JsonObject | undefined)?.["conditions"] ?? []) as JsonObject[]).some((c) => c["type"] === "Ready" && c["status"] === "True")),
    );
    const rssIdle = rssMiB(serve.pid);

    const names = Array.from({ length: PODS }, (_, i) => `bench-${i}`);
    const createdAt = new Map<string, number>();
    const runningAt = new Map<string, number>();
    let allRunning: () => void = () => undefined;
    const everyoneRunning = new Promise<void>((resolve) => (allRunning = resolve));
    /** The pod awaited to turn not-ready after a kill, and what to call then. */
    let awaitingNotReady: { name: string; seen: () => void } | undefined;
    const revision = String((await cluster.admin.state()).revision);
    void watchPods(
      cluster.adminUrl,
      revision,
      (pod) => {
        const name = (pod["metadata"] as JsonObject)["name"] as string;
        const status = pod["status"] as JsonObject | undefined;
        const ready = ((status?.["containerStatuses"] ?? []) as JsonObject[])[0]?.["ready"] === true;
        if (awaitingNotReady?.name === name && !ready) awaitingNotReady.seen();
        if (runningAt.has(name) || status?.["phase"] !== "Running") return;
        runningAt.set(name, performance.now());
        if (runningAt.size === PODS) allRunning();
      },
      abort.signal,
    );
    writeLatencies.length = 0;
    const burstStart = performance.now();
    await Promise.all(
      names.map((name) => {
        createdAt.set(name, performance.now());
        return cluster.admin.create("pods", {
          metadata: { name, namespace: "default" },
          spec: { nodeName: NODE, containers: [{ name: "c", image: "/bin/sleep", args: ["infinity"] }] },
        });
      }),
    );
    await everyoneRunning;
    const serveWall = performance.now() - burstStart;
    const toRunning = names.map((name) => (runningAt.get(name) as number) - (createdAt.get(name) as number));
    // Let the last status writes (ready flags after Running) land before reading RSS and latencies.
    await Bun.sleep(500);
    const rssLoaded = rssMiB(serve.pid);
    const rssLoadedSplit = rssSplit(serve.pid);
    const writes = [...writeLatencies];
    // With the pods running and nothing changing: once serve's idle trim (at most one per 5 s, after
    // 250 ms without pod work) has handed the burst's garbage back. What a node with 100 pods holds.
    await Bun.sleep(RSS_SETTLE_MS);
    const rssSteady = rssMiB(serve.pid);
    const rssSteadySplit = rssSplit(serve.pid);

    // Quiet node: one container killed at a time, each change followed through to the API server.
    writeLatencies.length = 0;
    const killToVisible: number[] = [];
    const killToReported: number[] = [];
    for (const name of names.slice(0, Math.min(KILLS, PODS))) {
      const pod = await cluster.admin.get("pods", name);
      const uid = (pod?.["metadata"] as JsonObject)["uid"] as string;
      const seen = new Promise<void>((resolve) => (awaitingNotReady = { name, seen: resolve }));
      const killedAt = performance.now();
      const killedAtEpoch = performance.timeOrigin + killedAt;
      Bun.spawnSync(["systemctl", "--user", "kill", "--signal=KILL", `vks.default.${name}.c.${uid}.service`]);
      await seen;
      killToVisible.push(performance.now() - killedAt);
      const firstReport = (reportedAt.get(`default/${name}`) ?? []).find((at) => at >= killedAtEpoch);
      if (firstReport !== undefined) killToReported.push(firstReport - killedAtEpoch);
      awaitingNotReady = undefined;
      await Bun.sleep(200);
    }
    const quietWrites = [...writeLatencies];
    const rssSettled = rssMiB(serve.pid);

    await Promise.all(names.map((name) => cluster.admin.delete("pods", name, "default", { gracePeriodSeconds: 0 })));
    while ((await loadedUnits(bus, "vks.default.bench-*")) > 0) await Bun.sleep(20);

    const units = names.map((_, i) => `bench-serve-run-${i}`);
    const runStart = performance.now();
    await pool(units, PARALLEL, async (unit) => {
      const proc = Bun.spawn(["systemd-run", "--user", "--quiet", `--unit=${unit}`, "/bin/sleep", "infinity"], { stdout: "ignore", stderr: "pipe" });
      if ((await proc.exited) !== 0) throw new Error(`systemd-run ${unit}: ${await new Response(proc.stderr).text()}`);
    });
    while ((await runningUnits(bus, "bench-serve-run-*")) < PODS) await Bun.sleep(2);
    const runWall = performance.now() - runStart;
    Bun.spawnSync(["systemctl", "--user", "stop", "bench-serve-run-*"]);

    const lines = [
      `serve: ${PODS} pods created at once → all Running (watch): ${ms(serveWall)}; per pod p50 ${ms(percentile(toRunning, 50))}, p99 ${ms(percentile(toRunning, 99))}`,
      `serve: engine reported → status written during the burst: p50 ${ms(percentile(writes, 50))}, p99 ${ms(percentile(writes, 99))} over ${writes.length} writes`,
      `serve: engine reported → status written, quiet node: p50 ${ms(percentile(quietWrites, 50))}, p99 ${ms(percentile(quietWrites, 99))} over ${quietWrites.length} writes`,
      `serve: SIGKILL of a container → API watch shows it not ready: p50 ${ms(percentile(killToVisible, 50))}, p99 ${ms(percentile(killToVisible, 99))} over ${killToVisible.length} pods; of which SIGKILL → engine reports it: p50 ${ms(percentile(killToReported, 50))}, p99 ${ms(percentile(killToReported, 99))}`,
      `systemd-run --user ×${PODS} (${PARALLEL} at a time) → all running: ${ms(runWall)}; serve/systemd-run ratio ${(serveWall / runWall).toFixed(2)}`,
      `serve RSS: ${rssIdle.toFixed(1)} MiB idle; with ${PODS} pods ${rssLoaded.toFixed(1)} MiB 0.5 s after the burst (${rssLoadedSplit}), ${rssSteady.toFixed(1)} MiB steady ${RSS_SETTLE_MS / 1000} s later (${rssSteadySplit}; goal < 100 MB = 95.4 MiB: ${rssSteady < 95.4 ? "met" : "MISSED"}); ${rssSettled.toFixed(1)} MiB after the kills`,
    ];
    for (const line of lines) console.log(line);
    if (process.env.BENCH_SHOW_SERVE) console.log(serveOutput);
    if (process.env.BENCH_SUMMARY) appendFileSync(process.env.BENCH_SUMMARY, lines.map((line) => `serve.ts  ${line}\n`).join(""));
  } catch (err) {
    console.error(serveOutput.slice(-4000));
    throw err;
  } finally {
    abort.abort();
    serve.kill("SIGTERM");
    await serve.exited;
    bus.close();
    await cluster.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
