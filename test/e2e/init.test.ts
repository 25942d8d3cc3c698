/**
 * Init containers and sidecars with real units (run inside test/sandbox.sh, after rebuilding dist/vks):
 * init containers run in order before the app, `pod ls` shows Init:N/M meanwhile, a failing one under
 * restartPolicy Never fails the pod without starting the app, and a sidecar runs next to the app and is
 * stopped after it.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VKS_BINARY, eventually, haveSystemd, managerFlag, podNamed, vks, testFileStateDir, writePod } from "./helpers.ts";

setDefaultTimeout(120_000);
const stateDir = testFileStateDir();
const user = managerFlag;

const pod = (name: string, spec: string): string => writePod(stateDir, name, spec);

/** A shell container: `script` runs under /bin/sh -c. */
function shell(name: string, script: string, extra = ""): string {
  return `    - name: ${name}\n      image: /bin/sh\n      args: ["-c", ${JSON.stringify(script)}]\n${extra}`;
}

function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : [];
}

async function statusColumn(name: string): Promise<string | undefined> {
  const table = await vks(stateDir, ["pod", "ls", ...user]);
  const row = table.stdout.split("\n").find((line) => line.split(/\s+/)[1] === name);
  return row?.split(/\s+/)[3];
}

describe.skipIf(!haveSystemd)("init containers (end to end, real systemd)", () => {
  test("run in order before the app; pod ls shows Init:N/M meanwhile", async () => {
    const order = join(stateDir, "order");
    const gate1 = join(stateDir, "gate1");
    const gate2 = join(stateDir, "gate2");
    // Each step records a nanosecond timestamp; the first two wait for the test to open their gate.
    const stamp = (what: string) => `echo "$(date +%s%N) ${what}" >> ${order}`;
    const file = pod(
      "initorder",
      `  initContainers:\n` +
        shell("first", `${stamp("first")}; while [ ! -e ${gate1} ]; do sleep 0.1; done`) +
        shell("second", `${stamp("second")}; while [ ! -e ${gate2} ]; do sleep 0.1; done`) +
        `  containers:\n` +
        shell("app", `${stamp("app")}; exec sleep infinity`),
    );
    // Foreground: this process drives the sequence; Ctrl-C (SIGINT) tears the pod down at the end.
    const up = Bun.spawn([VKS_BINARY, "pod", "up", file, ...user], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1" },
    });
    try {
      await eventually("Init:0/2", async () => (await statusColumn("initorder")) === "Init:0/2");
      const pending = await podNamed(stateDir, "initorder");
      expect(pending?.status.phase).toBe("Pending");
      expect(pending?.status.containerStatuses?.[0]?.state.waiting?.reason).toBe("PodInitializing");
      writeFileSync(gate1, "");
      await eventually("Init:1/2", async () => (await statusColumn("initorder")) === "Init:1/2");
      // Its unit started is not its shell having run its first line (seen under load).
      await eventually("second wrote", async () => lines(order).length === 2);
      expect(lines(order).map((line) => line.split(" ")[1])).toEqual(["first", "second"]);
      writeFileSync(gate2, "");
      await eventually("Running", async () => (await statusColumn("initorder")) === "Running");
      await eventually("app wrote", async () => lines(order).length === 3);
      const entries = lines(order).map((line) => line.split(" "));
      expect(entries.map(([, what]) => what)).toEqual(["first", "second", "app"]);
      const times = entries.map(([time]) => BigInt(time ?? "0"));
      expect(times[0]! < times[1]! && times[1]! < times[2]!).toBe(true);
      const listed = (await vks(stateDir, ["pod", "ls", "-o", "json", ...user])).stdout;
      const running = (JSON.parse(listed) as { items: { metadata: { name: string }; status: { initContainerStatuses?: { name: string; state: { terminated?: { reason: string } } }[]; conditions: { type: string; status: string }[] } }[] }).items.find(
        (item) => item.metadata.name === "initorder",
      );
      expect(running?.status.initContainerStatuses?.map((s) => [s.name, s.state.terminated?.reason])).toEqual([
        ["first", "Completed"],
        ["second", "Completed"],
      ]);
      expect(running?.status.conditions.find((c) => c.type === "Initialized")?.status).toBe("True");
    } finally {
      up.kill("SIGINT");
      await up.exited;
    }
    expect(await podNamed(stateDir, "initorder")).toBeUndefined();
  });

  test("restartPolicy Never: a failing init container fails the pod and the app never starts", async () => {
    const appRan = join(stateDir, "app-ran");
    const file = pod(
      "initfail",
      `  restartPolicy: Never\n  initContainers:\n` + shell("check", "echo checking; exit 4") + `  containers:\n` + shell("app", `touch ${appRan}`),
    );
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    expect(up.exitCode).toBe(1);
    const listed = await podNamed(stateDir, "initfail");
    expect(listed?.status.phase).toBe("Failed");
    expect(listed?.status.containerStatuses?.[0]?.state.waiting?.reason).toBe("PodInitializing");
    expect(await statusColumn("initfail")).toBe("Init:Error");
    expect(existsSync(appRan)).toBe(false);
    expect((await vks(stateDir, ["pod", "logs", "initfail", "-c", "check", ...user])).stdout).toBe("checking\n");
    expect((await vks(stateDir, ["pod", "down", "initfail", ...user])).exitCode).toBe(0);
  });

  test("a failing init container under OnFailure backs off: Init:CrashLoopBackOff", async () => {
    const file = pod("initloop", `  restartPolicy: OnFailure\n  initContainers:\n` + shell("flaky", "exit 1") + `  containers:\n` + shell("app", "sleep infinity"));
    const up = Bun.spawn([VKS_BINARY, "pod", "up", file, ...user], { stdout: "ignore", stderr: "ignore", env: { ...process.env, VKS_STATE_DIR: stateDir } });
    try {
      await eventually("Init:CrashLoopBackOff", async () => (await statusColumn("initloop")) === "Init:CrashLoopBackOff");
      expect((await podNamed(stateDir, "initloop"))?.status.phase).toBe("Pending");
    } finally {
      up.kill("SIGINT");
      await up.exited;
    }
  });

  test("restartPolicy Never with a sidecar: once the app exits the sidecar is stopped and the pod succeeds", async () => {
    const file = pod(
      "sidecarjob",
      `  restartPolicy: Never\n  initContainers:\n` +
        shell("logger", "while true; do sleep 0.1; done", "      restartPolicy: Always\n") +
        `  containers:\n` +
        shell("job", "echo working; sleep 0.3"),
    );
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    expect(up.exitCode).toBe(0);
    const listed = await podNamed(stateDir, "sidecarjob");
    expect(listed?.status.phase).toBe("Succeeded");
    expect(await statusColumn("sidecarjob")).toBe("Completed");
    expect((await vks(stateDir, ["pod", "down", "sidecarjob", ...user])).exitCode).toBe(0);
  });

  test("a sidecar's startup probe holds the next init container back until it passes", async () => {
    const gate = join(stateDir, "proxy-ready");
    const stamp = join(stateDir, "after-ran");
    const file = pod(
      "sidecarprobe",
      `  initContainers:\n` +
        shell(
          "proxy",
          "while true; do sleep 0.1; done",
          `      restartPolicy: Always\n      startupProbe:\n        exec:\n          command: ["/bin/sh", "-c", "test -e ${gate}"]\n        periodSeconds: 1\n        timeoutSeconds: 10\n        failureThreshold: 600\n`,
        ) +
        shell("after", `touch ${stamp}`) +
        `  containers:\n` +
        shell("app", "exec sleep infinity"),
    );
    // Foreground: this process runs the probes (pod up -d has no prober, and a running sidecar counts as started).
    const up = Bun.spawn([VKS_BINARY, "pod", "up", file, ...user], { stdout: "ignore", stderr: "ignore", env: { ...process.env, VKS_STATE_DIR: stateDir } });
    try {
      // kubectl's display: a sidecar that runs but has not started is not done (Init:0/2, not 1/2).
      await eventually("the sidecar running, not started", async () => {
        const listed = (await vks(stateDir, ["pod", "ls", "-o", "json", ...user])).stdout;
        const item = (JSON.parse(listed) as { items: { metadata: { name: string }; status: { initContainerStatuses?: { name: string; started?: boolean; state: { running?: object } }[] } }[] }).items.find(
          (candidate) => candidate.metadata.name === "sidecarprobe",
        );
        const proxy = item?.status.initContainerStatuses?.find((status) => status.name === "proxy");
        return proxy?.state.running !== undefined && proxy.started === false;
      });
      expect(await statusColumn("sidecarprobe")).toBe("Init:0/2");
      // Three probe periods with the sidecar running and not started: the next init container waits.
      await Bun.sleep(3000);
      expect(existsSync(stamp)).toBe(false);
      expect(await statusColumn("sidecarprobe")).toBe("Init:0/2");
      writeFileSync(gate, "");
      await eventually("Running", async () => (await statusColumn("sidecarprobe")) === "Running");
      expect(existsSync(stamp)).toBe(true);
    } finally {
      up.kill("SIGINT");
      await up.exited;
    }
  });

  test("pod up -d waits for initialization; a sidecar runs alongside and stops after the app on pod down", async () => {
    const events = join(stateDir, "sidecar-events");
    const record = (what: string) => `echo "$(date +%s%N) ${what}" >> ${events}`;
    const file = pod(
      "withsidecar",
      `  terminationGracePeriodSeconds: 5\n  initContainers:\n` +
        shell("proxy", `${record("proxy started")}; trap '${record("proxy stopped")}; exit 0' TERM; while true; do sleep 0.1; done`, "      restartPolicy: Always\n") +
        shell("setup", record("setup ran")) +
        `  containers:\n` +
        shell("app", `${record("app started")}; trap 'sleep 0.5; ${record("app stopped")}; exit 0' TERM; while true; do sleep 0.1; done`),
    );
    const up = await vks(stateDir, ["pod", "up", "-d", file, ...user]);
    expect(up.exitCode).toBe(0);
    await eventually("2/2 Running", async () => {
      const table = await vks(stateDir, ["pod", "ls", ...user]);
      return /withsidecar\s+2\/2\s+Running/.test(table.stdout);
    });
    await eventually("app started", async () => lines(events).some((line) => line.endsWith("app started")));
    expect(lines(events).map((line) => line.split(" ").slice(1).join(" "))).toEqual(["proxy started", "setup ran", "app started"]);
    const listed = await podNamed(stateDir, "withsidecar");
    expect(listed?.status.phase).toBe("Running");

    expect((await vks(stateDir, ["pod", "down", "withsidecar", ...user])).exitCode).toBe(0);
    const stops = lines(events).map((line) => line.split(" ").slice(1).join(" ")).slice(3);
    // The app takes half a second to stop; the sidecar is stopped only once it has.
    expect(stops).toEqual(["app stopped", "proxy stopped"]);
  });
});
