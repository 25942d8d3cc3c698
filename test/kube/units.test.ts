// The pure parts of serve: node conditions from readings, status patches, the
// work queue's coalescing, and the wire format of times.
import { describe, expect, test } from "bun:test";
import type { V1NodeCondition, V1Pod } from "@kubernetes/client-node";
import { kilobyteField } from "../../internal/host/kernel-files.ts";
import { osImageFrom, type HostReadings } from "../../internal/kube/host.ts";
import { mergeNodeConditions, nodeTaints, observedConditions, sameConditions } from "../../internal/kube/node-status.ts";
import { podEventObject } from "../../internal/kube/events.ts";
import { mergePodConditions, podStatusPatch } from "../../internal/kube/pod-status-writer.ts";
import { KeyedWorkQueue } from "../../internal/kube/work-queue.ts";
import { toWire } from "../../internal/kube/wire.ts";
import { V1MicroTime } from "@kubernetes/client-node";

const GiB = 1024 ** 3;

function readings(overrides: Partial<HostReadings> = {}): HostReadings {
  return {
    memoryAvailableBytes: 4 * GiB,
    memoryTotalBytes: 8 * GiB,
    filesystem: { path: "/var/lib/vks", capacityBytes: 100 * GiB, availableBytes: 50 * GiB, inodes: 1000, inodesFree: 500 },
    processCount: 200,
    processLimit: 4_000_000,
    ...overrides,
  };
}

const statusOf = (conditions: V1NodeCondition[], type: string) => conditions.find((c) => c.type === type);

describe("node conditions", () => {
  test("healthy readings: Ready, no pressure, with the kubelet's reasons", () => {
    const conditions = observedConditions({ systemdHealthy: true, readings: readings() });
    expect(conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ["Ready", "True", "KubeletReady"],
      ["MemoryPressure", "False", "KubeletHasSufficientMemory"],
      ["DiskPressure", "False", "KubeletHasNoDiskPressure"],
      ["PIDPressure", "False", "KubeletHasSufficientPID"],
    ]);
  });

  test("thresholds: <100Mi memory, <10% disk or <5% inodes, <10% pids", () => {
    const low = observedConditions({
      systemdHealthy: true,
      readings: readings({
        memoryAvailableBytes: 50 * 1024 * 1024,
        filesystem: { path: "/", capacityBytes: 100, availableBytes: 50, inodes: 100, inodesFree: 4 },
        processCount: 95,
        processLimit: 100,
      }),
    });
    expect(statusOf(low, "MemoryPressure")?.status).toBe("True");
    expect(statusOf(low, "DiskPressure")?.status).toBe("True");
    expect(statusOf(low, "PIDPressure")?.status).toBe("True");
    const disk = observedConditions({ systemdHealthy: true, readings: readings({ filesystem: { path: "/", capacityBytes: 100, availableBytes: 9, inodes: 0, inodesFree: 0 } }) });
    expect(statusOf(disk, "DiskPressure")?.reason).toBe("KubeletHasDiskPressure");
  });

  test("systemd not answering makes Ready False; unreadable host state makes pressure Unknown", () => {
    const conditions = observedConditions({ systemdHealthy: false, readings: { error: "no /proc" } });
    expect(statusOf(conditions, "Ready")).toMatchObject({ status: "False", reason: "SystemdUnavailable" });
    expect(statusOf(conditions, "MemoryPressure")?.status).toBe("Unknown");
  });

  test("while vks reconnects to a lost bus, Ready False says why", () => {
    const problem = "systemd is unreachable: lost the connection to the user bus (the bus closed the connection)";
    const conditions = observedConditions({ systemdHealthy: false, systemdProblem: problem, readings: readings() });
    expect(statusOf(conditions, "Ready")).toMatchObject({ status: "False", reason: "SystemdUnavailable" });
    expect(statusOf(conditions, "Ready")?.message).toStartWith(`${problem}: `);
    expect(statusOf(conditions, "Ready")?.message).toContain("running pods keep running");
  });

  test("merging keeps transition times of unchanged conditions and others' conditions", () => {
    const then = new Date("2024-01-01T00:00:00Z");
    const now = new Date("2024-01-01T00:10:00Z");
    const existing: V1NodeCondition[] = [
      { type: "Ready", status: "True", reason: "KubeletReady", lastTransitionTime: then, lastHeartbeatTime: then },
      { type: "MemoryPressure", status: "True", reason: "KubeletHasInsufficientMemory", lastTransitionTime: then },
      { type: "NetworkUnavailable", status: "False", reason: "RouteCreated" },
    ];
    const merged = mergeNodeConditions(existing, observedConditions({ systemdHealthy: true, readings: readings() }), now);
    expect(statusOf(merged, "Ready")).toMatchObject({ lastTransitionTime: then, lastHeartbeatTime: now });
    expect(statusOf(merged, "MemoryPressure")).toMatchObject({ status: "False", lastTransitionTime: now });
    expect(statusOf(merged, "NetworkUnavailable")).toEqual({ type: "NetworkUnavailable", status: "False", reason: "RouteCreated" });
    expect(sameConditions(merged, observedConditions({ systemdHealthy: true, readings: readings({ memoryAvailableBytes: GiB }) }))).toBe(true);
    expect(sameConditions(merged, observedConditions({ systemdHealthy: false, readings: readings() }))).toBe(false);
  });

  test("taints: vks' taint added or removed, others kept", () => {
    const foreign = { key: "example.com/x", effect: "NoExecute" };
    expect(nodeTaints([foreign], true)).toEqual([foreign, { key: "virtual-kubelet.io/provider", value: "vks", effect: "NoSchedule" }]);
    expect(nodeTaints([foreign, { key: "virtual-kubelet.io/provider", value: "vks", effect: "NoSchedule" }], false)).toEqual([foreign]);
  });

  test("host file parsing", () => {
    expect(osImageFrom('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')).toBe("Debian GNU/Linux 12 (bookworm)");
    expect(kilobyteField("MemTotal:       16303780 kB\nMemAvailable:    8000000 kB\n", "MemAvailable")).toBe(8_000_000 * 1024);
  });
});

