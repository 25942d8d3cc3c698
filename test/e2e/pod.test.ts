import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { VKS_BINARY, eventually, haveSystemd, managerFlag, podNamed, vks, writeManifest, testFileStateDir, writePod } from "./helpers.ts";

// Real units on a loaded 2-core machine: give each test room; none waits on a fixed delay.
setDefaultTimeout(120_000);
const stateDir = testFileStateDir();
const user = managerFlag;

const pod = (name: string, spec: string): string => writePod(stateDir, name, spec);

describe.skipIf(!haveSystemd)("vks pod (end to end, real systemd)", () => {
  test("up -d, ls, units ls, down", async () => {
    const file = pod("sleeper", `  containers:\n    - name: sleep\n      image: /bin/sleep\n      args: ["infinity"]\n`);
    const up = await vks(stateDir, ["pod", "up", "-d", file, ...user]);
    expect(up.exitCode).toBe(0);
    const running = await eventually("sleeper running", async () => {
      const listed = await podNamed(stateDir, "sleeper");
      return listed?.status.phase === "Running" ? listed : undefined;
    });
    expect(running.status.containerStatuses?.[0]?.ready).toBe(true);

    const table = await vks(stateDir, ["pod", "ls", ...user]);
    expect(table.stdout).toMatch(/default\s+sleeper\s+1\/1\s+Running\s+0/);

    const units = await vks(stateDir, ["units", "ls", "-o", "json", ...user]);
    const rows = JSON.parse(units.stdout) as { unit: string; pod: string; container: string; activeState: string; mainPID: number }[];
    const row = rows.find((r) => r.pod === "sleeper");
    expect(row?.unit).toBe(`vks.default.sleeper.sleep.${running.metadata.uid}.service`);
    expect(row?.activeState).toBe("active");
    expect(row?.mainPID).toBeGreaterThan(0);

    const again = await vks(stateDir, ["pod", "up", "-d", file, ...user]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout + again.stderr).toContain("already running");
    expect((await podNamed(stateDir, "sleeper"))?.metadata.uid).toBe(running.metadata.uid);

    const replaced = await vks(stateDir, ["pod", "up", "-d", "--replace", file, ...user]);
    expect(replaced.exitCode).toBe(0);
    const newUid = (await podNamed(stateDir, "sleeper"))?.metadata.uid;
    expect(newUid).not.toBe(running.metadata.uid);

    const down = await vks(stateDir, ["pod", "down", "sleeper", ...user]);
    expect(down.exitCode).toBe(0);
    expect(await podNamed(stateDir, "sleeper")).toBeUndefined();
    const after = JSON.parse((await vks(stateDir, ["units", "ls", "-o", "json", ...user])).stdout) as { pod: string }[];
    expect(after.filter((r) => r.pod === "sleeper")).toEqual([]);

    const missing = await vks(stateDir, ["pod", "down", "sleeper", ...user]);
    expect(missing.exitCode).toBe(66);
    expect((await vks(stateDir, ["pod", "down", "sleeper", "--ignore-not-found", ...user])).exitCode).toBe(0);
  });

  test("foreground up shows logs and exits with the pod's result", async () => {
    const file = pod(
      "greeter",
      `  restartPolicy: Never\n  containers:\n    - name: hello\n      image: /bin/sh\n      env: [{name: WHO, value: "systemd"}]\n      args: ["-c", "echo hello $WHO; echo bye"]\n`,
    );
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    expect(up.exitCode).toBe(0);
    expect(up.stdout).toContain("hello systemd\nbye\n");
    const listed = await podNamed(stateDir, "greeter");
    expect(listed?.status.phase).toBe("Succeeded");
    expect(listed?.status.containerStatuses?.[0]?.state.terminated).toMatchObject({ exitCode: 0, reason: "Completed" });
    const logs = await vks(stateDir, ["pod", "logs", "greeter", "--tail", "1", ...user]);
    expect(logs.stdout).toBe("bye\n");
    expect((await vks(stateDir, ["pod", "down", "greeter", ...user])).exitCode).toBe(0);
  });

  test("arguments and environment reach the process exactly as written", async () => {
    const tricky = ["$HOME", "${HOME}", "%h", "%%", "a b", '"quoted"', "it's", "ünïcödé ✓", "\\", ";", ""];
    const args = JSON.stringify(["%s|\\n", ...tricky]);
    const file = pod(
      "echoer",
      `  restartPolicy: Never\n  containers:\n    - name: printf\n      image: /usr/bin/printf\n      args: ${args}\n`,
    );
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    expect(up.exitCode).toBe(0);
    const logs = await vks(stateDir, ["pod", "logs", "echoer", ...user]);
    expect(logs.stdout.split("\n").filter(Boolean)).toEqual(tricky.map((arg) => `${arg}|`));
    await vks(stateDir, ["pod", "down", "echoer", ...user]);
  });

  test("restartPolicy Never: a failing container fails the pod with its exit code", async () => {
    const file = pod("failer", `  restartPolicy: Never\n  containers:\n    - name: fail\n      image: /bin/sh\n      args: ["-c", "exit 3"]\n`);
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    expect(up.exitCode).toBe(1);
    const listed = await podNamed(stateDir, "failer");
    expect(listed?.status.phase).toBe("Failed");
    expect(listed?.status.containerStatuses?.[0]?.state.terminated).toMatchObject({ exitCode: 3, reason: "Error" });
    await vks(stateDir, ["pod", "down", "failer", ...user]);
  });

  test("restartPolicy Always restarts and counts restarts", async () => {
    const file = pod("looper", `  restartPolicy: Always\n  containers:\n    - name: loop\n      image: /bin/sh\n      args: ["-c", "exit 2"]\n`);
    expect((await vks(stateDir, ["pod", "up", "-d", file, ...user])).exitCode).toBe(0);
    const seenExitCodes = new Set<number | undefined>();
    // Between runs (auto-restart, RestartSec): a separate `pod ls` process can know the last exit only
    // while systemd still shows it; once the next run started only a watching process remembers it.
    const restarted = await eventually("two restarts, waiting to restart", async () => {
      const listed = await podNamed(stateDir, "looper");
      const status = listed?.status.containerStatuses?.[0];
      if (status?.lastState?.terminated !== undefined) seenExitCodes.add(status.lastState.terminated.exitCode);
      return status && status.restartCount >= 2 && status.state?.waiting?.reason === "CrashLoopBackOff" ? status : undefined;
    });
    expect(restarted.lastState?.terminated?.exitCode).toBe(2);
    // Never the StartError 128 of a state read across a restart.
    expect([...seenExitCodes]).toEqual([2]);
    expect((await podNamed(stateDir, "looper"))?.status.phase).toBe("Running");
    await vks(stateDir, ["pod", "down", "looper", ...user]);
  });

  test("restartPolicy OnFailure restarts a failure and then succeeds", async () => {
    const marker = join(stateDir, "onfailure-marker");
    const file = pod(
      "retrier",
      `  restartPolicy: OnFailure\n  containers:\n    - name: retry\n      image: /bin/sh\n      args: ["-c", "if [ -e ${marker} ]; then exit 0; fi; touch ${marker}; exit 1"]\n`,
    );
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    expect(up.exitCode).toBe(0);
    const listed = await podNamed(stateDir, "retrier");
    expect(listed?.status.phase).toBe("Succeeded");
    expect(listed?.status.containerStatuses?.[0]?.restartCount).toBe(1);
    await vks(stateDir, ["pod", "down", "retrier", ...user]);
  });

  // The grace period must leave the shell time to run its trap even on a loaded machine: with 1 s, a shell
  // starved under load can be SIGKILLed before its trap runs (marker missing). The trap writes the marker
  // with a redirection, not a forked `touch`: systemd's stop sends SIGTERM to every process of the unit's
  // cgroup and re-reads the cgroup until no new process appears, so a child the trap forks during that
  // sweep gets SIGTERM too (seen under stress-ng: touch killed by SIGTERM 12 ms after its fork).
  test("down sends SIGTERM, then SIGKILL after the grace period", async () => {
    const marker = join(stateDir, "got-term");
    const file = pod(
      "stubborn",
      `  terminationGracePeriodSeconds: 5\n  containers:\n    - name: ignore-term\n      image: /bin/sh\n      args: ["-c", "trap ': > ${marker}' TERM; echo ready; while true; do sleep 0.1; done"]\n`,
    );
    expect((await vks(stateDir, ["pod", "up", "-d", file, ...user])).exitCode).toBe(0);
    await eventually("ready", async () => (await vks(stateDir, ["pod", "logs", "stubborn", ...user])).stdout.includes("ready"));
    expect((await vks(stateDir, ["pod", "down", "stubborn", ...user])).exitCode).toBe(0);
    // It saw SIGTERM (the trap ran) yet is gone: systemd killed it once the grace period ran out.
    expect(existsSync(marker)).toBe(true);
    expect(await podNamed(stateDir, "stubborn")).toBeUndefined();
    const units = JSON.parse((await vks(stateDir, ["units", "ls", "-o", "json", ...user])).stdout) as { pod: string }[];
    expect(units.some((r) => r.pod === "stubborn")).toBe(false);
  });

  test("bad manifests are refused with the field named, and nothing is created", async () => {
    const wrongKind = writeManifest(stateDir, "deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n");
    const kindRun = await vks(stateDir, ["pod", "up", "-d", wrongKind, ...user]);
    expect(kindRun.exitCode).toBe(65);
    expect(kindRun.stderr + kindRun.stdout).toContain("Deployment");

    const twoPods = writeManifest(
      stateDir,
      "two.yaml",
      `apiVersion: v1\nkind: Pod\nmetadata: {name: good}\nspec:\n  containers: [{name: s, image: /bin/sleep, args: ["9"]}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers: [{name: Bad_Name, image: /bin/sleep}]\n`,
    );
    const badRun = await vks(stateDir, ["pod", "up", "-d", twoPods, ...user]);
    expect(badRun.exitCode).toBe(65);
    expect(badRun.stderr + badRun.stdout).toContain("spec.containers[0].name");
    expect(await podNamed(stateDir, "good")).toBeUndefined();

    const missingBinary = pod("nobinary", `  containers:\n    - name: x\n      image: /no/such/binary\n`);
    const missingRun = await vks(stateDir, ["pod", "up", "-d", missingBinary, ...user]);
    expect(missingRun.exitCode).not.toBe(0);
    expect(missingRun.stderr + missingRun.stdout).toContain("/no/such/binary");
    expect(await podNamed(stateDir, "nobinary")).toBeUndefined();

    const stdinRun = await vks(stateDir, ["pod", "up", "-d", "-", ...user], { stdin: "kind: Pod\napiVersion: v1\nmetadata: {name: x}\n" });
    expect(stdinRun.exitCode).toBe(65);
    expect(stdinRun.stderr + stdinRun.stdout).toContain("spec");
  });

  test("units gc removes units whose pod has no record, and leaves foreign units alone", async () => {
    const file = pod("orphan", `  containers:\n    - name: sleep\n      image: /bin/sleep\n      args: ["infinity"]\n`);
    expect((await vks(stateDir, ["pod", "up", "-d", file, ...user])).exitCode).toBe(0);
    rmSync(join(stateDir, "pods", "default", "orphan.json"));
    const foreign = Bun.spawnSync(["systemd-run", ...user, "--unit=not-vks-sleeper", "/bin/sleep", "infinity"]);
    expect(foreign.exitCode).toBe(0);

    const dry = await vks(stateDir, ["units", "gc", "--dry-run", ...user]);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout + dry.stderr).toContain("vks.default.orphan.sleep.");
    const stillThere = JSON.parse((await vks(stateDir, ["units", "ls", "-o", "json", ...user])).stdout) as { pod: string }[];
    expect(stillThere.some((r) => r.pod === "orphan")).toBe(true);

    expect((await vks(stateDir, ["units", "gc", ...user])).exitCode).toBe(0);
    const gone = JSON.parse((await vks(stateDir, ["units", "ls", "-o", "json", ...user])).stdout) as { pod: string }[];
    expect(gone.some((r) => r.pod === "orphan")).toBe(false);
    const foreignState = Bun.spawnSync(["systemctl", ...user, "is-active", "not-vks-sleeper.service"]);
    expect(foreignState.stdout.toString().trim()).toBe("active");
    Bun.spawnSync(["systemctl", ...user, "stop", "not-vks-sleeper.service"]);
  });

  test("a pod whose units and log directory are gone (vks killed before it made them) starts again with both", async () => {
    const file = pod("lostlogs", `  containers:\n    - name: main\n      image: /bin/sh\n      args: ["-c", "echo started; exec sleep infinity"]\n`);
    expect((await vks(stateDir, ["pod", "up", "-d", "--log-mode", "file", file, ...user])).exitCode).toBe(0);
    const record = JSON.parse(await Bun.file(join(stateDir, "pods", "default", "lostlogs.json")).text()) as { logs: { directory: string }; units: { unitName: string }[] };
    const unit = record.units[0]?.unitName ?? "";
    // What a vks killed between writing the record and making the directory leaves: a record, nothing else.
    expect(Bun.spawnSync(["systemctl", ...user, "stop", unit]).exitCode).toBe(0);
    rmSync(record.logs.directory, { recursive: true, force: true });

    const restore = await vks(stateDir, ["pod", "restore", ...user]);
    expect(restore.exitCode, restore.stderr).toBe(0);
    await eventually("lostlogs' output in its log file", async () => (await vks(stateDir, ["pod", "logs", "lostlogs", ...user])).stdout === "started\n");
    const property = (name: string) => Bun.spawnSync(["systemctl", ...user, "show", "-p", name, "--value", unit]).stdout.toString().trim();
    expect([property("ActiveState"), property("NRestarts")]).toEqual(["active", "0"]);
  });
});

