/**
 * The real kubectl (v1.32) against acceptRemoteCommand: `kubectl exec` over WebSocket v5 (its default)
 * and over SPDY/3.1 (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false), with stdin, stderr, exit codes, a tty and
 * attach. The "container" is a fake command that only moves bytes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { acceptRemoteCommand, type RemoteCommandSession } from "../../../internal/kubelet/streams/remotecommand.ts";
import { type FakeApiServer, kubectl, POD_NAME, startFakeApiServer } from "./fake-apiserver.ts";

/** What the fake container does with each command. */
async function runFakeCommand(session: RemoteCommandSession, command: string[]): Promise<void> {
  const [name = "", ...args] = command;
  switch (name) {
    case "echo":
      await session.writeStdout(Buffer.from(args.join(" ") + "\n"));
      return session.finish({ kind: "exited", exitCode: 0, command });
    case "cat": {
      for await (const chunk of session.stdin ?? []) await session.writeStdout(chunk);
      return session.finish({ kind: "exited", exitCode: 0, command });
    }
    case "wc": {
      let bytes = 0;
      for await (const chunk of session.stdin ?? []) bytes += chunk.byteLength;
      await session.writeStdout(Buffer.from(`${bytes}\n`));
      return session.finish({ kind: "exited", exitCode: 0, command });
    }
    case "fail":
      await session.writeStdout(Buffer.from("to stdout\n"));
      await session.writeStderr(Buffer.from("to stderr\n"));
      return session.finish({ kind: "exited", exitCode: Number(args[0] ?? 1), command });
    case "big": {
      const total = Number(args[0] ?? 0);
      const block = Buffer.alloc(64 * 1024, 0x61);
      for (let sent = 0; sent < total; sent += block.length) await session.writeStdout(block.subarray(0, Math.min(block.length, total - sent)));
      return session.finish({ kind: "exited", exitCode: 0, command });
    }
    case "size": {
      const size = await new Promise<{ width: number; height: number }>((resolve) => session.onResize(resolve));
      await session.writeStdout(Buffer.from(`size ${size.width}x${size.height}\r\n`));
      return session.finish({ kind: "exited", exitCode: 0, command });
    }
    case "hang": {
      hung.push(session);
      await new Promise((resolve) => session.aborted.addEventListener("abort", resolve, { once: true }));
      return;
    }
    case "broken":
      return session.finish({ kind: "error", message: "the container is not running" });
    default:
      await session.writeStderr(Buffer.from(`${name}: not found\n`));
      return session.finish({ kind: "exited", exitCode: 127, command });
  }
}

const protocols: string[] = [];
const hung: RemoteCommandSession[] = [];

