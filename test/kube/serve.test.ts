// serve's control loop against the test API server, with a fake provider in place of systemd: node
// registration and lease, pod create/status/delete, env sources, restarts, watch expiry and outages.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { JsonObject } from "../apiserver/json.ts";
import { startTestApiServer, type RunningTestApiServer } from "../apiserver/client.ts";
import { FakeProvider } from "./fake-provider.ts";
import { at, eventually, phaseOf, podManifest, startServe, type RunningServe } from "./helpers.ts";

let cluster: RunningTestApiServer;
let provider: FakeProvider;
let running: RunningServe;

beforeAll(async () => {
  cluster = await startTestApiServer({ nodeName: "serve-node" });
  provider = new FakeProvider();
  running = startServe(cluster, provider);
  await cluster.admin.waitFor("nodes", "serve-node", "", (node) => node !== undefined);
});

afterAll(async () => {
  await running?.stop();
  await cluster?.stop();
});

const node = () => cluster.admin.get("nodes", "serve-node", "");
const pod = (name: string, namespace = "default") => cluster.admin.get("pods", name, namespace);

describe("node", () => {
  test("registers with labels, taint, capacity, addresses, nodeInfo and Ready", async () => {
    const ready = await cluster.admin.waitFor("nodes", "serve-node", "", (n) => {
      const conditions = (at(n, "status", "conditions") ?? []) as JsonObject[];
      return conditions.some((c) => c["type"] === "Ready" && c["status"] === "True");
    });
    expect(at(ready, "metadata", "labels")).toMatchObject({
      "kubernetes.io/os": "linux",
      "kubernetes.io/hostname": "serve-node",
      type: "virtual-kubelet",
    });
    // NodeRestriction refuses kubernetes.io/role from a node's own credentials: roles are an admin's to set.
    expect(at(ready, "metadata", "labels", "kubernetes.io/role")).toBeUndefined();
    expect(at(ready, "metadata", "labels", "kubernetes.io/arch")).toBeString();
    expect(at(ready, "spec", "taints")).toEqual([{ key: "virtual-kubelet.io/provider", value: "vks", effect: "NoSchedule" }]);
    expect(at(ready, "status", "capacity", "pods")).toBe("110");
    expect(at(ready, "status", "capacity", "cpu")).toMatch(/^\d+$/);
    expect(at(ready, "status", "capacity", "memory")).toMatch(/^\d+Ki$/);
    expect(at(ready, "status", "capacity", "ephemeral-storage")).toMatch(/^\d+Ki$/);
    expect(at(ready, "status", "addresses")).toEqual([
      { type: "InternalIP", address: "10.0.0.7" },
      { type: "Hostname", address: "serve-node" },
    ]);
    // The port actually served: the tests ask for any free one (--kubelet-port 0).
    const port = at(ready, "status", "daemonEndpoints", "kubeletEndpoint", "Port") as number;
    expect(port).toBeGreaterThan(0);
    const answer = await fetch(`https://127.0.0.1:${port}/healthz`, { tls: { rejectUnauthorized: false } });
    expect(answer.status).toBe(401);
    expect(at(ready, "status", "nodeInfo", "containerRuntimeVersion")).toBe("systemd://252");
    expect(at(ready, "status", "nodeInfo", "kubeletVersion")).toMatch(/^v1\.31\.0-vks-/);
    expect(at(ready, "status", "nodeInfo", "operatingSystem")).toBe("linux");
    const types = ((at(ready, "status", "conditions") ?? []) as JsonObject[]).map((c) => c["type"]).sort();
    expect(types).toEqual(["DiskPressure", "MemoryPressure", "PIDPressure", "Ready"]);
  });

  test("renews a MicroTime lease owned by the node", async () => {
    const nodeUid = at(await node(), "metadata", "uid");
    const first = await cluster.admin.waitFor("leases", "serve-node", "kube-node-lease", (lease) => lease !== undefined);
    const firstRenew = at(first, "spec", "renewTime") as string;
    expect(firstRenew).toMatch(/\.\d{6}Z$/);
    expect(at(first, "spec", "holderIdentity")).toBe("serve-node");
    expect(at(first, "spec", "leaseDurationSeconds")).toBe(4);
    expect(at(first, "metadata", "ownerReferences")).toEqual([{ apiVersion: "v1", kind: "Node", name: "serve-node", uid: nodeUid as string }]);
    const renewed = await cluster.admin.waitFor("leases", "serve-node", "kube-node-lease", (lease) => at(lease, "spec", "renewTime") !== firstRenew);
    expect(at(renewed, "spec", "renewTime")).toMatch(/\.\d{6}Z$/);
  });

  test("keeps conditions other components add and reports NotReady when systemd stops answering", async () => {
    await cluster.admin.patch("nodes", "serve-node", "", { status: { conditions: [...(((at(await node(), "status", "conditions") ?? []) as JsonObject[])), { type: "NetworkUnavailable", status: "False", reason: "RouteCreated" }] } }, "merge", "status");
    provider.healthy = false;
    const notReady = await cluster.admin.waitFor("nodes", "serve-node", "", (n) =>
      ((at(n, "status", "conditions") ?? []) as JsonObject[]).some((c) => c["type"] === "Ready" && c["status"] === "False"),
    );
    const conditions = (at(notReady, "status", "conditions") ?? []) as JsonObject[];
    expect(conditions.find((c) => c["type"] === "Ready")?.["reason"]).toBe("SystemdUnavailable");
    expect(conditions.find((c) => c["type"] === "NetworkUnavailable")).toMatchObject({ status: "False", reason: "RouteCreated" });
    provider.healthy = true;
    await cluster.admin.waitFor("nodes", "serve-node", "", (n) =>
      ((at(n, "status", "conditions") ?? []) as JsonObject[]).some((c) => c["type"] === "Ready" && c["status"] === "True"),
    );
  });
});

