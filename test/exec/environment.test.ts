import { describe, expect, test } from "bun:test";
import { execEnvironment, type ExecEnvironmentInput } from "../../internal/exec/environment.ts";

const base: ExecEnvironmentInput = {
  managerEnvironment: ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/root", "PWD=/somewhere"],
  account: undefined,
  invocationID: "",
  runtimeDirectories: [],
  unitEnvironment: [],
  environmentFiles: [],
  unsetEnvironment: [],
  tty: false,
};

describe("execEnvironment", () => {
  test("starts from the manager's environment, without a PWD only the manager had", () => {
    expect(execEnvironment(base)).toEqual({ PATH: "/usr/bin:/bin", LANG: "C.UTF-8", HOME: "/root" });
  });

  test("User= brings HOME, LOGNAME, USER and SHELL, except placeholders", () => {
    const postgres = execEnvironment({ ...base, account: { name: "postgres", home: "/var/lib/postgresql", shell: "/bin/bash" } });
    expect(postgres).toMatchObject({ HOME: "/var/lib/postgresql", LOGNAME: "postgres", USER: "postgres", SHELL: "/bin/bash" });
    // nobody: /nonexistent and nologin are not set, so the manager's own HOME (and no SHELL) remain.
    const nobody = execEnvironment({ ...base, account: { name: "nobody", home: "/nonexistent", shell: "/usr/sbin/nologin" } });
    expect(nobody).toMatchObject({ HOME: "/root", USER: "nobody", LOGNAME: "nobody" });
    expect(nobody.SHELL).toBeUndefined();
    expect(execEnvironment({ ...base, account: { name: "net", home: "/", shell: "/bin/false" } }).HOME).toBe("/root");
    expect(execEnvironment({ ...base, account: { name: "sync", home: "/bin", shell: "/bin/sync" } })).toMatchObject({ HOME: "/bin", SHELL: "/bin/sync" });
  });

  test("Environment= over the built-ins, environment files over Environment=, later over earlier", () => {
    const environment = execEnvironment({
      ...base,
      invocationID: "0123abcd",
      runtimeDirectories: ["/run/a", "/run/b"],
      unitEnvironment: ["A=1", "B=2", "A=3", "LANG=de_DE.UTF-8", "EMPTY="],
      environmentFiles: [["B=file"], ["C=x=y"]],
    });
    expect(environment).toMatchObject({ A: "3", B: "file", C: "x=y", EMPTY: "", LANG: "de_DE.UTF-8", INVOCATION_ID: "0123abcd", RUNTIME_DIRECTORY: "/run/a:/run/b" });
  });

  test("a PWD the unit sets is kept", () => {
    expect(execEnvironment({ ...base, unitEnvironment: ["PWD=/srv"] }).PWD).toBe("/srv");
    expect(execEnvironment({ ...base, environmentFiles: [["PWD=/data"]] }).PWD).toBe("/data");
  });

  test("the launcher's variables go when the unit runs through the launcher, and only then", () => {
    const launched = execEnvironment({
      ...base,
      unitEnvironment: ["X=1", "VKS_EXEC_START0_PATH=/bin/sh", "VKS_EXEC_START0_ARGC=1", "VKS_EXEC_SLOTS=START0", "VKS_EXEC_SCRIPT=# script"],
    });
    expect(Object.keys(launched).filter((name) => name.startsWith("VKS_EXEC_"))).toEqual([]);
    expect(launched.X).toBe("1");
    expect(execEnvironment({ ...base, unitEnvironment: ["VKS_EXEC_MINE=kept"] }).VKS_EXEC_MINE).toBe("kept");
  });

  test("UnsetEnvironment= removes names, or only exact assignments", () => {
    const environment = execEnvironment({ ...base, unitEnvironment: ["A=1", "B=2"], unsetEnvironment: ["LANG", "A=1", "B=other"] });
    expect(environment.LANG).toBeUndefined();
    expect(environment.A).toBeUndefined();
    expect(environment.B).toBe("2");
  });

  test("a terminal sets TERM=xterm", () => {
    expect(execEnvironment({ ...base, unitEnvironment: ["TERM=dumb"], tty: true }).TERM).toBe("xterm");
    expect(execEnvironment({ ...base, unitEnvironment: ["TERM=dumb"] }).TERM).toBe("dumb");
  });
});
