/**
 * A daemon-reload (apt runs one for every package with a unit) makes systemd rebuild each transient unit
 * from the file it wrote under /run. On systemd 252 that round trip turns `$x` into `\$\$x` and `;` into
 * `\;` in ExecStart= arguments, so a container restarted after a reload would run a different command.
 * vks routes such commands through its launcher (internal/pod/launcher.ts); this runs the real binary
 * against a real manager and checks that a crash-looping container prints the same line before and
 * after a reload.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { eventually, haveSystemd, managerFlag, podNamed, vks, writeManifest, testFileStateDir } from "./helpers.ts";

setDefaultTimeout(120_000);
const stateDir = testFileStateDir();
const user = managerFlag;

// Every word holds something a daemon-reload used to alter, next to things that never were at risk.
const SCRIPT = `printf '%s|%s|%s|%s\\n' "$0" "$1" "$2" "$GREETING"; exit 1`;
const ARGS = ["$HOME;x", "%h ${X} 100%", `back\\slash; "quoted" it's $`];
const GREETING = "a;b $c";
const EXPECTED = `$HOME;x|%h \${X} 100%|back\\slash; "quoted" it's $|a;b $c`;

async function restartCount(name: string): Promise<number> {
  return (await podNamed(stateDir, name))?.status.containerStatuses?.[0]?.restartCount ?? 0;
}

async function logLines(name: string): Promise<string[]> {
  const logs = await vks(stateDir, ["pod", "logs", name, ...user]);
  if (logs.exitCode !== 0) throw new Error(`pod logs failed: ${logs.stderr}`);
  return logs.stdout.split("\n").filter((line) => line !== "");
}

describe.skipIf(!haveSystemd)("commands survive a daemon-reload (end to end, real systemd)", () => {
  test("a restarting container runs the same argv before and after a reload", async () => {
    const manifest = [
      "apiVersion: v1",
      "kind: Pod",
      "metadata:",
      "  name: reloaded",
      "spec:",
      "  restartPolicy: Always",
      "  containers:",
      "    - name: echo",
      "      image: /bin/sh",
      `      args: ${JSON.stringify(["-c", SCRIPT, ...ARGS])}`,
      `      env: [{name: GREETING, value: ${JSON.stringify(GREETING)}}]`,
      "",
    ].join("\n");
    // File logs: what the test reads must not depend on whether a journald runs (or ran) here.
    const file = writeManifest(stateDir, "reloaded.yaml", manifest);
    const up = await vks(stateDir, ["pod", "up", "-d", "--log-mode", "file", file, ...user]);
    expect(up.stderr).toBe("");
    expect(up.exitCode).toBe(0);

    // A run's line may be read a moment after the restart that followed it: wait for both.
    const before = await eventually("a first restart and its line", async () => {
      if ((await restartCount("reloaded")) < 1) return undefined;
      const lines = await logLines("reloaded");
      return lines.length > 0 ? lines : undefined;
    });
    expect(new Set(before)).toEqual(new Set([EXPECTED]));

    const reload = Bun.spawnSync(["systemctl", ...user, "daemon-reload"], { stderr: "pipe" });
    expect(reload.stderr.toString()).toBe("");
    expect(reload.exitCode).toBe(0);
    // Run number atReload may have started before the reload; every later one runs what systemd read
    // back, and each run prints one line.
    const atReload = await restartCount("reloaded");
    await eventually("two restarts after the reload", async () => (await restartCount("reloaded")) >= atReload + 2, 600);
    const after = await eventually("the lines of the runs after the reload", async () => {
      const lines = await logLines("reloaded");
      return lines.length >= atReload + 2 ? lines : undefined;
    });
    expect(new Set(after)).toEqual(new Set([EXPECTED]));
    expect((await vks(stateDir, ["pod", "down", "reloaded", ...user])).exitCode).toBe(0);
  });
});