describe("pod status patches", () => {
  test("unchanged status gives no patch; vanished owned fields are nulled; others' conditions kept", () => {
    const current = {
      phase: "Pending",
      reason: "ProviderFailed",
      nominatedNodeName: "x",
      conditions: [{ type: "Ready", status: "False" }, { type: "example.com/gate", status: "True" }],
    };
    const patch = podStatusPatch(current, { phase: "Running", conditions: [{ type: "Ready", status: "True" }] });
    expect(patch).toEqual({ phase: "Running", reason: null, conditions: [{ type: "Ready", status: "True" }, { type: "example.com/gate", status: "True" }] });
    expect(patch).not.toHaveProperty("nominatedNodeName");
    const applied = { ...current, phase: "Running", reason: undefined, conditions: patch?.conditions as typeof current.conditions };
    expect(podStatusPatch(applied, { phase: "Running", conditions: [{ type: "Ready", status: "True" }] })).toBeUndefined();
    expect(mergePodConditions(undefined, undefined)).toBeUndefined();
  });

  test("times are written as metav1.Time, MicroTime keeps six digits", () => {
    const wire = toWire({ t: new Date("2024-05-06T07:08:09.123Z"), m: new V1MicroTime("2024-05-06T07:08:09.123Z") }) as Record<string, string>;
    expect(wire.t).toBe("2024-05-06T07:08:09Z");
    expect(wire.m).toBe("2024-05-06T07:08:09.123000Z");
  });

  test("events carry the pod's uid and the container's field path", () => {
    const event = podEventObject(
      { metadata: { name: "web", namespace: "ns", uid: "u-1" } },
      { type: "Warning", reason: "BackOff", message: "m", container: "app" },
      "node-1",
      new Date("2024-01-01T00:00:00Z"),
      7,
    );
    expect(event.involvedObject).toEqual({ apiVersion: "v1", kind: "Pod", namespace: "ns", name: "web", uid: "u-1", fieldPath: "spec.containers{app}" });
    expect(event.source).toEqual({ component: "vks", host: "node-1" });
    expect(event.metadata.name).toStartWith("web.");
  });
});

describe("work queue", () => {
  test("a key is never processed twice at once; adds while busy coalesce into one more run", async () => {
    const runs: string[] = [];
    let release: () => void = () => undefined;
    let active = 0;
    let maxActive = 0;
    const queue = new KeyedWorkQueue(
      async (key) => {
        active++;
        maxActive = Math.max(maxActive, active);
        runs.push(key);
        if (runs.length === 1) await new Promise<void>((resolve) => (release = resolve));
        active--;
      },
      { concurrency: 4, retry: { initialMs: 1, maxMs: 1 } },
    );
    queue.add("a");
    queue.start();
    queue.add("a");
    queue.add("a");
    queue.add("a");
    await Bun.sleep(0);
    release();
    await queue.idle();
    expect(runs).toEqual(["a", "a"]);
    expect(maxActive).toBe(1);
  });

  test("failures are retried until they succeed", async () => {
    let attempts = 0;
    const queue = new KeyedWorkQueue(
      async () => {
        if (++attempts < 3) throw new Error("not yet");
      },
      { concurrency: 1, retry: { initialMs: 1, maxMs: 2 } },
    );
    queue.start();
    queue.add("k");
    while (attempts < 3) await Bun.sleep(5);
    await queue.idle();
    queue.stop();
    expect(attempts).toBe(3);
  });
});

describe("init container events", () => {
  test("an init container's events point at spec.initContainers", () => {
    const pod = { metadata: { name: "web", namespace: "ns", uid: "u-1" }, spec: { initContainers: [{ name: "setup", image: "x" }], containers: [{ name: "app", image: "x" }] } };
    const event = podEventObject(pod, { type: "Normal", reason: "Started", message: "m", container: "setup" }, "node-1", new Date(), 1);
    expect(event.involvedObject.fieldPath).toBe("spec.initContainers{setup}");
    expect(podEventObject(pod, { type: "Normal", reason: "Started", message: "m", container: "app" }, "node-1", new Date(), 2).involvedObject.fieldPath).toBe("spec.containers{app}");
  });
});
