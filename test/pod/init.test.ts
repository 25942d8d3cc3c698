/**
 * Init containers and sidecars: validation, the status the kubelet would write while a pod initializes
 * (initContainerStatuses, Initialized, PodInitializing, phase), kubectl's Init:N/M display, and the
 * sequence the engine follows (init-sequence.ts), all from unit states alone.
 */
import type { V1Container, V1Pod, V1PodStatus } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { displayStatus } from "../../internal/actions/pod-query.ts";
import { nextInitStep, sidecarsToStop } from "../../internal/pod/init-sequence.ts";
import { podStatus } from "../../internal/pod/status.ts";
import { ExitKind, type UnitState } from "../../internal/systemd/types.ts";
import { HOST_IP, UID, problemsOf, runningUnit } from "./fixtures.ts";

const STARTED = new Date("2024-05-01T12:00:00Z");

function micros(iso: string): bigint {
  return BigInt(Date.parse(iso)) * 1000n;
}

function unit(container: string, fields: Partial<UnitState> = {}): UnitState {
  return runningUnit(container, micros("2024-05-01T12:00:05Z"), fields);
}

const running = (container: string) => unit(container);
/** RemainAfterExit: an init container that exited stays loaded, active (exited) or failed. */
const exited = (container: string, exitCode: number, at = "2024-05-01T12:00:10Z") =>
  unit(container, {
    activeState: exitCode === 0 ? "active" : "failed",
    subState: exitCode === 0 ? "exited" : "failed",
    result: exitCode === 0 ? "success" : "exit-code",
    mainPID: 0,
    execMainCode: ExitKind.exited,
    execMainStatus: exitCode,
    execMainExitTimestamp: micros(at),
  });
const backingOff = (container: string) =>
  unit(container, {
    activeState: "activating",
    subState: "auto-restart",
    result: "exit-code",
    mainPID: 0,
    execMainCode: ExitKind.exited,
    execMainStatus: 1,
    execMainExitTimestamp: micros("2024-05-01T12:00:10Z"),
    nRestarts: 2,
  });

function pod(init: V1Container[], apps: string[] = ["app"], restartPolicy?: string): V1Pod {
  return {
    metadata: { name: "web", namespace: "default", uid: UID, creationTimestamp: STARTED },
    spec: {
      initContainers: init,
      containers: apps.map((name) => ({ name, image: "/bin/sleep" })),
      ...(restartPolicy === undefined ? {} : { restartPolicy }),
    },
  };
}

const initC = (name: string): V1Container => ({ name, image: "/bin/true" });
const sidecar = (name: string): V1Container => ({ name, image: "/bin/sleep", restartPolicy: "Always" });

function status(target: V1Pod, units: Record<string, UnitState | undefined>): V1PodStatus {
  return podStatus({ pod: target, units, waiting: {}, lastTerminated: {}, hostIP: HOST_IP, startTime: STARTED });
}

function conditionOf(result: V1PodStatus, type: string) {
  return result.conditions?.find((c) => c.type === type);
}

describe("init containers: validation", () => {
  test("init containers and sidecars are accepted", () => {
    expect(problemsOf(pod([initC("a"), sidecar("b")]))).toEqual([]);
  });

  test("names are unique across init and app containers", () => {
    expect(problemsOf(pod([initC("app")]))).toEqual([
      { path: "spec.containers[0].name", message: 'duplicate name "app" (also spec.initContainers[0].name)' },
    ]);
  });

  test("restartPolicy on an init container is only Always; run-to-completion ones have no probes or hooks", () => {
    const candidate = pod([
      { ...initC("a"), restartPolicy: "Never" },
      { ...initC("b"), readinessProbe: { exec: { command: ["true"] } }, lifecycle: { preStop: { exec: { command: ["true"] } } } },
      { ...sidecar("c"), readinessProbe: { exec: { command: ["true"] } } },
    ]);
    expect(problemsOf(candidate)).toEqual([
      {
        path: "spec.initContainers[0].restartPolicy",
        message: 'Unsupported value: "Never": supported values: "Always" (a sidecar); leave it unset for an init container that runs to completion',
      },
      { path: "spec.initContainers[1].lifecycle", message: "may not be set for init containers without restartPolicy=Always" },
      { path: "spec.initContainers[1].readinessProbe", message: "may not be set for init containers without restartPolicy=Always" },
    ]);
  });

  test("an init container is checked like any container", () => {
    expect(problemsOf(pod([{ name: "Bad_Name", image: "" }]))).toEqual([
      { path: "spec.initContainers[0].name", message: "must be a DNS-1123 label (lowercase letters, digits, '-'; at most 63)" },
      { path: "spec.initContainers[0].image", message: "required: a Debian package name or the absolute path of a program" },
    ]);
  });
});

