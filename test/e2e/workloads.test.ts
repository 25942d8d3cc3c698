import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { eventually, haveSystemd, listPods, managerFlag, vks, writeManifest, testFileStateDir } from "./helpers.ts";

// Real units on a loaded machine: give each test room; none waits on a fixed delay.
setDefaultTimeout(120_000);
const stateDir = testFileStateDir();
const user = managerFlag;

interface GroupedPod {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: { kind: string; name: string }[] };
  status: { phase: string };
}

async function podsOf(workload: string): Promise<GroupedPod[]> {
  const pods = (await listPods(stateDir)) as unknown as GroupedPod[];
  return pods.filter((pod) => pod.metadata.annotations?.["vks/workload"] === workload);
}

describe.skipIf(!haveSystemd)("vks pod up with workload manifests (end to end, real systemd)", () => {
  test("a Deployment with replicas 2 runs 2 pods that ls groups and down FILE removes", async () => {
    const file = writeManifest(
      stateDir,
      "deployment.yaml",
      `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: sleep
          image: /bin/sleep
          args: ["infinity"]
`,
    );
    const up = await vks(stateDir, ["pod", "up", "-d", file, ...user]);
    expect(up.exitCode).toBe(0);
    const pods = await eventually("two running pods", async () => {
      const found = await podsOf("Deployment/web");
      return found.length === 2 && found.every((pod) => pod.status.phase === "Running") ? found : undefined;
    });
    const hash = pods[0]?.metadata.labels?.["pod-template-hash"] ?? "";
    expect(hash).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]+$/);
    for (const pod of pods) {
      expect(pod.metadata.name).toMatch(new RegExp(`^web-${hash}-[bcdfghjklmnpqrstvwxz2456789]{5}$`));
      expect(pod.metadata.labels).toEqual({ app: "web", "pod-template-hash": hash });
      expect(pod.metadata.ownerReferences?.[0]).toMatchObject({ kind: "ReplicaSet", name: `web-${hash}` });
    }

    const table = await vks(stateDir, ["pod", "ls", ...user]);
    expect(table.stdout.split("\n")[0]).toMatch(/NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+WORKLOAD$/);
    for (const pod of pods) expect(table.stdout).toMatch(new RegExp(`${pod.metadata.name}\\s+1/1\\s+Running\\s+0\\s+\\S+\\s+Deployment/web`));

    const again = await vks(stateDir, ["pod", "up", "-d", file, ...user]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout + again.stderr).toContain("already has pods");
    expect((await podsOf("Deployment/web")).map((pod) => pod.metadata.name).sort()).toEqual(pods.map((pod) => pod.metadata.name).sort());

    const down = await vks(stateDir, ["pod", "down", file, ...user]);
    expect(down.exitCode).toBe(0);
    expect(await podsOf("Deployment/web")).toEqual([]);
    const units = JSON.parse((await vks(stateDir, ["units", "ls", "-o", "json", ...user])).stdout) as { pod: string }[];
    expect(units.filter((unit) => unit.pod.startsWith("web-"))).toEqual([]);
  });

  test("a Job whose pod fails is retried backoffLimit times, then fails pod up", async () => {
    const file = writeManifest(
      stateDir,
      "job.yaml",
      `apiVersion: batch/v1
kind: Job
metadata:
  name: flaky
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: fail
          image: /bin/sh
          args: ["-c", "echo trying; exit 3"]
`,
    );
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    const output = up.stdout + up.stderr;
    expect(up.exitCode).toBe(1);
    expect(output).toContain("BackoffLimitExceeded");
    expect(up.stdout.match(/trying/g)).toHaveLength(2);
    const pods = await podsOf("Job/flaky");
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod.status.phase).toBe("Failed");
      expect(pod.metadata.name).toMatch(/^flaky-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
      expect(pod.metadata.labels).toMatchObject({ "job-name": "flaky", "batch.kubernetes.io/job-name": "flaky" });
    }
    expect((await vks(stateDir, ["pod", "down", file, ...user])).exitCode).toBe(0);
    expect(await podsOf("Job/flaky")).toEqual([]);
  });

  test("a StatefulSet's pods are <sts>-0..N-1 with their pod-name label", async () => {
    const file = writeManifest(
      stateDir,
      "statefulset.yaml",
      `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 2
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
        - name: sleep
          image: /bin/sleep
          args: ["infinity"]
`,
    );
    expect((await vks(stateDir, ["pod", "up", "-d", file, ...user])).exitCode).toBe(0);
    const pods = await podsOf("StatefulSet/db");
    expect(pods.map((pod) => pod.metadata.name).sort()).toEqual(["db-0", "db-1"]);
    expect(pods.find((pod) => pod.metadata.name === "db-1")?.metadata.labels?.["statefulset.kubernetes.io/pod-name"]).toBe("db-1");
    expect((await vks(stateDir, ["pod", "down", file, ...user])).exitCode).toBe(0);
    expect(await podsOf("StatefulSet/db")).toEqual([]);
  });

  test("a Job with restartPolicy OnFailure fails once its restarts reach backoffLimit, and its pod is removed", async () => {
    const file = writeManifest(
      stateDir,
      "onfailure.yaml",
      `apiVersion: batch/v1
kind: Job
metadata:
  name: crashy
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: OnFailure
      containers:
        - name: crash
          image: /bin/sh
          args: ["-c", "exit 4"]
`,
    );
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    expect(up.exitCode).toBe(1);
    expect(up.stdout + up.stderr).toContain("BackoffLimitExceeded");
    expect(await podsOf("Job/crashy")).toEqual([]);
  });

  test("a Job with completions 2 runs two pods one after the other and succeeds", async () => {
    const file = writeManifest(
      stateDir,
      "batch.yaml",
      `apiVersion: batch/v1
kind: Job
metadata:
  name: batch
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: work
          image: /bin/sh
          args: ["-c", "echo done"]
`,
    );
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    expect(up.exitCode).toBe(0);
    expect(up.stdout + up.stderr).toContain("Job/batch complete");
    const pods = await podsOf("Job/batch");
    expect(pods.map((pod) => pod.status.phase)).toEqual(["Succeeded", "Succeeded"]);
    expect((await vks(stateDir, ["pod", "down", file, ...user])).exitCode).toBe(0);
  });
});
