import { describe, expect, test } from "bun:test";
import { ExitCode, ValidationError, VksError } from "../../internal/errors.ts";
import { parseManifestContents, parseManifests } from "../../internal/pod/manifest.ts";

const POD_A = `apiVersion: v1
kind: Pod
metadata:
  name: a
spec:
  containers:
    - name: main
      image: /bin/sleep
`;

const POD_B = POD_A.replace("name: a", "name: b");

function caught(run: () => unknown): unknown {
  try {
    run();
  } catch (err) {
    return err;
  }
  throw new Error("expected an error");
}

describe("parseManifests", () => {
  test("one document", () => {
    const pods = parseManifests(POD_A, "a.yaml");
    expect(pods).toHaveLength(1);
    expect(pods[0]?.metadata?.name).toBe("a");
    expect(pods[0]?.spec?.containers[0]?.image).toBe("/bin/sleep");
  });

  test("several documents, empty ones skipped", () => {
    const text = `---\n# nothing here\n---\n${POD_A}---\n---\n${POD_B}---\n`;
    expect(parseManifests(text, "x.yaml").map((pod) => pod.metadata?.name)).toEqual(["a", "b"]);
  });

  test("no documents at all", () => {
    expect(parseManifests("", "empty.yaml")).toEqual([]);
    expect(parseManifests("# just a comment\n", "empty.yaml")).toEqual([]);
  });

  test("a YAML alias bomb is refused as invalid input naming the document, not a crash (exit 70)", () => {
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (const [index, name] of ["b", "c", "d", "e", "f"].entries()) {
      const previous = String.fromCharCode(97 + index);
      levels.push(`${name}: &${name} [${Array(10).fill(`*${previous}`).join(", ")}]`);
    }
    const text = `${levels.join("\n")}\napiVersion: v1\nkind: Pod\nmetadata: {name: bomb}\nspec: {containers: [{name: c, image: /bin/true, args: *f}]}\n`;
    const err = caught(() => parseManifests(text, "bomb.yaml"));
    expect(err).toBeInstanceOf(VksError);
    expect((err as VksError).exitCode).toBe(ExitCode.invalidInput);
    expect((err as VksError).message).toContain("bomb.yaml: document 1 (line 1)");
  });

  test("JSON is YAML too", () => {
    const json = JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "j" }, spec: { containers: [{ name: "c", image: "x" }] } });
    expect(parseManifests(json, "pod.json")[0]?.metadata?.name).toBe("j");
  });

  test("a List of pods (kubectl get -o yaml) is unwrapped", () => {
    const list = { apiVersion: "v1", kind: "List", items: [parseManifests(POD_A, "a")[0], parseManifests(POD_B, "b")[0]] };
    expect(parseManifests(JSON.stringify(list), "list.json").map((pod) => pod.metadata?.name)).toEqual(["a", "b"]);
  });

  test("timestamps become Dates and status is dropped", () => {
    const text = POD_A.replace("  name: a\n", "  name: a\n  creationTimestamp: \"2024-05-01T12:00:00Z\"\n") + "status:\n  phase: Running\n";
    const [pod] = parseManifests(text, "a.yaml");
    expect(pod?.metadata?.creationTimestamp).toEqual(new Date("2024-05-01T12:00:00Z"));
    expect(pod?.status).toBeUndefined();
  });

  test("bare numbers are accepted as resource quantities", () => {
    const text = POD_A + "      resources:\n        limits: {cpu: 1, memory: 512Mi}\n";
    expect(parseManifests(text, "a.yaml")[0]?.spec?.containers[0]?.resources?.limits).toEqual({ cpu: "1", memory: "512Mi" });
  });

  test("another kind names the document, the kind and where its pod template is", () => {
    const cronJob = "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: web\n";
    const err = caught(() => parseManifests(`${POD_A}---\n${cronJob}`, "app.yaml"));
    expect(err).toBeInstanceOf(VksError);
    const vksError = err as VksError;
    expect(vksError.message).toBe("app.yaml: document 2 (line 10) is a CronJob; vks runs Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets and Jobs");
    expect(vksError.hint).toContain("spec.jobTemplate.spec.template");
    expect(vksError.exitCode).toBe(ExitCode.invalidInput);
  });

  test("workload documents, also inside a List, are workloads; Pods stay pods", () => {
    const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: main, image: /bin/sleep}]
