import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, test } from "bun:test";
import { cpuQuotaPerSecond, milliCPUToShares, podHasLimits, podRequests, sharesToWeight } from "../../internal/pod/resources.ts";

describe("the kubelet's CPU conversions", () => {
  test("MilliCPUToShares: 1024 per CPU, between 2 and 262144", () => {
    expect(milliCPUToShares(0n)).toBe(2n);
    expect(milliCPUToShares(1n)).toBe(2n);
    expect(milliCPUToShares(100n)).toBe(102n);
    expect(milliCPUToShares(1000n)).toBe(1024n);
    expect(milliCPUToShares(1_000_000n)).toBe(262144n);
  });
  test("shares → cgroup v2 weight: 1 + ((shares - 2) * 9999) / 262142", () => {
    expect(sharesToWeight(2n)).toBe(1n);
    expect(sharesToWeight(102n)).toBe(4n);
    expect(sharesToWeight(1024n)).toBe(39n);
    expect(sharesToWeight(262144n)).toBe(10000n);
  });
  test("quota per second over the 100 ms period, at least 1 ms per period", () => {
    expect(cpuQuotaPerSecond(1000n)).toBe(1_000_000n);
    expect(cpuQuotaPerSecond(250n)).toBe(250_000n);
    expect(cpuQuotaPerSecond(1n)).toBe(10_000n);
    expect(cpuQuotaPerSecond(10n)).toBe(10_000n);
  });
});

function pod(spec: V1Pod["spec"]): V1Pod {
  return { metadata: { name: "p", uid: "u" }, spec };
}

describe("podRequests: what admission counts", () => {
  test("app containers and sidecars add up; an init container runs next to the sidecars before it", () => {
    const requests = podRequests(
      pod({
        initContainers: [
          { name: "s", image: "x", restartPolicy: "Always", resources: { requests: { cpu: "100m", memory: "10Mi" } } },
          { name: "i", image: "x", resources: { requests: { cpu: "1", memory: "1Mi" } } },
        ],
        containers: [
          { name: "a", image: "x", resources: { requests: { cpu: "200m", memory: "20Mi" } } },
          { name: "b", image: "x", resources: { limits: { cpu: "300m", memory: "30Mi" } } },
        ],
      }),
    );
    expect(requests).toEqual({ cpuMilli: 1100n, memoryBytes: 60n * 1024n * 1024n });
  });
  test("pod-level spec.resources wins", () => {
    expect(podRequests(pod({ resources: { requests: { cpu: "2" } }, containers: [{ name: "a", image: "x", resources: { requests: { cpu: "1" } } }] })).cpuMilli).toBe(2000n);
  });
  test("limits anywhere, or a pid limit, make a pod one with limits", () => {
    expect(podHasLimits(pod({ containers: [{ name: "a", image: "x", resources: { requests: { cpu: "1" } } }] }))).toBe(false);
    expect(podHasLimits(pod({ containers: [{ name: "a", image: "x", resources: { limits: { memory: "1Gi" } } }] }))).toBe(true);
    expect(podHasLimits(pod({ containers: [{ name: "a", image: "x" }] }), { podMaxPids: 100 })).toBe(true);
  });
});

describe("the shared slices", () => {
  test("QoS slices weigh as the kubelet's QoS cgroups: BestEffort 2 shares, Burstable the sum of its requests", async () => {
    const { qosSliceWeights, nodeSliceCgroup } = await import("../../internal/pod/resources.ts");
    const burstable = (cpu: string) => pod({ containers: [{ name: "a", image: "x", resources: { requests: { cpu } } }] });
    const guaranteed = pod({ containers: [{ name: "a", image: "x", resources: { limits: { cpu: "4", memory: "1Gi" } } }] });
    expect(qosSliceWeights([burstable("500m"), burstable("500m"), guaranteed, pod({ containers: [{ name: "a", image: "x" }] })])).toEqual({
      burstable: sharesToWeight(1024n),
      besteffort: 1n,
    });
    expect(nodeSliceCgroup(8n << 30n, 0n)).toBeUndefined();
    expect(nodeSliceCgroup(8n << 30n, 1n << 30n)).toEqual({ memoryMax: 7n << 30n });
  });
});

describe("OOMScoreAdjust by QoS, as the kubelet's GetContainerOOMScoreAdjust", () => {
  test("Guaranteed and node-critical -997, BestEffort 1000, Burstable by its memory request within 3 … 999", async () => {
    const { containerOomScoreAdjust } = await import("../../internal/pod/resources.ts");
    const capacity = 8n << 30n;
    const one = (spec: V1Pod["spec"]) => {
      const candidate = pod(spec);
      return containerOomScoreAdjust(candidate, candidate.spec?.containers[0] ?? { name: "" }, capacity);
    };
    expect(one({ containers: [{ name: "a", image: "x", resources: { limits: { cpu: "1", memory: "1Gi" } } }] })).toBe(-997);
    expect(one({ containers: [{ name: "a", image: "x" }] })).toBe(1000);
    expect(one({ priorityClassName: "system-node-critical", containers: [{ name: "a", image: "x" }] })).toBe(-997);
    expect(one({ containers: [{ name: "a", image: "x", resources: { requests: { memory: "1Gi" } } }] })).toBe(875);
    expect(one({ containers: [{ name: "a", image: "x", resources: { requests: { cpu: "1" } } }] })).toBe(999);
    expect(one({ containers: [{ name: "a", image: "x", resources: { requests: { memory: "8Gi" }, limits: { memory: "16Gi" } } }] })).toBe(3);
  });
});
