import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { ExitCode } from "../../internal/errors.ts";
import type { ResolvedImage } from "../../internal/image/types.ts";
import { executablesNeeded, planPod, type PlanInput } from "../../internal/pod/plan.ts";
import { vksErrorOf } from "../vks-error.ts";

const UID = "7d3f7a52-1111-4222-8333-944455556666";

function image(reference: string, fields: Partial<ResolvedImage> = {}): ResolvedImage {
  return {
    reference,
    entrypoint: [],
    cmd: [],
    environment: [],
    environmentFiles: [],
    runtimeDirectory: [],
    execStartPre: [],
    imageID: `dpkg:${reference}=1`,
    ...fields,
  };
}

function pod(containers: V1Container[], spec: Partial<NonNullable<V1Pod["spec"]>> = {}): V1Pod {
  return { metadata: { name: "p", namespace: "ns", uid: UID }, spec: { containers, ...spec } };
}

function input(candidate: V1Pod, images: Record<string, ResolvedImage>, fields: Partial<PlanInput> = {}): PlanInput {
  return { pod: candidate, images, executables: {}, logs: { mode: "journal" }, ...fields };
}

/** The argv the launcher rebuilds for `slot`, read back from a planned environment. */
function launchedArgv(environment: string[], slot: string): string[] {
  const values = new Map(environment.map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]));
  const count = Number(values.get(`VKS_EXEC_${slot}_ARGC`));
  return Array.from({ length: count }, (_, index) => values.get(`VKS_EXEC_${slot}_${index}`) ?? "<missing>");
}


