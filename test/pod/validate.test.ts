import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { ExitCode, ValidationError } from "../../internal/errors.ts";
import { MAX_EXEC_STRING_BYTES, MAX_EXEC_TOTAL_BYTES } from "../../internal/pod/exec-limits.ts";
import { podWarnings, validatePod } from "../../internal/pod/validate.ts";
import { problemsOf } from "./fixtures.ts";

function pod(overrides: { metadata?: V1Pod["metadata"]; spec?: Partial<NonNullable<V1Pod["spec"]>> } = {}): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "web", ...overrides.metadata },
    spec: { containers: [{ name: "main", image: "/bin/sleep", args: ["1"] }], ...overrides.spec },
  };
}

/** For pods built from untyped data (records, JSON): validatePod must cope with anything. */
function untyped(value: unknown): V1Pod {
  return value as V1Pod;
}

describe("validatePod", () => {
  test("a minimal pod is valid", () => {
    expect(problemsOf(pod())).toEqual([]);
  });

  test("the error lists every problem and says nothing was created", () => {
    const err = (() => {
      try {
        validatePod(pod({ metadata: { name: "Web" }, spec: { restartPolicy: "Sometimes" } }), "pod.yaml");
      } catch (caught) {
        return caught;
      }
    })();
    expect(err).toBeInstanceOf(ValidationError);
    const validation = err as ValidationError;
    expect(validation.exitCode).toBe(ExitCode.invalidInput);
    expect(validation.message).toBe(
      "pod.yaml: invalid pod manifest:\n" +
        "  metadata.name: must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.'; at most 253)\n" +
        "  spec.restartPolicy: must be one of Always, OnFailure, Never",
    );
  });

  test("metadata", () => {
    expect(problemsOf(pod({ metadata: { name: "" } }))).toEqual([{ path: "metadata.name", message: "required" }]);
    expect(problemsOf(pod({ metadata: { name: undefined, generateName: "web-" } }))).toEqual([
      { path: "metadata.name", message: "required (vks does not support generateName)" },
    ]);
    expect(problemsOf(pod({ metadata: { name: "a".repeat(254) } }))[0]?.path).toBe("metadata.name");
    expect(problemsOf(pod({ metadata: { name: "web.frontend-1.v2" } }))).toEqual([]);
    expect(problemsOf(pod({ metadata: { name: "-web" } }))[0]?.path).toBe("metadata.name");
    expect(problemsOf(pod({ metadata: { name: "web", namespace: "Team_A" } }))).toEqual([
      { path: "metadata.namespace", message: "must be a DNS-1123 label (lowercase letters, digits, '-'; at most 63)" },
    ]);
    expect(problemsOf(pod({ metadata: { name: "web", namespace: "a.b" } }))[0]?.path).toBe("metadata.namespace");
    expect(problemsOf(pod({ metadata: { name: "web", uid: "not/a uid" } }))[0]?.path).toBe("metadata.uid");
    expect(problemsOf(pod({ metadata: { name: "web", uid: "0B9D8F2E-5A41-4C3B-9E7A-1F2D3C4B5A69" } }))).toEqual([]);
  });

  test("a missing spec or no containers", () => {
    expect(problemsOf(untyped({ metadata: { name: "x" } }))).toEqual([{ path: "spec", message: "required" }]);
    expect(problemsOf(pod({ spec: { containers: [] } }))).toEqual([
      { path: "spec.containers", message: "must list at least one container" },
    ]);
  });

  test("every container problem, located by index", () => {
    const candidate = pod({
      spec: {
        containers: [
          { name: "main", image: "/bin/sleep" },
          { name: "Main_2", image: "" },
          { name: "main", image: "nginx", workingDir: "srv", imagePullPolicy: "Sometimes" },
          { name: "", image: "nginx", command: ["a", 1 as unknown as string], args: "x" as unknown as string[] },
        ],
      },
    });
    expect(problemsOf(candidate)).toEqual([
      { path: "spec.containers[1].name", message: "must be a DNS-1123 label (lowercase letters, digits, '-'; at most 63)" },
      { path: "spec.containers[1].image", message: "required: a Debian package name or the absolute path of a program" },
      { path: "spec.containers[2].name", message: 'duplicate name "main" (also spec.containers[0].name)' },
      { path: "spec.containers[2].imagePullPolicy", message: "must be one of Always, IfNotPresent, Never" },
      { path: "spec.containers[2].workingDir", message: "must be an absolute path" },
      { path: "spec.containers[3].name", message: "required" },
      { path: "spec.containers[3].command[1]", message: "must be a string" },
      { path: "spec.containers[3].args", message: "must be a list of strings" },
    ]);
  });

  test("NUL characters cannot reach a process", () => {
    const candidate = pod({
      spec: { containers: [{ name: "main", image: "x", args: ["a\0b"], env: [{ name: "A", value: "x\0" }] }] },
    });
    expect(problemsOf(candidate)).toEqual([
      { path: "spec.containers[0].args[0]", message: "must not contain a NUL character" },
      { path: "spec.containers[0].env[0].value", message: "must not contain a NUL character" },
    ]);
  });

  test("env names, values and valueFrom (ConfigMap, Secret and resource sources are accepted: env.test.ts)", () => {
    const candidate = pod({
      spec: {
        containers: [
          {
            name: "main",
            image: "x",
            env: [
              { name: "GOOD_1", value: "x" },
              { name: "" },
              { name: "1BAD" },
              { name: "my.dotted-name", value: "x" },
              { name: "BOTH", value: "x", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
              { name: "SECRET", valueFrom: { secretKeyRef: { name: "s", key: "k" } } },
              { name: "CONFIG", valueFrom: { configMapKeyRef: { name: "c", key: "k" } } },
              { name: "LIMIT", valueFrom: { resourceFieldRef: { resource: "limits.cpu" } } },
              { name: "NODE_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } },
              { name: "LABEL", valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
              { name: "WHAT", valueFrom: { fieldRef: { fieldPath: "spec.containers" } } },
              { name: "OLD_API", valueFrom: { fieldRef: { apiVersion: "v2", fieldPath: "metadata.uid" } } },
              { name: "NONE", valueFrom: {} },
            ],
            envFrom: [{ configMapRef: { name: "c" } }],
          },
        ],
      },
    });
    expect(problemsOf(candidate)).toEqual([
      { path: "spec.containers[0].env[1].name", message: "required" },
      {
        path: "spec.containers[0].env[2].name",
        message: "must consist of letters, digits, '_', '-' and '.', and must not start with a digit",
      },
      {
        path: "spec.containers[0].env[3].name",
        message: `"my.dotted-name" is valid in Kubernetes but systemd only passes names of letters, digits and '_' (not starting with a digit)`,
      },
      { path: "spec.containers[0].env[4].valueFrom", message: "may not be given together with a non-empty value" },
      {
        path: "spec.containers[0].env[10].valueFrom.fieldRef.fieldPath",
        message:
          'unsupported field "spec.containers"; supported: metadata.name, metadata.namespace, metadata.uid, ' +
          "metadata.labels['<key>'], metadata.annotations['<key>'], spec.nodeName, spec.serviceAccountName, " +
          "status.hostIP, status.hostIPs, status.podIP, status.podIPs",
      },
      { path: "spec.containers[0].env[11].valueFrom.fieldRef.apiVersion", message: 'must be "v1"' },
      {
        path: "spec.containers[0].env[12].valueFrom",
        message: "must give exactly one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef, fileKeyRef",
      },
    ]);
  });

  test("pod-level fields", () => {
    const candidate = pod({
      spec: {
        containers: [{ name: "main", image: "x", restartPolicy: "Always" }],
        initContainers: [{ name: "init", image: "x", restartPolicy: "OnFailure" }],
        restartPolicy: "Sometimes",
        terminationGracePeriodSeconds: -1,
        os: { name: "windows" },
        hostUsers: false,
        securityContext: { runAsUser: -5 },
      },
    });
    expect(problemsOf(candidate)).toEqual([
      {
        path: "spec.initContainers[0].restartPolicy",
        message:
          'Unsupported value: "OnFailure": supported values: "Always" (a sidecar); leave it unset for an init container that runs to completion',
      },
      {
        path: "spec.containers[0].restartPolicy",
        message: "not supported: set restartPolicy for the whole pod in spec.restartPolicy",
      },
      { path: "spec.restartPolicy", message: "must be one of Always, OnFailure, Never" },
      { path: "spec.terminationGracePeriodSeconds", message: "must be an integer of 0 or more" },
      { path: "spec.os.name", message: 'must be "linux": vks runs Linux processes' },
      { path: "spec.hostUsers", message: "not supported: vks runs processes in the host's user namespace" },
      { path: "spec.securityContext.runAsUser", message: "must be an integer from 0 to 4294967294" },
    ]);
  });

  test("restart policies and grace periods that are fine", () => {
    for (const restartPolicy of ["Always", "OnFailure", "Never"]) {
      expect(problemsOf(pod({ spec: { restartPolicy, terminationGracePeriodSeconds: 0 } }))).toEqual([]);
    }
  });

  test("served volumes are accepted; unservable ones and bad mounts are refused with their field", () => {
    const candidate = pod({
      spec: {
        volumes: [
          { name: "kube-api-access-abcde", projected: { sources: [{ serviceAccountToken: { path: "token" } }] } },
          { name: "data", hostPath: { path: "/srv/data" } },
          { name: "claim", persistentVolumeClaim: { claimName: "db" } },
        ],
        containers: [
          {
            name: "main",
            image: "x",
            volumeMounts: [
              { name: "kube-api-access-abcde", mountPath: "/var/run/secrets/kubernetes.io/serviceaccount" },
              { name: "data", mountPath: "/data" },
              { name: "data", mountPath: "/data/", subPath: "../x" },
            ],
          },
        ],
      },
    });
    expect(problemsOf(candidate).map((problem) => problem.path)).toEqual([
      "spec.volumes[2].persistentVolumeClaim",
      "spec.containers[0].volumeMounts[2].mountPath",
      "spec.containers[0].volumeMounts[2].subPath",
    ]);
  });

  test("fields that are fine on the host network", () => {
    const candidate = pod({
      spec: {
        hostNetwork: true,
        nodeSelector: { "kubernetes.io/os": "linux" },
        containers: [
          {
            name: "main",
            image: "nginx",
            ports: [{ containerPort: 80, protocol: "TCP" }],
            resources: { limits: { memory: "128Mi" } },
            securityContext: { runAsUser: 1000, runAsGroup: 1000 },
            terminationMessagePath: "/dev/termination-log",
          },
        ],
      },
    });
    expect(problemsOf(candidate)).toEqual([]);
  });

  test("garbage from an untyped source does not crash validation", () => {
    const garbage = untyped({ metadata: "x", spec: { containers: ["main", null, { name: 3 }], volumes: "none" } });
    expect(problemsOf(garbage).map((problem) => problem.path)).toEqual([
      "metadata.name",
      "spec.volumes",
      "spec.containers[0]",
      "spec.containers[1]",
      "spec.containers[2].name",
      "spec.containers[2].image",
    ]);
  });
});

describe("validatePod: what execve takes", () => {
  const big = "y".repeat(MAX_EXEC_STRING_BYTES + 1);

  test("an argument or env entry past Linux's per-string limit is refused naming it (systemd would fail it with 203/EXEC)", () => {
    const paths = problemsOf(
      pod({ spec: { containers: [{ name: "main", image: "/bin/echo", command: ["/bin/echo", big], args: ["ok", big], env: [{ name: "BIG", value: big }] }] } }),
    ).map((problem) => problem.path);
    expect(paths).toEqual(["spec.containers[0].command[1]", "spec.containers[0].args[1]", "spec.containers[0].env[0].value"]);
  });

  test("many strings within the per-string limit but past the total are refused at the container", () => {
    const chunk = "z".repeat(100 * 1024);
    const args = Array.from({ length: Math.ceil(MAX_EXEC_TOTAL_BYTES / chunk.length) + 1 }, () => chunk);
    expect(problemsOf(pod({ spec: { initContainers: [{ name: "init", image: "/bin/true", args }] } })).map((problem) => problem.path)).toEqual(["spec.initContainers[0]"]);
  });

  test("the largest allowed argument is accepted", () => {
    expect(problemsOf(pod({ spec: { containers: [{ name: "main", image: "/bin/echo", args: ["y".repeat(MAX_EXEC_STRING_BYTES)] }] } }))).toEqual([]);
  });
});

describe("podWarnings", () => {
  test("accepted fields vks does not honour", () => {
    const candidate = pod({
      spec: {
        hostname: "box",
        activeDeadlineSeconds: 60,
        containers: [
          {
            name: "main",
            image: "x",
            readinessProbe: { exec: { command: ["true"] } },
            lifecycle: { preStop: { exec: { command: ["sleep", "5"] } } },
            resources: { requests: { cpu: "100m", "ephemeral-storage": "1Gi" } },
            securityContext: { readOnlyRootFilesystem: true },
            env: [{ name: "A", value: "1" }, { name: "A", value: "2" }],
          },
        ],
      },
    });
    expect(podWarnings(candidate).map((warning) => warning.path)).toEqual([
      "spec.containers[0].resources.requests.ephemeral-storage",
      "spec.containers[0].env[1].name",
      "spec.hostname",
    ]);
  });

  test("a plain pod has none", () => {
    expect(podWarnings(pod())).toEqual([]);
  });
});
