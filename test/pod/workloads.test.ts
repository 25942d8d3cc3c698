import { describe, expect, test } from "bun:test";
import { parse } from "yaml";
import { ValidationError } from "../../internal/errors.ts";
import {
  WORKLOAD_ANNOTATION,
  initialPods,
  jobStep,
  parseWorkload,
  safeEncode,
  templateHash,
  templateProblemPath,
  workloadPod,
  type JobSettings,
  type WorkloadRandom,
} from "../../internal/pod/workloads.ts";

/** Fixed randomness: suffixes bbbbb, ccccc, …; UIDs uid-1, uid-2, … */
function fixedRandom(): WorkloadRandom {
  let suffixes = 0;
  let uids = 0;
  return { suffix: () => "bcdfghjklm"[suffixes++ % 10]!.repeat(5), uid: () => `uid-${++uids}` };
}

const TEMPLATE = `
  template:
    metadata:
      labels: {app: web, tier: front}
      annotations: {note: kept}
    spec:
      containers:
        - name: main
          image: /bin/sleep
          args: ["infinity"]
`;

function workloadDocument(kind: string, apiVersion: string, spec: string, template = TEMPLATE): Record<string, unknown> {
  return parse(`apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata:\n  name: web\nspec:\n${spec}${template}`) as Record<string, unknown>;
}

const SELECTOR = "  selector:\n    matchLabels: {app: web}\n";

function problemsOf(run: () => unknown): { path: string; message: string }[] {
  try {
    run();
  } catch (err) {
    if (err instanceof ValidationError) return err.problems;
    throw err;
  }
  throw new Error("expected a ValidationError");
}

describe("templateHash", () => {
  test("rendered with the controller's safe alphabet from the decimal FNV-32a", () => {
    // FNV-32a("") is the offset basis 2166136261; each decimal digit maps to one safe character.
    expect(safeEncode("2166136261")).toBe("65bb57b6b5");
    // FNV-32a of {"a":1} is 2342405393 (checked against a reference implementation).
    expect(templateHash({ a: 1 })).toBe("67868497f7");
    expect(templateHash({ b: 1, a: 2 })).toBe(templateHash({ a: 2, b: 1 }));
    expect(templateHash({ a: 1 })).not.toBe(templateHash({ a: 2 }));
    expect(templateHash({ a: 1 })).toMatch(/^[4-9bcdf]{1,10}$/);
  });
});

