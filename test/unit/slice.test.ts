import { describe, expect, test } from "bun:test";
import { escapeUnitNameComponent, podSliceName, qosSliceName } from "../../internal/unit/slice.ts";

const UID = "6f1c2d3e-0000-4000-8000-000000000001";

describe("pod slice names", () => {
  test("escaped by systemd's rules: a '-' in a name cannot open a level of the hierarchy", () => {
    expect(escapeUnitNameComponent("web-1")).toBe("web\\x2d1");
    expect(escapeUnitNameComponent("a.b_c:d")).toBe("a.b_c:d");
    expect(escapeUnitNameComponent(".hidden")).toBe("\\x2ehidden");
    expect(escapeUnitNameComponent("é")).toBe("\\xc3\\xa9");
    const name = podSliceName({ namespace: "team-a", pod: "web-1", uid: UID, qos: "Burstable" });
    expect(name).toBe("vks-burstable-team\\x2da_web\\x2d1_6f1c2d3e.slice");
    // systemd reads the hierarchy from the unescaped '-': exactly vks → vks-burstable → the pod.
    expect(name.replace(/\.slice$/, "").split("-")).toEqual(["vks", "burstable", "team\\x2da_web\\x2d1_6f1c2d3e"]);
  });

  test("by QoS class, as the kubelet's kubepods slices", () => {
    expect(podSliceName({ namespace: "default", pod: "db", uid: UID, qos: "Guaranteed" })).toBe("vks-default_db_6f1c2d3e.slice");
    expect(podSliceName({ namespace: "default", pod: "db", uid: UID, qos: "BestEffort" })).toBe("vks-besteffort-default_db_6f1c2d3e.slice");
    expect(qosSliceName("Guaranteed")).toBe("vks.slice");
    expect(qosSliceName("Burstable")).toBe("vks-burstable.slice");
    expect(qosSliceName("BestEffort")).toBe("vks-besteffort.slice");
  });

  test("a name past 255 bytes keeps a prefix of the pod name and a hash, never half an escape", () => {
    const pod = `${"a-".repeat(120)}z`;
    const namespace = "n".repeat(63);
    const name = podSliceName({ namespace, pod, uid: UID, qos: "BestEffort" });
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
    expect(name).toMatch(/^vks-besteffort-n{63}_(a\\x2d)+a?\.[0-9a-f]{10}_6f1c2d3e\.slice$/);
    const other = podSliceName({ namespace, pod: `${"a-".repeat(120)}y`, uid: UID, qos: "BestEffort" });
    expect(other).not.toBe(name);
  });
});
