// The kubelet API end to end: the compiled vks serves a node with a kubelet's credentials (Node
// authorizer and NodeRestriction on), the test API server proxies to it as kube-apiserver does, and the
// machine's real kubectl drives logs, exec, attach, port-forward and stats through it.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { VKS_BINARY, eventually, freePort, haveSystemd, managerFlag } from "../e2e/helpers.ts";
import { ensureJournald, journalAvailable, type SandboxJournald } from "../e2e/journald.ts";
import { at } from "../kube/helpers.ts";
import { detectHostIP } from "../../internal/host/address.ts";

setDefaultTimeout(120_000);

const NODE = "kubelet-e2e";
const KUBECTL = "/usr/bin/kubectl";
const runnable = haveSystemd && existsSync(KUBECTL) && journalAvailable;

let cluster: RunningTestApiServer;
let serve: ReturnType<typeof Bun.spawn> | undefined;
let journald: SandboxJournald | undefined;
let serveLog = "";
let kubeletPort = 0;
// Not loopback: kube-apiserver refuses to proxy nodes/proxy to loopback and link-local addresses.
const nodeIP = detectHostIP() ?? "127.0.0.1";
const stateDir = mkdtempSync(join(tmpdir(), "vks-kubelet-e2e-"));

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function kubectl(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const child = Bun.spawn([KUBECTL, "--kubeconfig", cluster.adminKubeconfigPath, ...args], {
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...options.env },
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { exitCode, stdout, stderr };
}

/** Runs kubectl on a pseudo-terminal (kubectl -t needs one), via util-linux script(1). */
async function kubectlOnTerminal(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const line = [KUBECTL, "--kubeconfig", cluster.adminKubeconfigPath, ...args].map((word) => `'${word.replace(/'/g, "'\\''")}'`).join(" ");
  const child = Bun.spawn(["script", "-qec", `stty cols 123 rows 45; ${line}`, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { exitCode, stdout, stderr };
}

function pod(name: string, command: string[], extra: JsonObject = {}): JsonObject {
  return {
    metadata: { name, namespace: "default" },
    spec: { nodeName: NODE, restartPolicy: "Never", containers: [{ name: "main", image: command[0] as string, args: command.slice(1) }], ...extra },
  };
}

async function running(name: string): Promise<JsonObject | undefined> {
  return cluster.admin.waitFor("pods", name, "default", (object) => {
    const statuses = (at(object, "status", "containerStatuses") ?? []) as JsonObject[];
    return statuses.length > 0 && statuses.every((status) => at(status, "state", "running") !== undefined);
  });
}

beforeAll(async () => {
  if (!runnable) return;
  journald = await ensureJournald();
  cluster = await startTestApiServer({
    nodeName: NODE,
    nodeAuthorization: true,
    kubeletPreferredAddressTypes: ["InternalIP"],
    tokens: [
      { token: "viewer-token", user: "viewer" },
      { token: "stats-token", user: "stats-reader" },
    ],
  });
  await cluster.admin.setAllowRules([{ users: ["stats-reader"], verbs: ["get"], resources: ["nodes/stats", "nodes/proxy"] }]);
  kubeletPort = await freePort();
  serve = Bun.spawn(
    [VKS_BINARY, "serve", "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, "--node-ip", nodeIP, "--kubelet-address", nodeIP, "--kubelet-port", String(kubeletPort), "--log-mode", "journal", "--disable-taint", ...managerFlag],
    { stdout: "pipe", stderr: "pipe", env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1" } },
  );
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) serveLog += new TextDecoder().decode(chunk);
  };
  void collect(serve.stdout as ReadableStream<Uint8Array>);
  void collect(serve.stderr as ReadableStream<Uint8Array>);
  await cluster.admin.waitFor("nodes", NODE, "", (node) => {
    const conditions = (at(node, "status", "conditions") ?? []) as JsonObject[];
    return conditions.some((condition) => condition["type"] === "Ready" && condition["status"] === "True");
  });
  await cluster.admin.create("pods", pod("talker", ["/bin/sh", "-c", "for i in 1 2 3; do echo line $i; done; echo to-stderr >&2; exec sleep infinity"]));
  await cluster.admin.create(
    "pods",
    pod("crasher", ["/bin/sh", "-c", "echo instance $(cat /proc/sys/kernel/random/uuid); sleep 1; exit 1"], { restartPolicy: "Always" }),
  );
  await running("talker");
});

afterAll(async () => {
  if (!runnable) return;
  for (const name of ["talker", "crasher", "ticker", "web"]) await cluster.admin.delete("pods", name, "default", { gracePeriodSeconds: 0 }).catch(() => undefined);
  await eventually("pods gone", async () => (await cluster.admin.list("pods", { namespace: "default" })).length === 0).catch(() => undefined);
  serve?.kill("SIGTERM");
  await serve?.exited;
  await cluster?.stop();
  await journald?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe.skipIf(!runnable)("kubectl through the API server to vks' kubelet API", () => {
  test("the node advertises the port served and registered with node credentials", async () => {
    const node = await cluster.admin.get("nodes", NODE, "");
    expect(at(node, "status", "daemonEndpoints", "kubeletEndpoint", "Port")).toBe(kubeletPort);
    expect(at(node, "metadata", "labels", "kubernetes.io/role")).toBeUndefined();
  });

  test("kubectl logs, --tail, --timestamps, --since", async () => {
    const all = await eventually("talker's lines", async () => {
      const run = await kubectl(["logs", "talker"]);
      return run.stdout.includes("to-stderr") ? run : undefined;
    });
    expect(all.exitCode).toBe(0);
    expect(all.stdout).toBe("line 1\nline 2\nline 3\nto-stderr\n");
    expect((await kubectl(["logs", "talker", "--tail", "2"])).stdout).toBe("line 3\nto-stderr\n");
    const stamped = (await kubectl(["logs", "talker", "--timestamps"])).stdout.trim().split("\n");
    expect(stamped).toHaveLength(4);
    for (const line of stamped) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z line|^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z to-stderr/);
    expect((await kubectl(["logs", "talker", "--since", "1h"])).stdout).toBe("line 1\nline 2\nline 3\nto-stderr\n");
    expect((await kubectl(["logs", "talker", "--limit-bytes", "9"])).stdout).toBe("line 1\nli");
  });

  test("kubectl logs -f streams new lines as they come", async () => {
    await cluster.admin.create("pods", pod("ticker", ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]));
    await running("ticker");
    const child = Bun.spawn([KUBECTL, "--kubeconfig", cluster.adminKubeconfigPath, "logs", "-f", "ticker"], { stdout: "pipe", stderr: "pipe" });
    let seen = "";
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
    while (!seen.includes("tick 5")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    child.kill();
    await child.exited;
    expect(seen).toContain("tick 1\ntick 2\n");
    expect(seen).toContain("tick 5");
  });

  test("kubectl logs --previous shows the instance before the current one", async () => {
    const crashed = await cluster.admin.waitFor("pods", "crasher", "default", (object) => ((at(object, "status", "containerStatuses", 0, "restartCount") as number | undefined) ?? 0) >= 1);
    expect(crashed).toBeDefined();
    const both = await eventually("two different instances", async () => {
      const previous = (await kubectl(["logs", "crasher", "--previous"])).stdout;
      const current = (await kubectl(["logs", "crasher"])).stdout;
      return /^instance \S+\n$/.test(previous) && /^instance \S+\n$/.test(current) && previous !== current ? { previous, current } : undefined;
    });
    expect(both.previous).not.toBe(both.current);
  });

  for (const transport of ["WebSocket", "SPDY"] as const) {
    const env: Record<string, string> = transport === "SPDY" ? { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false" } : {};

    test(`kubectl exec over ${transport}: output, exit codes, stdin`, async () => {
      const ok = await kubectl(["exec", "talker", "--", "/bin/sh", "-c", "echo out; echo err >&2"], { env });
      expect(ok).toMatchObject({ exitCode: 0, stdout: "out\n" });
      expect(ok.stderr).toContain("err");
      const failed = await kubectl(["exec", "talker", "--", "/bin/sh", "-c", "exit 3"], { env });
      expect(failed.exitCode).toBe(3);
      const missing = await kubectl(["exec", "talker", "--", "/no/such/program"], { env });
      expect([126, 127]).toContain(missing.exitCode);
      const piped = await kubectl(["exec", "-i", "talker", "--", "/bin/cat"], { env, stdin: "through stdin\n" });
      expect(piped).toMatchObject({ exitCode: 0, stdout: "through stdin\n" });
    });

    test(`kubectl exec -it over ${transport} gives a terminal of the client's size`, async () => {
      const run = await kubectlOnTerminal(["exec", "-it", "talker", "--", "/bin/sh", "-c", "tty; stty size"], env);
      expect(run).toMatchObject({ exitCode: 0, stderr: "" });
      expect(run.stdout).toMatch(/\/dev\/pts\/\d+/);
      expect(run.stdout).toContain("45 123");
    });
  }

  test("a client that vanishes mid-exec leaves no process of the exec behind", async () => {
    const marker = `${Date.now() % 100000}`;
    const child = Bun.spawn([KUBECTL, "--kubeconfig", cluster.adminKubeconfigPath, "exec", "talker", "--", "/bin/sh", "-c", `sleep 1${marker} & sleep 2${marker}`], {
      stdout: "ignore",
      stderr: "ignore",
    });
    const sleepers = async () => (await Bun.$`pgrep -f ${`^sleep [12]${marker}$`}`.nothrow().quiet()).stdout.toString().trim().split("\n").filter((line) => line !== "");
    await eventually("both sleeps started", async () => (await sleepers()).length === 2);
    child.kill("SIGKILL");
    await child.exited;
    await eventually("the exec's processes gone", async () => (await sleepers()).length === 0);
    const talker = await cluster.admin.get("pods", "talker", "default");
    expect(at(talker, "status", "containerStatuses", 0, "state", "running")).toBeDefined();
  });

  test("kubectl attach follows the container's output", async () => {
    const child = Bun.spawn([KUBECTL, "--kubeconfig", cluster.adminKubeconfigPath, "attach", "ticker"], { stdout: "pipe", stderr: "pipe" });
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
    let seen = "";
    while (!/tick \d+\n/.test(seen)) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    child.kill();
    await child.exited;
    expect(seen).toMatch(/tick \d+\n/);
  });

  for (const transport of ["WebSocket", "SPDY"] as const) {
    test(`kubectl port-forward over ${transport} reaches the pod's port`, async () => {
      const podPort = await freePort();
      const name = `web-${transport.toLowerCase()}`;
      await cluster.admin.create("pods", pod(name, ["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", String(podPort)]));
      await running(name);
      // Running is not listening: kubectl port-forward ends at the first connection the pod refuses (as
      // it does with the kubelet), so the forward starts once the server answers (host network: directly).
      await eventually("the pod's server to listen", async () => {
        try {
          return (await fetch(`http://127.0.0.1:${podPort}/`)).status === 200;
        } catch {
          return undefined;
        }
      });
      const localPort = await freePort();
      const env = transport === "SPDY" ? { KUBECTL_PORT_FORWARD_WEBSOCKETS: "false" } : {};
      const forward = Bun.spawn([KUBECTL, "--kubeconfig", cluster.adminKubeconfigPath, "port-forward", `pod/${name}`, `${localPort}:${podPort}`], {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, ...env },
      });
      try {
        const body = await eventually("a page through the forward", async () => {
          try {
            const answer = await fetch(`http://127.0.0.1:${localPort}/`);
            return answer.status === 200 ? await answer.text() : undefined;
          } catch {
            return undefined;
          }
        }).catch(async (err: unknown) => {
          forward.kill();
          throw new Error(`${String(err)}; kubectl port-forward said: ${await new Response(forward.stderr).text()}`);
        });
        expect(body).toContain("Directory listing");
      } finally {
        forward.kill();
        await forward.exited;
        await cluster.admin.delete("pods", name, "default", { gracePeriodSeconds: 0 }).catch(() => undefined);
      }
    });
  }

  test("kubectl get --raw …/proxy/stats/summary and /pods", async () => {
    const summary = await kubectl(["get", "--raw", `/api/v1/nodes/${NODE}/proxy/stats/summary`]);
    expect(summary).toMatchObject({ exitCode: 0, stderr: "" });
    const parsed = JSON.parse(summary.stdout) as JsonObject;
    expect(at(parsed, "node", "nodeName")).toBe(NODE);
    const podNames = ((at(parsed, "pods") ?? []) as JsonObject[]).map((entry) => at(entry, "podRef", "name"));
    expect(podNames).toContain("talker");
    const pods = JSON.parse((await kubectl(["get", "--raw", `/api/v1/nodes/${NODE}/proxy/pods`])).stdout) as JsonObject;
    expect(at(pods, "kind")).toBe("PodList");
    const metrics = await kubectl(["get", "--raw", `/api/v1/nodes/${NODE}/proxy/metrics/resource`]);
    expect(metrics.stdout).toContain("node_cpu_usage_seconds_total");
  });

  test("no credentials → 401; a user without nodes/proxy → 403 through a SubjectAccessReview", async () => {
    const base = `https://${nodeIP}:${kubeletPort}`;
    const tls = { rejectUnauthorized: false };
    expect((await fetch(`${base}/pods`, { tls })).status).toBe(401);
    expect((await fetch(`${base}/pods`, { tls, headers: { Authorization: "Bearer wrong-token" } })).status).toBe(401);
    const denied = await fetch(`${base}/pods`, { tls, headers: { Authorization: "Bearer viewer-token" } });
    expect(denied.status).toBe(403);
    expect(await denied.text()).toContain("user=viewer, verb=get, resource=nodes, subresource=proxy");
    const allowed = await fetch(`${base}/stats/summary`, { tls, headers: { Authorization: "Bearer stats-token" } });
    expect(allowed.status).toBe(200);
    expect((await fetch(`${base}/containerLogs/default/talker/main?tailLine=1`, { tls, headers: { Authorization: "Bearer stats-token" } })).status).toBe(400);
    expect((await fetch(`${base}/containerLogs/default/nobody/main`, { tls, headers: { Authorization: "Bearer stats-token" } })).status).toBe(404);
  });

  test("serve logged no errors", () => {
    expect(serveLog).not.toContain("ERROR");
  });
});
