/**
 * Lifecycle hooks end to end: postStart holds the container out of Running until it succeeds and kills
 * it when it fails (run by the foreground pod up that drives the pod); preStop runs before SIGTERM when
 * the pod goes down (in the pod down process).
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually, foregroundPodUp, freePort, haveSystemd, managerFlag, podNamed, testFileStateDir, vks, writePod } from "./helpers.ts";

setDefaultTimeout(180_000);
const stateDir = testFileStateDir();

describe.skipIf(!haveSystemd)("lifecycle hooks (end to end, real systemd)", () => {
  test("postStart: the container is ContainerCreating until the hook succeeds, then Running", async () => {
    const gate = join(stateDir, "poststart-gate");
    const file = writePod(
      stateDir,
      "hooked",
      [
        "  containers:",
        "    - name: main",
        "      image: /bin/sleep",
        '      args: ["infinity"]',
        "      lifecycle:",
        `        postStart: {exec: {command: ["/bin/sh", "-c", "while [ ! -e ${gate} ]; do sleep 0.2; done"]}}`,
        "",
      ].join("\n"),
    );
    const up = foregroundPodUp(stateDir, file);
    try {
      await eventually("ContainerCreating while the hook runs", async () => {
        const status = (await podNamed(stateDir, "hooked"))?.status.containerStatuses?.[0];
        return status?.state.waiting?.reason === "ContainerCreating" && up.output().includes("pod default/hooked created");
      });
      // The process runs meanwhile: the hook is exec'd into it.
      const units = JSON.parse((await vks(stateDir, ["units", "ls", "-o", "json", ...managerFlag])).stdout) as { pod: string; mainPID: number }[];
      expect(units.find((row) => row.pod === "hooked")?.mainPID).toBeGreaterThan(0);
      writeFileSync(gate, "");
      await eventually("Running once the hook finished", async () => (await podNamed(stateDir, "hooked"))?.status.containerStatuses?.[0]?.state.running !== undefined);
    } finally {
      await up.stop();
      rmSync(gate, { force: true });
    }
  });

  test("a failing postStart kills the container (FailedPostStartHook) and it restarts", async () => {
    const file = writePod(
      stateDir,
      "badhook",
      ["  containers:", "    - name: main", "      image: /bin/sleep", '      args: ["infinity"]', "      lifecycle:", '        postStart: {exec: {command: ["/bin/sh", "-c", "echo nope; exit 3"]}}', ""].join("\n"),
    );
    const up = foregroundPodUp(stateDir, file);
    try {
      await eventually("a restart after the failed hook", async () => ((await podNamed(stateDir, "badhook"))?.status.containerStatuses?.[0]?.restartCount ?? 0) >= 1);
      expect(up.output()).toContain("main: FailedPostStartHook: Exec lifecycle hook ([/bin/sh -c echo nope; exit 3]) for Container \"main\" in Pod \"badhook_default(");
      expect(up.output()).toContain("main: Killing: FailedPostStartHook");
    } finally {
      await up.stop();
    }
  });

  test("preStop runs before SIGTERM when the pod goes down", async () => {
    const trace = join(stateDir, "prestop-trace");
    const file = writePod(
      stateDir,
      "stopper",
      [
        "  containers:",
        "    - name: main",
        "      image: /bin/sh",
        `      args: ["-c", "trap 'echo term >> ${trace}; exit 0' TERM; while true; do sleep 0.2; done"]`,
        "      lifecycle:",
        `        preStop: {exec: {command: ["/bin/sh", "-c", "echo prestop >> ${trace}"]}}`,
        "",
      ].join("\n"),
    );
    expect((await vks(stateDir, ["pod", "up", "-d", file, ...managerFlag])).exitCode).toBe(0);
    await eventually("running", async () => (await podNamed(stateDir, "stopper"))?.status.containerStatuses?.[0]?.state.running !== undefined);
    const down = await vks(stateDir, ["pod", "down", "stopper", ...managerFlag]);
    expect(down.exitCode).toBe(0);
    expect(readFileSync(trace, "utf8")).toBe("prestop\nterm\n");
  });

  test("a failing preStop is reported and the container still stops", async () => {
    const file = writePod(
      stateDir,
      "badstop",
      ["  containers:", "    - name: main", "      image: /bin/sleep", '      args: ["infinity"]', "      lifecycle:", '        preStop: {exec: {command: ["/bin/false"]}}', ""].join("\n"),
    );
    expect((await vks(stateDir, ["pod", "up", "-d", file, ...managerFlag])).exitCode).toBe(0);
    await eventually("running", async () => (await podNamed(stateDir, "badstop"))?.status.containerStatuses?.[0]?.state.running !== undefined);
    const down = await vks(stateDir, ["pod", "down", "badstop", ...managerFlag]);
    expect(down.exitCode).toBe(0);
    expect(down.stdout + down.stderr).toContain("FailedPreStopHook: Exec lifecycle hook ([/bin/false])");
    expect(await podNamed(stateDir, "badstop")).toBeUndefined();
  });
});
