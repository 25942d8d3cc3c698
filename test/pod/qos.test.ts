import type { V1ResourceRequirements } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { parseQuantity, podQOSClass } from "../../internal/pod/qos.ts";

function ratio(text: string): string | undefined {
  const quantity = parseQuantity(text);
  return quantity === undefined ? undefined : `${quantity.numerator}/${quantity.denominator}`;
}

describe("parseQuantity", () => {
  const cases: [string, string | undefined][] = [
    ["1", "1/1"],
    ["100m", "100/1000"],
    ["0.5", "5/10"],
    ["1.5Gi", `${15n * (1n << 30n)}/10`],
    ["2k", "2000/1"],
    ["1e3", "1000/1"],
    ["1E-3", "1/1000"],
    ["-1", "-1/1"],
    ["", undefined],
    ["Gi", undefined],
    ["1.5.2", undefined],
    ["12 Mi", undefined],
    ["1Kb", undefined],
  ];
  for (const [text, expected] of cases) test(JSON.stringify(text), () => expect(ratio(text)).toBe(expected));
});

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
