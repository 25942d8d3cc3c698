import { describe, expect, test } from "bun:test";
import { commandLine, lookupFailure, type FileProbe } from "../../internal/exec/command.ts";

describe("commandLine", () => {
  test("the common case: setpriv with the container's identity, then the command as given", () => {
    expect(commandLine({ command: ["ls", "-l"], identity: { uid: 1, gid: 2, groups: [2, 30] }, workingDirectory: "/srv" })).toEqual([
      "/usr/bin/setpriv",
      "--reuid=1",
      "--regid=2",
      "--groups=2,30",
      "--",
      "ls",
      "-l",
    ]);
    expect(commandLine({ command: ["id"], identity: { uid: 0, gid: 0, groups: [] }, workingDirectory: "/" })).toContain("--clear-groups");
    expect(commandLine({ command: ["id"], workingDirectory: "/" })).toEqual(["/usr/bin/setpriv", "--", "id"]);
  });

  test("mount namespace, limits and working directory, each applied in its place", () => {
    const argv = commandLine({
      command: ["cat", "--", "x"],
      mountNamespaceOf: 42,
      openFilesLimit: { soft: 1024n, hard: 0xffff_ffff_ffff_ffffn },
      identity: { uid: 5, gid: 5, groups: [] },
      workingDirectory: "/data dir",
    });
    expect(argv).toEqual([
      "/usr/bin/nsenter",
      "--target=42",
      "--mount",
      "--",
      "/usr/bin/prlimit",
      "--nofile=1024:unlimited",
      "--",
      "/usr/bin/setpriv",
      "--reuid=5",
      "--regid=5",
      "--clear-groups",
      "--",
      "/usr/bin/env",
      "--chdir=/data dir",
      "--",
      "cat",
      "--",
      "x",
    ]);
  });
});

describe("lookupFailure", () => {
  const files: Record<string, "file" | "directory"> = { "/usr/bin/ls": "file", "/srv/run.sh": "file", "/srv": "directory", "/usr/bin": "directory" };
  const probe: FileProbe = { kind: (path) => files[path] };

  test("found on PATH, relative to the working directory, or by absolute path", () => {
    expect(lookupFailure("ls", "/bin:/usr/bin", "/", probe)).toBeUndefined();
    expect(lookupFailure("./run.sh", "/bin", "/srv", probe)).toBeUndefined();
    expect(lookupFailure("run.sh", ":/bin", "/srv", probe)).toBeUndefined();
    expect(lookupFailure("/usr/bin/ls", undefined, "/", probe)).toBeUndefined();
  });

  test("runc's messages and a shell's exit codes", () => {
    expect(lookupFailure("nope", "/bin:/usr/bin", "/", probe)).toEqual({ exitCode: 127, message: 'exec: "nope": executable file not found in $PATH' });
    expect(lookupFailure("/no/file", "/bin", "/", probe)).toEqual({ exitCode: 127, message: 'exec: "/no/file": stat /no/file: no such file or directory' });
    expect(lookupFailure("/srv", "/bin", "/", probe)).toEqual({ exitCode: 126, message: 'exec: "/srv": is a directory' });
    // A directory of that name on PATH is not a match: execvp would go on, and fail.
    expect(lookupFailure("bin", "/usr", "/", probe)?.exitCode).toBe(127);
    expect(lookupFailure("", "/bin", "/", probe)?.exitCode).toBe(127);
  });
});
