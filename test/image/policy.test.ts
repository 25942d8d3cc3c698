import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  POLICY_ENV_DENY,
  POLICY_ENV_NAME,
  policyScript,
  recoverPolicy,
  savedPolicyPath,
  withServiceStartsDenied,
} from "../../internal/image/policy.ts";

let dir: string;
let policyPath: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "vks-policy-"));
  policyPath = join(dir, "policy-rc.d");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function runPolicy(env: Record<string, string>): Promise<number> {
  const child = Bun.spawn([policyPath, "uptimed.service", "start"], { env: { PATH: "/usr/bin:/bin", ...env } });
  return child.exited;
}

function fingerprint(path: string): { text: string; mode: number; mtimeMs: number; ino: number } {
  const stat = statSync(path);
  return { text: readFileSync(path, "utf8"), mode: stat.mode, mtimeMs: stat.mtimeMs, ino: stat.ino };
}

describe("policy-rc.d swap", () => {
  test("with no policy before: vks' denies vks' installs, allows others, and is gone afterwards", async () => {
    const seen = await withServiceStartsDenied(async (env) => {
      expect(env).toEqual({ [POLICY_ENV_NAME]: POLICY_ENV_DENY });
      expect(statSync(policyPath).mode & 0o777).toBe(0o755);
      return { denied: await runPolicy(env), other: await runPolicy({}) };
    }, policyPath);
    expect(seen).toEqual({ denied: 101, other: 0 });
    expect(existsSync(policyPath)).toBe(false);
    expect(existsSync(savedPolicyPath(policyPath))).toBe(false);
  });

  test("an existing policy comes back exactly, and answers for others meanwhile", async () => {
    writeFileSync(policyPath, "#!/bin/sh\n# the host's own\nexit 104\n");
    chmodSync(policyPath, 0o750);
    utimesSync(policyPath, new Date("2020-01-02T03:04:05Z"), new Date("2020-01-02T03:04:05Z"));
    const before = fingerprint(policyPath);
    const seen = await withServiceStartsDenied(
      async (env) => ({ denied: await runPolicy(env), other: await runPolicy({}) }),
      policyPath,
    );
    expect(seen).toEqual({ denied: 101, other: 104 });
    expect(fingerprint(policyPath)).toEqual(before);
    expect(existsSync(savedPolicyPath(policyPath))).toBe(false);
  });

  test("restored when the task throws", async () => {
    writeFileSync(policyPath, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
    const before = fingerprint(policyPath);
    await expect(
      withServiceStartsDenied(async () => {
        throw new Error("apt failed");
      }, policyPath),
    ).rejects.toThrow("apt failed");
    expect(fingerprint(policyPath)).toEqual(before);
  });

  test("a leftover of a vks that died is undone first", async () => {
    writeFileSync(savedPolicyPath(policyPath), "#!/bin/sh\nexit 101\n", { mode: 0o755 });
    writeFileSync(policyPath, policyScript(policyPath), { mode: 0o755 });
    recoverPolicy(policyPath);
    expect(readFileSync(policyPath, "utf8")).toBe("#!/bin/sh\nexit 101\n");
    expect(existsSync(savedPolicyPath(policyPath))).toBe(false);

    // Died after moving the host's file aside but before writing its own.
    const saved = savedPolicyPath(policyPath);
    writeFileSync(saved, "#!/bin/sh\nexit 0\n");
    rmSync(policyPath);
    recoverPolicy(policyPath);
    expect(readFileSync(policyPath, "utf8")).toBe("#!/bin/sh\nexit 0\n");

    // vks' own with nothing saved: there was no policy.
    writeFileSync(policyPath, policyScript(policyPath));
    recoverPolicy(policyPath);
    expect(existsSync(policyPath)).toBe(false);
  });

  test("refuses to guess when a foreign policy and a saved one both exist", () => {
    writeFileSync(policyPath, "#!/bin/sh\nexit 0\n");
    writeFileSync(savedPolicyPath(policyPath), "#!/bin/sh\nexit 101\n");
    expect(() => recoverPolicy(policyPath)).toThrow(/both/);
  });
});

describe.skipIf(!existsSync("/usr/bin/deb-systemd-invoke"))("deb-systemd-invoke", () => {
  // DPKG_ROOT makes deb-systemd-invoke consult $DPKG_ROOT/usr/sbin/policy-rc.d, so the host's file is untouched.
  test("honours vks' policy-rc.d for vks' installs only", async () => {
    const root = join(dir, "root");
    const policy = join(root, "usr", "sbin", "policy-rc.d");
    await Bun.spawn(["mkdir", "-p", join(root, "usr", "sbin")]).exited;
    const invoke = async (env: Record<string, string>): Promise<{ exitCode: number; stderr: string }> => {
      const child = Bun.spawn(["deb-systemd-invoke", "start", "vks-test-nonexistent.service"], {
        env: { ...process.env, DPKG_ROOT: root, ...env },
        stdout: "ignore",
        stderr: "pipe",
      });
      const stderr = await new Response(child.stderr).text();
      return { exitCode: await child.exited, stderr };
    };
    const [denied, others] = await withServiceStartsDenied(async (env) => [await invoke(env), await invoke({})], policy);
    expect(denied.exitCode).toBe(0);
    expect(denied.stderr).toContain("returned 101, not running");
    expect(others.stderr).not.toContain("returned 101");
    expect(existsSync(policy)).toBe(false);
  });
});