describe("init containers: status as the kubelet writes it", () => {
  const twoInits = pod([initC("first"), initC("second")]);

  test("before anything ran: Pending, every container waiting PodInitializing, Initialized False", () => {
    const result = status(twoInits, {});
    expect(result.phase).toBe("Pending");
    expect(result.initContainerStatuses?.map((s) => s.state?.waiting?.reason)).toEqual(["PodInitializing", "PodInitializing"]);
    expect(result.containerStatuses?.[0]?.state).toEqual({ waiting: { reason: "PodInitializing" } });
    expect(conditionOf(result, "Initialized")).toMatchObject({
      status: "False",
      reason: "ContainersNotInitialized",
      message: "containers with incomplete status: [first second]",
    });
    expect(displayStatus({ ...twoInits, status: result })).toBe("Init:0/2");
  });

  test("first done, second running: Init:1/2, the finished one Completed and ready", () => {
    const result = status(twoInits, { first: exited("first", 0), second: running("second") });
    expect(result.phase).toBe("Pending");
    expect(result.initContainerStatuses?.[0]).toMatchObject({ ready: true, started: false, state: { terminated: { exitCode: 0, reason: "Completed" } } });
    expect(result.initContainerStatuses?.[1]).toMatchObject({ ready: false, started: true, state: { running: {} } });
    expect(conditionOf(result, "Initialized")?.message).toBe("containers with incomplete status: [second]");
    expect(displayStatus({ ...twoInits, status: result })).toBe("Init:1/2");
  });

  test("all done and the app running: Running, Initialized True, no init in the display", () => {
    const result = status(twoInits, { first: exited("first", 0), second: exited("second", 0, "2024-05-01T12:00:20Z"), app: running("app") });
    expect(result.phase).toBe("Running");
    expect(conditionOf(result, "Initialized")).toEqual({ type: "Initialized", status: "True", lastTransitionTime: new Date("2024-05-01T12:00:20Z") });
    expect(conditionOf(result, "Ready")?.status).toBe("True");
    expect(displayStatus({ ...twoInits, status: result })).toBe("Running");
  });

  test("restartPolicy Never: a failed init container fails the pod (Init:Error), the app never started", () => {
    const never = pod([initC("first"), initC("second")], ["app"], "Never");
    const result = status(never, { first: exited("first", 3) });
    expect(result.phase).toBe("Failed");
    expect(result.initContainerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 3, reason: "Error" });
    expect(result.initContainerStatuses?.[1]?.state?.waiting?.reason).toBe("PodInitializing");
    expect(result.containerStatuses?.[0]?.state?.waiting?.reason).toBe("PodInitializing");
    expect(conditionOf(result, "Initialized")?.status).toBe("False");
    expect(displayStatus({ ...never, status: result })).toBe("Init:Error");
  });

  test("otherwise a failed init container backs off: Pending, CrashLoopBackOff, Init:CrashLoopBackOff", () => {
    const result = status(twoInits, { first: backingOff("first") });
    expect(result.phase).toBe("Pending");
    expect(result.initContainerStatuses?.[0]).toMatchObject({
      restartCount: 2,
      state: { waiting: { reason: "CrashLoopBackOff" } },
      lastState: { terminated: { exitCode: 1, reason: "Error" } },
    });
    expect(displayStatus({ ...twoInits, status: result })).toBe("Init:CrashLoopBackOff");
  });

  test("a started sidecar counts as initialized, runs alongside the app and counts toward readiness", () => {
    const withSidecar = pod([sidecar("proxy"), initC("setup")]);
    const midway = status(withSidecar, { proxy: running("proxy"), setup: running("setup") });
    expect(midway.initContainerStatuses?.[0]).toMatchObject({ started: true, ready: true });
    expect(displayStatus({ ...withSidecar, status: midway })).toBe("Init:1/2");
    const done = status(withSidecar, { proxy: running("proxy"), setup: exited("setup", 0), app: running("app") });
    expect(done.phase).toBe("Running");
    expect(conditionOf(done, "Initialized")?.status).toBe("True");
    expect(conditionOf(done, "ContainersReady")?.status).toBe("True");
    const proxyDown = status(withSidecar, { proxy: backingOff("proxy"), setup: exited("setup", 0), app: running("app") });
    expect(conditionOf(proxyDown, "ContainersReady")).toMatchObject({ status: "False", message: "containers with unready status: [proxy]" });
    // A restarting sidecar does not take the pod back to Pending or un-initialize it.
    expect(proxyDown.phase).toBe("Running");
    expect(conditionOf(proxyDown, "Initialized")?.status).toBe("True");
  });

  test("a sidecar stopped after the app finished does not keep a Never pod from succeeding", () => {
    const job = pod([sidecar("proxy")], ["app"], "Never");
    const result = status(job, { app: exited("app", 0) });
    expect(result.phase).toBe("Succeeded");
    expect(result.initContainerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 0, reason: "Completed" });
    expect(conditionOf(result, "Initialized")).toMatchObject({ status: "True", reason: "PodCompleted" });
  });

  test("a pod without init containers has no initContainerStatuses", () => {
    const plain: V1Pod = { ...pod([]), spec: { containers: [{ name: "app", image: "x" }] } };
    expect(status(plain, { app: running("app") }).initContainerStatuses).toBeUndefined();
  });
});

