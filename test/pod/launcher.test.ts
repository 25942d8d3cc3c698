/**
 * The launcher runs here as systemd would run it — the planned command with exactly the planned
 * environment — but without systemd, against a recorder program that reports its own argv, environment
 * and pid. test/e2e/reload.test.ts covers the same path through a real daemon-reload.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { VksError } from "../../internal/errors.ts";
import { LAUNCHER_SCRIPT, launchCommands, survivesReload } from "../../internal/pod/launcher.ts";
import type { ExecCommand } from "../../internal/systemd/types.ts";

const BUN = process.execPath;
/** Newline-separated and free of "$" and ";", so that the recorder alone never needs the launcher. */
const RECORDER_SCRIPT = [
  "const fs = require('fs')",
  "const parts = (file) => fs.readFileSync(file).toString('latin1').split('\\0').slice(0, -1).map((part) => Buffer.from(part, 'latin1').toString('hex'))",
  "process.stdout.write(JSON.stringify({ pid: process.pid, argv: parts('/proc/self/cmdline'), env: parts('/proc/self/environ') }))",
].join("\n");

/** A command running the recorder: argv[0] as given, then `-e SCRIPT --`, then `args`. */
function recorder(args: string[], argv0: string = BUN, path: string = BUN): ExecCommand {
  return { path, argv: [argv0, "-e", RECORDER_SCRIPT, "--", ...args], ignoreFailure: false };
}

interface Recording {
  pid: number;
  /** argv[0] and the arguments after `--`. */
  argv: string[];
  /** Sorted: the shell rebuilds the environment in an order of its own, which means nothing. */
  environment: string[];
}

interface Run {
  exitCode: number;
  stderr: string;
  pid: number;
  recording?: Recording;
}

