/** Bad probes and hooks are refused with the field path, as the API server refuses them. */
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { podWarnings } from "../../../internal/pod/validate.ts";
import { probeSpec } from "../../../internal/pod/probes/spec.ts";
import { problemsOf } from "../fixtures.ts";

function pod(container: Partial<V1Container>, restartPolicy?: string): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "web" },
    spec: { ...(restartPolicy === undefined ? {} : { restartPolicy }), containers: [{ name: "main", image: "/bin/sleep", ports: [{ name: "http", containerPort: 8080 }], ...container }] },
  };
}

const paths = (candidate: V1Pod) => problemsOf(candidate).map((problem) => `${problem.path}: ${problem.message}`);

describe("probe validation", () => {
  test("a probe with no handler, or two", () => {
    expect(paths(pod({ readinessProbe: { periodSeconds: 5 } }))).toEqual(["spec.containers[0].readinessProbe: must specify a handler type: one of exec, httpGet, tcpSocket, grpc"]);
    expect(paths(pod({ livenessProbe: { exec: { command: ["true"] }, tcpSocket: { port: 80 } } }))).toEqual([
      "spec.containers[0].livenessProbe.tcpSocket: may not specify more than 1 handler type (also exec)",
    ]);
  });

  test("a port name no container port declares; a number out of range", () => {
    expect(paths(pod({ readinessProbe: { httpGet: { port: "metrics" } } }))).toEqual([
      'spec.containers[0].readinessProbe.httpGet.port: no container port named "metrics"; declared: http',
    ]);
    expect(paths(pod({ livenessProbe: { tcpSocket: { port: 70000 } } }))).toEqual(["spec.containers[0].livenessProbe.tcpSocket.port: must be between 1 and 65535, inclusive"]);
    expect(paths(pod({ readinessProbe: { httpGet: { port: "http" } } }))).toEqual([]);
  });

  test("zero or negative periods, timeouts and thresholds; successThreshold 1 for liveness and startup", () => {
    expect(paths(pod({ readinessProbe: { exec: { command: ["true"] }, periodSeconds: 0, timeoutSeconds: -1, initialDelaySeconds: -5, failureThreshold: 0 } }))).toEqual([
      "spec.containers[0].readinessProbe.initialDelaySeconds: must be an integer of 0 or more",
      "spec.containers[0].readinessProbe.periodSeconds: must be an integer of 1 or more",
      "spec.containers[0].readinessProbe.timeoutSeconds: must be an integer of 1 or more",
      "spec.containers[0].readinessProbe.failureThreshold: must be an integer of 1 or more",
    ]);
    expect(paths(pod({ livenessProbe: { exec: { command: ["true"] }, successThreshold: 2 } }))).toEqual([
      "spec.containers[0].livenessProbe.successThreshold: must be 1 for liveness and startup probes",
    ]);
    expect(paths(pod({ startupProbe: { exec: { command: ["true"] }, successThreshold: 3 } }))).toEqual([
      "spec.containers[0].startupProbe.successThreshold: must be 1 for liveness and startup probes",
    ]);
    expect(paths(pod({ readinessProbe: { exec: { command: ["true"] }, successThreshold: 3 } }))).toEqual([]);
    expect(paths(pod({ readinessProbe: { exec: { command: ["true"] }, terminationGracePeriodSeconds: 5 } }))).toEqual([
      "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: must not be set for readiness probes",
    ]);
  });

  test("handler fields: an empty exec command, a relative path, a bad header, a named gRPC port", () => {
    expect(paths(pod({ livenessProbe: { exec: { command: [] } } }))).toEqual(["spec.containers[0].livenessProbe.exec.command: required: the command and its arguments"]);
    expect(paths(pod({ readinessProbe: { httpGet: { port: 8080, path: "healthz", httpHeaders: [{ name: "bad header", value: "x" }] } } }))).toEqual([
      "spec.containers[0].readinessProbe.httpGet.path: must be an absolute path (starting with /)",
      "spec.containers[0].readinessProbe.httpGet.httpHeaders[0].name: must be a valid HTTP header name",
    ]);
    expect(paths(pod({ readinessProbe: { grpc: { port: "http" as unknown as number } } }))).toEqual([
      "spec.containers[0].readinessProbe.grpc.port: must be a port number between 1 and 65535",
    ]);
  });

  test("lifecycle hooks: exec, httpGet or sleep, one of them", () => {
    expect(paths(pod({ lifecycle: { preStop: {} } }))).toEqual(["spec.containers[0].lifecycle.preStop: must specify a handler type: one of exec, httpGet, sleep"]);
    expect(paths(pod({ lifecycle: { postStart: { tcpSocket: { port: 80 } } } }))).toEqual([
      "spec.containers[0].lifecycle.postStart.tcpSocket: not allowed here: use one of exec, httpGet, sleep",
    ]);
    expect(paths(pod({ lifecycle: { preStop: { sleep: { seconds: -1 } } } as V1Container["lifecycle"] }))).toEqual([
      "spec.containers[0].lifecycle.preStop.sleep.seconds: must be an integer of 0 or more",
    ]);
  });

  test("probes are no longer a warning", () => {
    expect(podWarnings(pod({ readinessProbe: { httpGet: { port: 8080 } } }))).toEqual([]);
  });

  test("the kubelet's defaults and named ports", () => {
    const container: V1Container = { name: "main", image: "x", ports: [{ name: "http", containerPort: 8080 }], readinessProbe: { httpGet: { port: "http" } } };
    expect(probeSpec(container, "readiness")).toEqual({
      kind: "readiness",
      handler: { type: "httpGet", scheme: "HTTP", port: 8080, path: "/", headers: [] },
      initialDelaySeconds: 0,
      periodSeconds: 10,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    });
    expect(probeSpec(container, "liveness")).toBeUndefined();
  });
});
