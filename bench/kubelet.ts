/**
 * vks' kubelet API under the real kubectl: the compiled `vks serve` with node credentials behind the test
 * API server (which proxies to it as kube-apiserver does), one pod, and figures measured side by side
 * against local baselines in the same run, on the same manager.
 *
 * Figures (printed, never asserted):
 *   exec round trip     `kubectl exec POD -- true` from spawn to exit, over WebSocket (kubectl's default)
 *                       and SPDY (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false), p50/p90, against
 *                       `systemd-run --user --wait --quiet true` (a command started by the same manager and
 *                       waited for); the ratio of the p50s. Runs interleave in rotating order.
 *   logs -f first byte  from spawning `kubectl logs -f POD` (the pod has already logged lines) until the
 *                       first byte arrives on its stdout, against `kubectl get pod POD` from spawn to exit
 *                       (kubectl's start, its config and one request through the API server).
 *   exec throughput     `kubectl exec POD -- head -c 100MiB /dev/zero`, stdout read here to the end and
 *                       counted: MiB/s from spawn to exit (what the goal of ≥ 100 MiB/s is judged on) and
 *                       from first to last byte, per transport; against `head … | cat > /dev/null` locally
 *                       (the ceiling) and `head` read by this benchmark (what reading here costs). Beside
 *                       it, the CPU serve, the test API server (whose proxy every byte crosses, as with
 *                       kube-apiserver) and kubectl used during those runs, as a share of one core.
 *   RSS                 serve's VmRSS with the pod running and no session, then with BENCH_STREAMS
 *                       `kubectl exec POD -- sleep 30` open at once (read once that many `sleep 30` run in
 *                       the pod's cgroup; vks_streaming_sessions_active from /metrics is printed beside
 *                       it), then after all the runs above.
 * `vks pod exec` does not apply here: it runs the engine in its own process, not through serve.
 *
 * Run inside test/sandbox.sh: `test/sandbox.sh bun bench/kubelet.ts` (it starts a journald there when none
 * runs, as serve is run with --log-mode journal). Needs dist/vks (`bun run build`) and /usr/bin/kubectl.
 * Knobs: BENCH_EXEC_RUNS (20), BENCH_LOG_RUNS (10), BENCH_STREAM_MIB (100), BENCH_STREAM_RUNS (5),
 * BENCH_STREAMS (5); BENCH_SHOW_SERVE=1 prints serve's own log afterwards. Appends its figures to
 * $BENCH_SUMMARY when set (bench/run.sh's summary block).
 */
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { detectHostIP } from "../internal/host/address.ts";
import { ensureJournald, journalAvailable } from "../test/e2e/journald.ts";
import { startTestApiServer } from "../test/apiserver/client.ts";
import type { JsonObject } from "../test/apiserver/json.ts";
import { positiveInt } from "./knobs.ts";

const EXEC_RUNS = positiveInt("BENCH_EXEC_RUNS", 20);
const LOG_RUNS = positiveInt("BENCH_LOG_RUNS", 10);
const STREAM_MIB = positiveInt("BENCH_STREAM_MIB", 100);
const STREAM_RUNS = positiveInt("BENCH_STREAM_RUNS", 5);
const STREAMS = positiveInt("BENCH_STREAMS", 5);
const THROUGHPUT_GOAL_MIB_S = 100;
const NODE = "bench-kubelet";
const POD = "kubelet-bench";
const VKS = resolve(import.meta.dir, "../dist/vks");
const KUBECTL = "/usr/bin/kubectl";
const MiB = 1024 * 1024;
const SPDY_ENV = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false" };

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

const ms = (value: number): string => (Number.isNaN(value) ? "n/a" : `${value.toFixed(value < 10 ? 1 : 0)} ms`);
const p50p90 = (values: number[]): string => `p50 ${ms(percentile(values, 50))}, p90 ${ms(percentile(values, 90))}`;
const rate = (value: number): string => `${value.toFixed(value < 10 ? 1 : 0)} MiB/s`;

function rssMiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

const CLOCK_TICKS = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** User + system CPU time a process has used so far, from /proc/PID/stat (utime and stime, in ticks). */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which may itself hold spaces and parentheses: state is field 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** The test API server: the `node` process this benchmark started (startTestApiServer runs it as a child). */
function apiServerPid(): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (parent === process.pid && stat.includes("(node)")) return Number(entry);
    } catch {
      // The process ended while being read.
    }
  }
  throw new Error("the test API server's process was not found among this benchmark's children");
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** A command's run, timed from just before spawn: its exit, and the first and last byte of its stdout. */
interface TimedRun {
  wallMs: number;
  firstByteMs: number;
  lastByteMs: number;
  bytes: number;
  exitCode: number;
  stderr: string;
  /** User + system CPU time of the command (and the children it waited for). */
  cpuMs: number;
}

