/**
 * The prober's results as the kubelet's worker keeps them, with exec probes whose outcome the test sets
 * (the exec itself is the engine's, tested end to end) and real one-second periods.
 */
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { ProbeManager, type ContainerRun, type ProbeHost } from "../../../internal/pod/probes/manager.ts";
import type { PodEvent } from "../../../internal/pod/provider.ts";

setDefaultTimeout(30_000);

function pod(container: Partial<V1Container>): V1Pod {
  return { metadata: { name: "web", namespace: "default", uid: "u1" }, spec: { containers: [{ name: "main", image: "x", ...container }] } };
}

class Host implements ProbeHost {
  podIP = "127.0.0.1";
  outcomes: Record<string, number> = {};
  events: PodEvent[] = [];
  kills: string[] = [];
  changes = 0;
  exec(_pod: V1Pod, _container: string) {
    return async (command: string[]) => ({ exitCode: this.outcomes[command[0] ?? ""] ?? 0, output: `${command[0]} says ${this.outcomes[command[0] ?? ""] ?? 0}`, timedOut: false });
  }
  changed(): void {
    this.changes++;
  }
  persist(): void {}
  event(_pod: V1Pod, event: PodEvent): void {
    this.events.push(event);
  }
  async kill(_pod: V1Pod, container: string, kind: string): Promise<void> {
    this.kills.push(`${container}/${kind}`);
  }
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const run = (instance: string, running = true): Record<string, ContainerRun> => ({ main: { running, instance, startedAt: Date.now() } });

describe("ProbeManager", () => {
  test("readiness: not ready until a probe passes; unready after failureThreshold failures, with Unhealthy events", async () => {
    const host = new Host();
    const manager = new ProbeManager(host);
    const subject = pod({ readinessProbe: { exec: { command: ["ready"] }, periodSeconds: 1, failureThreshold: 2 } });
    host.outcomes.ready = 1;
    manager.sync("default/web", subject, run("1"));
    expect(manager.statusOf("default/web")?.main?.ready).toBe(false);
    await until("an Unhealthy event", () => host.events.length > 0);
    expect(host.events[0]).toEqual({ type: "Warning", reason: "Unhealthy", message: "Readiness probe failed: ready says 1", container: "main" });
    host.outcomes.ready = 0;
    await until("ready", () => manager.statusOf("default/web")?.main?.ready === true);
    host.outcomes.ready = 1;
    const failures = host.events.length;
    await until("one failure", () => host.events.length === failures + 1);
    // One failure is below failureThreshold 2: still ready.
    expect(manager.statusOf("default/web")?.main?.ready).toBe(true);
    await until("unready", () => manager.statusOf("default/web")?.main?.ready === false);
    expect(host.kills).toEqual([]);
    manager.close();
  });

  test("liveness: a failure at the threshold kills the container once; the next run is probed afresh", async () => {
    const host = new Host();
    const manager = new ProbeManager(host);
    const subject = pod({ livenessProbe: { exec: { command: ["alive"] }, periodSeconds: 1, failureThreshold: 1 } });
    host.outcomes.alive = 1;
    manager.sync("default/web", subject, run("1"));
    await until("a kill", () => host.kills.length === 1);
    expect(host.kills).toEqual(["main/liveness"]);
    // Held: no second kill of the same run while it is being stopped.
    await Bun.sleep(1500);
    expect(host.kills.length).toBe(1);
    manager.sync("default/web", subject, run("2"));
    await until("the restarted container's kill", () => host.kills.length === 2);
    manager.close();
  });

  test("startup gates liveness and readiness, and sets started", async () => {
    const host = new Host();
    const manager = new ProbeManager(host);
    const subject = pod({
      startupProbe: { exec: { command: ["startup"] }, periodSeconds: 1, failureThreshold: 30 },
      readinessProbe: { exec: { command: ["ready"] }, periodSeconds: 1 },
      livenessProbe: { exec: { command: ["alive"] }, periodSeconds: 1, failureThreshold: 1 },
    });
    host.outcomes.startup = 1;
    host.outcomes.alive = 1;
    manager.sync("default/web", subject, run("1"));
    await until("two startup failures", () => host.events.filter((event) => event.message.startsWith("Startup")).length >= 2);
    expect(manager.statusOf("default/web")?.main).toEqual({ instance: "1", started: false, ready: false });
    // Liveness fails, but is not run before the container started.
    expect(host.kills).toEqual([]);
    expect(host.events.some((event) => !event.message.startsWith("Startup"))).toBe(false);
    host.outcomes.startup = 0;
    await until("started", () => manager.statusOf("default/web")?.main?.started === true);
    await until("ready", () => manager.statusOf("default/web")?.main?.ready === true);
    await until("the liveness kill", () => host.kills.length === 1);
    manager.close();
  });

  test("a container that stops running is not ready; a pod without probes costs nothing", () => {
    const host = new Host();
    const manager = new ProbeManager(host);
    manager.sync("default/plain", pod({}), run("1"));
    expect(manager.statusOf("default/plain")).toBeUndefined();
    expect(manager.scheduler.size).toBe(0);
    const subject = pod({ readinessProbe: { exec: { command: ["ready"] }, periodSeconds: 1 } });
    manager.sync("default/web", subject, run("1"));
    expect(manager.scheduler.size).toBe(1);
    manager.sync("default/web", subject, run("1", false));
    expect(manager.scheduler.size).toBe(0);
    expect(manager.statusOf("default/web")?.main?.ready).toBe(false);
    manager.forget("default/web");
    expect(manager.statusOf("default/web")).toBeUndefined();
    manager.close();
  });
});
