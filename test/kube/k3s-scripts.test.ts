// k3s/k3s and k3s/kubectl cannot start a real k3s here (no download); they are checked for syntax and,
// with a stand-in k3s binary that prints its arguments, for what they pass to k3s.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const K3S_DIR = resolve(import.meta.dir, "../../k3s");
const scratch = mkdtempSync(join(tmpdir(), "vks-k3s-scripts-"));
const fakeK3s = join(scratch, "k3s");
writeFileSync(fakeK3s, '#!/bin/sh\nfor arg in "$@"; do echo "$arg"; done\n');
chmodSync(fakeK3s, 0o755);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function run(script: string, args: string[], env: Record<string, string>) {
  const result = Bun.spawnSync(["bash", join(K3S_DIR, script), ...args], { env: { PATH: "/usr/bin:/bin", HOME: scratch, ...env } });
  return { exitCode: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}

describe("k3s scripts", () => {
  test("bash -n accepts both", () => {
    for (const script of ["k3s", "kubectl"]) expect(Bun.spawnSync(["bash", "-n", join(K3S_DIR, script)]).exitCode).toBe(0);
  });

  test("k3s/k3s starts a server with everything a vks node does not need disabled", () => {
    const result = run("k3s", ["--debug"], { K3S_BIN: fakeK3s });
    expect(result.exitCode).toBe(0);
    const args = result.stdout.trim().split("\n");
    expect(args[0]).toBe("server");
    for (const flag of ["--disable-agent", "--disable-kube-proxy", "--disable-network-policy", "--disable-cloud-controller", "--debug"]) expect(args).toContain(flag);
    expect(args[args.indexOf("--disable") + 1]).toBe("coredns,servicelb,traefik,local-storage,metrics-server");
    expect(args[args.indexOf("--data-dir") + 1]).toBe(join(scratch, ".rancher/k3s"));
  });

  test("k3s/kubectl uses the admin kubeconfig, and says so when it is missing", () => {
    const missing = run("kubectl", ["get", "nodes"], { K3S_BIN: fakeK3s });
    expect(missing.exitCode).toBe(66);
    expect(missing.stderr).toContain("admin.kubeconfig");
    const credDir = join(scratch, ".rancher/k3s/server/cred");
    mkdirSync(credDir, { recursive: true });
    writeFileSync(join(credDir, "admin.kubeconfig"), "apiVersion: v1\n");
    const ok = run("kubectl", ["get", "nodes"], { K3S_BIN: fakeK3s });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout.trim().split("\n")).toEqual(["kubectl", "--kubeconfig", join(credDir, "admin.kubeconfig"), "get", "nodes"]);
  });

  test("a missing k3s binary is reported with how to install it", () => {
    const result = run("k3s", [], { K3S_BIN: join(scratch, "absent") });
    expect(result.exitCode).toBe(69);
    expect(result.stderr).toContain("get.k3s.io");
  });
});
