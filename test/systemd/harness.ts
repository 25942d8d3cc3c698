/**
 * Shared by the systemd integration tests: which manager to talk to, whether one answers at all (tests
 * skip cleanly when not), unit plans with test defaults, and event-driven waits for a unit's state.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SystemdManager } from "../../internal/systemd/manager.ts";
import type { ExecCommand, ServiceProperties, UnitPlan, UnitState } from "../../internal/systemd/types.ts";

/**
 * Inside test/sandbox.sh (VKS_SANDBOX=1) the private user manager; inside test/sandbox.sh --system
 * (VKS_SANDBOX=system) the private system manager; else the user bus if any, else system.
 */
export const testScope: "user" | "system" =
  process.env.VKS_TEST_SCOPE === "system" || process.env.VKS_TEST_SCOPE === "user"
    ? process.env.VKS_TEST_SCOPE
    : process.env.VKS_SANDBOX === "system"
      ? "system"
      : process.env.VKS_SANDBOX === "1" || process.env.DBUS_SESSION_BUS_ADDRESS
        ? "user"
        : "system";

/** systemctl's flag for testScope's manager. */
export const systemctlScope: string[] = testScope === "user" ? ["--user"] : [];

/**
 * The manager may be disturbed (daemon-reload, many units): it is a sandbox's, or a user manager. A real
 * host's system manager is not reloaded by tests.
 */
export const disposableManager = testScope === "user" || process.env.VKS_SANDBOX === "system";

async function probeSystemd(): Promise<string | undefined> {
  try {
    const manager = await SystemdManager.connect({ scope: testScope, connectTimeoutMs: 2000 });
    await manager.close();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const unreachableReason = await probeSystemd();
/** True when no systemd manager answers: integration tests use test.skipIf(noSystemd). */
export const noSystemd = unreachableReason !== undefined;
if (noSystemd) console.warn(`systemd tests skipped: ${unreachableReason} (run them with test/sandbox.sh bun test test/systemd)`);

export function connectTestManager(): Promise<SystemdManager> {
  return SystemdManager.connect({ scope: testScope });
}

let unitCounter = 0;
/** A vks-shaped unit name unique to this test run. */
export function uniqueUnitName(label: string): string {
  unitCounter++;
  return `vks.test.${label}-${process.pid}-${unitCounter}.c.uid${Date.now().toString(36)}${unitCounter}.service`;
}

export function command(argv: string[], path: string = argv[0] ?? ""): ExecCommand {
  return { path, argv, ignoreFailure: false };
}

export function serviceProperties(overrides: Partial<ServiceProperties> & Pick<ServiceProperties, "execStart">): ServiceProperties {
  return {
    description: "vks systemd test",
    type: "simple",
    execStartPre: [],
    environment: [],
    environmentFiles: [],
    runtimeDirectory: [],
    restart: "no",
    restartUSec: 100_000n,
    remainAfterExit: true,
    startLimitIntervalUSec: 0n,
    killSignal: 15,
    sendSIGKILL: true,
    timeoutStopUSec: 10_000_000n,
    logExtraFields: [],
    ...overrides,
  };
}

export function plan(unitName: string, properties: ServiceProperties): UnitPlan {
  return { unitName, containerName: "c", properties };
}

export function testDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `vks-systemd-${label}-`));
}

/**
 * Resolves with the first state of `unitName` that satisfies `predicate`: the current one if it already
 * does, else the first matching change. Waits on events, never on the clock.
 */
export async function waitForUnitState(
  manager: SystemdManager,
  unitName: string,
  predicate: (state: UnitState) => boolean,
): Promise<UnitState> {
  await manager.startWatching();
  return new Promise<UnitState>((resolve, reject) => {
    let done = false;
    const finish = (state: UnitState): void => {
      if (done) return;
      done = true;
      unsubscribe();
      resolve(state);
    };
    const unsubscribe = manager.onUnitChanged((state) => {
      if (state.name === unitName && predicate(state)) finish(state);
    });
    manager.getUnitState(unitName).then((state) => {
      if (state && predicate(state)) finish(state);
    }, reject);
  });
}

/** The main process has ended and systemd will not restart it (RemainAfterExit units, or failed ones). */
export function hasFinished(state: UnitState): boolean {
  return state.subState === "exited" || state.activeState === "failed";
}

/** A program that records its own argv and environment (raw bytes, hex) as JSON into `outFile`. */
export function recorderCommand(outFile: string, args: string[], argv0?: string): ExecCommand {
  const python = "/usr/bin/python3";
  if (existsSync(python)) {
    const script = [
      "import json",
      "cmd = open('/proc/self/cmdline', 'rb').read().split(b'\\0')[:-1]",
      "env = [e for e in open('/proc/self/environ', 'rb').read().split(b'\\0') if e]",
      `json.dump({'argv': [a.hex() for a in cmd[:1] + cmd[3:]], 'env': [e.hex() for e in env]}, open(${JSON.stringify(outFile)}, 'w'))`,
    ].join("\n");
    return command([argv0 ?? "python3", "-c", script, ...args], python);
  }
  const script = [
    "const fs = require('fs');",
    "const split = (b) => { const parts = []; let at = 0; for (let i = 0; i < b.length; i++) if (b[i] === 0) { parts.push(b.subarray(at, i)); at = i + 1; } return parts; };",
    "const cmd = split(fs.readFileSync('/proc/self/cmdline'));",
    "const env = split(fs.readFileSync('/proc/self/environ')).filter((e) => e.length > 0);",
    `fs.writeFileSync(${JSON.stringify(outFile)}, JSON.stringify({ argv: [cmd[0], ...cmd.slice(4)].map((a) => a.toString('hex')), env: env.map((e) => e.toString('hex')) }));`,
  ].join(" ");
  return command([argv0 ?? "bun", "-e", script, "--", ...args], process.execPath);
}

export interface RecordedProcess {
  argv: string[];
  environment: string[];
}

/** Reads what recorderCommand wrote, decoding every byte string as UTF-8. */
export async function readRecording(outFile: string): Promise<RecordedProcess> {
  const raw: unknown = JSON.parse(await Bun.file(outFile).text());
  if (typeof raw !== "object" || raw === null || !("argv" in raw) || !("env" in raw)) throw new Error(`bad recording ${outFile}`);
  const decode = (list: unknown): string[] =>
    (Array.isArray(list) ? list : []).map((hex) => Buffer.from(String(hex), "hex").toString("utf8"));
  return { argv: decode(raw.argv), environment: decode(raw.env) };
}