/** Children still running, so a failure midway ends them (by PID) before the cluster goes. */
const children = new Set<ReturnType<typeof Bun.spawn>>();

function spawnTracked(argv: string[], env: Record<string, string> = {}): Bun.Subprocess<"ignore", "pipe", "pipe"> {
  const child = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  children.add(child);
  void child.exited.then(() => children.delete(child));
  return child;
}

/** Runs `argv` to its end, counting its stdout's bytes as they arrive (nothing is kept). */
async function timed(argv: string[], env: Record<string, string> = {}): Promise<TimedRun> {
  const start = performance.now();
  const child = spawnTracked(argv, env);
  const stderr = new Response(child.stderr).text();
  let bytes = 0;
  let firstByteMs = Number.NaN;
  let lastByteMs = Number.NaN;
  for await (const chunk of child.stdout) {
    if (bytes === 0) firstByteMs = performance.now() - start;
    bytes += chunk.length;
    lastByteMs = performance.now() - start;
  }
  const exitCode = await child.exited;
  const wallMs = performance.now() - start;
  const cpuMs = Number(child.resourceUsage()?.cpuTime.total ?? 0n) / 1000;
  return { wallMs, firstByteMs, lastByteMs, bytes, exitCode, stderr: await stderr, cpuMs };
}