describe("executablesNeeded", () => {
  test("bare argv[0] names after expansion, once each, in container order", () => {
    const candidate = pod([
      { name: "a", image: "tools", command: ["sh", "-c", "true"] },
      { name: "b", image: "tools", command: ["/bin/true"] },
      { name: "c", image: "tools", args: ["$(PROGRAM)", "x"], env: [{ name: "PROGRAM", value: "python3" }] },
      { name: "d", image: "tools", command: ["sh"] },
      { name: "e", image: "nginx" },
      { name: "f", image: "tools", command: ["./relative"] },
      { name: "g", image: "unresolved", command: ["ignored"] },
    ]);
    const images = {
      a: image("tools"),
      b: image("tools"),
      c: image("tools"),
      d: image("tools"),
      e: image("nginx", { entrypoint: ["/usr/sbin/nginx"] }),
      f: image("tools"),
    };
    expect(executablesNeeded(candidate, images)).toEqual(["sh", "python3"]);
  });

  test("status fields are unknown before planning: the reference stays as written", () => {
    const candidate = pod([
      { name: "a", image: "t", command: ["$(IP)"], env: [{ name: "IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }] },
    ]);
    expect(executablesNeeded(candidate, { a: image("t") })).toEqual(["$(IP)"]);
  });
});

describe("planPod", () => {
  test("container env overrides the image's; image variables are not visible to $(VAR)", () => {
    const candidate = pod([
      {
        name: "a",
        image: "t",
        command: ["/bin/echo", "$(LANG)", "$(FROM_IMAGE)"],
        env: [{ name: "LANG", value: "C" }, { name: "COPY", value: "$(FROM_IMAGE)" }],
      },
    ]);
    const [plan] = planPod(input(candidate, { a: image("t", { environment: ["LANG=en_US.UTF-8", "FROM_IMAGE=x", "BARE"] }) }));
    expect(plan?.properties.environment.slice(0, 4)).toEqual(["FROM_IMAGE=x", "BARE", "LANG=C", "COPY=$(FROM_IMAGE)"]);
    // The unexpanded reference keeps its "$", so the command goes through the launcher.
    expect(launchedArgv(plan?.properties.environment ?? [], "START0")).toEqual(["/bin/echo", "C", "$(FROM_IMAGE)"]);
  });

  test("a duplicate env name keeps its first position and its last value", () => {
    const candidate = pod([
      { name: "a", image: "t", command: ["/bin/true"], env: [{ name: "X", value: "1" }, { name: "Y", value: "$(X)" }, { name: "X", value: "2" }] },
    ]);
    expect(planPod(input(candidate, { a: image("t") }))[0]?.properties.environment).toEqual(["X=2", "Y=1"]);
  });

  test("status.podIP comes from hostIP, else from pod.status", () => {
    const env = [{ name: "IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }];
    const candidate = pod([{ name: "a", image: "t", command: ["/bin/true"], env }]);
    expect(planPod(input(candidate, { a: image("t") }, { hostIP: "10.0.0.5" }))[0]?.properties.environment).toEqual(["IP=10.0.0.5"]);
    const withStatus: V1Pod = { ...candidate, status: { hostIP: "10.0.0.6" } };
    expect(planPod(input(withStatus, { a: image("t") }))[0]?.properties.environment).toEqual(["IP=10.0.0.6"]);
    const err = vksErrorOf(() => planPod(input(candidate, { a: image("t") })));
    expect(err.message).toBe("pod ns/p: spec.containers[0].env[0].valueFrom.fieldRef: status.podIP is not known for this pod");
  });

  test("spec.nodeName and serviceAccountName", () => {
    const env = [
      { name: "NODE", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
      { name: "SA", valueFrom: { fieldRef: { fieldPath: "spec.serviceAccountName" } } },
      { name: "NOTE", valueFrom: { fieldRef: { fieldPath: "metadata.annotations['missing']" } } },
    ];
    const candidate = pod([{ name: "a", image: "t", command: ["/bin/true"], env }], { nodeName: "vks-node" });
    expect(planPod(input(candidate, { a: image("t") }))[0]?.properties.environment).toEqual(["NODE=vks-node", "SA=default", "NOTE="]);
    const withoutNode = pod([{ name: "a", image: "t", command: ["/bin/true"], env }]);
    expect(vksErrorOf(() => planPod(input(withoutNode, { a: image("t") }))).message).toContain("spec.nodeName is not known");
  });

  test("an empty program is an error naming the field", () => {
    const candidate = pod([{ name: "a", image: "t", command: [""] }]);
    const err = vksErrorOf(() => planPod(input(candidate, { a: image("t") })));
    expect(err.message).toBe("pod ns/p: spec.containers[0].command[0] is empty: there is no program to run");
    expect(err.exitCode).toBe(ExitCode.invalidInput);
  });

  test("a program from the image entrypoint that is not on PATH names the image", () => {
    const candidate = pod([{ name: "a", image: "t" }]);
    const err = vksErrorOf(() => planPod(input(candidate, { a: image("t", { entrypoint: ["daemon"] }) })));
    expect(err.message).toBe('pod ns/p: the entrypoint of image "t": program "daemon" was not found on PATH');
  });

  test("a missing image is a bug report, not a user error", () => {
    const err = vksErrorOf(() => planPod(input(pod([{ name: "a", image: "t", command: ["/bin/true"] }]), {})));
    expect(err.exitCode).toBe(ExitCode.software);
  });

  test("a pod without uid cannot be planned", () => {
    const candidate: V1Pod = { metadata: { name: "p" }, spec: { containers: [{ name: "a", image: "t", command: ["/bin/true"] }] } };
    expect(vksErrorOf(() => planPod(input(candidate, { a: image("t") }))).exitCode).toBe(ExitCode.software);
  });

  test("restart policies", () => {
    const settings = (restartPolicy?: string) => {
      const [plan] = planPod(input(pod([{ name: "a", image: "t", command: ["/bin/true"] }], { restartPolicy }), { a: image("t") }));
      return [plan?.properties.restart, plan?.properties.remainAfterExit];
    };
    expect(settings()).toEqual(["always", false]);
    expect(settings("Always")).toEqual(["always", false]);
    expect(settings("OnFailure")).toEqual(["on-failure", true]);
    expect(settings("Never")).toEqual(["no", true]);
  });

  test("only commands holding $ or ; go through the launcher, ExecStartPre included", () => {
    const nginx = image("nginx", {
      entrypoint: ["/usr/sbin/nginx"],
      execStartPre: [
        { path: "/usr/sbin/nginx", argv: ["/usr/sbin/nginx", "-t"], ignoreFailure: false },
        { path: "/usr/sbin/nginx", argv: ["/usr/sbin/nginx", "-t", "-g", "daemon on;"], ignoreFailure: true },
      ],
    });
    const candidate = pod([
      { name: "a", image: "nginx", args: ["-g", "daemon off;"] },
      { name: "b", image: "t", command: ["/bin/echo", "plain", "% ' \" \\ text"] },
    ]);
    const [web, plain] = planPod(input(candidate, { a: nginx, b: image("t") }));
    const properties = web?.properties;
    expect(properties?.execStartPre[0]).toEqual({ path: "/usr/sbin/nginx", argv: ["/usr/sbin/nginx", "-t"], ignoreFailure: false });
    expect(properties?.execStartPre[1]?.path).toBe("/bin/sh");
    expect(properties?.execStartPre[1]?.argv.slice(-2)).toEqual(["vks-exec", "PRE1"]);
    expect(properties?.execStartPre[1]?.ignoreFailure).toBe(true);
    expect(properties?.execStart[0]?.argv.slice(-2)).toEqual(["vks-exec", "START0"]);
    expect(launchedArgv(properties?.environment ?? [], "PRE1")).toEqual(["/usr/sbin/nginx", "-t", "-g", "daemon on;"]);
    expect(launchedArgv(properties?.environment ?? [], "START0")).toEqual(["/usr/sbin/nginx", "-g", "daemon off;"]);
    expect(properties?.environment).toContain("VKS_EXEC_SLOTS=PRE1 START0");
    expect(properties?.environment).toContain("VKS_EXEC_START0_PATH=/usr/sbin/nginx");

    expect(plain?.properties.execStart).toEqual([{ path: "/bin/echo", argv: ["/bin/echo", "plain", "% ' \" \\ text"], ignoreFailure: false }]);
    expect(plain?.properties.environment).toEqual([]);
  });

  test("a launched command refuses environment names the launcher uses", () => {
    const fromPod = pod([{ name: "a", image: "t", command: ["/bin/echo", "$x"], env: [{ name: "VKS_EXEC_MINE", value: "1" }] }]);
    const err = vksErrorOf(() => planPod(input(fromPod, { a: image("t") })));
    expect(err.message).toBe("pod ns/p: spec.containers[0].env: environment variable VKS_EXEC_MINE is reserved for vks' command launcher");
    expect(err.exitCode).toBe(ExitCode.invalidInput);
    const fromImage = pod([{ name: "a", image: "t", command: ["/bin/echo", "a;b"] }]);
    expect(vksErrorOf(() => planPod(input(fromImage, { a: image("t", { environment: ["VKS_EXEC_SCRIPT=x"] }) }))).message).toBe(
      `pod ns/p: the environment of image "t": environment variable VKS_EXEC_SCRIPT is reserved for vks' command launcher`,
    );
    // Without "$" or ";" nothing is launched, so the name is the pod's own business.
    const direct = pod([{ name: "a", image: "t", command: ["/bin/true"], env: [{ name: "VKS_EXEC_MINE", value: "1" }] }]);
    expect(planPod(input(direct, { a: image("t") }))[0]?.properties.environment).toEqual(["VKS_EXEC_MINE=1"]);
  });

  test("image type oneshot is kept when the unit does not restart always", () => {
    const type = (restartPolicy: string) =>
      planPod(input(pod([{ name: "a", image: "t", command: ["/bin/true"] }], { restartPolicy }), { a: image("t", { type: "oneshot" }) }))[0]
        ?.properties.type;
    expect(type("Always")).toBe("exec");
    expect(type("Never")).toBe("oneshot");
  });
});
