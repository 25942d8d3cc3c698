/**
 * Volumes end to end: `pod up` with ConfigMap/Secret documents, real units with their own mount
 * namespaces. Mount paths live under this test's own directory, so the host's view of them can be checked
 * (and cleaned) without touching anything else.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import { PodEngine } from "../../internal/pod/engine.ts";
import type { PodObjectSource } from "../../internal/pod/objects.ts";
import type { PodEvent } from "../../internal/pod/provider.ts";
import { VolumeSetupError } from "../../internal/pod/volume-data.ts";
import { eventually, haveSystemd, managerFlag, podNamed, vks, writeManifest, testFileStateDir } from "./helpers.ts";

setDefaultTimeout(120_000);
const stateDir = testFileStateDir();
const user = managerFlag;
const mounts = join(stateDir, "mnt");

describe.skipIf(!haveSystemd || process.geteuid?.() !== 0)("volumes (end to end, real systemd, pod up)", () => {
  test("configMap, secret, Memory emptyDir, subPath and readOnly, seen from inside the container only", async () => {
    const file = writeManifest(
      stateDir,
      "volumes.yaml",
      `apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  greeting: hello from a configmap
  app.conf: "port=8080"
---
apiVersion: v1
kind: Secret
metadata:
  name: app-creds
stringData:
  password: s3cret
---
apiVersion: v1
kind: Pod
metadata:
  name: mounted
spec:
  restartPolicy: Never
  volumes:
    - name: config
      configMap:
        name: app-config
    - name: creds
      secret:
        secretName: app-creds
        defaultMode: 256
    - name: shm
      emptyDir:
        medium: Memory
        sizeLimit: 8Mi
    - name: scratch
      emptyDir: {}
    - name: work
      emptyDir: {}
  containers:
    - name: check
      image: /bin/sh
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
      args:
        - -c
        - |
          echo "greeting=$(cat ${mounts}/config/greeting)"
          echo "data-link=$(readlink ${mounts}/config/..data | cut -c1-3)"
          echo "secret=$(cat ${mounts}/creds/password) mode=$(stat -L -c %a ${mounts}/creds/password)"
          echo "shm=$(grep " ${mounts}/shm " /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1)"
          echo "subpath=$(cat ${mounts}/app.conf)"
          touch ${mounts}/readonly/x 2>/dev/null && echo readonly=writable || echo readonly=refused
          touch ${mounts}/shm/x && echo shm=writable
          touch ${mounts}/logs/written && echo subpathexpr=writable
      volumeMounts:
        - name: config
          mountPath: ${mounts}/config
        - name: creds
          mountPath: ${mounts}/creds
        - name: shm
          mountPath: ${mounts}/shm
        - name: config
          mountPath: ${mounts}/app.conf
          subPath: app.conf
        - name: scratch
          mountPath: ${mounts}/readonly
          readOnly: true
        - name: work
          mountPath: ${mounts}/logs
          subPathExpr: $(POD_NAME)/logs
`,
    );
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    expect(up.stderr).not.toContain("error");
    expect(up.exitCode, up.stderr + up.stdout).toBe(0);
    expect(up.stdout).toContain("greeting=hello from a configmap\n");
    expect(up.stdout).toContain("data-link=..2\n");
    expect(up.stdout).toContain("secret=s3cret mode=400\n");
    expect(up.stdout).toContain("shm=tmpfs\n");
    expect(up.stdout).toContain("subpath=port=8080\n");
    expect(up.stdout).toContain("readonly=refused\n");
    expect(up.stdout).toContain("shm=writable\n");
    expect(up.stdout).toContain("subpathexpr=writable\n");

    // The host's view: systemd made empty mount points, nothing more; no file of any volume shows.
    for (const entry of ["config", "creds", "shm", "readonly", "logs"]) {
      const path = join(mounts, entry);
      if (existsSync(path)) expect(readdirSync(path)).toEqual([]);
    }
    const uid = (await podNamed(stateDir, "mounted"))?.metadata.uid ?? "";
    const volumeDirectory = join(stateDir, "volumes", uid);
    expect(existsSync(join(volumeDirectory, "config", "..data"))).toBe(true);
    expect(existsSync(join(volumeDirectory, "work", "mounted", "logs", "written"))).toBe(true);

    expect((await vks(stateDir, ["pod", "down", "mounted", ...user])).exitCode).toBe(0);
    expect(existsSync(volumeDirectory)).toBe(false);
    const mountinfo = await Bun.file("/proc/self/mountinfo").text();
    expect(mountinfo).not.toContain(volumeDirectory);
  });

  test("an emptyDir is shared by the pod's containers", async () => {
    // The writer and the reader see the one volume at different mount paths.
    const file = writeManifest(
      stateDir,
      "shared.yaml",
      `apiVersion: v1
kind: Pod
metadata:
  name: shared
spec:
  restartPolicy: Never
  volumes:
    - name: exchange
      emptyDir: {}
  containers:
    - name: writer
      image: /bin/sh
      args: ["-c", "echo handed-over > ${mounts}/writer/note"]
      volumeMounts: [{ name: exchange, mountPath: ${mounts}/writer }]
    - name: reader
      image: /bin/sh
      args: ["-c", "for i in $(seq 1 100); do [ -f ${mounts}/reader/note ] && break; sleep 0.1; done; echo read=$(cat ${mounts}/reader/note)"]
      volumeMounts: [{ name: exchange, mountPath: ${mounts}/reader }]
`,
    );
    const up = await vks(stateDir, ["pod", "up", file, ...user]);
    expect(up.exitCode).toBe(0);
    expect(up.stdout).toContain("read=handed-over");
    expect((await vks(stateDir, ["pod", "down", "shared", ...user])).exitCode).toBe(0);
  });

  test("a missing ConfigMap is refused with the pod field and the kubelet's text; nothing is created", async () => {
    const file = writeManifest(
      stateDir,
      "missing.yaml",
      `apiVersion: v1
kind: Pod
metadata:
  name: missing-config
spec:
  volumes:
    - name: config
      configMap:
        name: nowhere
  containers:
    - name: app
      image: /bin/sleep
      args: ["infinity"]
      volumeMounts: [{ name: config, mountPath: ${mounts}/missing }]
`,
    );
    const up = await vks(stateDir, ["pod", "up", "-d", file, ...user]);
    expect(up.exitCode).toBe(65);
    expect(up.stderr).toContain('MountVolume.SetUp failed for volume "config" : configmap "nowhere" not found');
    expect(await podNamed(stateDir, "missing-config")).toBeUndefined();
  });

  test("under serve's engine: a missing ConfigMap is FailedMount until it exists, then edits reach the file via ..data", async () => {
    // serve's PodObjectSource is the API server; a map stands in for it, so objects can appear and change.
    const configMaps = new Map<string, V1ConfigMap>();
    const objects: PodObjectSource = { configMap: async (_namespace, name) => configMaps.get(name), secret: async () => undefined };
    const engine = await PodEngine.open({ scope: user.length > 0 ? "user" : "system", stateDir, objects, logMode: "file" });
    const events: PodEvent[] = [];
    engine.notifyEvents((_pod, event) => events.push(event));
    const pod: V1Pod = {
      metadata: { name: "follows", namespace: "default" },
      spec: {
        volumes: [{ name: "config", configMap: { name: "late" } }],
        containers: [
          {
            name: "app",
            image: "/bin/sh",
            args: ["-c", `while :; do cat ${mounts}/late/value > ${mounts}/seen/value.tmp; mv ${mounts}/seen/value.tmp ${mounts}/seen/value; sleep 0.2; done`],
            volumeMounts: [
              { name: "config", mountPath: `${mounts}/late` },
              { name: "seen", mountPath: `${mounts}/seen` },
            ],
          },
        ],
      },
    };
    pod.spec?.volumes?.push({ name: "seen", hostPath: { path: join(stateDir, "seen"), type: "DirectoryOrCreate" } });
    try {
      const failed = await engine.createPod(pod).catch((err: unknown) => err);
      expect(failed).toBeInstanceOf(VolumeSetupError);
      expect((failed as VolumeSetupError).retryAfterMs).toBeGreaterThan(0);
      expect(events).toContainEqual({ type: "Warning", reason: "FailedMount", message: 'MountVolume.SetUp failed for volume "config" : configmap "late" not found' });

      configMaps.set("late", { data: { value: "one" } });
      await engine.createPod(pod);
      const seen = join(stateDir, "seen", "value");
      await eventually("the first value", async () => existsSync(seen) && (await Bun.file(seen).text()) === "one");

      configMaps.set("late", { data: { value: "two" } });
      await engine.resyncVolumes();
      await eventually("the edited value", async () => (await Bun.file(seen).text()) === "two");
      await engine.deletePod(pod);
    } finally {
      await engine.close();
    }
  });
});
