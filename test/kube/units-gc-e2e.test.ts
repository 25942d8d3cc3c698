// `vks units gc --kubeconfig`: the clean-up serve does at start, on demand — pods the API server does not
// assign to this node go (record and units), pods it does assign stay, running, untouched.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import { VKS_BINARY, haveSystemd, managerFlag, newStateDir, podNamed, vks, writeManifest } from "../e2e/helpers.ts";
import { at } from "./helpers.ts";

setDefaultTimeout(120_000);
const NODE = "gc-node";
const stateDir = newStateDir();
let cluster: RunningTestApiServer;

function sleeperYaml(name: string, uid?: string): string {
  const uidLine = uid ? `\n  uid: ${uid}` : "";
  return `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}${uidLine}\nspec:\n  containers:\n    - name: main\n      image: /bin/sleep\n      args: ["infinity"]\n`;
}

describe.skipIf(!haveSystemd || !existsSync(VKS_BINARY))("vks units gc --kubeconfig", () => {
  beforeAll(async () => {
    cluster = await startTestApiServer({ nodeName: NODE });
  });
  afterAll(async () => {
    for (const name of ["kept", "stray"]) await vks(stateDir, ["pod", "down", "--ignore-not-found", name, ...managerFlag]);
    await cluster?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("removes pods the API server does not assign here, keeps the ones it does", async () => {
    const created = await cluster.admin.create("pods", {
      metadata: { name: "kept", namespace: "default" },
      spec: { nodeName: NODE, containers: [{ name: "main", image: "/bin/sleep", args: ["infinity"] }] },
    });
    const keptUid = at(created, "metadata", "uid") as string;
    expect((await vks(stateDir, ["pod", "up", "-d", writeManifest(stateDir, "kept.yaml", sleeperYaml("kept", keptUid)), ...managerFlag])).exitCode).toBe(0);
    expect((await vks(stateDir, ["pod", "up", "-d", writeManifest(stateDir, "stray.yaml", sleeperYaml("stray")), ...managerFlag])).exitCode).toBe(0);
    const keptPid = (await podNamed(stateDir, "kept"))?.status.phase;
    expect(keptPid).toBe("Running");

    const gcArgs = ["units", "gc", "--kubeconfig", cluster.kubeconfigPath, "--nodename", NODE, ...managerFlag];
    const dry = await vks(stateDir, [...gcArgs, "--dry-run"]);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout + dry.stderr).toContain("would remove pod default/stray");
    expect(await podNamed(stateDir, "stray")).toBeDefined();

    const run = await vks(stateDir, gcArgs);
    expect(run.exitCode).toBe(0);
    expect(await podNamed(stateDir, "stray")).toBeUndefined();
    const kept = await podNamed(stateDir, "kept");
    expect(kept?.metadata.uid).toBe(keptUid);
    expect(kept?.status.phase).toBe("Running");
  });
});
