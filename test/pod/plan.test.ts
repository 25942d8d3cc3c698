import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { ExitCode, VksError } from "../../internal/errors.ts";
import type { ResolvedImage } from "../../internal/image/types.ts";
import { executablesNeeded, planPod, type PlanInput } from "../../internal/pod/plan.ts";

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

function planError(run: () => unknown): VksError {
  try {
    run();
  } catch (err) {
    if (err instanceof VksError) return err;
    throw err;
  }
  throw new Error("expected a VksError");
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
    expect(plan?.properties.environment).toEqual(["FROM_IMAGE=x", "BARE", "LANG=C", "COPY=$(FROM_IMAGE)"]);
    expect(plan?.properties.execStart[0]?.argv).toEqual(["/bin/echo", "C", "$(FROM_IMAGE)"]);
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
    const err = planError(() => planPod(input(candidate, { a: image("t") })));
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
    expect(planError(() => planPod(input(withoutNode, { a: image("t") }))).message).toContain("spec.nodeName is not known");
  });

  test("an empty program is an error naming the field", () => {
    const candidate = pod([{ name: "a", image: "t", command: [""] }]);
    const err = planError(() => planPod(input(candidate, { a: image("t") })));
    expect(err.message).toBe("pod ns/p: spec.containers[0].command[0] is empty: there is no program to run");
    expect(err.exitCode).toBe(ExitCode.invalidInput);
  });

  test("a program from the image entrypoint that is not on PATH names the image", () => {
    const candidate = pod([{ name: "a", image: "t" }]);
    const err = planError(() => planPod(input(candidate, { a: image("t", { entrypoint: ["daemon"] }) })));
    expect(err.message).toBe('pod ns/p: the entrypoint of image "t": program "daemon" was not found on PATH');
  });

  test("a missing image is a bug report, not a user error", () => {
    const err = planError(() => planPod(input(pod([{ name: "a", image: "t", command: ["/bin/true"] }]), {})));
    expect(err.exitCode).toBe(ExitCode.software);
  });

  test("a pod without uid cannot be planned", () => {
    const candidate: V1Pod = { metadata: { name: "p" }, spec: { containers: [{ name: "a", image: "t", command: ["/bin/true"] }] } };
    expect(planError(() => planPod(input(candidate, { a: image("t") }))).exitCode).toBe(ExitCode.software);
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

  test("image type oneshot is kept when the unit does not restart always", () => {
    const type = (restartPolicy: string) =>
      planPod(input(pod([{ name: "a", image: "t", command: ["/bin/true"] }], { restartPolicy }), { a: image("t", { type: "oneshot" }) }))[0]
        ?.properties.type;
    expect(type("Always")).toBe("exec");
    expect(type("Never")).toBe("oneshot");
  });
});
