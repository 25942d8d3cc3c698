// Shared by the serve tests: a test API server per file, serve running in this process against a fake
// provider, and waiting on observable state (never on fixed delays).
import { consola } from "consola";
import { serve, type ServeOptions, type ServeProvider } from "../../internal/kube/serve.ts";
import type { PodObjectSource } from "../../internal/pod/objects.ts";
import type { RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject, JsonValue } from "../apiserver/json.ts";
import { VKS_BINARY, managerFlag } from "../e2e/helpers.ts";

// Warnings stay visible (they explain failures); progress lines would drown the test output.
consola.level = 1;

export interface RunningServe {
  stop(): Promise<void>;
  /** Settles when serve returns or fails on its own. */
  done: Promise<void>;
  error(): unknown;
}

export function serveOptions(cluster: RunningTestApiServer, overrides: Partial<ServeOptions> = {}): ServeOptions {
  return {
    kubeconfig: cluster.kubeconfigPath,
    nodeName: cluster.nodeName,
    nodeIP: "10.0.0.7",
    kubelet: { address: "127.0.0.1", port: 0, rotateServerCertificates: false, anonymousAuth: false },
    maxPods: 110,
    taint: true,
    scope: "user",
    leaseDurationSeconds: 4,
    statusUpdateSeconds: 1,
    startupTimeoutSeconds: 5,
    ...overrides,
  };
}

/** Hands serve's PodObjectSource to a provider that takes one (the fake resolves env from it, like the engine). */
function withObjects(provider: ServeProvider, objects: PodObjectSource): ServeProvider {
  const aware = provider as ServeProvider & { useObjects?: (objects: PodObjectSource) => void };
  aware.useObjects?.(objects);
  return provider;
}

export function startServe(cluster: RunningTestApiServer, provider: ServeProvider, overrides: Partial<ServeOptions> = {}): RunningServe {
  const abort = new AbortController();
  let failure: unknown;
  const done = serve({ ...serveOptions(cluster, overrides), openProvider: async (_hostIP, objects) => withObjects(provider, objects) }, abort.signal).catch((err: unknown) => {
    failure = err;
  });
  return {
    done,
    error: () => failure,
    async stop() {
      abort.abort();
      await done;
    },
  };
}

/** Polls until `check` returns something other than undefined/false. */
export async function eventually<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>): Promise<T> {
  for (let attempt = 0; attempt < 400; attempt++) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * The pod's events once one has `reason`. Events go after the status writes under way (events.ts), so a
 * status seen in the API server does not mean the events that came with it are there yet.
 */
export function podEventsOnce(cluster: RunningTestApiServer, pod: string, reason: string, namespace = "default"): Promise<JsonObject[]> {
  return eventually(`a ${reason} event for ${namespace}/${pod}`, async () => {
    const events = (await cluster.admin.list("events", { namespace })).filter((event) => at(event, "involvedObject", "name") === pod);
    return events.some((event) => event["reason"] === reason) ? events : undefined;
  });
}

export function at(value: JsonValue | undefined, ...path: (string | number)[]): JsonValue | undefined {
  let current: JsonValue | undefined = value;
  for (const step of path) {
    if (current === null || current === undefined || typeof current !== "object") return undefined;
    current = Array.isArray(current) ? current[step as number] : (current as JsonObject)[step as string];
  }
  return current;
}

export function phaseOf(pod: JsonObject | undefined): string | undefined {
  return at(pod, "status", "phase") as string | undefined;
}

export function podManifest(name: string, nodeName: string | undefined, extra: { env?: JsonValue; envFrom?: JsonValue; namespace?: string } = {}): JsonObject {
  const container: JsonObject = { name: "main", image: "/bin/sleep", args: ["infinity"] };
  if (extra.env !== undefined) container["env"] = extra.env;
  if (extra.envFrom !== undefined) container["envFrom"] = extra.envFrom;
  return {
    metadata: { name, namespace: extra.namespace ?? "default" },
    spec: { ...(nodeName === undefined ? {} : { nodeName }), restartPolicy: "Never", containers: [container] },
  };
}

/**
 * The compiled `vks serve` against a test API server, for the end-to-end files: its output goes to
 * `onOutput` as it comes. Any free kubelet port, as another serve on the machine may hold 10250.
 */
export function spawnServeBinary(options: {
  cluster: RunningTestApiServer;
  nodeName: string;
  stateDir: string;
  statusUpdateSeconds: number;
  onOutput: (text: string) => void;
}): Bun.Subprocess<"ignore", "pipe", "pipe"> {
  const { cluster, nodeName, stateDir, statusUpdateSeconds, onOutput } = options;
  const flags = ["--kubeconfig", cluster.kubeconfigPath, "--nodename", nodeName, "--node-ip", "127.0.0.1", "--kubelet-port", "0"];
  flags.push("--node-lease-duration-seconds", "4", "--node-status-update-frequency", String(statusUpdateSeconds), "--state-dir", stateDir);
  const serveProcess = Bun.spawn([VKS_BINARY, "serve", ...flags, ...managerFlag], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    // Debug output: a failing test shows serve's own account (status writes with their times).
    env: { ...process.env, NO_COLOR: "1", CONSOLA_LEVEL: "4" },
  });
  const decoder = new TextDecoder();
  for (const stream of [serveProcess.stdout, serveProcess.stderr]) {
    void stream.pipeTo(new WritableStream({ write: (chunk) => onOutput(decoder.decode(chunk)) })).catch(() => undefined);
  }
  return serveProcess;
}
