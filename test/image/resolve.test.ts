/** ImageResolver paths that never reach apt-get: path images, invalid names, unconfigured hosts. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode } from "../../internal/errors.ts";
import { defaultPullPolicy, ImageError, ImageResolver } from "../../internal/image/resolve.ts";
import type { PullPolicy } from "../../internal/image/types.ts";

const FIELD = "spec.containers[1].image";
let dir: string;
let resolver: ImageResolver;
const progress: string[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "vks-resolve-"));
  resolver = new ImageResolver({
    stateDir: join(dir, "state"),
    aptSources: { "apt.example.com": "deb [signed-by=/usr/share/keyrings/example.gpg] https://apt.example.com/debian bookworm main" },
    onProgress: (message) => progress.push(message),
    hostLockPath: join(dir, "install.lock"),
    policyRcDPath: join(dir, "policy-rc.d"),
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function failureOf(ref: string, policy: PullPolicy = "IfNotPresent"): Promise<ImageError> {
  try {
    await resolver.resolve(ref, policy, FIELD);
  } catch (err) {
    if (err instanceof ImageError) return err;
    throw err;
  }
  throw new Error(`${ref} resolved`);
}

describe("path images", () => {
  test("an executable: entrypoint is the path, whatever the pull policy", async () => {
    for (const policy of ["Always", "IfNotPresent", "Never"] as const) {
      expect(await resolver.resolve("/bin/sleep", policy, FIELD)).toEqual({
        reference: "/bin/sleep",
        entrypoint: ["/bin/sleep"],
        cmd: [],
        environment: [],
        environmentFiles: [],
        runtimeDirectory: [],
        execStartPre: [],
        imageID: "path:/bin/sleep",
      });
    }
    expect(progress).toEqual([]);
  });
  test("missing, not executable, a directory: clear errors", async () => {
    const missing = await failureOf(join(dir, "missing"));
    expect(missing.reason).toBe("ErrImagePull");
    expect(missing.message).toContain("no such file");
    expect((await failureOf(join(dir, "missing"), "Never")).reason).toBe("ErrImageNeverPull");

    const plain = join(dir, "plain");
    writeFileSync(plain, "#!/bin/sh\n", { mode: 0o644 });
    const notExecutable = await failureOf(plain);
    expect(notExecutable.message).toContain("not executable");
    expect(notExecutable.hint).toContain(`chmod +x ${plain}`);

    const directory = join(dir, "a-directory");
    mkdirSync(directory);
    expect((await failureOf(directory)).message).toContain("not a regular file");
  });
});

describe("references that fail before any install", () => {
  test("an invalid name is InvalidImageName with the field path", async () => {
    const err = await failureOf("-oAPT::Get::AllowUnauthenticated=1");
    expect(err.reason).toBe("InvalidImageName");
    expect(err.exitCode).toBe(ExitCode.invalidInput);
    expect(err.message).toContain(FIELD);
  });
  test("a host without a configured APT source names the host and the flag", async () => {
    const err = await failureOf("apt.other.example/tool");
    expect(err.reason).toBe("ErrImagePull");
    expect(err.message).toContain("no APT source is configured for host apt.other.example");
    expect(err.hint).toContain("--apt-source apt.other.example=");
    expect(err.hint).toContain("configured hosts: apt.example.com");
  });
  test("a malformed --apt-source line is refused", () => {
    const bad = new ImageResolver({ stateDir: join(dir, "state2"), aptSources: { "h.example": "https://h.example/debian" } });
    return expect(bad.resolve("h.example/tool", "IfNotPresent", FIELD)).rejects.toThrow(/not a one-line "deb" entry/);
  });
  test("the default pull policy is IfNotPresent", () => {
    expect(defaultPullPolicy("hello")).toBe("IfNotPresent");
    expect(defaultPullPolicy("hello=2.10-3")).toBe("IfNotPresent");
  });
});
