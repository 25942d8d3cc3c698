/** Slices, resource control and sandboxing as typed D-Bus properties: pure, no systemd needed. */
import { expect, test } from "bun:test";
import { Variant } from "dbus-next";
import { toDbusProperties, toSliceDbusProperties } from "../../internal/systemd/properties.ts";
import { capabilityMask } from "../../internal/systemd/capabilities.ts";
import type { ServiceProperties } from "../../internal/systemd/types.ts";

const base: ServiceProperties = {
  description: "d",
  type: "exec",
  execStart: [{ path: "/bin/true", argv: ["true"], ignoreFailure: false }],
  execStartPre: [],
  environment: [],
  environmentFiles: [],
  runtimeDirectory: [],
  restart: "no",
  restartUSec: 0n,
  remainAfterExit: true,
  startLimitIntervalUSec: 0n,
  killSignal: 15,
  sendSIGKILL: true,
  timeoutStopUSec: 1n,
  logExtraFields: [],
};

function record(list: [string, Variant][]): Record<string, [string, unknown]> {
  return Object.fromEntries(list.map(([name, variant]) => [name, [variant.signature, variant.value]]));
}

test("slice, limits and sandboxing go over the wire with systemd's signatures", () => {
  const properties = record(
    toDbusProperties({
      ...base,
      slice: "vks-burstable-default_web_6f1c2d3e.slice",
      cgroup: { cpuWeight: 4n, cpuQuotaPerSecUSec: 250_000n, cpuQuotaPeriodUSec: 100_000n, memoryMax: 64n << 20n, memorySwapMax: 0n, tasksMax: 100n },
      sandbox: {
        supplementaryGroups: ["1"],
        capabilityBoundingSet: ["CAP_NET_BIND_SERVICE"],
        ambientCapabilities: ["CAP_NET_BIND_SERVICE"],
        noNewPrivileges: true,
        protectSystem: "strict",
        readWritePaths: ["-/scratch"],
        systemCallFilter: ["@system-service"],
        systemCallErrorNumber: 1,
        appArmorProfile: "vks-web",
      },
      oomScoreAdjust: 1000,
    }),
  );
  expect(properties).toMatchObject({
    Slice: ["s", "vks-burstable-default_web_6f1c2d3e.slice"],
    CPUAccounting: ["b", true],
    CPUWeight: ["t", 4n],
    CPUQuotaPerSecUSec: ["t", 250_000n],
    CPUQuotaPeriodUSec: ["t", 100_000n],
    MemoryAccounting: ["b", true],
    MemoryMax: ["t", 64n << 20n],
    MemorySwapMax: ["t", 0n],
    TasksAccounting: ["b", true],
    TasksMax: ["t", 100n],
    SupplementaryGroups: ["as", ["1"]],
    CapabilityBoundingSet: ["t", 1n << 10n],
    AmbientCapabilities: ["t", 1n << 10n],
    NoNewPrivileges: ["b", true],
    ProtectSystem: ["s", "strict"],
    ReadWritePaths: ["as", ["-/scratch"]],
    SystemCallFilter: ["(bas)", [true, ["@system-service"]]],
    SystemCallErrorNumber: ["i", 1],
    AppArmorProfile: ["(bs)", [false, "vks-web"]],
    OOMScoreAdjust: ["i", 1000],
  });
});

test("an empty bounding set is 0 (no capability at all), not left out", () => {
  expect(record(toDbusProperties({ ...base, sandbox: { capabilityBoundingSet: [] } })).CapabilityBoundingSet).toEqual(["t", 0n]);
  expect(capabilityMask(["CAP_CHOWN", "CAP_SYS_ADMIN"])).toBe(1n | (1n << 21n));
  expect(() => capabilityMask(["CAP_NOPE"])).toThrow("unknown capability");
});

test("a pod's slice: description and its resource control", () => {
  expect(record(toSliceDbusProperties({ unitName: "vks-x.slice", description: "vks pod default/x", cgroup: { cpuWeight: 1n } }))).toEqual({
    Description: ["s", "vks pod default/x"],
    CPUAccounting: ["b", true],
    CPUWeight: ["t", 1n],
  });
});