describe("workload pods", () => {
  test("Deployment: <deploy>-<pod-template-hash>-<5 chars>, hash label, ReplicaSet owner, group marker", () => {
    const workload = parseWorkload(workloadDocument("Deployment", "apps/v1", `  replicas: 2\n${SELECTOR}`), "d.yaml", fixedRandom());
    const hash = workload.templateHash;
    const pods = initialPods(workload, fixedRandom());
    expect(pods.map((pod) => pod.metadata?.name)).toEqual([`web-${hash}-bbbbb`, `web-${hash}-ccccc`]);
    const [first] = pods;
    expect(first?.metadata?.generateName).toBe(`web-${hash}-`);
    expect(first?.metadata?.labels).toEqual({ app: "web", tier: "front", "pod-template-hash": hash });
    expect(first?.metadata?.annotations).toEqual({ note: "kept", [WORKLOAD_ANNOTATION]: "Deployment/web" });
    expect(first?.metadata?.ownerReferences).toEqual([
      { apiVersion: "apps/v1", kind: "ReplicaSet", name: `web-${hash}`, uid: "uid-2", controller: true, blockOwnerDeletion: true },
    ]);
    expect(first?.spec?.restartPolicy).toBe("Always");
    expect(first?.metadata?.namespace).toBe("default");
  });

  test("the same template gives the same hash; another template another", () => {
    const a = parseWorkload(workloadDocument("Deployment", "apps/v1", SELECTOR), "d.yaml");
    const b = parseWorkload(workloadDocument("Deployment", "apps/v1", SELECTOR), "d.yaml");
    const c = parseWorkload(workloadDocument("Deployment", "apps/v1", SELECTOR, TEMPLATE.replace("infinity", "60")), "d.yaml");
    expect(a.templateHash).toBe(b.templateHash);
    expect(a.templateHash).not.toBe(c.templateHash);
  });

  test("ReplicaSet: <rs>-<5 chars>, template labels only, owned by the ReplicaSet", () => {
    const workload = parseWorkload(workloadDocument("ReplicaSet", "apps/v1", `  replicas: 3\n${SELECTOR}`), "rs.yaml", fixedRandom());
    const pods = initialPods(workload, fixedRandom());
    expect(pods.map((pod) => pod.metadata?.name)).toEqual(["web-bbbbb", "web-ccccc", "web-ddddd"]);
    expect(pods[0]?.metadata?.labels).toEqual({ app: "web", tier: "front" });
    expect(pods[0]?.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "ReplicaSet", name: "web", uid: "uid-1" });
  });

  test("StatefulSet: <sts>-0..N-1 (from ordinals.start), revision and pod-name labels", () => {
    const workload = parseWorkload(workloadDocument("StatefulSet", "apps/v1", `  replicas: 2\n  serviceName: web\n${SELECTOR}`), "s.yaml");
    const pods = initialPods(workload);
    expect(pods.map((pod) => pod.metadata?.name)).toEqual(["web-0", "web-1"]);
    expect(pods[1]?.metadata?.generateName).toBeUndefined();
    expect(pods[1]?.metadata?.labels).toEqual({
      app: "web",
      tier: "front",
      "controller-revision-hash": `web-${workload.templateHash}`,
      "statefulset.kubernetes.io/pod-name": "web-1",
      "apps.kubernetes.io/pod-index": "1",
    });
    const shifted = parseWorkload(workloadDocument("StatefulSet", "apps/v1", `  replicas: 2\n  ordinals: {start: 5}\n${SELECTOR}`), "s.yaml");
    expect(initialPods(shifted).map((pod) => pod.metadata?.name)).toEqual(["web-5", "web-6"]);
  });

  test("DaemonSet: one pod (one node), revision hash and generation labels", () => {
    const workload = parseWorkload(workloadDocument("DaemonSet", "apps/v1", SELECTOR), "ds.yaml", fixedRandom());
    const pods = initialPods(workload, fixedRandom());
    expect(pods.map((pod) => pod.metadata?.name)).toEqual(["web-bbbbb"]);
    expect(pods[0]?.metadata?.labels).toMatchObject({ "controller-revision-hash": workload.templateHash, "pod-template-generation": "1" });
  });

  test("Job: <job>-<5 chars>, job-name and controller-uid labels, defaults", () => {
    const template = TEMPLATE.replace("    spec:\n", "    spec:\n      restartPolicy: Never\n");
    const workload = parseWorkload(workloadDocument("Job", "batch/v1", "", template), "j.yaml", fixedRandom());
    expect(workload.job).toEqual({ restartPolicy: "Never", backoffLimit: 6, completions: 1, parallelism: 1 });
    const pod = workloadPod(workload, 0, fixedRandom());
    expect(pod.metadata?.name).toBe("web-bbbbb");
    expect(pod.metadata?.labels).toEqual({
      app: "web",
      tier: "front",
      "batch.kubernetes.io/controller-uid": "uid-1",
      "controller-uid": "uid-1",
      "batch.kubernetes.io/job-name": "web",
      "job-name": "web",
    });
    expect(pod.metadata?.ownerReferences?.[0]).toMatchObject({ apiVersion: "batch/v1", kind: "Job", name: "web", uid: "uid-1" });
    expect(pod.spec?.restartPolicy).toBe("Never");
  });

  test("Job fields: completions, parallelism (capped by completions), backoffLimit", () => {
    const template = TEMPLATE.replace("    spec:\n", "    spec:\n      restartPolicy: OnFailure\n");
    const workload = parseWorkload(workloadDocument("Job", "batch/v1", "  completions: 3\n  parallelism: 5\n  backoffLimit: 1\n", template), "j.yaml");
    expect(workload.job).toEqual({ restartPolicy: "OnFailure", backoffLimit: 1, completions: 3, parallelism: 3 });
    expect(initialPods(workload)).toHaveLength(3);
    const queue = parseWorkload(workloadDocument("Job", "batch/v1", "  parallelism: 4\n", template), "j.yaml");
    expect(queue.replicas).toBe(1);
    expect(queue.warnings.map((warning) => warning.path)).toEqual(["spec.parallelism"]);
  });

  test("replicas 0 starts nothing, with a warning", () => {
    const workload = parseWorkload(workloadDocument("Deployment", "apps/v1", `  replicas: 0\n${SELECTOR}`), "d.yaml");
    expect(initialPods(workload)).toEqual([]);
    expect(workload.warnings).toEqual([{ path: "spec.replicas", message: "0: no pods are started" }]);
  });

  test("a namespaced workload's pods are in its namespace", () => {
    const document = workloadDocument("Deployment", "apps/v1", SELECTOR);
    (document.metadata as Record<string, unknown>).namespace = "shop";
    expect(initialPods(parseWorkload(document, "d.yaml"))[0]?.metadata?.namespace).toBe("shop");
  });
});

