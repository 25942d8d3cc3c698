// Issue 3's "done": `vks pod up k3s/openssh-server.yaml` installs openssh-server with apt-get, the
// package's own ssh.service is neither started nor enabled, sshd answers on the port the manifest declares
// from a vks unit (its cgroup says so), and `pod down` stops it. Real apt-get against Debian's archive.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { resolve } from "node:path";
import { eventually, haveSystemd, managerFlag, managerScope, newStateDir, podNamed, sandboxMode, vks } from "./helpers.ts";

setDefaultTimeout(600_000);
const MANIFEST = resolve(import.meta.dir, "../../k3s/openssh-server.yaml");
const PORT = 2222;
const stateDir = newStateDir();
const skip = !haveSystemd || process.env.VKS_SKIP_APT === "1" || process.getuid?.() !== 0;

afterAll(async () => {
  await vks(stateDir, ["pod", "down", "--ignore-not-found", "openssh-server", ...managerFlag]);
  rmSync(stateDir, { recursive: true, force: true });
});

/** The first bytes the server sends: an SSH server greets with its version string. */
function banner(port: number): Promise<string | undefined> {
  return new Promise((done) => {
    const socket = connect({ host: "127.0.0.1", port });
    const timer = setTimeout(() => (socket.destroy(), done(undefined)), 2000);
    socket.once("data", (data) => (clearTimeout(timer), socket.destroy(), done(data.toString())));
    socket.once("error", () => (clearTimeout(timer), done(undefined)));
  });
}

function packageInstalled(name: string): boolean {
  return Bun.spawnSync(["dpkg-query", "-W", "-f", "${db:Status-Status}", name]).stdout.toString() === "installed";
}

describe.skipIf(skip)("openssh-server as a pod (real apt-get)", () => {
  test("installs, runs sshd under a vks unit on the declared port, and stops it", async () => {
    if (managerScope === "user") {
      // A user manager puts RuntimeDirectory=sshd under $XDG_RUNTIME_DIR; sshd insists on /run/sshd. The
      // system manager (vks' default as root; test/sandbox.sh --system) creates /run/sshd itself.
      mkdirSync("/run/sshd", { recursive: true });
    }
    if (sandboxMode === "system" && packageInstalled("openssh-server")) {
      // The system sandbox's root is a throw-away overlay: purge the host's copy there so that vks installs
      // the package itself, and the whole path runs (its postinst enables ssh.service; vks disables it).
      const purge = Bun.spawnSync(["apt-get", "purge", "-y", "-q", "openssh-server"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, stderr: "pipe" });
      expect(purge.exitCode, purge.stderr.toString()).toBe(0);
    }
    // Installing openssh-server on a fresh machine may take minutes.
    const up = await vks(stateDir, ["pod", "up", "-d", MANIFEST, ...managerFlag], { limitMs: 540_000 });
    expect(up.exitCode, up.stderr).toBe(0);
    // vks' progress lines (consola) go to stdout.
    const upOutput = up.stdout + up.stderr;
    if (sandboxMode === "system") expect(upOutput).toContain("disabled start at boot of ssh.service");

    const greeting = await eventually("sshd's banner", () => banner(PORT));
    expect(greeting).toStartWith("SSH-2.0-OpenSSH");
    // The package unit's RuntimeDirectory=sshd, made by the system manager (no hand-made one there).
    if (managerScope === "system") expect(existsSync("/run/sshd")).toBe(true);

    const pod = await podNamed(stateDir, "openssh-server");
    expect(pod?.status.phase).toBe("Running");
    const units = JSON.parse((await vks(stateDir, ["units", "ls", "-o", "json", ...managerFlag])).stdout) as {
      unit: string;
      pod: string;
      mainPID: number;
    }[];
    const sshdUnit = units.find((row) => row.pod === "openssh-server");
    expect(sshdUnit?.mainPID).toBeGreaterThan(0);
    const cgroup = readFileSync(`/proc/${sshdUnit?.mainPID}/cgroup`, "utf8");
    expect(cgroup).toContain(sshdUnit?.unit ?? "<no unit>");
    // sshd rewrites its process title, which still shows the arguments vks gave it.
    expect(readFileSync(`/proc/${sshdUnit?.mainPID}/cmdline`, "utf8")).toContain(`-p ${PORT}`);

    // The package's own daemon: not running under its own unit, not enabled to start at boot. (Only when
    // vks installed the package; one that was already on the host is left exactly as it was.)
    const ownUnit = Bun.spawnSync(["systemctl", ...managerFlag, "is-active", "ssh.service"]);
    expect(ownUnit.stdout.toString().trim()).not.toBe("active");
    if (upOutput.includes("disabled start at boot")) {
      expect(existsSync("/etc/systemd/system/multi-user.target.wants/ssh.service")).toBe(false);
      for (const unit of ["ssh.service", "ssh.socket"]) {
        const enabled = Bun.spawnSync(["systemctl", "--root=/", "is-enabled", unit]).stdout.toString().trim();
        expect(`${unit} ${enabled}`).toBe(`${unit} disabled`);
      }
    }

    expect((await vks(stateDir, ["pod", "down", "openssh-server", ...managerFlag])).exitCode).toBe(0);
    await eventually("port closed", async () => (await banner(PORT)) === undefined);
  });
});
