/** toDbusProperties and escapeExecArgument: pure, no systemd needed. */
import { describe, expect, test } from "bun:test";
import { Variant } from "dbus-next";
import { escapeExecArgument } from "../../internal/systemd/escape.ts";
import { toDbusProperties } from "../../internal/systemd/properties.ts";
import type { ServiceProperties } from "../../internal/systemd/types.ts";

function minimal(overrides: Partial<ServiceProperties> = {}): ServiceProperties {
  return {
    description: "vks pod default/web container nginx",
    type: "exec",
    execStart: [{ path: "/usr/sbin/nginx", argv: ["nginx", "-g", "daemon off;"], ignoreFailure: false }],
    execStartPre: [],
    environment: [],
    environmentFiles: [],
    runtimeDirectory: [],
    restart: "always",
    restartUSec: 1_000_000n,
    remainAfterExit: true,
    startLimitIntervalUSec: 0n,
    killSignal: 15,
    sendSIGKILL: true,
    timeoutStopUSec: 30_000_000n,
    logExtraFields: [],
    ...overrides,
  };
}

/** name → [signature, value], the shape that is easy to compare. */
function asRecord(properties: Array<[string, Variant]>): Record<string, [string, unknown]> {
  const record: Record<string, [string, unknown]> = {};
  for (const [name, variant] of properties) {
    expect(variant).toBeInstanceOf(Variant);
    expect(record[name]).toBeUndefined();
    record[name] = [variant.signature, variant.value];
  }
  return record;
}

describe("escapeExecArgument", () => {
  test("doubles every $ and leaves everything else, % included, alone", () => {
    expect(escapeExecArgument("$HOME")).toBe("$$HOME");
    expect(escapeExecArgument("${HOME}")).toBe("$${HOME}");
    expect(escapeExecArgument("$$")).toBe("$$$$");
    expect(escapeExecArgument("%h %% a b \"q\" it's \\ ; \n ünï")).toBe("%h %% a b \"q\" it's \\ ; \n ünï");
    expect(escapeExecArgument("")).toBe("");
  });
});