describe("workload validation", () => {
  test("selector that does not match the template's labels names the field", () => {
    expect(problemsOf(() => parseWorkload(workloadDocument("Deployment", "apps/v1", "  selector:\n    matchLabels: {app: api}\n"), "d.yaml"))).toEqual([
      { path: "spec.selector", message: "does not match the template's labels (spec.template.metadata.labels: app=web,tier=front)" },
    ]);
    const expressions = "  selector:\n    matchExpressions:\n      - {key: tier, operator: NotIn, values: [front]}\n      - {key: app, operator: Exists, values: [x]}\n";
    expect(problemsOf(() => parseWorkload(workloadDocument("ReplicaSet", "apps/v1", expressions), "rs.yaml"))).toEqual([
      { path: "spec.selector.matchExpressions[1].values", message: "must be empty for operator Exists" },
      { path: "spec.selector", message: "does not match the template's labels (spec.template.metadata.labels: app=web,tier=front)" },
    ]);
    const matching = "  selector:\n    matchExpressions:\n      - {key: tier, operator: In, values: [front, back]}\n      - {key: gone, operator: DoesNotExist}\n";
    expect(parseWorkload(workloadDocument("StatefulSet", "apps/v1", matching), "s.yaml").kind).toBe("StatefulSet");
  });

  test("a missing or empty selector", () => {
    expect(problemsOf(() => parseWorkload(workloadDocument("Deployment", "apps/v1", ""), "d.yaml"))).toEqual([{ path: "spec.selector", message: "required" }]);
    expect(problemsOf(() => parseWorkload(workloadDocument("DaemonSet", "apps/v1", "  selector: {}\n"), "d.yaml"))).toEqual([
      { path: "spec.selector", message: "an empty selector is invalid for a DaemonSet" },
    ]);
  });

  test("restartPolicy must fit the kind", () => {
    const never = TEMPLATE.replace("    spec:\n", "    spec:\n      restartPolicy: Never\n");
    expect(problemsOf(() => parseWorkload(workloadDocument("Deployment", "apps/v1", SELECTOR, never), "d.yaml"))[0]?.path).toBe(
      "spec.template.spec.restartPolicy",
    );
    expect(problemsOf(() => parseWorkload(workloadDocument("Job", "batch/v1", ""), "j.yaml"))).toEqual([
      { path: "spec.template.spec.restartPolicy", message: 'required for a Job: "Never" or "OnFailure"' },
    ]);
  });

  test("Job: selector only with manualSelector, unsupported fields refused", () => {
    const never = TEMPLATE.replace("    spec:\n", "    spec:\n      restartPolicy: Never\n");
    expect(problemsOf(() => parseWorkload(workloadDocument("Job", "batch/v1", SELECTOR, never), "j.yaml"))[0]?.path).toBe("spec.selector");
    expect(parseWorkload(workloadDocument("Job", "batch/v1", `  manualSelector: true\n${SELECTOR}`, never), "j.yaml").kind).toBe("Job");
    const spec = "  completionMode: Indexed\n  suspend: true\n  backoffLimit: -1\n";
    expect(problemsOf(() => parseWorkload(workloadDocument("Job", "batch/v1", spec, never), "j.yaml")).map((problem) => problem.path)).toEqual([
      "spec.backoffLimit",
      "spec.completionMode",
      "spec.suspend",
    ]);
  });

  test("wrong apiVersion, unknown fields, volumeClaimTemplates", () => {
    expect(problemsOf(() => parseWorkload(workloadDocument("Deployment", "extensions/v1beta1", SELECTOR), "d.yaml"))[0]).toEqual({
      path: "apiVersion",
      message: 'a Deployment has apiVersion apps/v1, not "extensions/v1beta1"',
    });
    expect(problemsOf(() => parseWorkload(workloadDocument("Deployment", "apps/v1", `  replica: 2\n${SELECTOR}`), "d.yaml"))).toEqual([
      { path: "spec.replica", message: 'unknown field (did you mean "replicas"?)' },
    ]);
    const claims = `  volumeClaimTemplates:\n    - metadata: {name: data}\n${SELECTOR}`;
    expect(problemsOf(() => parseWorkload(workloadDocument("StatefulSet", "apps/v1", claims), "s.yaml"))).toEqual([
      { path: "spec.volumeClaimTemplates", message: "not supported: vks provisions no PersistentVolumeClaims" },
    ]);
  });

  test("pod problems are located under spec.template", () => {
    expect(templateProblemPath("spec.containers[0].image")).toBe("spec.template.spec.containers[0].image");
    expect(templateProblemPath("metadata.name")).toBe("spec.template.metadata.name");
  });
});

