import type { V1ResourceRequirements } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { podQOSClass } from "../../internal/pod/qos.ts";

function classOf(...resources: V1ResourceRequirements[]): string {
  return podQOSClass({ spec: { containers: resources.map((r, index) => ({ name: `c${index}`, image: "x", resources: r })) } });
}

describe("podQOSClass", () => {
  test("BestEffort without requests or limits (zero counts as none)", () => {
    expect(classOf({}, {})).toBe("BestEffort");
    expect(classOf({ requests: { cpu: "0" } })).toBe("BestEffort");
    expect(classOf({ limits: { "nvidia.com/gpu": "1" } })).toBe("BestEffort");
  });

  test("Guaranteed when every container limits cpu and memory and requests equal limits", () => {
    expect(classOf({ limits: { cpu: "500m", memory: "1Gi" }, requests: { cpu: "0.5", memory: "1024Mi" } })).toBe("Guaranteed");
    // Unset requests default to the limits.
    expect(classOf({ limits: { cpu: "1", memory: "1Gi" } }, { limits: { cpu: "2", memory: "2Gi" } })).toBe("Guaranteed");
  });

  test("Burstable otherwise", () => {
    expect(classOf({ requests: { cpu: "100m" } })).toBe("Burstable");
    expect(classOf({ limits: { cpu: "1", memory: "1Gi" }, requests: { cpu: "500m" } })).toBe("Burstable");
    expect(classOf({ limits: { cpu: "1", memory: "1Gi" } }, {})).toBe("Burstable");
    expect(classOf({ limits: { memory: "1Gi" } })).toBe("Burstable");
  });
});
