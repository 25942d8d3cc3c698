/** The restart gate script itself, run with /bin/sh on files in a temporary directory. */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RESTART_BACKOFF_SCRIPT, readBackOffEntry, readRecordedExit } from "../../internal/pod/restart-backoff.ts";

const directory = mkdtempSync(join(tmpdir(), "vks-backoff-"));
const script = join(directory, "restart-backoff.sh");
writeFileSync(script, RESTART_BACKOFF_SCRIPT);
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function gate(file: string, second: string, env: Record<string, string> = {}): void {
  const run = Bun.spawnSync(["/bin/sh", script, file, second], { env: { ...env }, stderr: "pipe" });
  expect(run.stderr.toString()).toBe("");
  expect(run.exitCode).toBe(0);
}

describe("restart back-off gate", () => {
  test("first start, immediate first restart, then doubling to 300 s; an old entry starts over", () => {
    const file = join(directory, "pod", "main");
    gate(file, "1");
    expect(readBackOffEntry(join(directory, "pod"), "main")?.backOffSeconds).toBe(0);
    gate(file, "1");
    expect(readBackOffEntry(join(directory, "pod"), "main")?.backOffSeconds).toBe(10);
    // With RestartSec as long as the back-off, nothing is left to wait: the entry doubles at once.
    gate(file, "10");
    expect(readBackOffEntry(join(directory, "pod"), "main")?.backOffSeconds).toBe(20);
    writeFileSync(file, `${Math.floor(Date.now() / 1000)} 160\n`);
    gate(file, "160");
    expect(readBackOffEntry(join(directory, "pod"), "main")?.backOffSeconds).toBe(300);
    gate(file, "300");
    expect(readBackOffEntry(join(directory, "pod"), "main")?.backOffSeconds).toBe(300);
    // More than 10 minutes since the last restart: the kubelet's entry has expired.
    writeFileSync(file, "1000 300\n");
    gate(file, "1");
    expect(readBackOffEntry(join(directory, "pod"), "main")?.backOffSeconds).toBe(10);
  });

  test("a garbled entry counts as none", () => {
    const file = join(directory, "pod", "garbled");
    writeFileSync(file, "x y\n");
    gate(file, "1");
    expect(readBackOffEntry(join(directory, "pod"), "garbled")?.backOffSeconds).toBe(0);
  });

  test("ExecStopPost mode records the exit systemd reports in its environment", () => {
    const file = join(directory, "pod", "exiting");
    gate(file, "1");
    gate(file, "exit", { EXIT_CODE: "killed", EXIT_STATUS: "TERM", SERVICE_RESULT: "signal" });
    const recorded = readRecordedExit(join(directory, "pod"), "exiting");
    expect(recorded).toMatchObject({ code: "killed", status: "TERM", result: "signal" });
    expect(recorded?.startedMicros).toBeGreaterThan(0n);
    expect((recorded?.finishedMicros ?? 0n) >= (recorded?.startedMicros ?? 0n)).toBe(true);
    expect(readFileSync(`${file}.exit`, "utf8")).toMatch(/^killed TERM signal \d+ \d+\n$/);
  });
});