async function mustSucceed(argv: string[], env: Record<string, string> = {}): Promise<TimedRun> {
  const run = await timed(argv, env);
  if (run.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${run.exitCode}: ${run.stderr.trim()}`);
  return run;
}

/** Time from spawning `kubectl logs -f` until its first stdout byte; the follower is ended then. */
async function firstLogByte(kubectl: string[]): Promise<number> {
  const start = performance.now();
  const child = spawnTracked([...kubectl, "logs", "-f", POD]);
  const reader = child.stdout.getReader();
  const { done } = await reader.read();
  const elapsed = performance.now() - start;
  child.kill("SIGTERM");
  await child.exited;
  if (done) throw new Error(`kubectl logs -f ${POD} ended without output: ${await new Response(child.stderr).text()}`);
  return elapsed;
}

/** Each round runs every variant once, starting one further along, so none always runs on a warmer machine. */
async function rotated<Name extends string>(rounds: number, variants: Record<Name, () => Promise<number>>): Promise<Record<Name, number[]>> {
  const names = Object.keys(variants) as Name[];
  const results = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<Name, number[]>;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(round + i) % names.length] as Name;
      results[name].push(await variants[name]());
    }
  }
  return results;
}

/** How many `sleep 30` processes run inside the pod's container cgroup (exec joins the container's cgroup). */
function sleepsInPod(): number {
  let count = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8") !== "sleep\u000030\u0000") continue;
      if (readFileSync(`/proc/${entry}/cgroup`, "utf8").includes(`/vks.default.${POD}.`)) count++;
    } catch {
      // The process ended while being read.
    }
  }
  return count;
}

async function main(): Promise<void> {
  if (!process.env.DBUS_SESSION_BUS_ADDRESS) throw new Error("no user bus: run through test/sandbox.sh");
  if (!existsSync(VKS)) throw new Error(`${VKS} is missing: bun run build`);
  if (!existsSync(KUBECTL)) throw new Error(`${KUBECTL} is missing: the benchmark drives the real kubectl`);
  if (!journalAvailable) throw new Error("no journald, and not in the sandbox to start one");
  const journald = await ensureJournald();
  const stateDir = mkdtempSync(join(tmpdir(), "vks-bench-kubelet-"));
  const cluster = await startTestApiServer({ nodeName: NODE, nodeAuthorization: true, kubeletPreferredAddressTypes: ["InternalIP"] });
  // Not loopback: kube-apiserver refuses to proxy nodes/proxy to loopback and link-local addresses.
  const nodeIP = detectHostIP() ?? "127.0.0.1";
  const kubeletPort = await freePort();
  let serveOutput = "";
  const serve = Bun.spawn(
    [VKS, "serve", "--user", "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, "--node-ip", nodeIP, "--kubelet-address", nodeIP, "--kubelet-port", String(kubeletPort), "--log-mode", "journal", "--disable-taint"],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1" } },
  );
  const decoder = new TextDecoder();
  for (const stream of [serve.stdout, serve.stderr]) {
    void (async () => {
      for await (const chunk of stream) serveOutput += decoder.decode(chunk, { stream: true });
    })().catch(() => undefined);
  }
  const kubectl = [KUBECTL, "--kubeconfig", cluster.adminKubeconfigPath];

  try {
    await cluster.admin.waitFor("nodes", NODE, "", (node) =>
      ((((node?.["status"] as JsonObject | undefined)?.["conditions"] ?? []) as JsonObject[]).some((c) => c["type"] === "Ready" && c["status"] === "True")),
    );
    await cluster.admin.create("pods", {
      metadata: { name: POD, namespace: "default" },
      spec: {
        nodeName: NODE,
        restartPolicy: "Never",
        containers: [{ name: "main", image: "/bin/sh", args: ["-c", "for i in 1 2 3; do echo line $i; done; exec sleep infinity"] }],
      },
    });
    await cluster.admin.waitFor("pods", POD, "default", (pod) =>
      (((pod?.["status"] as JsonObject | undefined)?.["containerStatuses"] ?? []) as JsonObject[]).some((status) => (status["state"] as JsonObject | undefined)?.["running"] !== undefined),
    );
    // The pod must have logged before logs -f is timed, else its first byte waits on the pod, not on vks.
    await until("the pod's lines in kubectl logs", async () => (await timed([...kubectl, "logs", POD])).bytes > 0);
    // Warm-ups: kubectl's caches, serve's first connections, the manager's first transient unit.
    await mustSucceed([...kubectl, "exec", POD, "--", "true"]);
    await mustSucceed([...kubectl, "exec", POD, "--", "true"], SPDY_ENV);
    await mustSucceed(["systemd-run", "--user", "--wait", "--quiet", "true"]);
    await mustSucceed([...kubectl, "get", "pod", POD]);
    await Bun.sleep(500);

    // RSS first, before the runs below grow serve's heap.
    const rssIdle = rssMiB(serve.pid);
    const holders = Array.from({ length: STREAMS }, () => spawnTracked([...kubectl, "exec", POD, "--", "sleep", "30"]));
    await until(`${STREAMS} sleep 30 in the pod`, () => sleepsInPod() >= STREAMS);
    const rssStreams = rssMiB(serve.pid);
    const metricsText = await new Response(spawnTracked([...kubectl, "get", "--raw", `/api/v1/nodes/${NODE}/proxy/metrics`]).stdout).text();
    const sessions = [...metricsText.matchAll(/^vks_streaming_sessions_active\{[^}]*\}\s+(\d+)/gm)].reduce((sum, match) => sum + Number(match[1]), 0);
    for (const holder of holders) holder.kill("SIGTERM");
    await Promise.all(holders.map((holder) => holder.exited));
    await until("the pod's sleep 30 ended with their sessions", () => sleepsInPod() === 0);

    const exec = await rotated(EXEC_RUNS, {
      WebSocket: async () => (await mustSucceed([...kubectl, "exec", POD, "--", "true"])).wallMs,
      SPDY: async () => (await mustSucceed([...kubectl, "exec", POD, "--", "true"], SPDY_ENV)).wallMs,
      "systemd-run": async () => (await mustSucceed(["systemd-run", "--user", "--wait", "--quiet", "true"])).wallMs,
    });

    const logs = await rotated(LOG_RUNS, {
      "logs -f": () => firstLogByte(kubectl),
      "get pod": async () => (await mustSucceed([...kubectl, "get", "pod", POD])).wallMs,
    });

    const bytes = STREAM_MIB * MiB;
    const throughput: Record<"WebSocket" | "SPDY" | "head | cat" | "head → here", { wall: number[]; stream: number[] }> = {
      WebSocket: { wall: [], stream: [] },
      SPDY: { wall: [], stream: [] },
      "head | cat": { wall: [], stream: [] },
      "head → here": { wall: [], stream: [] },
    };
    const headArgs = ["head", "-c", String(bytes), "/dev/zero"];
    const apiServer = apiServerPid();
    /** CPU time per exec transport, summed over its runs, and the wall time they took: where the time goes. */
    const cpu = { WebSocket: { wallMs: 0, serveMs: 0, apiServerMs: 0, kubectlMs: 0 }, SPDY: { wallMs: 0, serveMs: 0, apiServerMs: 0, kubectlMs: 0 } };
    const streamRun = async (variant: keyof typeof throughput, argv: string[], env: Record<string, string> = {}, expectBytes = bytes): Promise<number> => {
      const serveBefore = cpuMsOf(serve.pid);
      const apiServerBefore = cpuMsOf(apiServer);
      const run = await mustSucceed(argv, env);
      if (variant === "WebSocket" || variant === "SPDY") {
        cpu[variant].wallMs += run.wallMs;
        cpu[variant].serveMs += cpuMsOf(serve.pid) - serveBefore;
        cpu[variant].apiServerMs += cpuMsOf(apiServer) - apiServerBefore;
        cpu[variant].kubectlMs += run.cpuMs;
      }
      if (run.bytes !== expectBytes) throw new Error(`${variant}: read ${run.bytes} bytes, expected ${expectBytes}`);
      throughput[variant].wall.push(bytes / MiB / (run.wallMs / 1000));
      if (expectBytes > 0) throughput[variant].stream.push(bytes / MiB / ((run.lastByteMs - run.firstByteMs) / 1000));
      return run.wallMs;
    };
    await rotated(STREAM_RUNS, {
      WebSocket: () => streamRun("WebSocket", [...kubectl, "exec", POD, "--", ...headArgs]),
      SPDY: () => streamRun("SPDY", [...kubectl, "exec", POD, "--", ...headArgs], SPDY_ENV),
      "head | cat": () => streamRun("head | cat", ["sh", "-c", `head -c ${bytes} /dev/zero | cat > /dev/null`], {}, 0),
      "head → here": () => streamRun("head → here", headArgs),
    });
    const rssAfter = rssMiB(serve.pid);

    const execRatio = (transport: "WebSocket" | "SPDY"): string => (percentile(exec[transport], 50) / percentile(exec["systemd-run"], 50)).toFixed(2);
    const wallRate = (variant: keyof typeof throughput): number => percentile(throughput[variant].wall, 50);
    const streamRate = (variant: keyof typeof throughput): number => percentile(throughput[variant].stream, 50);
    const goal = (variant: "WebSocket" | "SPDY"): string => (wallRate(variant) >= THROUGHPUT_GOAL_MIB_S ? "MET" : "MISSED");
    const ceiling = wallRate("head | cat");
    const share = (transport: "WebSocket" | "SPDY"): string => {
      const used = cpu[transport];
      const percent = (value: number): string => `${Math.round((100 * value) / used.wallMs)}%`;
      return `${transport} serve ${percent(used.serveMs)}, test API server ${percent(used.apiServerMs)}, kubectl ${percent(used.kubectlMs)}`;
    };
    const lines = [
      `kubectl exec POD -- true (${EXEC_RUNS} runs): WebSocket ${p50p90(exec.WebSocket)}; SPDY ${p50p90(exec.SPDY)}`,
      `systemd-run --user --wait --quiet true, same runs: ${p50p90(exec["systemd-run"])}; kubectl exec/systemd-run (p50) WebSocket ${execRatio("WebSocket")}, SPDY ${execRatio("SPDY")}`,
      `kubectl logs -f first byte, pod already logged (${LOG_RUNS} runs): ${p50p90(logs["logs -f"])}; kubectl get pod round trip: ${p50p90(logs["get pod"])}; logs -f/get pod (p50) ${(percentile(logs["logs -f"], 50) / percentile(logs["get pod"], 50)).toFixed(2)}`,
      `kubectl exec stdout, ${STREAM_MIB} MiB (median of ${STREAM_RUNS}, spawn→exit; first→last byte in brackets): WebSocket ${rate(wallRate("WebSocket"))} [${rate(streamRate("WebSocket"))}] ${goal("WebSocket")}; SPDY ${rate(wallRate("SPDY"))} [${rate(streamRate("SPDY"))}] ${goal("SPDY")} (goal ≥ ${THROUGHPUT_GOAL_MIB_S} MiB/s)`,
      `local ceiling: head | cat > /dev/null ${rate(ceiling)}; head read by this benchmark ${rate(wallRate("head → here"))} [${rate(streamRate("head → here"))}]; exec/ceiling WebSocket ${(wallRate("WebSocket") / ceiling).toFixed(2)}, SPDY ${(wallRate("SPDY") / ceiling).toFixed(2)}`,
      `CPU during the exec stdout runs (% of one core over their wall time, ${navigator.hardwareConcurrency} cores): ${share("WebSocket")}; ${share("SPDY")}`,
      `serve RSS: ${rssIdle.toFixed(1)} MiB idle with 1 pod running; ${rssStreams.toFixed(1)} MiB with ${STREAMS} exec streams open (+${(rssStreams - rssIdle).toFixed(1)} MiB, vks_streaming_sessions_active ${sessions}); ${rssAfter.toFixed(1)} MiB after all runs`,
    ];
    for (const line of lines) console.log(line);
    if (process.env.BENCH_SHOW_SERVE) console.log(serveOutput);
    if (process.env.BENCH_SUMMARY) appendFileSync(process.env.BENCH_SUMMARY, lines.map((line) => `kubelet.ts  ${line}\n`).join(""));
  } catch (err) {
    console.error(serveOutput.slice(-4000));
    throw err;
  } finally {
    for (const child of children) child.kill("SIGKILL");
    await cluster.admin.delete("pods", POD, "default", { gracePeriodSeconds: 0 }).catch(() => undefined);
    await until("the pod's units gone", () => !Bun.spawnSync(["systemctl", "--user", "list-units", "--no-legend", `vks.default.${POD}.*`]).stdout.toString().trim(), 30_000).catch(() => undefined);
    serve.kill("SIGTERM");
    await serve.exited;
    await cluster.stop();
    await journald.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