describe("jobStep (the Job controller's decision)", () => {
  const never: JobSettings = { restartPolicy: "Never", backoffLimit: 1, completions: 1, parallelism: 1 };

  test("Never: a failed pod is replaced until more than backoffLimit failed", () => {
    expect(jobStep(never, { active: 1, succeeded: 0, failed: 0, restarts: 0 })).toEqual({ state: "Running", create: 0 });
    expect(jobStep(never, { active: 0, succeeded: 0, failed: 1, restarts: 0 })).toEqual({ state: "Running", create: 1 });
    expect(jobStep(never, { active: 0, succeeded: 0, failed: 2, restarts: 0 })).toMatchObject({ state: "Failed", reason: "BackoffLimitExceeded" });
    expect(jobStep(never, { active: 0, succeeded: 1, failed: 1, restarts: 0 })).toEqual({ state: "Complete" });
  });

  test("OnFailure: restarts count against backoffLimit", () => {
    const onFailure: JobSettings = { ...never, restartPolicy: "OnFailure", backoffLimit: 2 };
    expect(jobStep(onFailure, { active: 1, succeeded: 0, failed: 0, restarts: 1 })).toEqual({ state: "Running", create: 0 });
    expect(jobStep(onFailure, { active: 1, succeeded: 0, failed: 0, restarts: 2 })).toMatchObject({ state: "Failed" });
    expect(jobStep({ ...onFailure, backoffLimit: 0 }, { active: 1, succeeded: 0, failed: 0, restarts: 1 })).toMatchObject({ state: "Failed" });
  });

  test("completions and parallelism", () => {
    const batch: JobSettings = { restartPolicy: "Never", backoffLimit: 6, completions: 5, parallelism: 2 };
    expect(jobStep(batch, { active: 0, succeeded: 0, failed: 0, restarts: 0 })).toEqual({ state: "Running", create: 2 });
    expect(jobStep(batch, { active: 1, succeeded: 3, failed: 0, restarts: 0 })).toEqual({ state: "Running", create: 1 });
    expect(jobStep(batch, { active: 2, succeeded: 2, failed: 0, restarts: 0 })).toEqual({ state: "Running", create: 0 });
    expect(jobStep(batch, { active: 0, succeeded: 4, failed: 0, restarts: 0 })).toEqual({ state: "Running", create: 1 });
    expect(jobStep(batch, { active: 0, succeeded: 5, failed: 3, restarts: 0 })).toEqual({ state: "Complete" });
  });
});

describe("workload and template problems together", () => {
  test("one error lists the selector mismatch and the template's pod problems", () => {
    const template = TEMPLATE.replace("image: /bin/sleep", 'image: ""');
    expect(problemsOf(() => parseWorkload(workloadDocument("Deployment", "apps/v1", "  selector:\n    matchLabels: {app: api}\n", template), "d.yaml"))).toEqual([
      { path: "spec.selector", message: "does not match the template's labels (spec.template.metadata.labels: app=web,tier=front)" },
      { path: "spec.template.spec.containers[0].image", message: "required: a Debian package name or the absolute path of a program" },
    ]);
  });
});
