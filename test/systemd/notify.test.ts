// sd_notify through bun:ffi, against a real unix datagram socket (a path, and an abstract name), and the
// service notifier's watchdog rule: keep-alives only while every watched loop keeps ticking.
import { describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ServiceNotifier } from "../../internal/kube/service-notify.ts";
import { renderRestoreUnit, renderServeUnit, unitFileWord } from "../../internal/actions/service.ts";
import { notifyAddress, sdNotify, watchdogIntervalMs } from "../../internal/systemd/notify.ts";

/** Receives one datagram on `address` with python3 (Bun has no unix datagram sockets to listen with). */
function receiveOne(address: string): { ready: Promise<void>; message: Promise<string> } {
  const child = spawn("python3", ["-c", `import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
a=sys.argv[1]
s.bind(("\\0"+a[1:]) if a.startswith("@") else a)
s.settimeout(60)
print("bound", flush=True)
sys.stdout.write(s.recv(4096).decode()); sys.stdout.flush()`, address]);
  let output = "";
  let onBound: () => void = () => undefined;
  const ready = new Promise<void>((resolveReady) => (onBound = resolveReady));
  const message = new Promise<string>((resolveMessage, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.startsWith("bound\n")) onBound();
    });
    child.on("exit", (code) => (code === 0 ? resolveMessage(output.slice("bound\n".length)) : reject(new Error(`receiver exited ${code}`))));
  });
  return { ready, message };
}

describe("sd_notify", () => {
  test("a datagram reaches a path socket and an abstract one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vks-notify-"));
    try {
      for (const address of [join(dir, "notify"), `@vks-notify-test-${process.pid}`]) {
        const receiver = receiveOne(address);
        await receiver.ready;
        expect(sdNotify("READY=1\nSTATUS=node x registered", { NOTIFY_SOCKET: address })).toBe(true);
        expect(await receiver.message).toBe("READY=1\nSTATUS=node x registered");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("without NOTIFY_SOCKET, or with a value systemd never sets, nothing is sent", () => {
    expect(sdNotify("READY=1", {})).toBe(false);
    expect(notifyAddress("relative/path")).toBeUndefined();
    expect(notifyAddress(`/${"x".repeat(200)}`)).toBeUndefined();
  });

  test("the watchdog interval is for this process only", () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "20000000" }, 42)).toBe(20_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "20000000", WATCHDOG_PID: "42" }, 42)).toBe(20_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "20000000", WATCHDOG_PID: "7" }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({}, 42)).toBeUndefined();
  });
});

describe("ServiceNotifier", () => {
  test("a loop that stops ticking is reported stalled; one that ticks (even failing) is not", () => {
    let now = 0;
    const sent: string[] = [];
    const notifier = new ServiceNotifier({ env: { NOTIFY_SOCKET: "@x", WATCHDOG_USEC: "20000000" }, now: () => now, send: (state) => (sent.push(state), true) });
    notifier.watch({ name: "node lease", intervalMs: 10_000 });
    notifier.watch({ name: "node status", intervalMs: 1_000 });
    now = 19_000;
    expect(notifier.stalled()).toEqual([]);
    notifier.tick("node lease");
    now = 25_000;
    // node status: 25 s since its last tick > max(3 × 1 s, the 20 s watchdog).
    expect(notifier.stalled()).toEqual(["node status"]);
    notifier.tick("node status");
    expect(notifier.stalled()).toEqual([]);
    notifier.ready("node x registered");
    expect(sent).toEqual(["READY=1\nSTATUS=node x registered"]);
  });
});

describe("the shipped unit files", () => {
  const template = { scope: "system" as const, binary: "/usr/local/bin/vks", commonArgs: [], serveArgs: ["--kubeconfig", "/etc/vks/kubeconfig"], watchdogSeconds: 60 };

  test("examples/ holds what vks service install writes for /usr/local/bin/vks", () => {
    const examples = resolve(import.meta.dir, "../../examples");
    expect(readFileSync(join(examples, "vks-serve.service"), "utf8")).toBe(renderServeUnit(template));
    expect(readFileSync(join(examples, "vks-pods.service"), "utf8")).toBe(renderRestoreUnit(template));
  });

  test("ExecStart words reach vks as written: quoting, $ and % doubled", () => {
    expect(unitFileWord("/etc/vks/kubeconfig")).toBe("/etc/vks/kubeconfig");
    expect(unitFileWord("a b")).toBe('"a b"');
    expect(unitFileWord('x"$HOME%n\\')).toBe('"x\\"$$HOME%%n\\\\"');
    expect(() => unitFileWord("a\nb")).toThrow(/newline/);
  });
});
