// The seed's command line, as users have it in scripts, must keep working:
//   vks serve --kubeconfig ~/.rancher/k3s/server/cred/admin.kubeconfig --enable-node-lease --disable-taint
// (plus --user and --state-dir, which the sandbox needs). The node takes the host's name.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import type { JsonObject } from "../apiserver/json.ts";
import { VKS_BINARY, haveSystemd, managerFlag, newStateDir } from "../e2e/helpers.ts";
import { at } from "./helpers.ts";

setDefaultTimeout(60_000);
const stateDir = newStateDir();
let cluster: RunningTestApiServer | undefined;

afterAll(async () => {
  await cluster?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe.skipIf(!haveSystemd || !existsSync(VKS_BINARY))("the seed's serve command line", () => {
  test("--kubeconfig F --enable-node-lease --disable-taint registers an untainted node with a lease", async () => {
    cluster = await startTestApiServer({ nodeName: hostname() });
    const serve = Bun.spawn(
      [VKS_BINARY, "serve", "--kubeconfig", cluster.adminKubeconfigPath, "--enable-node-lease", "--disable-taint", "--state-dir", stateDir, ...managerFlag],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } },
    );
    try {
      const node = await cluster.admin.waitFor("nodes", hostname(), "", (n) =>
        ((at(n, "status", "conditions") ?? []) as JsonObject[]).some((c) => c["type"] === "Ready" && c["status"] === "True"),
      );
      expect(at(node, "spec", "taints") ?? []).toEqual([]);
      expect(at(node, "metadata", "labels", "type")).toBe("virtual-kubelet");
      const lease = await cluster.admin.waitFor("leases", hostname(), "kube-node-lease", (l) => l !== undefined);
      expect(at(lease, "spec", "leaseDurationSeconds")).toBe(40);
    } finally {
      serve.kill("SIGTERM");
      const [code, stderr] = await Promise.all([serve.exited, new Response(serve.stderr).text()]);
      expect(code, stderr).toBe(0);
    }
  });
});