async function execHandler(request: IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<void> {
  const query = url.searchParams;
  const tty = query.get("tty") === "true";
  const session = await acceptRemoteCommand(request, socket, head, {
    stdin: query.get("stdin") === "true",
    stdout: query.get("stdout") === "true",
    stderr: query.get("stderr") === "true" && !tty,
    tty,
  });
  protocols.push(session.protocol);
  await runFakeCommand(session, query.getAll("command"));
}

async function attachHandler(request: IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<void> {
  const query = url.searchParams;
  const session = await acceptRemoteCommand(request, socket, head, {
    stdin: query.get("stdin") === "true",
    stdout: query.get("stdout") === "true",
    stderr: query.get("stderr") === "true",
    tty: false,
  });
  protocols.push(session.protocol);
  await session.writeStdout(Buffer.from("attached output\n"));
  await session.finish({ kind: "exited", exitCode: 0, command: [] });
}

let server: FakeApiServer;
beforeAll(async () => {
  server = await startFakeApiServer({ exec: execHandler, attach: attachHandler });
});
afterAll(async () => {
  await server.close();
});

const MODES = [
  { name: "websocket", env: {}, protocol: "v5.channel.k8s.io" },
  { name: "spdy", env: { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: "false" }, protocol: "v4.channel.k8s.io" },
] as const;

for (const mode of MODES) {
  describe(`kubectl exec over ${mode.name}`, () => {
    test("runs a command and prints its output", async () => {
      protocols.length = 0;
      const run = await kubectl(server, ["exec", POD_NAME, "--", "echo", "hello", "world"], { env: mode.env });
      expect(run.stderr).toBe("");
      expect(run.stdout).toBe("hello world\n");
      expect(run.exitCode).toBe(0);
      expect(protocols).toEqual([mode.protocol]);
    });

    test("pipes stdin through and sees it end", async () => {
      const input = Array.from({ length: 2000 }, (_, index) => `line ${index}\n`).join("");
      const run = await kubectl(server, ["exec", "-i", POD_NAME, "--", "cat"], { env: mode.env, stdin: input });
      expect(run.stderr).toBe("");
      expect(run.stdout).toBe(input);
      expect(run.exitCode).toBe(0);
    });

    test("moves 8 MiB of stdin without stalling", async () => {
      const input = Buffer.alloc(8 * 1024 * 1024, 0x62);
      const run = await kubectl(server, ["exec", "-i", POD_NAME, "--", "wc"], { env: mode.env, stdin: input, timeoutMs: 60_000 });
      expect(run.stdout).toBe(`${input.length}\n`);
      expect(run.exitCode).toBe(0);
    }, 60_000);

    test("moves 8 MiB of stdout without stalling", async () => {
      const run = await kubectl(server, ["exec", POD_NAME, "--", "big", String(8 * 1024 * 1024)], { env: mode.env, timeoutMs: 60_000 });
      expect(run.stdout.length).toBe(8 * 1024 * 1024);
      expect(run.exitCode).toBe(0);
    }, 60_000);

    test("separates stderr and passes a non-zero exit code on", async () => {
      const run = await kubectl(server, ["exec", POD_NAME, "--", "fail", "3"], { env: mode.env });
      expect(run.stdout).toBe("to stdout\n");
      expect(run.stderr).toContain("to stderr\n");
      expect(run.stderr).toContain("command terminated with exit code 3");
      expect(run.exitCode).toBe(3);
    });

    test("an internal error is reported and fails the command", async () => {
      const run = await kubectl(server, ["exec", POD_NAME, "--", "broken"], { env: mode.env });
      expect(run.stderr).toContain("Internal error occurred: the container is not running");
      expect(run.exitCode).not.toBe(0);
    });

    test("a tty sends its size", async () => {
      // kubectl only makes a terminal when its stdin is one; `script` gives it a pty of a known size.
      const child = Bun.spawn(["script", "-qec", `stty cols 91 rows 17; ${"/usr/bin/kubectl"} exec -it ${POD_NAME} -- size`, "/dev/null"], {
        stdin: "pipe",
        stdout: "pipe",
        stderr: "pipe",
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: server.dir, KUBECONFIG: server.kubeconfig, ...mode.env },
      });
      const timer = setTimeout(() => child.kill(), 20_000);
      const [stdout, exitCode] = await Promise.all([new Response(child.stdout).text(), child.exited]);
      clearTimeout(timer);
      expect(stdout).toContain("size 91x17");
      expect(exitCode).toBe(0);
    });

    test("a client that goes away mid-command aborts the session", async () => {
      hung.length = 0;
      const child = Bun.spawn(["/usr/bin/kubectl", "exec", "-i", POD_NAME, "--", "hang"], {
        stdin: "pipe",
        stdout: "ignore",
        stderr: "ignore",
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: server.dir, KUBECONFIG: server.kubeconfig, ...mode.env },
      });
      for (let tries = 0; hung.length === 0 && tries < 100; tries++) await Bun.sleep(50);
      const session = hung[0];
      if (session === undefined) throw new Error("the command never started");
      expect(session.aborted.aborted).toBe(false);
      child.kill("SIGKILL");
      await child.exited;
      for (let tries = 0; !session.aborted.aborted && tries < 100; tries++) await Bun.sleep(20);
      expect(session.aborted.aborted).toBe(true);
    });

    test("kubectl attach reads the container's output", async () => {
      const run = await kubectl(server, ["attach", POD_NAME], { env: mode.env });
      expect(run.stdout).toContain("attached output\n");
      expect(run.exitCode).toBe(0);
    });
  });
}
