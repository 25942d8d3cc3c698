/**
 * Real apt-get, dpkg and downloads: these change the host's packages (hello, tree, uptimed; all small).
 * VKS_SKIP_APT=1 skips them; they also skip when not root. The machine reaches only Debian's archive, so
 * .deb URLs and the `host/name` APT source are served by a local HTTP server on 127.0.0.1 (vks accepts
 * plain http from the loopback host only).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installedVersion } from "../../internal/image/dpkg.ts";
import { ImageError } from "../../internal/image/errors.ts";
import { POLICY_RC_D_PATH, savedPolicyPath } from "../../internal/image/policy.ts";
import { readInstalledRecord } from "../../internal/image/record.ts";
import { withHostLock } from "../../internal/image/lock.ts";
import { DEFAULT_HOST_LOCK_PATH, ImageResolver } from "../../internal/image/resolve.ts";
import type { ImageFailureReason, PullPolicy } from "../../internal/image/types.ts";

const SKIP = process.env.VKS_SKIP_APT === "1" || process.getuid?.() !== 0 || !existsSync("/usr/bin/apt-get");
const FIELD = "spec.containers[0].image";
/** apt may wait for another package manager, and downloads take what they take: a limit, not a measure. */
const APT_TEST_LIMIT_MS = 15 * 60 * 1000;
/** Packages these tests install and remove; none is used by vks itself. */
const SCRATCH_PACKAGES = ["tree", "uptimed"];

const APT_ENV = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };

async function run(argv: string[], cwd?: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const child = Bun.spawn(argv, { cwd, env: APT_ENV, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  return { exitCode: await child.exited, stdout, stderr };
}

async function purge(name: string): Promise<void> {
  if ((await installedVersion(name)) === undefined) return;
  const result = await run(["apt-get", "purge", "-y", "-o", "DPkg::Lock::Timeout=600", "--", name]);
  if (result.exitCode !== 0) throw new Error(`apt-get purge ${name}: ${result.stderr}`);
}

/**
 * Other vks processes (other test suites) may be mid-install and have their policy in place; every swap
 * happens under the host-wide install lock, so the host's own file is only observable while holding it.
 */
function policyFingerprintUnderLock(): Promise<string> {
  return withHostLock(DEFAULT_HOST_LOCK_PATH, 600, () => {}, async () =>
    existsSync(savedPolicyPath(POLICY_RC_D_PATH)) ? "saved copy left behind" : policyFingerprint(),
  );
}

function policyFingerprint(): string {
  if (!existsSync(POLICY_RC_D_PATH)) return "absent";
  const stat = statSync(POLICY_RC_D_PATH);
  const hash = createHash("sha256").update(readFileSync(POLICY_RC_D_PATH)).digest("hex");
  return `${hash} ${stat.mode.toString(8)} ${stat.uid}:${stat.gid} ${stat.mtimeMs} ${stat.ino}`;
}

async function failureOf(promise: Promise<unknown>): Promise<ImageError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ImageError) return err;
    throw err;
  }
  throw new Error("expected the image to fail");
}

