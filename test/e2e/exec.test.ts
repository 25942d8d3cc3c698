/**
 * `vks pod exec` end to end: a command runs as the container's process does (identity, environment,
 * working directory, cgroup, mount namespace), reports the command's exit status, passes stdin and a
 * terminal through, and leaves nothing behind in the container's cgroup however the client ends.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NotFoundError } from "../../internal/errors.ts";
import { trackingCgroupDirectory } from "../../internal/exec/cgroup.ts";
import { ContainerNotRunningError, type ExecProcess } from "../../internal/exec/exec.ts";
import { PodEngine } from "../../internal/pod/engine.ts";
import { VKS_BINARY, eventually, haveSystemd, managerFlag, newStateDir, podNamed, removeAllPods, vks, writeManifest } from "./helpers.ts";

setDefaultTimeout(120_000);
const stateDir = newStateDir();
const user = managerFlag;
// The container runs as daemon (uid 1 on every Debian), so what it writes must go where anyone may write.
const shared = join(stateDir, "shared");
const isolated = join(stateDir, "isolated");

function read(name: string): string {
  return readFileSync(join(shared, name), "utf8");
}

/** NUL-separated NAME=value entries as a map. */
function environmentOf(text: string, separator: string): Map<string, string> {
  const entries = text.split(separator).filter(Boolean);
  return new Map(entries.map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]));
}

function exec(args: string[], options: { stdin?: string } = {}) {
  return vks(stateDir, ["pod", "exec", ...user, ...args], options);
}

/** The processes in the cgroup of the container whose own /proc/PID/cgroup is in `cgroupFile`. */
function cgroupProcesses(cgroupFile: string): number[] {
  const directory = trackingCgroupDirectory(read(cgroupFile), readFileSync("/proc/self/mountinfo", "utf8"));
  if (directory === undefined) throw new Error("container cgroup not found");
  return readFileSync(join(directory, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
}

/** A process's argv joined by spaces; "" once it is gone. */
function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    return "";
  }
}

const EXCLUDED_FROM_EXEC = ["SYSTEMD_EXEC_PID", "MANAGERPID", "JOURNAL_STREAM"];

beforeAll(async () => {
  if (!haveSystemd) return;
  mkdirSync(shared, { mode: 0o777 });
  chmodSync(shared, 0o777);
  chmodSync(stateDir, 0o755);
  mkdirSync(isolated, { mode: 0o755 });
  writeFileSync(join(shared, "not-executable"), "#!/bin/sh\necho should not run\n", { mode: 0o644 });
  const manifest = writeManifest(
    stateDir,
    "exec.yaml",
    `apiVersion: v1
kind: Pod
metadata:
  name: target
spec:
  containers:
    - name: sidecar
      image: /bin/sleep
      args: ["infinity"]
    - name: main
      image: /bin/sh
      workingDir: ${shared}
      securityContext: {runAsUser: 1}
      env:
        - {name: GREETING, value: "hello exec"}
        - {name: EMPTY, value: ""}
      args:
        - -c
        - "cat /proc/$$$$/environ > env; id > id; pwd > pwd; cat /proc/$$$$/cgroup > cgroup; ulimit -n > nofile; exec sleep infinity"
---
apiVersion: v1
kind: Pod
metadata:
  name: finished
spec:
  restartPolicy: Never
  containers:
    - name: done
      image: /bin/true
---
apiVersion: v1
kind: Pod
metadata:
  name: private-mounts
spec:
  containers:
    - name: unshared
      image: /usr/bin/unshare
      workingDir: ${isolated}
      args: ["--mount", "--propagation", "private", "/bin/sh", "-c", "mount -t tmpfs tmpfs ${isolated} && cd ${isolated} && echo inside > marker && cat /proc/$$$$/cgroup > ${shared}/unshared-cgroup && exec sleep infinity"]
`,
  );
  const up = await vks(stateDir, ["pod", "up", "-d", manifest, ...user]);
  if (up.exitCode !== 0) throw new Error(`pod up failed: ${up.stderr}`);
  await eventually("the containers to record themselves", async () => {
    try {
      return read("nofile") !== "" && read("unshared-cgroup") !== "";
    } catch {
      return false;
    }
  });
  await eventually("finished to finish", async () => (await podNamed(stateDir, "finished"))?.status.phase === "Succeeded");
});

afterAll(async () => {
  await removeAllPods(stateDir);
  rmSync(stateDir, { recursive: true, force: true });
});