describe("pods", () => {
  test("a pod bound to the node is created and its status written; other nodes' pods are not", async () => {
    await cluster.admin.create("pods", podManifest("elsewhere", "other-node"));
    const created = await cluster.admin.create("pods", podManifest("web", "serve-node"));
    const runningPod = await cluster.admin.waitFor("pods", "web", "default", (p) => phaseOf(p) === "Running");
    expect(at(runningPod, "status", "hostIP")).toBe("10.0.0.7");
    expect(at(runningPod, "status", "containerStatuses", 0, "state", "running")).toBeDefined();
    expect(provider.calls).toContain("create default/web");
    expect(provider.calls).not.toContain("create default/elsewhere");

    const events = await eventually("the Started event", async () => {
      const list = await cluster.admin.list("events", { namespace: "default" });
      const started = list.filter((e) => at(e, "involvedObject", "name") === "web" && e["reason"] === "Started");
      return started.length > 0 ? started : undefined;
    });
    expect(events[0]).toMatchObject({
      type: "Normal",
      involvedObject: { kind: "Pod", name: "web", namespace: "default", uid: at(created, "metadata", "uid") as string, fieldPath: "spec.containers{main}" },
      source: { component: "vks", host: "serve-node" },
    });
  });

  test("a status change reaches the API server without polling, keeping others' conditions", async () => {
    await cluster.admin.create("pods", podManifest("job-ok", "serve-node"));
    await cluster.admin.waitFor("pods", "job-ok", "default", (p) => phaseOf(p) === "Running");
    const current = await pod("job-ok");
    await cluster.admin.patch(
      "pods",
      "job-ok",
      "default",
      { status: { conditions: [...((at(current, "status", "conditions") ?? []) as JsonObject[]), { type: "example.com/gate", status: "True" }] } },
      "merge",
      "status",
    );
    provider.exit("default", "job-ok", 0);
    const done = await cluster.admin.waitFor("pods", "job-ok", "default", (p) => phaseOf(p) === "Succeeded");
    expect(at(done, "status", "containerStatuses", 0, "state", "terminated", "exitCode")).toBe(0);
    expect(((at(done, "status", "conditions") ?? []) as JsonObject[]).some((c) => c["type"] === "example.com/gate")).toBe(true);

    await cluster.admin.create("pods", podManifest("job-bad", "serve-node"));
    await cluster.admin.waitFor("pods", "job-bad", "default", (p) => phaseOf(p) === "Running");
    provider.exit("default", "job-bad", 3);
    const failed = await cluster.admin.waitFor("pods", "job-bad", "default", (p) => phaseOf(p) === "Failed");
    expect(at(failed, "status", "containerStatuses", 0, "state", "terminated")).toMatchObject({ exitCode: 3, reason: "Error" });
    expect(provider.calls.filter((call) => call === "create default/job-ok")).toHaveLength(1);
  });

  test("deletion stops the pod, then removes the object", async () => {
    await cluster.admin.create("pods", podManifest("doomed", "serve-node"));
    await cluster.admin.waitFor("pods", "doomed", "default", (p) => phaseOf(p) === "Running");
    await cluster.admin.delete("pods", "doomed", "default", { gracePeriodSeconds: 30 });
    await cluster.admin.waitFor("pods", "doomed", "default", (p) => p === undefined);
    expect(provider.calls).toContain("delete default/doomed");
    expect(provider.pods.has("default/doomed")).toBe(false);
  });

  test("ConfigMap and Secret env sources are resolved from the API server; the pod keeps only references", async () => {
    await cluster.admin.create("configmaps", { metadata: { name: "settings", namespace: "default" }, data: { MODE: "fast", PRICE: "$(NOT_A_REF)" } });
    await cluster.admin.create("secrets", { metadata: { name: "creds", namespace: "default" }, data: { password: Buffer.from("s3cret").toString("base64") } });
    await cluster.admin.create(
      "pods",
      podManifest("env", "serve-node", {
        envFrom: [{ configMapRef: { name: "settings" }, prefix: "CFG_" }],
        env: [
          { name: "PASSWORD", valueFrom: { secretKeyRef: { name: "creds", key: "password" } } },
          { name: "OPTIONAL", valueFrom: { configMapKeyRef: { name: "absent", key: "x", optional: true } } },
          { name: "NODE", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
          { name: "PLAIN", value: "$(CFG_MODE)-plain" },
        ],
      }),
    );
    await cluster.admin.waitFor("pods", "env", "default", (p) => phaseOf(p) === "Running");
    // The provider gets the pod as written: no Secret value travels in it (nor lands in its record).
    const container = provider.pods.get("default/env")?.spec?.containers[0];
    expect(container?.envFrom).toEqual([{ configMapRef: { name: "settings" }, prefix: "CFG_" }]);
    expect(JSON.stringify(provider.pods.get("default/env"))).not.toContain("s3cret");
    // What the engine computes from serve's PodObjectSource: the Secret's value marked secret.
    expect(provider.resolvedEnv.get("default/env")?.["main"]).toEqual([
      { name: "CFG_MODE", value: "fast" },
      { name: "CFG_PRICE", value: "$(NOT_A_REF)" },
      { name: "PASSWORD", value: "s3cret", secret: true },
      { name: "NODE", value: "serve-node" },
      { name: "PLAIN", value: "fast-plain" },
    ]);
  });

  test("a missing Secret holds the pod in CreateContainerConfigError until it exists; its value stays secret", async () => {
    await cluster.admin.create("pods", podManifest("needs-secret", "serve-node", { env: [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "later-secret", key: "token" } } }] }));
    const waiting = await cluster.admin.waitFor("pods", "needs-secret", "default", (p) => at(p, "status", "containerStatuses", 0, "state", "waiting", "reason") === "CreateContainerConfigError");
    expect(at(waiting, "status", "containerStatuses", 0, "state", "waiting", "message")).toContain('secret "later-secret" not found');
    await cluster.admin.create("secrets", { metadata: { name: "later-secret", namespace: "default" }, data: { token: Buffer.from("t0ken").toString("base64") } });
    const running = await cluster.admin.waitFor("pods", "needs-secret", "default", (p) => phaseOf(p) === "Running");
    expect(JSON.stringify(running)).not.toContain("t0ken");
    expect(provider.resolvedEnv.get("default/needs-secret")?.["main"]).toEqual([{ name: "TOKEN", value: "t0ken", secret: true }]);
  });

  test("a missing ConfigMap holds the pod in CreateContainerConfigError until it exists", async () => {
    await cluster.admin.create("pods", podManifest("needs-config", "serve-node", { env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "later", key: "x" } } }] }));
    const waiting = await cluster.admin.waitFor("pods", "needs-config", "default", (p) => at(p, "status", "containerStatuses", 0, "state", "waiting", "reason") === "CreateContainerConfigError");
    expect(phaseOf(waiting)).toBe("Pending");
    expect(at(waiting, "status", "containerStatuses", 0, "state", "waiting", "message")).toContain('configmap "later" not found');
    await cluster.admin.create("configmaps", { metadata: { name: "later", namespace: "default" }, data: { x: "1" } });
    await cluster.admin.waitFor("pods", "needs-config", "default", (p) => phaseOf(p) === "Running");
    expect(provider.resolvedEnv.get("default/needs-config")?.["main"]).toEqual([{ name: "X", value: "1" }]);
  });

  test("a watch that expires (410) is followed by a re-list", async () => {
    const since = (await cluster.admin.requests()).at(-1)?.sequence ?? 0;
    await cluster.admin.compact({ expireWatches: true });
    await cluster.admin.create("pods", podManifest("after-compact", "serve-node"));
    await cluster.admin.waitFor("pods", "after-compact", "default", (p) => phaseOf(p) === "Running");
    const relists = (await cluster.admin.requests(since)).filter((r) => r.user === "system:node:serve-node" && r.resource === "pods" && r.verb === "list");
    expect(relists.length).toBeGreaterThan(0);
  });

  test("pods are only ever listed and watched for this node; Secrets only read by name", async () => {
    const requests = (await cluster.admin.requests()).filter((r) => r.user === "system:node:serve-node");
    const podReads = requests.filter((r) => r.resource === "pods" && (r.verb === "list" || r.verb === "watch"));
    expect(podReads.length).toBeGreaterThan(0);
    for (const r of podReads) expect(new URLSearchParams(r.query).get("fieldSelector")).toBe("spec.nodeName=serve-node");
    expect(requests.filter((r) => r.resource === "secrets").every((r) => r.verb === "get")).toBe(true);
    const statusWrites = requests.filter((r) => r.subresource === "status" && r.method === "PATCH");
    expect(statusWrites.length).toBeGreaterThan(0);
    for (const r of statusWrites) expect(r.contentType).toBe("application/merge-patch+json");
  });

  test("an API outage leaves pods running; status written meanwhile arrives after recovery", async () => {
    await cluster.admin.create("pods", podManifest("through-outage", "serve-node"));
    await cluster.admin.waitFor("pods", "through-outage", "default", (p) => phaseOf(p) === "Running");
    await cluster.admin.outage("refuse");
    provider.exit("default", "through-outage", 0);
    await Bun.sleep(300); // let serve try (and fail) while the server is down
    expect(provider.calls.filter((c) => c.startsWith("delete default/through-outage"))).toHaveLength(0);
    await cluster.admin.restore();
    await cluster.admin.waitFor("pods", "through-outage", "default", (p) => phaseOf(p) === "Succeeded");
    await cluster.admin.create("pods", podManifest("after-outage", "serve-node"));
    await cluster.admin.waitFor("pods", "after-outage", "default", (p) => phaseOf(p) === "Running");
    expect(running.error()).toBeUndefined();
  }, 30_000);
});