`;
    const job = {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "once", namespace: "batch" },
      spec: { template: { spec: { restartPolicy: "Never", containers: [{ name: "main", image: "/bin/true" }] } } },
    };
    const list = JSON.stringify({ apiVersion: "v1", kind: "List", items: [job] });
    const contents = parseManifestContents(`${POD_A}---\n${deployment}---\n${list}\n`, "app.yaml");
    expect(contents.pods.map((pod) => pod.metadata?.name)).toEqual(["a"]);
    expect(contents.workloads.map((workload) => [workload.kind, workload.namespace, workload.name, workload.replicas, workload.source])).toEqual([
      ["Deployment", "default", "web", 2, "app.yaml (document 2, Deployment web)"],
      ["Job", "batch", "once", 1, "app.yaml (document 3, items[0], Job once)"],
    ]);
    expect(parseManifests(deployment, "d.yaml")).toEqual([]);
  });

  test("a workload's problems name the document and the field", () => {
    const deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n";
    const err = caught(() => parseManifestContents(`${POD_A}---\n${deployment}`, "app.yaml")) as ValidationError;
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.source).toBe("app.yaml (document 2, Deployment web)");
    expect(err.problems).toEqual([{ path: "spec.template", message: "required" }]);
  });

  test("kinds without a pod template and missing kinds", () => {
    expect(() => parseManifests("apiVersion: v1\nkind: Service\n", "s.yaml")).toThrow("document 1 (line 1) is a Service; vks runs Pods,");
    expect(() => parseManifests("apiVersion: v1\nkind: Endpoints\n", "s.yaml")).toThrow("is an Endpoints");
    expect(() => parseManifests("apiVersion: v1\nmetadata: {name: x}\n", "s.yaml")).toThrow("document 1 (line 1) has no kind");
    expect(() => parseManifests("- a\n- b\n", "s.yaml")).toThrow("document 1 (line 1) is not a mapping");
  });

  test("a Pod with the wrong apiVersion", () => {
    expect(() => parseManifests(POD_A.replace("apiVersion: v1", "apiVersion: apps/v1"), "a.yaml")).toThrow(
      'a Pod has apiVersion v1, not "apps/v1"',
    );
  });

  test("YAML errors carry line and column", () => {
    const err = caught(() => parseManifests(`${POD_A}---\nkind: Pod\nmetadata: {name: [x\n`, "bad.yaml")) as VksError;
    expect(err).toBeInstanceOf(VksError);
    expect(err.exitCode).toBe(ExitCode.invalidInput);
    expect(err.message).toMatch(/^bad\.yaml: invalid YAML:\nbad\.yaml:12:\d+: /);
  });

  test("duplicate keys are YAML errors", () => {
    expect(() => parseManifests(POD_A + "metadata:\n  name: again\n", "dup.yaml")).toThrow(/dup\.yaml:9:1: Map keys must be unique/);
  });

  test("unknown fields anywhere are errors, like a strict API server, with suggestions", () => {
    const text = `apiVersion: v1
kind: Pod
metadata:
  name: typo
  lables: {a: b}
spec:
  containers:
    - name: main
      image: /bin/sleep
      comand: [sleep]
      env:
        - name: A
          vaule: x
  restartpolicy: Never
bogus: true
`;
    const err = caught(() => parseManifests(text, "typo.yaml"));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).source).toBe("typo.yaml");
    expect((err as ValidationError).problems).toEqual([
      { path: "metadata.lables", message: 'unknown field (did you mean "labels"?)' },
      { path: "spec.containers[0].comand", message: 'unknown field (did you mean "command"?)' },
      { path: "spec.containers[0].env[0].vaule", message: 'unknown field (did you mean "value"?)' },
      { path: "spec.restartpolicy", message: 'unknown field (did you mean "restartPolicy"?)' },
      { path: "bogus", message: "unknown field" },
    ]);
  });

  test("values of the wrong kind are errors located by path", () => {
    const text = `apiVersion: v1
kind: Pod
metadata:
  name: types
  labels: {version: 2}
spec:
  terminationGracePeriodSeconds: 1.5
  containers:
    - name: main
      image: /bin/sleep
      args: "infinity"
      env:
        - name: PORT
          value: 8080
      tty: "yes"
`;
    const err = caught(() => parseManifests(`${POD_A}---\n${text}`, "types.yaml")) as ValidationError;
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.source).toBe("types.yaml (document 2)");
    expect(err.problems).toEqual([
      { path: "metadata.labels[version]", message: 'must be a string, not the number 2; quote it: "2"' },
      { path: "spec.terminationGracePeriodSeconds", message: "must be an integer, not the number 1.5" },
      { path: "spec.containers[0].args", message: 'must be a list, not the string "infinity"' },
      { path: "spec.containers[0].env[0].value", message: 'must be a string, not the number 8080; quote it: "8080"' },
      { path: "spec.containers[0].tty", message: 'must be true or false, not the string "yes"' },
    ]);
  });

  test("a bad timestamp", () => {
    const text = POD_A.replace("  name: a\n", "  name: a\n  creationTimestamp: yesterday\n");
    expect(() => parseManifests(text, "a.yaml")).toThrow("metadata.creationTimestamp: must be an RFC 3339 timestamp");
  });

  test("null means absent", () => {
    const [pod] = parseManifests(POD_A + "      args:\n      command: null\n", "a.yaml");
    expect(pod?.spec?.containers[0]?.args).toBeUndefined();
    expect(pod?.spec?.containers[0]?.command).toBeUndefined();
  });
});

describe("YAML as kubectl reads it (1.1)", () => {
  test("a leading 0 is octal, so volume modes read as Kubernetes reads them; dates stay text", () => {
    const { pods } = parseManifestContents(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: x, annotations: {d: 2024-01-01}}\nspec:\n  containers: [{name: c, image: /bin/true}]\n  volumes: [{name: v, configMap: {name: cm, defaultMode: 0644}}]\n",
      "t.yaml",
    );
    expect(pods[0]?.spec?.volumes?.[0]?.configMap?.defaultMode).toBe(0o644);
    expect(pods[0]?.metadata?.annotations?.["d"]).toBe("2024-01-01");
  });
});
