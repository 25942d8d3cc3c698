import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { admissionFailure, failedPodStatus, subtractReserved } from "../../internal/pod/admission.ts";
import { unenforcedLimits } from "../../internal/pod/enforcement.ts";
import { enforceableControllers, parseControllerMounts } from "../../internal/systemd/controllers.ts";
import { parseReservation } from "../../internal/cli/parse.ts";

function pod(name: string, requests: Record<string, string>, limits: Record<string, string> = {}): V1Pod {
  return { metadata: { name, uid: name }, spec: { containers: [{ name: "c", image: "x", resources: { requests, limits } }] } };
}

describe("admission", () => {
  const allocatable = { cpu: "2", memory: "1Gi" };
  test("a pod that fits is admitted; pods without requests always fit", () => {
    expect(admissionFailure(pod("a", { cpu: "1" }), allocatable, [pod("b", { cpu: "1" })])).toBeUndefined();
    expect(admissionFailure(pod("a", {}), allocatable, [pod("b", { cpu: "2", memory: "1Gi" })])).toBeUndefined();
  });
  test("OutOfcpu and OutOfmemory with the kubelet's message (millicores and bytes)", () => {
    expect(admissionFailure(pod("a", { cpu: "1500m" }), allocatable, [pod("b", { cpu: "1" })])).toEqual({
      reason: "OutOfcpu",
      message: "Pod was rejected: Node didn't have enough resource: cpu, requested: 1500, used: 1000, capacity: 2000",
      rejected: true,
    });
    expect(admissionFailure(pod("a", { memory: "2Gi" }), allocatable, [])?.message).toBe(
      "Pod was rejected: Node didn't have enough resource: memory, requested: 2147483648, used: 0, capacity: 1073741824",
    );
  });
  test("reservations come off allocatable", () => {
    expect(subtractReserved({ cpu: "2", memory: "1Gi", pods: "110" }, [{ cpu: "500m" }, { cpu: "250m", memory: "512Mi" }])).toEqual({
      cpu: "1250m",
      memory: "536870912",
      pods: "110",
    });
    expect(subtractReserved({ cpu: "1" }, [{ cpu: "2" }]).cpu).toBe("0m");
  });
  test("--system-reserved is parsed as the kubelet takes it, and bad values are refused", () => {
    expect(parseReservation("cpu=500m,memory=1Gi,pid=100", "--system-reserved")).toEqual({ cpu: "500m", memory: "1Gi", pid: "100" });
    expect(() => parseReservation("cpu=5x", "--system-reserved")).toThrow('--system-reserved: "cpu=5x" is not a reservation');
    expect(() => parseReservation("gpu=1", "--kube-reserved")).toThrow("is not a reservation");
  });
});

describe("pods the node failed", () => {
  const running = {
    phase: "Running",
    conditions: [{ type: "Ready", status: "True" }],
    containerStatuses: [{ name: "c", image: "x", imageID: "", ready: true, restartCount: 0, state: { running: {} } }],
  };
  test("DeadlineExceeded: Failed, containers terminated by their last exit", () => {
    const status = failedPodStatus(running, { reason: "DeadlineExceeded", message: "m", rejected: false }, { c: { exitCode: 143, reason: "Error" } });
    expect(status.phase).toBe("Failed");
    expect(status.reason).toBe("DeadlineExceeded");
    expect(status.conditions?.[0]?.status).toBe("False");
    expect(status.containerStatuses?.[0]?.state).toEqual({ terminated: { exitCode: 143, reason: "Error" } });
  });
  test("rejected: no container statuses, as the kubelet's rejectPod", () => {
    const status = failedPodStatus(running, { reason: "OutOfcpu", message: "Pod was rejected: …", rejected: true }, {});
    expect(status.containerStatuses).toBeUndefined();
    expect(status.reason).toBe("OutOfcpu");
  });
});

const HYBRID = [
  "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
  "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids",
  "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
  "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
].join("\n");
const UNIFIED = "30 22 0:27 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw,nsdelegate";

describe("which controllers a manager can enforce", () => {
  test("cgroup v1 hybrid: the system manager has the mounted v1 controllers, a user manager none", () => {
    const view = parseControllerMounts(HYBRID);
    const empty = () => "";
    expect([...enforceableControllers("system", "/", view, empty)].sort()).toEqual(["cpu", "memory", "pids"]);
    expect([...enforceableControllers("user", "/user.slice/user-1000.slice/user@1000.service", view, empty)]).toEqual([]);
  });
  test("cgroup v2: what cgroup.controllers of the manager's cgroup lists (delegation for a user manager)", () => {
    const view = parseControllerMounts(UNIFIED);
    const files: Record<string, string> = {
      "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers": "cpu memory pids\n",
      "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
    };
    expect([...enforceableControllers("user", "/user.slice/user-1000.slice/user@1000.service", view, (path) => files[path])].sort()).toEqual(["cpu", "memory", "pids"]);
    expect([...enforceableControllers("user", "/user.slice/user-1001.slice/user@1001.service", view, (path) => files[path])]).toEqual([]);
    expect([...enforceableControllers("system", "/", view, (path) => files[path])].sort()).toEqual(["cpu", "memory", "pids"]);
  });
  test("the warning names what is lost and why", () => {
    const limited = pod("a", {}, { memory: "64Mi", cpu: "1" });
    expect(unenforcedLimits(limited, {}, new Set(["cpu", "memory"]), "system")).toBeUndefined();
    expect(unenforcedLimits(limited, {}, new Set(), "user")).toBe(
      "CPU limits, memory limits not enforced: the systemd user manager has no such controller here (on a cgroup v1 host only the system manager can enforce limits; on cgroup v2 the controllers must be delegated to user@.service); the units are created with them but nothing holds the containers to them",
    );
    expect(unenforcedLimits(limited, {}, new Set(["memory"]), "system")).toContain("the system manager has no cpu controller mounted");
    expect(unenforcedLimits(pod("b", { cpu: "1" }), {}, new Set(), "user")).toBeUndefined();
  });
});

describe("the node says whether limits are enforced", () => {
  test("a condition of its own next to the kubelet's", async () => {
    const { limitsCondition, observedConditions } = await import("../../internal/kube/node-status.ts");
    expect(limitsCondition("system", new Set(["cpu", "memory", "pids"]))).toEqual({
      type: "vks.io/LimitsEnforced",
      status: "True",
      reason: "CgroupControllersAvailable",
      message: "the systemd system manager enforces cpu, memory and pids limits",
    });
    const missing = limitsCondition("user", new Set());
    expect(missing.status).toBe("False");
    expect(missing.message).toContain("cannot enforce cpu, memory, pids limits of pods");
    const conditions = observedConditions({ systemdHealthy: false, readings: { error: "x" } }, { limitsCondition: missing });
    expect(conditions.map((condition) => condition.type)).toEqual(["Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "vks.io/LimitsEnforced"]);
  });
});

describe("pod ls STATUS of a pod the node failed", () => {
  test("the pod's reason, as kubectl shows OutOfcpu and DeadlineExceeded", async () => {
    const { displayStatus } = await import("../../internal/actions/pod-query.ts");
    expect(displayStatus({ ...pod("a", {}), status: { phase: "Failed", reason: "OutOfcpu" } })).toBe("OutOfcpu");
    expect(displayStatus({ ...pod("a", {}), status: { phase: "Failed" } })).toBe("Error");
  });
});