describe.skipIf(SKIP)("images through real apt-get (VKS_SKIP_APT=1 skips)", () => {
  let stateDir: string;
  let served: string;
  let server: ReturnType<typeof Bun.serve>;
  let requests: string[];
  let progress: string[];
  let resolver: ImageResolver;
  let policyBefore: string;
  const presentAtStart = new Map<string, boolean>();
  let treeDeb: { fileName: string; sha256: string; version: string };

  const resolve = (ref: string, policy: PullPolicy) => resolver.resolve(ref, policy, FIELD);
  const repoHost = (): string => `127.0.0.1:${server.port}`;

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), "vks-image-state-"));
    served = mkdtempSync(join(tmpdir(), "vks-image-served-"));
    policyBefore = await policyFingerprintUnderLock();
    for (const name of SCRATCH_PACKAGES) presentAtStart.set(name, (await installedVersion(name)) !== undefined);

    const download = await run(["apt-get", "download", "--", "tree"], served);
    if (download.exitCode !== 0) throw new Error(`apt-get download tree: ${download.stderr}`);
    const fileName = readdirSync(served).find((name) => name.endsWith(".deb")) ?? "";
    const bytes = readFileSync(join(served, fileName));
    const fields = (await run(["dpkg-deb", "--field", join(served, fileName), "Version"])).stdout;
    treeDeb = {
      fileName,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      version: fields.replace(/^Version:\s*/, "").trim(),
    };
    // A flat APT repository: `deb [trusted=yes] http://127.0.0.1:PORT/ ./` reads ./Packages.
    const control = (await run(["dpkg-deb", "--field", join(served, fileName)])).stdout.trimEnd();
    writeFileSync(
      join(served, "Packages"),
      `${control}\nFilename: ./${fileName}\nSize: ${bytes.length}\nSHA256: ${treeDeb.sha256}\n\n`,
    );

    requests = [];
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(request) {
        const path = decodeURIComponent(new URL(request.url).pathname).replace(/^\/(\.\/)?/, "");
        requests.push(path);
        const file = join(served, path);
        if (path === "" || path.includes("/") || !existsSync(file)) return new Response("not found", { status: 404 });
        return new Response(Bun.file(file));
      },
    });

    progress = [];
    resolver = new ImageResolver({
      stateDir,
      aptSources: { [repoHost()]: `deb [trusted=yes] http://${repoHost()}/ ./` },
      onProgress: (message) => progress.push(message),
    });
  }, APT_TEST_LIMIT_MS);

  afterAll(async () => {
    server?.stop(true);
    // Leave the scratch packages as they were found.
    for (const [name, present] of presentAtStart) {
      if (!present) await purge(name);
      else if ((await installedVersion(name)) === undefined) await run(["apt-get", "install", "-y", "--", name]);
    }
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(served, { recursive: true, force: true });
    expect(await policyFingerprintUnderLock()).toBe(policyBefore);
  }, APT_TEST_LIMIT_MS);

  test(
    "hello: IfNotPresent installs it (or finds it), then Never resolves it without apt",
    async () => {
      const image = await resolve("hello", "IfNotPresent");
      const version = await installedVersion("hello");
      expect(version).toBeDefined();
      expect(image).toMatchObject({ reference: "hello", entrypoint: ["/usr/bin/hello"], cmd: [], imageID: `dpkg:hello=${version}` });
      expect(image.explanation).toBeUndefined();
      const greeting = await run(["/usr/bin/hello"]);
      expect(greeting.stdout).toContain("Hello, world!");

      progress.length = 0;
      expect(await resolve("hello", "Never")).toEqual(image);
      expect(progress).toEqual([]);
    },
    APT_TEST_LIMIT_MS,
  );

  test(
    "Always on an unpinned package refreshes the lists and brings it to apt's candidate",
    async () => {
      progress.length = 0;
      const image = await resolve("hello", "Always");
      const policy = await run(["apt-cache", "policy", "--", "hello"]);
      const candidate = /Candidate:\s*(\S+)/.exec(policy.stdout)?.[1];
      expect(image.imageID).toBe(`dpkg:hello=${candidate}`);
      expect(progress).toContain("hello: updating the package lists");
      expect(progress.some((message) => /^hello: hello \S+ is installed; installing hello$/.test(message))).toBe(true);
    },
    APT_TEST_LIMIT_MS,
  );

  test(
    "a pinned version: the installed one needs no apt run even under Always; an unknown one fails with apt's text",
    async () => {
      await resolve("hello", "IfNotPresent");
      const version = (await installedVersion("hello")) ?? "";
      progress.length = 0;
      const image = await resolve(`hello=${version}`, "Always");
      expect(image.imageID).toBe(`dpkg:hello=${version}`);
      expect(progress).toEqual([]);

      const neverPull = await failureOf(resolve("hello=0.0-0", "Never"));
      expect(neverPull.reason).toBe("ErrImageNeverPull" satisfies ImageFailureReason);
      expect(neverPull.message).toContain(`installed version is ${version}`);

      const pull = await failureOf(resolve("hello=0.0-0", "IfNotPresent"));
      expect(pull.reason).toBe("ErrImagePull");
      expect(pull.message).toContain("Version '0.0-0' for 'hello' was not found");
      expect(pull.hint).toContain("apt-cache madison hello");
      expect(await installedVersion("hello")).toBe(version);
    },
    APT_TEST_LIMIT_MS,
  );

  test(
    "an unknown package: Never says ErrImageNeverPull, IfNotPresent says ErrImagePull with apt's error",
    async () => {
      expect((await failureOf(resolve("vks-no-such-package", "Never"))).reason).toBe("ErrImageNeverPull");
      const pull = await failureOf(resolve("vks-no-such-package", "IfNotPresent"));
      expect(pull.reason).toBe("ErrImagePull");
      expect(pull.message).toContain("Unable to locate package vks-no-such-package");
    },
    APT_TEST_LIMIT_MS,
  );

  test(
    "a fresh install reports progress and is recorded as vks'",
    async () => {
      await purge("tree");
      progress.length = 0;
      const image = await resolve("tree", "IfNotPresent");
      expect(image).toMatchObject({ entrypoint: ["/usr/bin/tree"], imageID: `dpkg:tree=${treeDeb.version}` });
      expect(progress.some((message) => message.startsWith("tree: Unpacking tree"))).toBe(true);
      expect(progress.some((message) => message.startsWith("tree: Installed tree"))).toBe(true);
      expect(readInstalledRecord(stateDir).packages.tree).toMatchObject({ version: treeDeb.version, reference: "tree" });
    },
    APT_TEST_LIMIT_MS,
  );

  test(
    "waits for the dpkg lock another process holds, saying which PID",
    async () => {
      await purge("tree");
      // Holds dpkg's frontend lock the way apt and dpkg take it (fcntl), until its stdin closes.
      const holderScript = [
        "use Fcntl qw(F_SETLKW F_WRLCK SEEK_SET);",
        "$| = 1;",
        'open(my $lock, ">>", "/var/lib/dpkg/lock-frontend") or die "open: $!";',
        'my $request = pack("s s x4 q q i x4", F_WRLCK, SEEK_SET, 0, 0, 0);',
        'fcntl($lock, F_SETLKW, $request) or die "fcntl: $!";',
        'print "locked\n";',
        "<STDIN>;",
      ].join("\n");
      const holder = Bun.spawn(["perl", "-e", holderScript], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
      const reader = holder.stdout.getReader();
      const firstLine = new TextDecoder().decode((await reader.read()).value);
      expect(firstLine).toBe("locked\n");

      const messages: string[] = [];
      const waiting = new ImageResolver({
        stateDir,
        onProgress: (message) => {
          messages.push(message);
          if (message.includes("waiting for the dpkg lock")) holder.stdin.end();
        },
      });
      const image = await waiting.resolve("tree", "IfNotPresent", FIELD);
      expect(image.entrypoint).toEqual(["/usr/bin/tree"]);
      expect(messages).toContain(`tree: waiting for the dpkg lock held by PID ${holder.pid} (perl)`);
      await holder.exited;
    },
    APT_TEST_LIMIT_MS,
  );

  test(
    ".deb URL: a wrong digest is refused, the right one installs, none installs with a warning",
    async () => {
      await purge("tree");
      const url = `http://${repoHost()}/${treeDeb.fileName}`;
      const wrong = await failureOf(resolve(`${url}@sha256:${"0".repeat(64)}`, "IfNotPresent"));
      expect(wrong.reason).toBe("ErrImagePull");
      expect(wrong.message).toContain(`digest mismatch: expected sha256:${"0".repeat(64)}, got sha256:${treeDeb.sha256}`);
      expect(await installedVersion("tree")).toBeUndefined();

      const pinned = `${url}@sha256:${treeDeb.sha256}`;
      const image = await resolve(pinned, "IfNotPresent");
      expect(image).toMatchObject({ reference: pinned, entrypoint: ["/usr/bin/tree"], imageID: `dpkg:tree=${treeDeb.version}` });
      expect(image.warnings).toBeUndefined();
      expect(readInstalledRecord(stateDir).packages.tree?.reference).toBe(pinned);

      // Present at the file's version: no download, even under Always (the file name pins the version).
      const fetchesBefore = requests.length;
      await resolve(pinned, "Always");
      expect(requests.length).toBe(fetchesBefore);

      await purge("tree");
      const unverified = await resolve(url, "IfNotPresent");
      expect(unverified.warnings?.[0]).toContain("no @sha256: digest");
      expect(progress.some((message) => message.includes("warning:") && message.includes("unverified"))).toBe(true);
    },
    APT_TEST_LIMIT_MS,
  );

  test(
    "host/name comes only from that host's APT source, and the host's own lists are untouched",
    async () => {
      const hostLists = readdirSync("/var/lib/apt/lists").filter((name) => name.endsWith("_Packages"));
      await purge("tree");
      requests.length = 0;
      const image = await resolve(`${repoHost()}/tree`, "IfNotPresent");
      expect(image).toMatchObject({ entrypoint: ["/usr/bin/tree"], imageID: `dpkg:tree=${treeDeb.version}` });
      expect(requests).toContain("Packages");
      expect(requests).toContain(treeDeb.fileName);
      for (const list of hostLists) expect(existsSync(join("/var/lib/apt/lists", list))).toBe(true);

      // hello is in Debian's archive but not in this source, so it cannot come from there.
      const notThere = await failureOf(resolve(`${repoHost()}/hello`, "Always"));
      expect(notThere.reason).toBe("ErrImagePull");
      expect(notThere.message).toContain(`hello is not available from the APT source for ${repoHost()}`);
      // Installed from Debian, apt knows the package but finds no source allowed to provide it.
      expect(notThere.message).toMatch(/Unable to locate package hello|Can't find a source to download/);

      const unknown = await failureOf(resolve("apt.unknown.example/tree", "IfNotPresent"));
      expect(unknown.message).toContain("no APT source is configured for host apt.unknown.example");
      expect(unknown.hint).toContain("--apt-source apt.unknown.example=");
    },
    APT_TEST_LIMIT_MS,
  );

  test(
    "a package with a daemon: not started, not enabled at boot, its unit becomes the image; policy-rc.d restored",
    async () => {
      await purge("uptimed");
      progress.length = 0;
      const image = await resolve("uptimed", "IfNotPresent");
      expect(image).toMatchObject({ entrypoint: ["/usr/sbin/uptimed"], cmd: ["-f"], user: "daemon" });
      expect(image.imageID).toMatch(/^dpkg:uptimed=1:/);

      expect((await run(["pgrep", "-x", "uptimed"])).exitCode).toBe(1);
      expect(existsSync("/etc/systemd/system/multi-user.target.wants/uptimed.service")).toBe(false);
      const bootLinks = ["/etc/rc2.d", "/etc/rc3.d", "/etc/rc5.d"].flatMap((dir) =>
        existsSync(dir) ? readdirSync(dir).filter((name) => /^S[0-9]+uptimed$/.test(name)) : [],
      );
      expect(bootLinks).toEqual([]);
      expect(readInstalledRecord(stateDir).packages.uptimed?.disabledUnits).toEqual(["uptimed.service"]);
      expect(progress.some((message) => message.includes("disabled start at boot of uptimed.service"))).toBe(true);

      expect(await policyFingerprintUnderLock()).toBe(policyBefore);
    },
    APT_TEST_LIMIT_MS,
  );

  test(
    "a package already on the host is left as it was; several units and none named like it: no entrypoint",
    async () => {
      // e2fsprogs is Priority: required in Debian 12, so every host has it, with its units enabled.
      if ((await installedVersion("e2fsprogs")) === undefined) return;
      const wants = "/etc/systemd/system/multi-user.target.wants/e2scrub_reap.service";
      const enabledBefore = existsSync(wants);
      progress.length = 0;
      const image = await resolve("e2fsprogs", "IfNotPresent");
      expect(progress).toEqual([]);
      expect(existsSync(wants)).toBe(enabledBefore);
      expect(image.entrypoint).toEqual([]);
      expect(image.explanation).toContain("several service units (e2scrub_all.service, e2scrub_reap.service)");
    },
    APT_TEST_LIMIT_MS,
  );
});
