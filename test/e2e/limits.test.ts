// Resources as cgroup settings in per-pod slices, securityContext as sandboxing, admission and deadlines,
// against the manager the sandbox gives (a user manager: it enforces no limits on these cgroup v1 hosts,
// and vks must say so; the system manager: it does). The properties are systemd's to show either way.
import { describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { eventually, haveSystemd, managerFlag, podNamed, testFileStateDir, vks, writePod, type ListedPod } from "./helpers.ts";

const stateDir = testFileStateDir();
const userManager = managerFlag.includes("--user");

async function show(unit: string, properties: string[]): Promise<Record<string, string>> {
  const text = await Bun.$`systemctl ${managerFlag} show ${properties.flatMap((property) => ["-p", property])} ${unit}`.quiet().nothrow().text();
  return Object.fromEntries(
    text
      .trim()
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}

function podOf(name: string): Promise<ListedPod | undefined> {
  return podNamed(stateDir, name);
}

describe.skipIf(!haveSystemd)("limits, slices and sandboxing", () => {
  test("a pod's units sit in its slice with MemoryMax and CPUQuota; the slice goes with the pod", async () => {
    const file = writePod(
      stateDir,
      "limited-1",
      `  containers:
    - name: main
      image: /bin/sleep
      command: ["/bin/sleep", "infinity"]
      resources:
        requests: { cpu: 100m, memory: 32Mi }
        limits: { cpu: 250m, memory: 64Mi }
`,
    );
    const up = await vks(stateDir, ["pod", "up", "-d", ...managerFlag, file]);
    expect(up.exitCode).toBe(0);
    const output = up.stdout + up.stderr;
    // Never silent: a manager that cannot enforce the limits is named as such.
    if (userManager) expect(output).toContain("memory limits not enforced: the systemd user manager has no such controller here");
    else expect(output).not.toContain("memory limits not enforced");
    const pod = await eventually("the pod to run", async () => {
      const found = await podOf("limited-1");
      return found?.status.phase === "Running" ? found : undefined;
    });
    const unit = `vks.default.limited-1.main.${pod.metadata.uid}.service`;
    const slice = `vks-burstable-default_limited\\x2d1_${pod.metadata.uid.slice(0, 8)}.slice`;
    const unitProperties = await show(unit, ["Slice", "MemoryMax", "MemorySwapMax", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec", "CPUWeight", "ControlGroup"]);
    expect(unitProperties).toMatchObject({
      Slice: slice,
      MemoryMax: String(64 * 1024 * 1024),
      MemorySwapMax: "0",
      CPUQuotaPerSecUSec: "250ms",
      CPUQuotaPeriodUSec: "100ms",
      CPUWeight: "4",
    });
    // The '-' of the pod name is escaped: the unit is one level below the pod's slice, not further down.
    expect(unitProperties.ControlGroup).toEndWith(`/vks.slice/vks-burstable.slice/${slice}/${unit}`);
    expect(await show(slice, ["ActiveState", "MemoryMax", "CPUQuotaPerSecUSec"])).toMatchObject({
      ActiveState: "active",
      MemoryMax: String(64 * 1024 * 1024),
      CPUQuotaPerSecUSec: "250ms",
    });
    // The QoS slice weighs as the kubelet's burstable cgroup: the sum of its pods' CPU requests.
    expect((await show("vks-burstable.slice", ["CPUWeight"])).CPUWeight).toBe("4");
    const down = await vks(stateDir, ["pod", "down", ...managerFlag, "limited-1"]);
    expect(down.exitCode).toBe(0);
    await eventually("the slice to go", async () => (await show(slice, ["LoadState", "ActiveState"])).ActiveState !== "active");
  });

  test.skipIf(userManager)("a container over its memory limit is OOMKilled, exit code 137", async () => {
    const file = writePod(
      stateDir,
      "hog",
      `  restartPolicy: Never
  containers:
    - name: main
      image: /usr/bin/python3
      command: ["/usr/bin/python3", "-c", "import time; x = bytearray(256 << 20); time.sleep(30)"]
      resources:
        limits: { memory: 32Mi }
`,
    );
    expect((await vks(stateDir, ["pod", "up", "-d", ...managerFlag, file])).exitCode).toBe(0);
    const pod = await eventually("the container to be killed", async () => {
      const found = await podOf("hog");
      return found?.status.containerStatuses?.[0]?.state.terminated !== undefined ? found : undefined;
    });
    expect(pod.status.containerStatuses?.[0]?.state.terminated).toMatchObject({ exitCode: 137, reason: "OOMKilled" });
    expect(pod.status.phase).toBe("Failed");
    expect((await vks(stateDir, ["pod", "down", ...managerFlag, "hog"])).exitCode).toBe(0);
  });

  test("readOnlyRootFilesystem: a write to /usr fails inside the container, its volume stays writable", async () => {
    const file = writePod(
      stateDir,
      "read-only",
      `  restartPolicy: Never
  volumes:
    - name: scratch
      emptyDir: {}
  containers:
    - name: main
      image: /bin/sh
      command: ["/bin/sh", "-c", "if touch /usr/vks-read-only-probe; then rm -f /usr/vks-read-only-probe; exit 3; fi; touch /scratch/written"]
      volumeMounts:
        - { name: scratch, mountPath: /scratch }
      securityContext:
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
`,
    );
    const up = await vks(stateDir, ["pod", "up", "-d", ...managerFlag, file]);
    expect(up.exitCode).toBe(0);
    const pod = await eventually("the container to finish", async () => {
      const found = await podOf("read-only");
      return found?.status.phase === "Succeeded" || found?.status.phase === "Failed" ? found : undefined;
    });
    expect(pod.status.containerStatuses?.[0]?.state.terminated).toMatchObject({ exitCode: 0, reason: "Completed" });
    expect(pod.status.phase).toBe("Succeeded");
    const unit = `vks.default.read-only.main.${pod.metadata.uid}.service`;
    expect(await show(unit, ["ProtectSystem", "NoNewPrivileges"])).toMatchObject({ ProtectSystem: "strict", NoNewPrivileges: "yes" });
    expect(await Bun.file("/usr/vks-read-only-probe").exists()).toBe(false);
    expect((await vks(stateDir, ["pod", "down", ...managerFlag, "read-only"])).exitCode).toBe(0);
  });

  test("capabilities, groups, seccomp and no_new_privs are what the process has", async () => {
    const checks = [
      "grep -Eq '^CapBnd:[[:space:]]+0000000000000400$' /proc/self/status",
      "grep -Eq '^Groups:.*[[:space:]]1([[:space:]]|$)' /proc/self/status",
      "grep -Eq '^Seccomp:[[:space:]]+2$' /proc/self/status",
      "grep -Eq '^NoNewPrivs:[[:space:]]+1$' /proc/self/status",
    ].join(" && ");
    const file = writePod(
      stateDir,
      "sandboxed",
      `  restartPolicy: Never
  securityContext:
    # gid 1 (daemon on Debian): systemd adds only groups the host knows.
    supplementalGroups: [1]
    seccompProfile: { type: RuntimeDefault }
  containers:
    - name: main
      image: /bin/sh
      command: ["/bin/sh", "-c", ${JSON.stringify(checks)}]
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: { drop: [ALL], add: [NET_BIND_SERVICE] }
`,
    );
    expect((await vks(stateDir, ["pod", "up", "-d", ...managerFlag, file])).exitCode).toBe(0);
    const pod = await eventually("the checks to finish", async () => {
      const found = await podOf("sandboxed");
      return found?.status.phase === "Succeeded" || found?.status.phase === "Failed" ? found : undefined;
    });
    expect(pod.status.containerStatuses?.[0]?.state.terminated).toMatchObject({ exitCode: 0 });
    expect((await vks(stateDir, ["pod", "down", ...managerFlag, "sandboxed"])).exitCode).toBe(0);
  });

  test("a supplemental group the host does not know is refused, naming the field", async () => {
    const file = writePod(
      stateDir,
      "unknown-group",
      `  securityContext:\n    supplementalGroups: [4242424]\n  containers:\n    - name: main\n      image: /bin/sleep\n      command: ["/bin/sleep", "infinity"]\n`,
    );
    const up = await vks(stateDir, ["pod", "up", "-d", ...managerFlag, file]);
    expect(up.exitCode).toBe(65);
    expect(up.stdout + up.stderr).toContain("spec.securityContext.supplementalGroups: group 4242424 does not exist on this host");
    expect(await podOf("unknown-group")).toBeUndefined();
  });

  test("a pod whose requests do not fit is rejected as the kubelet's admission does", async () => {
    const file = writePod(
      stateDir,
      "too-big",
      `  containers:
    - name: main
      image: /bin/sleep
      command: ["/bin/sleep", "infinity"]
      resources:
        requests: { cpu: "1000" }
`,
    );
    const up = await vks(stateDir, ["pod", "up", "-d", ...managerFlag, file]);
    expect(up.exitCode).toBe(1);
    expect(up.stdout + up.stderr).toContain("OutOfcpu: Pod was rejected: Node didn't have enough resource: cpu, requested: 1000000, used: ");
    const pod = await podOf("too-big");
    expect(pod?.status.phase).toBe("Failed");
    expect((await vks(stateDir, ["pod", "down", ...managerFlag, "too-big"])).exitCode).toBe(0);
  });

  test("activeDeadlineSeconds: the pod fails with DeadlineExceeded and its container is stopped", async () => {
    const file = writePod(
      stateDir,
      "deadline",
      `  activeDeadlineSeconds: 2
  containers:
    - name: main
      image: /bin/sleep
      command: ["/bin/sleep", "infinity"]
`,
    );
    // In the foreground pod up drives the pod (as serve would): it ends once the pod has failed.
    const up = await vks(stateDir, ["pod", "up", ...managerFlag, file]);
    expect(up.exitCode).toBe(1);
    expect(up.stdout + up.stderr).toContain("DeadlineExceeded: Pod was active on the node longer than the specified deadline");
    const listed = await vks(stateDir, ["pod", "ls", ...managerFlag, "-o", "json"]);
    const pod = (JSON.parse(listed.stdout) as { items: (ListedPod & { status: { reason?: string } })[] }).items.find((item) => item.metadata.name === "deadline");
    expect(pod?.status.phase).toBe("Failed");
    expect(pod?.status.reason).toBe("DeadlineExceeded");
    expect(pod?.status.containerStatuses?.[0]?.state.terminated).toBeDefined();
    const unit = `vks.default.deadline.main.${pod?.metadata.uid}.service`;
    expect((await show(unit, ["ActiveState"])).ActiveState).not.toBe("active");
    expect((await vks(stateDir, ["pod", "down", ...managerFlag, "deadline"])).exitCode).toBe(0);
  });

  test("units gc removes the slice of a pod vks has no record of", async () => {
    const file = writePod(stateDir, "orphan-slice", `  containers:\n    - name: main\n      image: /bin/sleep\n      command: ["/bin/sleep", "infinity"]\n`);
    expect((await vks(stateDir, ["pod", "up", "-d", ...managerFlag, file])).exitCode).toBe(0);
    const pod = await eventually("the pod to run", async () => {
      const found = await podOf("orphan-slice");
      return found?.status.phase === "Running" ? found : undefined;
    });
    const slice = `vks-besteffort-default_orphan\\x2dslice_${pod.metadata.uid.slice(0, 8)}.slice`;
    expect((await show(slice, ["ActiveState"])).ActiveState).toBe("active");
    rmSync(join(stateDir, "pods", "default", "orphan-slice.json"));
    const gc = await vks(stateDir, ["units", "gc", ...managerFlag]);
    expect(gc.exitCode).toBe(0);
    expect(gc.stdout + gc.stderr).toContain(slice);
    expect((await show(slice, ["ActiveState"])).ActiveState).not.toBe("active");
  });

  test("bad quantities are refused with the field path, nothing created", async () => {
    const file = writePod(
      stateDir,
      "bad-cpu",
      `  containers:
    - name: main
      image: /bin/sleep
      command: ["/bin/sleep", "infinity"]
      resources:
        limits: { cpu: "0.0001", memory: 5x }
`,
    );
    const up = await vks(stateDir, ["pod", "up", "-d", ...managerFlag, file]);
    expect(up.exitCode).toBe(65);
    expect(up.stdout + up.stderr).toContain("spec.containers[0].resources.limits.cpu");
    expect(up.stdout + up.stderr).toContain("spec.containers[0].resources.limits.memory");
    expect(await podOf("bad-cpu")).toBeUndefined();
  });
});
