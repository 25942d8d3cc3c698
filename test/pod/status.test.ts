import type { V1ContainerStateTerminated, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { podStatus, terminatedFromRecordedExit, type PodStatusInput } from "../../internal/pod/status.ts";
import { dateFromMicros } from "../../internal/pod/timestamps.ts";
import { ExitKind, type UnitState } from "../../internal/systemd/types.ts";
import { HOST_IP, UID, runningUnit, unitName } from "./fixtures.ts";

const CREATED = new Date("2024-05-01T11:59:00Z");
const STARTED = new Date("2024-05-01T12:00:00Z");

/** Microseconds since the epoch for a time given in the fixtures, with sub-second noise systemd has. */
function micros(iso: string, extraMicros = 123_456n): bigint {
  return BigInt(Date.parse(iso)) * 1000n + extraMicros;
}

function unit(container: string, fields: Partial<UnitState>): UnitState {
  return runningUnit(container, micros("2024-05-01T12:00:05Z"), fields);
}

const running = (container: string, fields: Partial<UnitState> = {}) => unit(container, fields);

const exited = (container: string, exitCode: number, fields: Partial<UnitState> = {}) =>
  unit(container, {
    activeState: exitCode === 0 ? "active" : "failed",
    subState: exitCode === 0 ? "exited" : "failed",
    result: exitCode === 0 ? "success" : "exit-code",
    mainPID: 0,
    execMainCode: ExitKind.exited,
    execMainStatus: exitCode,
    execMainExitTimestamp: micros("2024-05-01T12:01:00Z"),
    inactiveEnterTimestamp: exitCode === 0 ? 0n : micros("2024-05-01T12:01:00Z"),
    ...fields,
  });

const killed = (container: string, signal: number, fields: Partial<UnitState> = {}) =>
  exited(container, 1, { result: "signal", execMainCode: ExitKind.killed, execMainStatus: signal, ...fields });

const autoRestart = (container: string, fields: Partial<UnitState> = {}) =>
  exited(container, 1, { activeState: "activating", subState: "auto-restart", nRestarts: 3, ...fields });

function pod(containers: string[], restartPolicy?: string): V1Pod {
  return {
    metadata: { name: "web", namespace: "default", uid: UID, creationTimestamp: CREATED },
    spec: { containers: containers.map((name) => ({ name, image: "nginx" })), ...(restartPolicy ? { restartPolicy } : {}) },
  };
}

function status(fields: Partial<PodStatusInput> & { pod: V1Pod }): V1PodStatus {
  return podStatus({ units: {}, waiting: {}, lastTerminated: {}, hostIP: HOST_IP, startTime: STARTED, ...fields });
}

function containerState(result: V1PodStatus, index = 0) {
  return result.containerStatuses?.[index];
}

describe("dateFromMicros", () => {
  test("exact, truncated to whole seconds like metav1.Time", () => {
    expect(dateFromMicros(1_714_564_805_999_999n)?.toISOString()).toBe("2024-05-01T12:00:05.000Z");
    expect(dateFromMicros(1_714_564_805_000_000n)?.toISOString()).toBe("2024-05-01T12:00:05.000Z");
  });
  test("0 and infinity are not times", () => {
    expect(dateFromMicros(0n)).toBeUndefined();
    expect(dateFromMicros(18446744073709551615n)).toBeUndefined();
  });
});

describe("podStatus: addresses and fixed fields", () => {
  test("host network: podIP is the host IP", () => {
    const result = status({ pod: pod(["main"]), units: { main: running("main") } });
    expect(result.hostIP).toBe(HOST_IP);
    expect(result.hostIPs).toEqual([{ ip: HOST_IP }]);
    expect(result.podIP).toBe(HOST_IP);
    expect(result.podIPs).toEqual([{ ip: HOST_IP }]);
    expect(result.startTime).toEqual(STARTED);
    expect(result.qosClass).toBe("BestEffort");
  });

  test("an existing qosClass is kept: the API makes it immutable", () => {
    const withClass: V1Pod = { ...pod(["main"]), status: { qosClass: "Guaranteed" } };
    expect(status({ pod: withClass }).qosClass).toBe("Guaranteed");
  });
});

describe("podStatus: container states", () => {
  test("running", () => {
    const result = status({ pod: pod(["main"]), units: { main: running("main", { nRestarts: 2 }) } });
    expect(containerState(result)).toEqual({
      name: "main",
      image: "nginx",
      imageID: "",
      containerID: `systemd://${unitName("main")}`,
      ready: true,
      started: true,
      restartCount: 2,
      state: { running: { startedAt: new Date("2024-05-01T12:00:05Z") } },
      lastState: {},
    });
    expect(result.phase).toBe("Running");
  });

  test("imageID comes from the resolved image", () => {
    const result = status({ pod: pod(["main"]), units: { main: running("main") }, imageIDs: { main: "dpkg:nginx=1.22" } });
    expect(containerState(result)?.imageID).toBe("dpkg:nginx=1.22");
  });

  test("running after a restart shows the remembered termination", () => {
    const previous: V1ContainerStateTerminated = { exitCode: 2, reason: "Error", finishedAt: new Date("2024-05-01T12:00:04Z") };
    const result = status({ pod: pod(["main"]), units: { main: running("main", { nRestarts: 1 }) }, lastTerminated: { main: previous } });
    expect(containerState(result)?.lastState).toEqual({ terminated: previous });
  });

  const terminations: [label: string, unit: UnitState, expected: V1ContainerStateTerminated][] = [
    [
      "exited 0",
      exited("main", 0),
      {
        exitCode: 0,
        reason: "Completed",
        startedAt: new Date("2024-05-01T12:00:05Z"),
        finishedAt: new Date("2024-05-01T12:01:00Z"),
        containerID: `systemd://${unitName("main")}`,
      },
    ],
    [
      "exited 1",
      exited("main", 1),
      {
        exitCode: 1,
        reason: "Error",
        startedAt: new Date("2024-05-01T12:00:05Z"),
        finishedAt: new Date("2024-05-01T12:01:00Z"),
        containerID: `systemd://${unitName("main")}`,
      },
    ],
    [
      "killed by SIGTERM",
      killed("main", 15),
      {
        exitCode: 143,
        signal: 15,
        reason: "Error",
        startedAt: new Date("2024-05-01T12:00:05Z"),
        finishedAt: new Date("2024-05-01T12:01:00Z"),
        containerID: `systemd://${unitName("main")}`,
      },
    ],
    [
      "dumped core on SIGSEGV",
      killed("main", 11, { execMainCode: ExitKind.dumped, result: "core-dump" }),
      {
        exitCode: 139,
        signal: 11,
        reason: "Error",
        startedAt: new Date("2024-05-01T12:00:05Z"),
        finishedAt: new Date("2024-05-01T12:01:00Z"),
        containerID: `systemd://${unitName("main")}`,
      },
    ],
    [
      "killed by the OOM killer",
      killed("main", 9, { result: "oom-kill" }),
      {
        exitCode: 137,
        signal: 9,
        reason: "OOMKilled",
        startedAt: new Date("2024-05-01T12:00:05Z"),
        finishedAt: new Date("2024-05-01T12:01:00Z"),
        containerID: `systemd://${unitName("main")}`,
      },
    ],
    [
      "the program could not be executed (203/EXEC)",
      exited("main", 203),
      {
        exitCode: 203,
        reason: "StartError",
        message: "systemd could not start the process: 203/EXEC: the program could not be executed",
        startedAt: new Date("2024-05-01T12:00:05Z"),
        finishedAt: new Date("2024-05-01T12:01:00Z"),
        containerID: `systemd://${unitName("main")}`,
      },
    ],
    [
      "failed before the main process ran",
      unit("main", {
        activeState: "failed",
        subState: "failed",
        result: "exit-code",
        mainPID: 0,
        execMainStartTimestamp: 0n,
        inactiveEnterTimestamp: micros("2024-05-01T12:00:06Z"),
      }),
      {
        exitCode: 128,
        reason: "StartError",
        message: `the unit failed before the program started (systemd result "exit-code"); see journalctl -u ${unitName("main")}`,
        finishedAt: new Date("2024-05-01T12:00:06Z"),
        containerID: `systemd://${unitName("main")}`,
      },
    ],
  ];
  for (const [label, unitState, expected] of terminations) {
    test(`terminated: ${label}`, () => {
      const result = status({ pod: pod(["main"], "Never"), units: { main: unitState } });
      expect(containerState(result)?.state).toEqual({ terminated: expected });
      expect(containerState(result)?.ready).toBe(false);
      expect(containerState(result)?.started).toBe(false);
    });
  }

  test("the remembered termination is not repeated as lastState when it is the current one", () => {
    const unitState = exited("main", 1);
    const current = status({ pod: pod(["main"], "Never"), units: { main: unitState } }).containerStatuses?.[0]?.state?.terminated;
    const result = status({ pod: pod(["main"], "Never"), units: { main: unitState }, lastTerminated: { main: current! } });
    expect(containerState(result)?.lastState).toEqual({});
  });

  test("auto-restart is CrashLoopBackOff with the exit as lastState", () => {
    const result = status({ pod: pod(["main"]), units: { main: autoRestart("main") } });
    expect(containerState(result)?.state).toEqual({
      waiting: {
        reason: "CrashLoopBackOff",
        message: `back-off restarting failed container=main pod=web_default(${UID})`,
      },
    });
    expect(containerState(result)?.lastState?.terminated?.exitCode).toBe(1);
    expect(containerState(result)?.lastState?.terminated?.reason).toBe("Error");
    expect(containerState(result)?.restartCount).toBe(3);
    expect(result.phase).toBe("Running");
  });

  test("a restarted unit in ExecStartPre waits out its back-off: CrashLoopBackOff with the gate's seconds", () => {
    const waiting = unit("main", { activeState: "activating", subState: "start-pre", mainPID: 0, nRestarts: 2, execMainStartTimestamp: 0n });
    const remembered: V1ContainerStateTerminated = { exitCode: 3, reason: "Error", containerID: `systemd://${unitName("main")}` };
    const result = status({ pod: pod(["main"]), units: { main: waiting }, backOff: { main: 20 }, lastTerminated: { main: remembered } });
    expect(containerState(result)?.state).toEqual({
      waiting: { reason: "CrashLoopBackOff", message: `back-off 20s restarting failed container=main pod=web_default(${UID})` },
    });
    expect(containerState(result)?.lastState).toEqual({ terminated: remembered });
    expect(containerState(result)?.restartCount).toBe(2);
    expect(containerState(result)?.ready).toBe(false);
    // The first start's ExecStartPre (package preparation) is not a back-off.
    const first = status({ pod: pod(["main"]), units: { main: { ...waiting, nRestarts: 0 } } });
    expect(containerState(first)?.state?.waiting?.reason).toBe("ContainerCreating");
  });

  test("a recorded exit (the unit's ExecStopPost) becomes a termination: exit codes, signals by name, OOM", () => {
    const base = { startedMicros: 1_700_000_000_000_000n, finishedMicros: 1_700_000_001_500_000n };
    expect(terminatedFromRecordedExit({ ...base, code: "exited", status: "3", result: "exit-code" }, unitName("main"))).toMatchObject({ exitCode: 3, reason: "Error" });
    expect(terminatedFromRecordedExit({ ...base, code: "killed", status: "TERM", result: "signal" }, unitName("main"))).toMatchObject({ exitCode: 143, signal: 15, reason: "Error" });
    expect(terminatedFromRecordedExit({ ...base, code: "killed", status: "KILL", result: "oom-kill" }, unitName("main"))).toMatchObject({ exitCode: 137, reason: "OOMKilled" });
    expect(terminatedFromRecordedExit({ ...base, code: "none", status: "0", result: "unknown" }, unitName("main"))).toBeUndefined();
  });

  test("auto-restart read across the restart (Service half newer) is the new run, never a StartError 128", () => {
    // What a reader sees between systemd's Service signal and Unit signal of a restart, or when its Gets
    // are answered on both sides of it: the sub state still says auto-restart, the exit status is zeroed.
    const torn = autoRestart("main", {
      mainPID: 4343,
      result: "success",
      execMainCode: ExitKind.none,
      execMainStatus: 0,
      execMainStartTimestamp: micros("2024-05-01T12:01:01Z"),
      execMainExitTimestamp: 0n,
    });
    const remembered: V1ContainerStateTerminated = { exitCode: 2, reason: "Error", containerID: `systemd://${unitName("main")}` };
    const result = status({ pod: pod(["main"]), units: { main: torn }, lastTerminated: { main: remembered } });
    expect(containerState(result)?.state).toEqual({ running: { startedAt: new Date("2024-05-01T12:01:01Z") } });
    expect(containerState(result)?.lastState).toEqual({ terminated: remembered });
    const unknown = status({ pod: pod(["main"]), units: { main: torn } });
    expect(containerState(unknown)?.lastState).toEqual({});
    expect(JSON.stringify(unknown)).not.toContain("StartError");
  });

  test("engine-known waiting reasons apply while there is no unit", () => {
    const result = status({
      pod: pod(["main"]),
      waiting: { main: { reason: "ErrImageNeverPull", message: 'package "nginx" is not installed and imagePullPolicy is Never' } },
    });
    expect(containerState(result)?.state).toEqual({
      waiting: { reason: "ErrImageNeverPull", message: 'package "nginx" is not installed and imagePullPolicy is Never' },
    });
    expect(containerState(result)?.containerID).toBeUndefined();
    expect(result.phase).toBe("Pending");
  });

  test("a missing unit of a recorded pod is ContainerStatusUnknown, exit 137", () => {
    const result = status({ pod: pod(["main"], "Never"), units: { main: undefined } });
    expect(containerState(result)?.state).toEqual({
      terminated: {
        exitCode: 137,
        reason: "ContainerStatusUnknown",
        message: `The container could not be located: its unit ${unitName("main")} is gone (host reboot, or removed outside vks)`,
        containerID: `systemd://${unitName("main")}`,
      },
    });
    expect(result.phase).toBe("Failed");
  });

  test("a unit systemd reports as not-found counts as missing", () => {
    const result = status({ pod: pod(["main"], "Never"), units: { main: unit("main", { loadState: "not-found", activeState: "inactive", subState: "dead" }) } });
    expect(containerState(result)?.state?.terminated?.reason).toBe("ContainerStatusUnknown");
  });

  test("a notify service that has not reported ready runs but is not ready", () => {
    const result = status({ pod: pod(["main"]), units: { main: unit("main", { activeState: "activating", subState: "start" }) } });
    expect(containerState(result)?.state?.running).toBeDefined();
    expect(containerState(result)?.ready).toBe(false);
    expect(containerState(result)?.started).toBe(true);
  });

  test("ExecStartPre and a loaded unit that never ran are ContainerCreating", () => {
    const startPre = status({ pod: pod(["main"]), units: { main: unit("main", { activeState: "activating", subState: "start-pre", mainPID: 0, execMainStartTimestamp: 0n }) } });
    expect(containerState(startPre)?.state).toEqual({ waiting: { reason: "ContainerCreating" } });
    const fresh = status({ pod: pod(["main"]), units: { main: unit("main", { activeState: "inactive", subState: "dead", mainPID: 0, execMainStartTimestamp: 0n }) } });
    expect(containerState(fresh)?.state).toEqual({ waiting: { reason: "ContainerCreating" } });
  });

  test("a stopping container is still running", () => {
    const result = status({ pod: pod(["main"]), units: { main: unit("main", { activeState: "deactivating", subState: "stop-sigterm" }) } });
    expect(containerState(result)?.state?.running).toBeDefined();
  });
});

describe("podStatus: phase", () => {
  const phases: [label: string, restartPolicy: string, units: Record<string, UnitState | undefined>, waiting: string[], phase: string][] = [
    ["nothing started yet", "Always", {}, ["a", "b"], "Pending"],
    ["one still creating", "Always", { a: running("a") }, ["b"], "Pending"],
    ["all running", "Always", { a: running("a"), b: running("b") }, [], "Running"],
    ["one running, one done", "Never", { a: running("a"), b: exited("b", 0) }, [], "Running"],
    ["all succeeded, Never", "Never", { a: exited("a", 0), b: exited("b", 0) }, [], "Succeeded"],
    ["all succeeded, OnFailure", "OnFailure", { a: exited("a", 0), b: exited("b", 0) }, [], "Succeeded"],
    ["all stopped, Always restarts them", "Always", { a: exited("a", 0), b: exited("b", 1) }, [], "Running"],
    ["one failed, Never", "Never", { a: exited("a", 0), b: exited("b", 1) }, [], "Failed"],
    ["one failed, OnFailure restarts it", "OnFailure", { a: exited("a", 0), b: autoRestart("b") }, [], "Running"],
    ["killed, Never", "Never", { a: killed("a", 9) }, [], "Failed"],
    ["crash looping alone", "Always", { a: autoRestart("a") }, [], "Running"],
  ];
  for (const [label, restartPolicy, units, waiting, phase] of phases) {
    test(label, () => {
      const names = ["a", "b"].filter((name) => name in units || waiting.includes(name));
      const waitingReasons = Object.fromEntries(waiting.map((name) => [name, { reason: "ContainerCreating" }]));
      expect(status({ pod: pod(names, restartPolicy), units, waiting: waitingReasons }).phase).toBe(phase);
    });
  }
});

describe("podStatus: conditions", () => {
  test("all ready: Ready since the last container started", () => {
    const result = status({
      pod: pod(["a", "b"]),
      units: { a: running("a"), b: running("b", { execMainStartTimestamp: micros("2024-05-01T12:00:09Z") }) },
    });
    expect(result.conditions).toEqual([
      { type: "PodReadyToStartContainers", status: "True", lastTransitionTime: STARTED },
      { type: "Initialized", status: "True", lastTransitionTime: STARTED },
      { type: "Ready", status: "True", lastTransitionTime: new Date("2024-05-01T12:00:09Z") },
      { type: "ContainersReady", status: "True", lastTransitionTime: new Date("2024-05-01T12:00:09Z") },
      { type: "PodScheduled", status: "True", lastTransitionTime: CREATED },
    ]);
  });

  test("not ready: names the containers, since the moment one stopped", () => {
    const result = status({ pod: pod(["a", "b"]), units: { a: running("a"), b: autoRestart("b") } });
    const ready = result.conditions?.find((condition) => condition.type === "Ready");
    expect(ready).toEqual({
      type: "Ready",
      status: "False",
      lastTransitionTime: new Date("2024-05-01T12:01:00Z"),
      reason: "ContainersNotReady",
      message: "containers with unready status: [b]",
    });
  });

  test("still creating: not ready since the pod was accepted", () => {
    const result = status({ pod: pod(["a"]), waiting: { a: { reason: "ContainerCreating" } } });
    const ready = result.conditions?.find((condition) => condition.type === "ContainersReady");
    expect(ready?.status).toBe("False");
    expect(ready?.lastTransitionTime).toEqual(STARTED);
  });

  test("succeeded: PodCompleted", () => {
    const result = status({ pod: pod(["a"], "Never"), units: { a: exited("a", 0) } });
    expect(result.phase).toBe("Succeeded");
    const ready = result.conditions?.find((condition) => condition.type === "Ready");
    expect(ready).toEqual({ type: "Ready", status: "False", lastTransitionTime: new Date("2024-05-01T12:01:00Z"), reason: "PodCompleted" });
  });

  test("without a start time the pod is not ready to start containers", () => {
    const result = podStatus({ pod: pod(["a"]), units: {}, waiting: { a: { reason: "ContainerCreating" } }, lastTerminated: {}, hostIP: HOST_IP });
    expect(result.startTime).toBeUndefined();
    expect(result.conditions?.[0]).toEqual({ type: "PodReadyToStartContainers", status: "False", lastTransitionTime: CREATED });
  });
});
