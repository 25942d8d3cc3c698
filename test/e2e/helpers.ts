import { afterAll } from "bun:test";
import { createServer } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const VKS_BINARY = resolve(import.meta.dir, "../../dist/vks");

const pid1IsSystemd = (await Bun.file("/proc/1/comm").text()).trim() === "systemd";

/**
 * Which sandbox the tests run in: "user" in test/sandbox.sh (a private systemd --user, VKS_SANDBOX=1),
 * "system" in test/sandbox.sh --system (a private system manager as PID 1, VKS_SANDBOX=system), none on
 * a host whose PID 1 is systemd.
 */
export const sandboxMode: "user" | "system" | undefined =
  process.env.VKS_SANDBOX === "system" ? "system" : process.env.VKS_SANDBOX === "1" ? "user" : undefined;

/** End-to-end tests need a systemd manager: the sandbox's, or a real one as PID 1. */
export const haveSystemd = Boolean(process.env.DBUS_SESSION_BUS_ADDRESS) || pid1IsSystemd;
/** vks' manager flag for the mode: --user next to the user sandbox's manager, none (vks' default, the system manager) otherwise. */
export const managerFlag = sandboxMode === "user" || (sandboxMode === undefined && !pid1IsSystemd) ? ["--user"] : [];
/** The scope managerFlag selects, for tests that open the engine in-process. */
export const managerScope: "user" | "system" = managerFlag.length > 0 ? "user" : "system";

export interface VksRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A private state directory per test file, so tests never see each other's pods. */
export function newStateDir(): string {
  return mkdtempSync(join(tmpdir(), "vks-e2e-"));
}

/**
 * The state directory of one test file, with its clean-up registered: once the file's tests are done,
 * every pod in it goes (whatever a failed test left behind too, so the manager is left as found) and so
 * does the directory. Call it at the top level of the test file.
 */
export function testFileStateDir(): string {
  const stateDir = newStateDir();
  afterAll(async () => {
    await removeAllPods(stateDir);
    rmSync(stateDir, { recursive: true, force: true });
  });
  return stateDir;
}

/** Longer than any command of the suites needs; a command still running then has hung. */
const VKS_COMMAND_LIMIT_MS = 90_000;

/**
 * Runs the vks binary to its end. One that hangs is killed after `limitMs` (VKS_COMMAND_LIMIT_MS) and fails the test
 * with what it printed so far, rather than the test's own timeout saying nothing about where it stood.
 */
export async function vks(stateDir: string, args: string[], options: { stdin?: string; limitMs?: number } = {}): Promise<VksRun> {
  const limitMs = options.limitMs ?? VKS_COMMAND_LIMIT_MS;
  const child = Bun.spawn([VKS_BINARY, ...args], {
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1", CONSOLA_LEVEL: "4" },
  });
  let hung = false;
  const limit = setTimeout(() => {
    hung = true;
    child.kill("SIGKILL");
  }, limitMs);
  try {
    const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    if (hung) throw new Error(`vks ${args.join(" ")} did not end within ${limitMs / 1000} s; it printed:\n${stdout}\n${stderr}`);
    return { exitCode, stdout, stderr };
  } finally {
    clearTimeout(limit);
  }
}

export function writeManifest(dir: string, name: string, yaml: string): string {
  const path = join(dir, name);
  writeFileSync(path, yaml);
  return path;
}

/** Writes the manifest of a one-document Pod `name` whose spec is `spec` (lines indented under `spec:`). */
export function writePod(dir: string, name: string, spec: string): string {
  return writeManifest(dir, `${name}.yaml`, `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\nspec:\n${spec}`);
}

/** Polls until `check` holds; tests wait on observable state, never on a fixed delay. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, attempts = 200): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    await Bun.sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface ListedPod {
  metadata: { name: string; namespace: string; uid: string };
  status: {
    phase: string;
    containerStatuses?: {
      name: string;
      restartCount: number;
      ready: boolean;
      state: { running?: object; waiting?: { reason: string }; terminated?: { exitCode: number; reason: string; signal?: number } };
      lastState?: { terminated?: { exitCode: number } };
    }[];
  };
}

export async function listPods(stateDir: string): Promise<ListedPod[]> {
  const run = await vks(stateDir, ["pod", "ls", "-o", "json", ...managerFlag]);
  if (run.exitCode !== 0) throw new Error(`pod ls failed: ${run.stderr}`);
  return (JSON.parse(run.stdout) as { items: ListedPod[] }).items;
}

export async function podNamed(stateDir: string, name: string): Promise<ListedPod | undefined> {
  return (await listPods(stateDir)).find((pod) => pod.metadata.name === name);
}

/** Removes every pod of `stateDir` and any vks unit left without a record: what a failed test left behind. */
export async function removeAllPods(stateDir: string): Promise<void> {
  for (const listed of await listPods(stateDir).catch(() => [])) {
    await vks(stateDir, ["pod", "down", listed.metadata.name, "-n", listed.metadata.namespace, ...managerFlag]);
  }
  await vks(stateDir, ["units", "gc", ...managerFlag]);
}

/** A TCP port free at the moment of asking, on every address (a pod on the host network binds 0.0.0.0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "0.0.0.0", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** `pod up FILE` in the foreground; its output collected as it comes, ended with Ctrl-C (which removes the pod). */
export function foregroundPodUp(stateDir: string, file: string): { output(): string; stop(): Promise<number> } {
  const child = Bun.spawn([VKS_BINARY, "pod", "up", file, ...managerFlag], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1" },
  });
  let output = "";
  const decoder = new TextDecoder();
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) output += decoder.decode(chunk);
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  return {
    output: () => output,
    async stop(): Promise<number> {
      child.kill("SIGINT");
      const code = await child.exited;
      await reading;
      return code;
    },
  };
}
