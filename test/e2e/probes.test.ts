/**
 * Probes end to end, run by a foreground `pod up` (the process that stays with its pods probes them) and
 * read back through `pod ls` in other processes: an httpGet readiness probe against python3's
 * http.server, and an exec liveness probe that starts failing.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually, foregroundPodUp, freePort, haveSystemd, managerFlag, podNamed, testFileStateDir, vks, writePod } from "./helpers.ts";

setDefaultTimeout(180_000);
const stateDir = testFileStateDir();

interface Condition {
  type: string;
  status: string;
}

const condition = (pod: Awaited<ReturnType<typeof podNamed>>, type: string) =>
  ((pod?.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((entry) => entry.type === type)?.status;

describe.skipIf(!haveSystemd)("probes (end to end, real systemd)", () => {
  test("a python3 http.server pod is Ready only once its httpGet readiness probe passes", async () => {
    const port = await freePort();
    const gate = join(stateDir, "serve-now");
    const file = writePod(
      stateDir,
      "web",
      [
        "  containers:",
        "    - name: http",
        "      image: /usr/bin/python3",
        // The server starts only once the test says so: until then the container runs but is not ready.
        `      command: ["/bin/sh", "-c", "while [ ! -e ${gate} ]; do sleep 0.2; done; exec /usr/bin/python3 -m http.server ${port} --bind 0.0.0.0"]`,
        "      ports: [{name: web, containerPort: " + port + "}]",
        "      readinessProbe:",
        "        httpGet: {port: web, path: /}",
        "        periodSeconds: 1",
        "",
      ].join("\n"),
    );
    const up = foregroundPodUp(stateDir, file);
    try {
      const running = await eventually("running but not ready", async () => {
        const pod = await podNamed(stateDir, "web");
        const status = pod?.status.containerStatuses?.[0];
        return status?.state.running !== undefined && status.ready === false ? pod : undefined;
      });
      expect(condition(running, "Ready")).toBe("False");
      expect(condition(running, "ContainersReady")).toBe("False");
      // Several probe periods pass while the server is not up: still not ready.
      await eventually("a failed probe shown by pod up", async () => up.output().includes("Readiness probe failed"));
      expect((await podNamed(stateDir, "web"))?.status.containerStatuses?.[0]?.ready).toBe(false);
      expect((await vks(stateDir, ["pod", "ls", ...managerFlag])).stdout).toMatch(/web\s+0\/1\s+Running/);

      writeFileSync(gate, "");
      const ready = await eventually("Ready", async () => {
        const pod = await podNamed(stateDir, "web");
        return condition(pod, "Ready") === "True" ? pod : undefined;
      });
      expect(ready.status.containerStatuses?.[0]?.ready).toBe(true);
      expect(condition(ready, "ContainersReady")).toBe("True");
      // Ready means the server answers.
      expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
      expect((await vks(stateDir, ["pod", "ls", ...managerFlag])).stdout).toMatch(/web\s+1\/1\s+Running/);
      expect(up.output()).toContain("http: Running, not ready");
    } finally {
      await up.stop();
      rmSync(gate, { force: true });
    }
    expect(await podNamed(stateDir, "web")).toBeUndefined();
  });

  test("an exec liveness probe that starts failing restarts the container, with Unhealthy and Killing", async () => {
    const healthy = join(stateDir, "healthy");
    const file = writePod(
      stateDir,
      "alive",
      [
        "  containers:",
        "    - name: main",
        "      image: /bin/sh",
        `      args: ["-c", "touch ${healthy}; exec sleep infinity"]`,
        "      livenessProbe:",
        `        exec: {command: ["test", "-e", "${healthy}"]}`,
        "        periodSeconds: 1",
        "        failureThreshold: 2",
        "",
      ].join("\n"),
    );
    const up = foregroundPodUp(stateDir, file);
    try {
      await eventually("running and healthy", async () => {
        const status = (await podNamed(stateDir, "alive"))?.status.containerStatuses?.[0];
        return status?.state.running !== undefined && existsSync(healthy);
      });
      rmSync(healthy);
      const restarted = await eventually("restarted after the liveness kill", async () => {
        const status = (await podNamed(stateDir, "alive"))?.status.containerStatuses?.[0];
        return status !== undefined && status.restartCount >= 1 && status.state.running !== undefined ? status : undefined;
      });
      // SIGTERM: 128 + 15.
      expect(restarted.lastState?.terminated?.exitCode).toBe(143);
      expect(up.output()).toContain("main: Unhealthy: Liveness probe failed");
      expect(up.output()).toContain("main: Killing: Container main failed liveness probe, will be restarted");
      // The restarted container makes its marker again. Running means its shell started, not that it got
      // to `touch` yet: under stress-ng the check came first.
      await eventually("the restarted container's marker", async () => existsSync(healthy));
    } finally {
      await up.stop();
    }
  });
});