describe("vks binary", () => {
  test("--version and --help work offline", async () => {
    const version = await vks(stateDir, ["--version"]);
    expect(version.exitCode).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const help = await vks(stateDir, ["--help"]);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain("pod");
    expect(help.stdout).toContain("units");
    expect(help.stdout).toContain("serve");
    const podHelp = await vks(stateDir, ["pod", "up", "--help"]);
    expect(podHelp.stdout).toContain("Examples");
  });

  test("unknown commands are usage errors", async () => {
    const run = await vks(stateDir, ["pod", "frobnicate"]);
    expect(run.exitCode).not.toBe(0);
  });
});

describe.skipIf(!haveSystemd)("vks pod up in the foreground", () => {
  test("Ctrl-C tears the pod down; logs -f follows", async () => {
    const file = pod(
      "ticker",
      `  terminationGracePeriodSeconds: 2\n  containers:\n    - name: tick\n      image: /bin/sh\n      args: ["-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]\n`,
    );
    const foreground = Bun.spawn([VKS_BINARY, "pod", "up", file, ...user], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1" },
    });
    await eventually("ticker running", async () => (await podNamed(stateDir, "ticker"))?.status.phase === "Running");

    const follower = Bun.spawn([VKS_BINARY, "pod", "logs", "-f", "ticker", ...user], {
      stdout: "pipe",
      env: { ...process.env, VKS_STATE_DIR: stateDir },
    });
    const reader = follower.stdout.getReader();
    let followed = "";
    while (!/tick [3-9]/.test(followed)) {
      const { value, done } = await reader.read();
      if (done) break;
      followed += new TextDecoder().decode(value);
    }
    expect(followed).toContain("tick 1\n");
    follower.kill("SIGINT");
    expect(await follower.exited).toBe(0);

    foreground.kill("SIGINT");
    const [out, exitCode] = await Promise.all([new Response(foreground.stdout).text(), foreground.exited]);
    expect(exitCode).toBe(0);
    expect(out).toContain("tick 1");
    expect(await podNamed(stateDir, "ticker")).toBeUndefined();
    const units = JSON.parse((await vks(stateDir, ["units", "ls", "-o", "json", ...user])).stdout) as { pod: string }[];
    expect(units.some((r) => r.pod === "ticker")).toBe(false);
  });
});
