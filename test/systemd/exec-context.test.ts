import { expect, test } from "bun:test";
import { Variant } from "dbus-next";
import { EXEC_CONTEXT_PROPERTIES, decodeExecContext } from "../../internal/systemd/exec-context.ts";

const wire: Record<string, Variant> = {
  ActiveState: new Variant("s", "active"),
  SubState: new Variant("s", "running"),
  InvocationID: new Variant("ay", Buffer.from("0123456789abcdef0123456789abcdef", "hex")),
  MainPID: new Variant("u", 42),
  ControlGroup: new Variant("s", "/system.slice/x.service"),
  User: new Variant("s", "101"),
  Group: new Variant("s", ""),
  SupplementaryGroups: new Variant("as", ["mail"]),
  Environment: new Variant("as", ["A=1"]),
  EnvironmentFiles: new Variant("a(sb)", [["/etc/default/x", true]]),
  UnsetEnvironment: new Variant("as", []),
  WorkingDirectory: new Variant("s", "!/root"),
  UMask: new Variant("u", 0o027),
  RuntimeDirectory: new Variant("as", ["x"]),
  LimitNOFILE: new Variant("t", 524288n),
  LimitNOFILESoft: new Variant("t", 1024n),
};

test("decodeExecContext reads every property as dbus-next delivers it", () => {
  const values = EXEC_CONTEXT_PROPERTIES.map((entry) => wire[entry.property]);
  expect(decodeExecContext("x.service", values, ["PATH=/bin"])).toEqual({
    unitName: "x.service",
    activeState: "active",
    subState: "running",
    mainPID: 42,
    controlGroup: "/system.slice/x.service",
    user: "101",
    group: "",
    supplementaryGroups: ["mail"],
    environment: ["A=1"],
    environmentFiles: [{ path: "/etc/default/x", optional: true }],
    unsetEnvironment: [],
    workingDirectory: "!/root",
    umask: 0o027,
    runtimeDirectory: ["x"],
    limitNOFILE: { soft: 1024n, hard: 524288n },
    invocationID: "0123456789abcdef0123456789abcdef",
    managerEnvironment: ["PATH=/bin"],
  });
  expect(() => decodeExecContext("x.service", values.map(() => "raw"), [])).toThrow("expected a Variant");
});