describe.skipIf(!haveSystemd)("vks pod exec (end to end, real systemd)", () => {
  test("runs as the container's user and groups, in its working directory, with its environment and limits", async () => {
    const id = await exec(["target", "-c", "main", "--", "id"]);
    expect(id.exitCode).toBe(0);
    expect(id.stdout).toBe(read("id"));
    expect(id.stdout).toStartWith("uid=1(daemon) gid=1(daemon)");
    expect((await exec(["target", "-c", "main", "--", "/bin/pwd"])).stdout).toBe(read("pwd"));
    expect((await exec(["target", "-c", "main", "--", "sh", "-c", "ulimit -n"])).stdout).toBe(read("nofile"));

    const env = await exec(["target", "-c", "main", "--", "/usr/bin/env", "-0"]);
    expect(env.exitCode).toBe(0);
    const execEnvironment = environmentOf(env.stdout, "\0");
    const containerEnvironment = environmentOf(read("env"), "\0");
    for (const name of EXCLUDED_FROM_EXEC) containerEnvironment.delete(name);
    expect(Object.fromEntries(execEnvironment)).toEqual(Object.fromEntries(containerEnvironment));
    expect(execEnvironment.get("GREETING")).toBe("hello exec");
    expect([...execEnvironment.keys()].filter((name) => name.startsWith("VKS_EXEC_"))).toEqual([]);
  });

  test("the default container is the first; -c picks another", async () => {
    const first = await exec(["target", "--", "id", "-u"]);
    expect(first.stdout).toBe("0\n");
    expect(first.stderr).toContain('Defaulted container "sidecar" out of: sidecar, main');
    expect((await exec(["target", "-c", "main", "--", "id", "-u"])).stdout).toBe("1\n");
  });

  test("the exec'd process sits in the container's cgroup", async () => {
    const own = await exec(["target", "-c", "main", "--", "cat", "/proc/self/cgroup"]);
    const unified = (text: string) => text.split("\n").find((line) => line.startsWith("0::")) ?? text.split("\n").find((line) => line.includes("name=systemd"));
    expect(unified(own.stdout)).toBeDefined();
    expect(unified(own.stdout)).toBe(unified(read("cgroup")));
  });

  test("exit codes: the command's own, 126 when it cannot be executed, 127 when not found", async () => {
    expect((await exec(["target", "-c", "main", "--", "true"])).exitCode).toBe(0);
    expect((await exec(["target", "-c", "main", "--", "sh", "-c", "exit 3"])).exitCode).toBe(3);
    const missing = await exec(["target", "-c", "main", "--", "no-such-command", "arg"]);
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toContain('exec: "no-such-command": executable file not found in $PATH');
    const missingPath = await exec(["target", "-c", "main", "--", "/no/such/file"]);
    expect(missingPath.exitCode).toBe(127);
    expect(missingPath.stderr).toContain("/no/such/file");
    const notExecutable = await exec(["target", "-c", "main", "--", "./not-executable"]);
    expect(notExecutable.exitCode).toBe(126);
    expect(notExecutable.stderr).toContain("./not-executable");
    expect(notExecutable.stdout).toBe("");
    expect((await exec(["target", "-c", "main", "--", "/tmp"])).exitCode).toBe(126);
    expect((await exec(["target", "-c", "main", "--", "sh", "-c", "kill -TERM $$"])).exitCode).toBe(128 + 15);
  });

  test("arguments reach the command exactly, and words after -- are never vks' own flags", async () => {
    const words = ["-h", "--help", "a b", "$HOME", "%h", ";", "", "ünï"];
    const run = await exec(["target", "-c", "main", "--", "printf", "%s|", ...words]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe(words.map((word) => `${word}|`).join(""));
  });

  test("-i passes standard input through and its end", async () => {
    const run = await exec(["-i", "target", "-c", "main", "--", "tr", "a-z", "A-Z"], { stdin: "hello\nstdin\n" });
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe("HELLO\nSTDIN\n");
    const without = await exec(["target", "-c", "main", "--", "cat"], { stdin: "ignored" });
    expect(without.stdout).toBe("");
  });

  test("-t gives the command a terminal of the caller's size, and follows resizes", async () => {
    let output = "";
    const client = Bun.spawn([VKS_BINARY, "pod", "exec", "-it", ...user, "target", "-c", "main", "--", "sh", "-c", "tty; stty size; trap 'stty size' WINCH; until read line; do :; done; echo got:$line"], {
      env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1" },
      terminal: { cols: 123, rows: 45, data: (_terminal, data) => (output += new TextDecoder().decode(data)) },
    });
    try {
      await eventually("the first size", async () => output.includes("45 123"));
      // The remote terminal ends lines with CRLF; the local one (raw, but with Node's ONLCR) may add a CR.
      expect(output).toMatch(/^\/dev\/pts\/\d+\r+\n45 123\r+\n/);
      client.terminal?.resize(100, 50);
      await eventually("the new size", async () => output.includes("50 100"));
      client.terminal?.write("typed\r");
      await eventually(`the line in ${JSON.stringify(output)}`, async () => output.includes("got:typed"));
      expect(await client.exited).toBe(0);
    } finally {
      client.kill("SIGKILL");
      client.terminal?.close();
    }

    const piped = await exec(["-t", "target", "-c", "main", "--", "sh", "-c", "tty; stty size"]);
    expect(piped.stdout).toMatch(/^\/dev\/pts\/\d+\r\n24 80\r\n$/);
  });

  for (const [how, signal] of [
    ["SIGKILL", "SIGKILL"],
    ["SIGTERM", "SIGTERM"],
    ["SIGHUP (terminal closed)", "SIGHUP"],
  ] as const) {
    test(`ending the client with ${how} leaves no process of the exec in the container's cgroup`, async () => {
      const before = cgroupProcesses("cgroup");
      const client = Bun.spawn([VKS_BINARY, "pod", "exec", ...user, "target", "-c", "main", "--", "sh", "-c", "sleep 1000 & (sleep 1001 &) ; trap '' HUP TERM; echo started; sleep 1002"], {
        env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1" },
        stdout: "pipe",
        stderr: "pipe",
      });
      try {
        await client.stdout.getReader().read();
        await eventually("the exec's processes", async () => cgroupProcesses("cgroup").length >= before.length + 4);
      } finally {
        client.kill(signal);
      }
      await client.exited;
      await eventually("the cgroup to hold only the container", async () => cgroupProcesses("cgroup").length === before.length);
      expect(cgroupProcesses("cgroup").sort()).toEqual(before.sort());
    });
  }

  test("a killed terminal session leaves nothing behind either, but what left the session on purpose", async () => {
    const before = cgroupProcesses("cgroup");
    const client = Bun.spawn([VKS_BINARY, "pod", "exec", "-it", ...user, "target", "-c", "main", "--", "sh", "-c", "setsid sleep 1003 & echo started; sleep 1004"], {
      env: { ...process.env, VKS_STATE_DIR: stateDir, NO_COLOR: "1" },
      terminal: { cols: 80, rows: 24 },
    });
    try {
      // Both sleeps, by their command lines: the setsid'd one's is "sleep 1003" only once setsid has made
      // its session and exec'd (a count of processes was reached by the fork alone, and a SIGKILL before
      // setsid took that child with the session: seen under stress-ng).
      await eventually("the exec's sleeps", async () => {
        const commands = cgroupProcesses("cgroup").map(commandLine);
        return commands.includes("sleep 1003") && commands.includes("sleep 1004");
      });
    } finally {
      client.kill("SIGKILL");
    }
    await client.exited;
    client.terminal?.close();
    await eventually("the session's processes gone", async () => cgroupProcesses("cgroup").length === before.length + 1);
    // The setsid'd sleep is a daemon of the container now, as with any container runtime's exec.
    const daemonized = cgroupProcesses("cgroup").filter((pid) => !before.includes(pid));
    expect(daemonized).toHaveLength(1);
    for (const pid of daemonized) process.kill(pid, "SIGKILL");
  });

  test("enters the container's own mount namespace, working directory included", async () => {
    const marker = await exec(["private-mounts", "--", "cat", "marker"]);
    expect(marker.stdout).toBe("inside\n");
    expect(marker.exitCode).toBe(0);
    expect((await exec(["private-mounts", "--", "/bin/pwd"])).stdout).toBe(`${isolated}\n`);
    // vks' own view of that directory is the empty one under the container's tmpfs.
    expect(() => readFileSync(join(isolated, "marker"))).toThrow();
    expect((await exec(["private-mounts", "--", "no-such-command"])).exitCode).toBe(127);
    const own = await exec(["private-mounts", "--", "cat", "/proc/self/cgroup"]);
    expect(own.stdout.split("\n").find((line) => line.startsWith("0::"))).toBe(read("unshared-cgroup").split("\n").find((line) => line.startsWith("0::")));
  });

  test("failures: no such pod, no such container, a container that is not running, no command", async () => {
    const noPod = await exec(["nonexistent", "--", "true"]);
    expect(noPod.exitCode).toBe(66);
    expect(noPod.stderr).toContain("no such pod: default/nonexistent");
    const noContainer = await exec(["target", "-c", "nope", "--", "true"]);
    expect(noContainer.exitCode).toBe(66);
    expect(noContainer.stderr).toContain('container not found ("nope")');
    const finished = await exec(["finished", "--", "true"]);
    expect(finished.exitCode).toBe(1);
    expect(finished.stderr).toContain('container not found ("done")');
    expect(finished.stdout + finished.stderr).toContain("container done is not running");
    const noCommand = await exec(["target"]);
    expect(noCommand.exitCode).toBe(2);
  });

  describe("through the engine, as the kubelet API uses it", () => {
    let engine: PodEngine;
    beforeAll(async () => {
      engine = await PodEngine.open({ scope: user.length > 0 ? "user" : "system", stateDir });
    });
    afterAll(async () => {
      await engine.close();
    });

    async function collect(source: AsyncIterable<Uint8Array> | undefined): Promise<string> {
      let text = "";
      if (source !== undefined) for await (const chunk of source) text += new TextDecoder().decode(chunk);
      return text;
    }

    test("pipes: stdin in, stdout and stderr apart, the exit status", async () => {
      const process: ExecProcess = await engine.exec("default", "target", "main", { command: ["sh", "-c", "tr a-z A-Z; echo oops >&2; exit 4"], stdin: true, tty: false });
      process.writeStdin(new TextEncoder().encode("abc\n"));
      process.closeStdin();
      const [stdout, stderr, { exitCode }] = await Promise.all([collect(process.stdout), collect(process.stderr), process.exited]);
      expect({ stdout, stderr, exitCode }).toEqual({ stdout: "ABC\n", stderr: "oops\n", exitCode: 4 });
    });

    test("kill() ends the session: the command, its children, and the output streams", async () => {
      const before = cgroupProcesses("cgroup");
      const process = await engine.exec("default", "target", "main", { command: ["sh", "-c", "sleep 1000 & echo started; sleep 1001"], stdin: false, tty: false });
      const reader = process.stdout[Symbol.asyncIterator]();
      expect(new TextDecoder().decode((await reader.next()).value)).toBe("started\n");
      await eventually("the command and its children", async () => cgroupProcesses("cgroup").length === before.length + 3);
      process.kill();
      expect((await process.exited).exitCode).toBe(128 + 9);
      expect((await reader.next()).done).toBe(true);
      await collect(process.stderr);
      await eventually("the session gone", async () => cgroupProcesses("cgroup").length === before.length);
    });

    test("a terminal: initial size, resize, input, end of input", async () => {
      const process = await engine.exec("default", "target", "main", {
        command: ["sh", "-c", "stty size; trap 'stty size' WINCH; until read line; do :; done; echo got:$line; cat; echo end"],
        stdin: true,
        tty: true,
        terminalSize: { width: 90, height: 30 },
      });
      expect(process.stderr).toBeUndefined();
      let output = "";
      const reading = (async () => {
        for await (const chunk of process.stdout) output += new TextDecoder().decode(chunk);
      })();
      await eventually("the size", async () => output.includes("30 90"));
      process.resize({ width: 70, height: 20 });
      await eventually("the new size", async () => output.includes("20 70"));
      process.writeStdin(new TextEncoder().encode("typed\r"));
      await eventually("the line", async () => output.includes("got:typed"));
      process.closeStdin();
      expect((await process.exited).exitCode).toBe(0);
      await reading;
      expect(output).toContain("end");
    });

    test("the kubelet's failures", async () => {
      const request = { command: ["true"], stdin: false, tty: false };
      const noPod = engine.exec("default", "nonexistent", "main", request);
      await expect(noPod).rejects.toBeInstanceOf(NotFoundError);
      await expect(noPod).rejects.toThrow("pod does not exist");
      const noContainer = engine.exec("default", "target", "nope", request);
      await expect(noContainer).rejects.toBeInstanceOf(NotFoundError);
      await expect(noContainer).rejects.toThrow('container not found ("nope")');
      const notRunning = engine.exec("default", "finished", "done", request);
      await expect(notRunning).rejects.toBeInstanceOf(ContainerNotRunningError);
      await expect(notRunning).rejects.toThrow('container not found ("done")');
      const missing = await engine.exec("default", "target", "main", { command: ["no-such-command"], stdin: false, tty: true });
      expect((await finishedOutput(missing))).toEqual({ exitCode: 127, stdout: 'exec: "no-such-command": executable file not found in $PATH\r\n' });
    });
  });
});

async function finishedOutput(process: ExecProcess): Promise<{ exitCode: number; stdout: string }> {
  let stdout = "";
  for await (const chunk of process.stdout) stdout += new TextDecoder().decode(chunk);
  return { exitCode: (await process.exited).exitCode, stdout };
}

