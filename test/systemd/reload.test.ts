/**
 * Which ExecStart= words a daemon-reload alters, byte by byte, against the real manager: the launcher
 * (internal/pod/launcher.ts) is used exactly for the commands survivesReload() rejects, so that
 * prediction must match what systemd does. A systemd that starts to mangle another byte, or stops
 * mangling one, fails here rather than in a restarted container.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { symlinkSync } from "node:fs";
import { join } from "node:path";
import { launchCommands, survivesReload } from "../../internal/pod/launcher.ts";
import type { SystemdManager } from "../../internal/systemd/manager.ts";
import type { ExecCommand } from "../../internal/systemd/types.ts";
import {
  connectTestManager,
  hasFinished,
  noSystemd,
  plan,
  readRecording,
  recorderCommand,
  serviceProperties,
  testDir,
  disposableManager,
  systemctlScope,
  uniqueUnitName,
  waitForUnitState,
} from "./harness.ts";

setDefaultTimeout(120_000);
const ASCII = Array.from({ length: 127 }, (_, index) => String.fromCharCode(index + 1));

interface Probe {
  unit: string;
  out: string;
  command: ExecCommand;
  firstStart: bigint;
}

describe.skipIf(noSystemd || !disposableManager)("what survives a daemon-reload", () => {
  let manager: SystemdManager;
  const started: string[] = [];

  beforeAll(async () => {
    manager = await connectTestManager();
  });

  afterAll(async () => {
    await Promise.all(started.map((name) => manager.stopUnit(name).catch(() => undefined)));
    await manager.close();
  });

  async function startProbe(label: string, out: string, command: ExecCommand, environment: string[] = []): Promise<Probe> {
    const unit = uniqueUnitName(label);
    started.push(unit);
    await manager.startUnit(plan(unit, serviceProperties({ execStart: [command], environment })));
    const first = await waitForUnitState(manager, unit, hasFinished);
    expect(first.result).toBe("success");
    return { unit, out, command, firstStart: first.execMainStartTimestamp };
  }

  /** Restarts a probe after the reload; the argv it then ran, or undefined when systemd could not run it. */
  async function rerun(probe: Probe): Promise<string[] | undefined> {
    await Bun.write(probe.out, "");
    const restart = Bun.spawnSync(["systemctl", ...systemctlScope, "restart", probe.unit], { stderr: "pipe" });
    if (restart.exitCode !== 0) return undefined;
    // Exit timestamps, not the sub-state: a stale "exited" can arrive together with the new start time.
    const state = await waitForUnitState(
      manager,
      probe.unit,
      (next) => next.execMainStartTimestamp > probe.firstStart && next.execMainExitTimestamp >= next.execMainStartTimestamp,
    );
    if (state.result !== "success") return undefined;
    return (await readRecording(probe.out)).argv;
  }

  function reload(): void {
    const reloaded = Bun.spawnSync(["systemctl", ...systemctlScope, "daemon-reload"], { stderr: "pipe" });
    expect(reloaded.stderr.toString()).toBe("");
    expect(reloaded.exitCode).toBe(0);
  }

  test("arguments and executable paths: exactly the bytes survivesReload() rejects are altered", async () => {
    const recording = () => join(testDir("probe"), "recording.json");
    // The recorder's own words must survive, or every probe would look altered.
    expect(survivesReload(recorderCommand(recording(), []))).toBe(true);
    const words = [...ASCII.map((char) => `a${char}b`), "é ✓"];
    const argvOut = recording();
    const argvProbe = await startProbe("argv", argvOut, recorderCommand(argvOut, words));
    const linkDir = testDir("paths");
    const pathChars = ASCII.filter((char) => char !== "/");
    const pathProbes: Probe[] = [];
    // 16 at a time: 126 Python probes at once, each with its own journal stream, kept a system manager on
    // a busy machine from answering a GetUnit within 25 s (test/sandbox.sh --system).
    for (let at = 0; at < pathChars.length; at += 16) {
      const batch = pathChars.slice(at, at + 16).map((char, offset) => {
        const out = recording();
        const recorder = recorderCommand(out, ["x"]);
        const link = join(linkDir, `p${char}q`);
        symlinkSync(recorder.path, link);
        return startProbe(`path${at + offset}`, out, { ...recorder, path: link });
      });
      pathProbes.push(...(await Promise.all(batch)));
    }

    reload();

    const argv = await rerun(argvProbe);
    const alteredWords = words.filter((word, index) => argv?.[index + 1] !== word);
    expect(alteredWords).toEqual(words.filter((word) => !survivesReload({ path: "/bin/true", argv: [word], ignoreFailure: false })));
    expect(alteredWords).toEqual(["a$b", "a;b"]);

    const alteredPaths: string[] = [];
    for (const probe of pathProbes) {
      const ran = await rerun(probe);
      if (ran?.[1] !== "x") alteredPaths.push(probe.command.path);
    }
    const predictedPaths = pathProbes.map((probe) => probe.command.path).filter((path) => !survivesReload({ path, argv: ["x"], ignoreFailure: false }));
    expect(alteredPaths).toEqual(predictedPaths);
  });

  test("a launched command comes back from a reload unchanged, whatever its words", async () => {
    const words = [...ASCII, "$HOME", "${HOME}", "$$", "a;b", "\\$", "\\;", "", "%h"];
    const out = join(testDir("launched"), "recording.json");
    const launched = launchCommands({ execStartPre: [], execStart: [recorderCommand(out, words)], environment: [] }, () => "test");
    const command = launched.execStart[0];
    if (command === undefined) throw new Error("launchCommands returned no command");
    expect(command.path).toBe("/bin/sh");
    const probe = await startProbe("launched", out, command, launched.environment);
    expect((await readRecording(out)).argv.slice(1)).toEqual(words);

    reload();

    expect((await rerun(probe))?.slice(1)).toEqual(words);
  });
});