/** Runs `command` with exactly `environment`, as systemd would: nothing inherited from this process. */
async function run(command: ExecCommand, environment: string[], cwd = "/"): Promise<Run> {
  const env: Record<string, string> = {};
  for (const entry of environment) {
    const separator = entry.indexOf("=");
    env[entry.slice(0, separator)] = entry.slice(separator + 1);
  }
  const child = Bun.spawn([command.path, ...command.argv.slice(1)], { env, cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (exitCode !== 0 || stdout === "") return { exitCode, stderr, pid: child.pid };
  const raw = JSON.parse(stdout) as { pid: number; argv: string[]; env: string[] };
  const decode = (list: string[]) => list.map((hex) => Buffer.from(hex, "hex").toString("utf8"));
  const argv = decode(raw.argv);
  return { exitCode, stderr, pid: child.pid, recording: { pid: raw.pid, argv: [argv[0] ?? "", ...argv.slice(4)], environment: decode(raw.env).sort() } };
}

function launched(command: ExecCommand, environment: string[] = [], execStartPre: ExecCommand[] = []) {
  return launchCommands({ execStartPre, execStart: [command], environment }, () => "test environment");
}

const ASCII = Array.from({ length: 127 }, (_, index) => String.fromCharCode(index + 1));
const TRICKY = [...ASCII.map((char) => `a${char}b`), ...ASCII, "$HOME", "${HOME}", "$$", "a;b", "\\$", "\\;", "", " ", "é ✓", "-c", "--"];
const BASE_ENVIRONMENT = ["PATH=/usr/bin:/bin", "GREETING=hello $USER; bye", "EMPTY=", "MULTI=line1\nline2"];
const sorted = (entries: string[]) => [...entries].sort();

describe("survivesReload", () => {
  test("arguments: only $ and ; are lost", () => {
    for (const char of ASCII) {
      expect(survivesReload({ path: "/bin/x", argv: ["/bin/x", `a${char}b`], ignoreFailure: false })).toBe(char !== "$" && char !== ";");
    }
    expect(survivesReload({ path: "/bin/x", argv: ["x$", "a"], ignoreFailure: false })).toBe(false);
  });

  test("paths: control characters, space, quotes, $, ; and backslash are lost", () => {
    const unsafe = new Set([...ASCII.filter((char) => char <= " " || char === "\u007f"), '"', "'", "$", ";", "\\"]);
    for (const char of ASCII.filter((c) => c !== "/")) {
      expect(survivesReload({ path: `/bin/p${char}q`, argv: ["x"], ignoreFailure: false })).toBe(!unsafe.has(char));
    }
    expect(survivesReload({ path: "/opt/é/%h", argv: ["x"], ignoreFailure: false })).toBe(true);
  });
});

describe("launchCommands", () => {
  test("commands that survive a reload, and their environment, are left alone", () => {
    const command = recorder(["plain", "100% \"quoted\" 'single' back\\slash"]);
    expect(launched(command, BASE_ENVIRONMENT)).toEqual({ execStartPre: [], execStart: [command], environment: BASE_ENVIRONMENT });
  });

  test("the launched command itself survives a reload, and so does nothing but the environment carry $ or ;", () => {
    const result = launched(recorder(TRICKY), BASE_ENVIRONMENT);
    expect(result.execStart.every(survivesReload)).toBe(true);
    expect(result.environment.at(-1)).toBe(`VKS_EXEC_SCRIPT=${LAUNCHER_SCRIPT}`);
  });

  test("reserved names are refused, naming where they came from", () => {
    expect(() => launched(recorder(["$x"]), ["VKS_EXEC_X=1"])).toThrow(VksError);
    expect(() => launched(recorder(["$x"]), ["VKS_EXEC_X=1"])).toThrow("test environment: environment variable VKS_EXEC_X is reserved");
  });
});

describe("the launcher, run as systemd runs it", () => {
  test("every argument arrives exactly, the environment is exactly the unit's own, and exec replaces the shell", async () => {
    const result = launched(recorder(TRICKY), BASE_ENVIRONMENT);
    const [command] = result.execStart;
    if (command === undefined) throw new Error("no command");
    const ran = await run(command, result.environment);
    expect(ran.stderr).toBe("");
    expect(ran.recording?.argv).toEqual([BUN, ...TRICKY]);
    expect(ran.recording?.environment).toEqual(sorted(BASE_ENVIRONMENT));
    // The pid systemd sees as MainPID is the program's: the shell exec'd it, no child in between.
    expect(ran.recording?.pid).toBe(ran.pid);
  });

  test("PWD, IFS, OPTIND and PPID keep the unit's values, and are absent when it has none", async () => {
    const given = [...BASE_ENVIRONMENT, "PWD=/not/the/cwd", "IFS=,", "OPTIND=7", "PPID=12345"];
    const withValues = launched(recorder(["$x"]), given);
    const ran = await run(withValues.execStart[0] ?? recorder([]), withValues.environment);
    expect(ran.recording?.environment).toEqual(sorted(given));
  });

  test("an ExecStartPre slot clears every launched command's variables", async () => {
    const result = launched(recorder(["main;"]), BASE_ENVIRONMENT, [recorder(["pre$"]), recorder(["direct"])]);
    expect(result.execStartPre[1]).toEqual(recorder(["direct"]));
    const pre = await run(result.execStartPre[0] ?? recorder([]), result.environment);
    expect(pre.recording?.argv).toEqual([BUN, "pre$"]);
    expect(pre.recording?.environment).toEqual(sorted(BASE_ENVIRONMENT));
    const main = await run(result.execStart[0] ?? recorder([]), result.environment);
    expect(main.recording?.argv).toEqual([BUN, "main;"]);
  });

  test("argv[0] is the manifest's word when that word runs the resolved program", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vks-launcher-"));
    symlinkSync(BUN, join(dir, "recorder"));
    const environment = [`PATH=/nonexistent::${dir}:${dirname(BUN)}`];
    const argv0 = async (word: string, cwd = "/") => {
      const result = launched(recorder(["$"], word), environment);
      return (await run(result.execStart[0] ?? recorder([]), result.environment, cwd)).recording?.argv[0];
    };
    expect(await argv0("recorder")).toBe("recorder");
    expect(await argv0("./recorder", dir)).toBe("./recorder");
    expect(await argv0(BUN)).toBe(BUN);
    // The word would run something else, or nothing: the program sees the path vks resolved.
    expect(await argv0("./recorder", "/")).toBe(BUN);
    expect(await argv0("no-such-program")).toBe(BUN);
    const shadow = join(dir, "bun.exe");
    writeFileSync(shadow, "#!/bin/sh\nexit 99\n");
    chmodSync(shadow, 0o755);
    expect(await argv0("bun.exe")).toBe(BUN);
  });

  test("a program that cannot be executed fails with systemd's EXEC status and says why", async () => {
    const result = launched(recorder(["$"], "/nonexistent/program", "/nonexistent/program"));
    const ran = await run(result.execStart[0] ?? recorder([]), result.environment);
    expect(ran.exitCode).toBe(203);
    expect(ran.stderr).toBe("vks-exec: cannot execute /nonexistent/program: no such executable file\n");
  });

  test("a unit whose launcher variables went missing fails loudly instead of running nothing", async () => {
    const result = launched(recorder(["$"]));
    const ran = await run(result.execStart[0] ?? recorder([]), []);
    expect(ran.exitCode).toBe(203);
    expect(ran.stderr).toContain("VKS_EXEC_SCRIPT is missing from the environment: recreate the pod");
    const withoutArgv = await run(result.execStart[0] ?? recorder([]), result.environment.filter((entry) => !entry.startsWith("VKS_EXEC_START0_ARGC=")));
    expect(withoutArgv.exitCode).toBe(203);
    expect(withoutArgv.stderr).toContain("VKS_EXEC_START0_ARGC is missing or invalid; recreate the pod");
  });
});