describe("init sequence", () => {
  test("one after another, then every app container", () => {
    const target = pod([initC("a"), initC("b")], ["x", "y"]);
    expect(nextInitStep(target, {})).toEqual({ kind: "start", containers: ["a"] });
    expect(nextInitStep(target, { a: running("a") })).toEqual({ kind: "wait" });
    expect(nextInitStep(target, { a: exited("a", 0) })).toEqual({ kind: "start", containers: ["b"] });
    expect(nextInitStep(target, { a: exited("a", 0), b: exited("b", 0) })).toEqual({ kind: "start", containers: ["x", "y"] });
  });

  test("a failure waits for systemd's restart, or ends the sequence under Never", () => {
    expect(nextInitStep(pod([initC("a")]), { a: backingOff("a") })).toEqual({ kind: "wait" });
    expect(nextInitStep(pod([initC("a")], ["app"], "Never"), { a: exited("a", 1) })).toEqual({ kind: "failed", container: "a" });
  });

  test("the next one starts once a sidecar runs", () => {
    const target = pod([sidecar("proxy"), initC("b")]);
    expect(nextInitStep(target, { proxy: unit("proxy", { activeState: "activating", subState: "start-pre", mainPID: 0, execMainStartTimestamp: 0n }) })).toEqual({ kind: "wait" });
    expect(nextInitStep(target, { proxy: running("proxy") })).toEqual({ kind: "start", containers: ["b"] });
  });

  test("a sidecar with a startup probe gates the next one until the probe passes", () => {
    const target = pod([sidecar("proxy"), initC("b")]);
    expect(nextInitStep(target, { proxy: running("proxy") }, new Set(["proxy"]))).toEqual({ kind: "wait" });
    expect(nextInitStep(target, { proxy: running("proxy") }, new Set())).toEqual({ kind: "start", containers: ["b"] });
  });

  test("adoption: app units mean initialized, even when the init units are gone", () => {
    expect(nextInitStep(pod([initC("a")]), { app: running("app") })).toEqual({ kind: "initialized" });
  });

  test("sidecars stop, last first, once the app containers finished for good", () => {
    const target = pod([sidecar("s1"), sidecar("s2")], ["app"], "OnFailure");
    const units = { s1: running("s1"), s2: running("s2") };
    expect(sidecarsToStop(target, { ...units, app: running("app") })).toEqual([]);
    expect(sidecarsToStop(target, { ...units, app: backingOff("app") })).toEqual([]);
    expect(sidecarsToStop(target, { ...units, app: exited("app", 0) })).toEqual(["s2", "s1"]);
    expect(sidecarsToStop(pod([sidecar("s1")], ["app"]), { s1: running("s1"), app: exited("app", 0) })).toEqual([]);
  });
});