describe("toDbusProperties", () => {
  test("maps every field to its systemd property with the right D-Bus type", () => {
    const record = asRecord(
      toDbusProperties(
        minimal({
          execStartPre: [{ path: "/bin/mkdir", argv: ["mkdir", "-p", "/run/x"], ignoreFailure: true }],
          environment: ["A=1", "B=$x"],
          environmentFiles: [{ path: "/etc/default/nginx", optional: true }],
          workingDirectory: "/srv",
          user: "www-data",
          group: "www-data",
          runtimeDirectory: ["nginx"],
          standardOutputFile: "/var/log/pods/x/0.log",
          standardErrorFile: "/var/log/pods/x/0.err",
          logExtraFields: ["VKS_POD_UID=123", "VKS_CONTAINER=nginx"],
        }),
      ),
    );
    expect(record).toEqual({
      Description: ["s", "vks pod default/web container nginx"],
      Type: ["s", "exec"],
      ExecStart: ["a(sasb)", [["/usr/sbin/nginx", ["nginx", "-g", "daemon off;"], false]]],
      ExecStartPre: ["a(sasb)", [["/bin/mkdir", ["mkdir", "-p", "/run/x"], true]]],
      Environment: ["as", ["A=1", "B=$x"]],
      EnvironmentFiles: ["a(sb)", [["/etc/default/nginx", true]]],
      WorkingDirectory: ["s", "/srv"],
      User: ["s", "www-data"],
      Group: ["s", "www-data"],
      RuntimeDirectory: ["as", ["nginx"]],
      Restart: ["s", "always"],
      RestartUSec: ["t", 1_000_000n],
      RemainAfterExit: ["b", true],
      StartLimitIntervalUSec: ["t", 0n],
      KillSignal: ["i", 15],
      SendSIGKILL: ["b", true],
      TimeoutStopUSec: ["t", 30_000_000n],
      StandardOutputFileToAppend: ["s", "/var/log/pods/x/0.log"],
      StandardErrorFileToAppend: ["s", "/var/log/pods/x/0.err"],
      LogExtraFields: ["aay", [Buffer.from("VKS_POD_UID=123"), Buffer.from("VKS_CONTAINER=nginx")]],
    });
  });

  test("escapes $ in every argv element, argv[0] included, but never in the executable path", () => {
    const record = asRecord(
      toDbusProperties(
        minimal({
          execStart: [{ path: "/opt/$weird/bin", argv: ["$0", "${HOME}", "%h"], ignoreFailure: false }],
          execStartPre: [{ path: "/bin/echo", argv: ["echo", "$PATH"], ignoreFailure: false }],
        }),
      ),
    );
    expect(record.ExecStart).toEqual(["a(sasb)", [["/opt/$weird/bin", ["$$0", "$${HOME}", "%h"], false]]]);
    expect(record.ExecStartPre).toEqual(["a(sasb)", [["/bin/echo", ["echo", "$$PATH"], false]]]);
  });

  test("environment values and paths pass unchanged: systemd does not expand them", () => {
    const record = asRecord(
      toDbusProperties(minimal({ environment: ["X=$HOME %h ;"], workingDirectory: "/srv/$x %h" })),
    );
    expect(record.Environment).toEqual(["as", ["X=$HOME %h ;"]]);
    expect(record.WorkingDirectory).toEqual(["s", "/srv/$x %h"]);
  });

  test("leaves out empty lists and absent optionals, and sends output to the journal when no file is given", () => {
    const record = asRecord(toDbusProperties(minimal()));
    for (const absent of ["ExecStartPre", "Environment", "EnvironmentFiles", "WorkingDirectory", "User", "Group"]) {
      expect(record[absent]).toBeUndefined();
    }
    expect(record.RuntimeDirectory).toBeUndefined();
    expect(record.LogExtraFields).toBeUndefined();
    expect(record.StandardOutput).toEqual(["s", "journal"]);
    expect(record.StandardError).toEqual(["s", "journal"]);
    expect(record.StandardOutputFileToAppend).toBeUndefined();
  });

  test("a file for stdout alone keeps stderr in the journal instead of inheriting the file", () => {
    const record = asRecord(toDbusProperties(minimal({ standardOutputFile: "/tmp/out" })));
    expect(record.StandardOutputFileToAppend).toEqual(["s", "/tmp/out"]);
    expect(record.StandardError).toEqual(["s", "journal"]);
  });

  test("keeps several ExecStart commands in order", () => {
    const record = asRecord(
      toDbusProperties(
        minimal({
          type: "oneshot",
          execStart: [
            { path: "/bin/true", argv: ["true"], ignoreFailure: false },
            { path: "/bin/false", argv: ["false"], ignoreFailure: true },
          ],
        }),
      ),
    );
    expect(record.ExecStart).toEqual(["a(sasb)", [["/bin/true", ["true"], false], ["/bin/false", ["false"], true]]]);
  });

  test("refuses negative durations and non-integer signals instead of sending garbage", () => {
    expect(() => toDbusProperties(minimal({ timeoutStopUSec: -1n }))).toThrow(RangeError);
    expect(() => toDbusProperties(minimal({ restartUSec: -5n }))).toThrow(/restartUSec/);
    expect(() => toDbusProperties(minimal({ killSignal: 9.5 }))).toThrow(/killSignal/);
  });

  test("does not modify its input", () => {
    const properties = minimal({ execStart: [{ path: "/bin/echo", argv: ["echo", "$X"], ignoreFailure: false }] });
    const copy = structuredClone(properties);
    toDbusProperties(properties);
    expect(properties).toEqual(copy);
  });

  test("volumes become BindPaths/BindReadOnlyPaths (ssbt) entries, and are absent without volumes", () => {
    const record = asRecord(
      toDbusProperties(
        minimal({
          bindPaths: [{ source: "/var/lib/vks/volumes/u/cache", destination: "/cache", ignoreMissing: false, recursive: true }],
          bindReadOnlyPaths: [{ source: "/srv/data", destination: "/data", ignoreMissing: true, recursive: false }],
        }),
      ),
    );
    expect(record.BindPaths).toEqual(["a(ssbt)", [["/var/lib/vks/volumes/u/cache", "/cache", false, 16384n]]]);
    expect(record.BindReadOnlyPaths).toEqual(["a(ssbt)", [["/srv/data", "/data", true, 0n]]]);
    const plain = asRecord(toDbusProperties(minimal()));
    expect(plain.BindPaths).toBeUndefined();
    expect(plain.BindReadOnlyPaths).toBeUndefined();
  });
});

describe("privileged commands", () => {
  test("a privileged ExecStartPre sends the whole list as ExecStartPreEx with flags; ExecStopPost always goes as Ex", () => {
    const gate = { path: "/bin/sh", argv: ["/bin/sh", "/var/lib/vks/restart-backoff.sh", "/var/lib/vks/backoff/u/c", "1"], ignoreFailure: true, privileged: true };
    const image = { path: "/usr/sbin/sshd", argv: ["sshd", "-t"], ignoreFailure: false };
    const record = asRecord(toDbusProperties(minimal({ execStartPre: [gate, image], execStopPost: [gate], timeoutStartUSec: 390_000_000n })));
    expect(record.ExecStartPre).toBeUndefined();
    expect(record.ExecStartPreEx).toEqual(["a(sasas)", [[gate.path, gate.argv, ["ignore-failure", "privileged"]], [image.path, image.argv, []]]]);
    expect(record.ExecStopPostEx).toEqual(["a(sasas)", [[gate.path, gate.argv, ["ignore-failure", "privileged"]]]]);
    expect(record.TimeoutStartUSec).toEqual(["t", 390_000_000n]);
    const plain = asRecord(toDbusProperties(minimal({ execStartPre: [image] })));
    expect(plain.ExecStartPre).toEqual(["a(sasb)", [[image.path, image.argv, false]]]);
    expect(plain.TimeoutStartUSec).toBeUndefined();
  });
});

