// The test API server driven end to end by @kubernetes/client-node, the client vks itself uses.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  V1MicroTime,
  Watch,
  setHeaderOptions,
  type V1ConfigMap,
  type V1Lease,
  type V1Node,
  type V1Pod,
} from "@kubernetes/client-node";
import { join } from "node:path";
import { createCertificateAuthority, issueClientCertificate } from "./certs.ts";
import { startTestApiServer, type RunningTestApiServer } from "./client.ts";
import { isJsonObject, parseJson, type JsonObject } from "./json.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { parseFieldSelector, parseLabelSelector, labelsMatch } from "./selectors.ts";
import { microTimeProblem } from "./time.ts";

const nodeName = "node-a";
const nodeUser = `system:node:${nodeName}`;

let cluster: RunningTestApiServer;
let nodeConfig: KubeConfig;
let core: CoreV1Api;
let coordination: CoordinationV1Api;
let adminCore: CoreV1Api;

function loadConfig(path: string): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(path);
  return config;
}

interface Failure {
  code: number;
  status: JsonObject;
}

/** The HTTP code and Status body of a client-node call that must fail. */
async function failureOf(call: Promise<unknown>): Promise<Failure> {
  try {
    await call;
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    const body: unknown = error.body;
    const parsed = typeof body === "string" ? parseJson(body) : undefined;
    return { code: error.code, status: isJsonObject(parsed) ? parsed : {} };
  }
  throw new Error("expected the call to fail");
}

function podManifest(name: string, assignedNode: string | undefined): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { app: name } },
    spec: {
      ...(assignedNode === undefined ? {} : { nodeName: assignedNode }),
      containers: [{ name: "main", image: "docker.io/library/busybox:1.36", command: ["sleep", "infinity"] }],
    },
  };
}

interface WatchEvent {
  type: string;
  object: JsonObject;
}

/** Collects the events of one client-node watch and hands them out in arrival order. */
class WatchRecorder {
  private readonly received: WatchEvent[] = [];
  private readonly waiting: ((event: WatchEvent) => void)[] = [];
  private controller: AbortController | undefined;
  readonly ended: Promise<unknown>;
  private resolveEnded: (reason: unknown) => void = () => undefined;

  constructor() {
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
  }

  async start(config: KubeConfig, path: string, query: Record<string, string | boolean | number>): Promise<void> {
    this.controller = await new Watch(config).watch(
      path,
      query,
      (type: string, object: unknown) => {
        const event = { type, object: isJsonObject(object) ? object : {} };
        const waiter = this.waiting.shift();
        if (waiter === undefined) this.received.push(event);
        else waiter(event);
      },
      (error: unknown) => this.resolveEnded(error ?? "closed"),
    );
  }

  next(): Promise<WatchEvent> {
    const event = this.received.shift();
    if (event !== undefined) return Promise.resolve(event);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  stop(): void {
    this.controller?.abort();
  }
}

function nameOf(object: JsonObject): unknown {
  const metadata = object["metadata"];
  return isJsonObject(metadata) ? metadata["name"] : undefined;
}

beforeAll(async () => {
  cluster = await startTestApiServer({
    nodeName,
    tokens: [{ token: "token-for-robot", user: "robot", groups: ["robots"] }],
    historyLimit: 500,
  });
  nodeConfig = loadConfig(cluster.kubeconfigPath);
  core = nodeConfig.makeApiClient(CoreV1Api);
  coordination = nodeConfig.makeApiClient(CoordinationV1Api);
  adminCore = loadConfig(cluster.adminKubeconfigPath).makeApiClient(CoreV1Api);
});

afterAll(async () => {
  await cluster?.stop();
});

describe("authentication and authorization", () => {
  test("a client certificate authenticates as its CN and groups", async () => {
    const since = (await cluster.admin.requests()).length;
    await core.listNamespacedPod({ namespace: "default" });
    const [record] = (await cluster.admin.requests(since)).filter((entry) => entry.resource === "pods");
    expect(record?.user).toBe(nodeUser);
    expect(record?.verb).toBe("list");
  });

  test("a request without credentials gets 401", async () => {
    const anonymous = new KubeConfig();
    anonymous.loadFromOptions({
      clusters: [{ name: "test", server: cluster.url, caFile: cluster.caCertPath }],
      users: [{ name: "nobody" }],
      contexts: [{ name: "test", cluster: "test", user: "nobody" }],
      currentContext: "test",
    });
    const failure = await failureOf(anonymous.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: "default" }));
    expect(failure.code).toBe(401);
  });

  test("a certificate from another CA gets 401", async () => {
    const strangerDir = join(cluster.dir, "stranger");
    const strangerCa = createCertificateAuthority(strangerDir, "stranger-ca");
    const stranger = issueClientCertificate(strangerCa, strangerDir, "stranger", { commonName: nodeUser, organizations: ["system:nodes"] });
    const path = writeKubeconfig(join(strangerDir, "kubeconfig"), {
      server: cluster.url,
      caCertPath: cluster.caCertPath,
      credentials: stranger,
      userName: nodeUser,
    });
    const failure = await failureOf(loadConfig(path).makeApiClient(CoreV1Api).listNamespacedPod({ namespace: "default" }));
    expect(failure.code).toBe(401);
  });

  test("RSA client certificates and bearer tokens authenticate too", async () => {
    const rsaClient = cluster.addClient("rsa-node", { commonName: "system:node:node-rsa", organizations: ["system:nodes"], keyAlgorithm: "rsa" });
    const since = (await cluster.admin.requests()).length;
    await loadConfig(rsaClient.kubeconfigPath).makeApiClient(CoreV1Api).listNode();
    const robotPath = cluster.tokenKubeconfigPaths["robot"];
    expect(robotPath).toBeDefined();
    await loadConfig(robotPath ?? "").makeApiClient(CoreV1Api).listNode();
    const users = (await cluster.admin.requests(since)).filter((entry) => entry.resource === "nodes").map((entry) => entry.user);
    expect(users).toEqual(["system:node:node-rsa", "robot"]);
  });

  test("a denied request gets RBAC's 403 message", async () => {
    await cluster.admin.setDenyRules([{ users: [nodeUser], verbs: ["list"], resources: ["pods"] }]);
    try {
      const clusterWide = await failureOf(core.listPodForAllNamespaces());
      expect(clusterWide.code).toBe(403);
      expect(clusterWide.status["reason"]).toBe("Forbidden");
      expect(clusterWide.status["message"]).toBe(
        `pods is forbidden: User "${nodeUser}" cannot list resource "pods" in API group "" at the cluster scope`,
      );
      const namespaced = await failureOf(core.listNamespacedPod({ namespace: "kube-system" }));
      expect(namespaced.status["message"]).toBe(
        `pods is forbidden: User "${nodeUser}" cannot list resource "pods" in API group "" in the namespace "kube-system"`,
      );
      await adminCore.listPodForAllNamespaces();
    } finally {
      await cluster.admin.setDenyRules([]);
    }
  });

  test("a denied subresource names it in the 403", async () => {
    await cluster.admin.setDenyRules([{ users: [nodeUser], resources: ["nodes/status"] }]);
    try {
      const failure = await failureOf(core.patchNodeStatus({ name: "whatever", body: [] }));
      expect(failure.status["message"]).toBe(
        `nodes "whatever" is forbidden: User "${nodeUser}" cannot patch resource "nodes/status" in API group "" at the cluster scope`,
      );
    } finally {
      await cluster.admin.setDenyRules([]);
    }
  });
});

describe("pods", () => {
  test("create, get, and list with a field selector", async () => {
    const created = await core.createNamespacedPod({ namespace: "default", body: podManifest("web", nodeName) });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(created.metadata?.resourceVersion).toMatch(/^\d+$/);
    expect(created.status?.phase).toBe("Pending");
    expect(created.spec?.restartPolicy).toBe("Always");
    await core.createNamespacedPod({ namespace: "default", body: podManifest("elsewhere", "node-b") });

    const fetched = await core.readNamespacedPod({ namespace: "default", name: "web" });
    expect(fetched.metadata?.uid).toBe(created.metadata?.uid ?? "");

    const mine = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${nodeName}` });
    expect(mine.items.map((pod) => pod.metadata?.name)).toEqual(["web"]);
    const notMine = await core.listNamespacedPod({ namespace: "default", fieldSelector: `spec.nodeName!=${nodeName},metadata.namespace=default` });
    expect(notMine.items.map((pod) => pod.metadata?.name)).toEqual(["elsewhere"]);
    const byLabel = await core.listNamespacedPod({ namespace: "default", labelSelector: "app in (web, other)" });
    expect(byLabel.items.map((pod) => pod.metadata?.name)).toEqual(["web"]);
    expect(Number(mine.metadata?.resourceVersion)).toBeGreaterThanOrEqual(Number(created.metadata?.resourceVersion));
  });

  test("an unsupported field selector is a 400", async () => {
    const failure = await failureOf(core.listPodForAllNamespaces({ fieldSelector: "spec.containers=x" }));
    expect(failure.code).toBe(400);
    expect(failure.status["message"]).toBe("field label not supported: spec.containers");
  });

  test("creating an existing name is 409 AlreadyExists; generateName makes a fresh one", async () => {
    await core.createNamespacedPod({ namespace: "default", body: podManifest("dup", undefined) });
    const failure = await failureOf(core.createNamespacedPod({ namespace: "default", body: podManifest("dup", undefined) }));
    expect(failure.code).toBe(409);
    expect(failure.status["reason"]).toBe("AlreadyExists");
    expect(failure.status["message"]).toBe('pods "dup" already exists');
    const generated = await core.createNamespacedPod({
      namespace: "default",
      body: { ...podManifest("", undefined), metadata: { generateName: "dup-" } },
    });
    expect(generated.metadata?.name).toMatch(/^dup-[a-z0-9]{5}$/);
  });

  test("invalid objects are rejected like the real validation does", async () => {
    const badName = await failureOf(core.createNamespacedPod({ namespace: "default", body: podManifest("Not_Valid", undefined) }));
    expect(badName.code).toBe(422);
    expect(String(badName.status["message"])).toStartWith('Pod "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain');

    const wrongNamespace = await failureOf(
      core.createNamespacedPod({ namespace: "default", body: { ...podManifest("ns-mismatch", undefined), metadata: { name: "ns-mismatch", namespace: "kube-system" } } }),
    );
    expect(wrongNamespace.code).toBe(400);
    expect(wrongNamespace.status["message"]).toBe("the namespace of the provided object does not match the namespace sent on the request");

    const missingNamespace = await failureOf(core.createNamespacedPod({ namespace: "nowhere", body: podManifest("lost", undefined) }));
    expect(missingNamespace.code).toBe(404);
    expect(missingNamespace.status["message"]).toBe('namespaces "nowhere" not found');

    const wrongKind = await failureOf(core.createNamespacedPod({ namespace: "default", body: { ...podManifest("kind", undefined), kind: "Node" } }));
    expect(wrongKind.code).toBe(400);
  });

  test("an update with a stale resourceVersion is a 409 Conflict", async () => {
    const pod = await core.createNamespacedPod({ namespace: "default", body: podManifest("contended", nodeName) });
    await core.replaceNamespacedPod({
      namespace: "default",
      name: "contended",
      body: { ...pod, metadata: { ...pod.metadata, labels: { app: "contended", round: "one" } } },
    });
    const failure = await failureOf(
      core.replaceNamespacedPod({ namespace: "default", name: "contended", body: { ...pod, metadata: { ...pod.metadata, labels: { round: "two" } } } }),
    );
    expect(failure.code).toBe(409);
    expect(failure.status["reason"]).toBe("Conflict");
    expect(failure.status["message"]).toBe(
      'Operation cannot be fulfilled on pods "contended": the object has been modified; please apply your changes to the latest version and try again',
    );
  });

  test("the pod spec is immutable apart from images and a few fields", async () => {
    const pod = await core.createNamespacedPod({ namespace: "default", body: podManifest("frozen", nodeName) });
    const failure = await failureOf(
      core.patchNamespacedPod(
        { namespace: "default", name: "frozen", body: { spec: { nodeName: "node-b" } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      ),
    );
    expect(failure.code).toBe(422);
    expect(String(failure.status["message"])).toContain("spec: Forbidden: pod updates may not change fields other than");
    const retagged = await core.patchNamespacedPod({
      namespace: "default",
      name: "frozen",
      body: [{ op: "replace", path: "/spec/containers/0/image", value: "docker.io/library/busybox:1.37" }],
    });
    expect(retagged.spec?.containers[0]?.image).toBe("docker.io/library/busybox:1.37");
    expect(retagged.metadata?.generation).toBe((pod.metadata?.generation ?? 0) + 1);
  });

  test("status goes through the status subresource only", async () => {
    const pod = await core.createNamespacedPod({ namespace: "default", body: podManifest("statusful", nodeName) });
    const ignored = await core.replaceNamespacedPod({
      namespace: "default",
      name: "statusful",
      body: { ...pod, status: { phase: "Running" } },
    });
    expect(ignored.status?.phase).toBe("Pending");

    const updated = await core.replaceNamespacedPodStatus({
      namespace: "default",
      name: "statusful",
      body: { ...ignored, metadata: { ...ignored.metadata, labels: { sneaky: "yes" } }, status: { phase: "Running", podIP: "10.0.0.7" } },
    });
    expect(updated.status?.phase).toBe("Running");
    expect(updated.metadata?.labels).toEqual({ app: "statusful" });

    const patched = await core.patchNamespacedPodStatus(
      { namespace: "default", name: "statusful", body: { spec: { nodeName: "node-b" }, status: { conditions: [{ type: "Ready", status: "True" }] } } },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    expect(patched.spec?.nodeName).toBe(nodeName);
    expect(patched.status?.podIP).toBe("10.0.0.7");
    expect(patched.status?.conditions?.map((condition) => condition.type)).toEqual(["Ready"]);
  });

  test("binding assigns an unscheduled pod to a node", async () => {
    await core.createNamespacedPod({ namespace: "default", body: podManifest("to-bind", undefined) });
    await core.createNamespacedPodBinding({
      namespace: "default",
      name: "to-bind",
      body: { apiVersion: "v1", kind: "Binding", metadata: { name: "to-bind" }, target: { apiVersion: "v1", kind: "Node", name: nodeName } },
    });
    const bound = await core.readNamespacedPod({ namespace: "default", name: "to-bind" });
    expect(bound.spec?.nodeName).toBe(nodeName);
    expect(bound.status?.conditions?.find((condition) => condition.type === "PodScheduled")?.status).toBe("True");
  });

  test("graceful deletion keeps a scheduled pod until it is deleted with grace 0", async () => {
    const pod = await core.createNamespacedPod({ namespace: "default", body: podManifest("graceful", nodeName) });
    const uid = pod.metadata?.uid ?? "";

    const wrongUid = await failureOf(
      core.deleteNamespacedPod({ namespace: "default", name: "graceful", body: { preconditions: { uid: "00000000-0000-0000-0000-000000000000" } } }),
    );
    expect(wrongUid.code).toBe(409);
    expect(wrongUid.status["message"]).toBe(
      `Operation cannot be fulfilled on pods "graceful": Precondition failed: UID in precondition: 00000000-0000-0000-0000-000000000000, UID in object meta: ${uid}`,
    );

    const terminating = await core.deleteNamespacedPod({ namespace: "default", name: "graceful", body: { gracePeriodSeconds: 20, preconditions: { uid } } });
    expect(terminating.metadata?.deletionGracePeriodSeconds).toBe(20);
    expect(terminating.metadata?.deletionTimestamp).toBeInstanceOf(Date);
    const stillThere = await core.readNamespacedPod({ namespace: "default", name: "graceful" });
    expect(stillThere.metadata?.deletionTimestamp).toBeInstanceOf(Date);

    // A longer grace period never extends a pending deletion.
    const unchanged = await core.deleteNamespacedPod({ namespace: "default", name: "graceful", gracePeriodSeconds: 60 });
    expect(unchanged.metadata?.deletionGracePeriodSeconds).toBe(20);

    await core.deleteNamespacedPod({ namespace: "default", name: "graceful", body: { gracePeriodSeconds: 0, preconditions: { uid } } });
    const gone = await failureOf(core.readNamespacedPod({ namespace: "default", name: "graceful" }));
    expect(gone.code).toBe(404);
    expect(gone.status["message"]).toBe('pods "graceful" not found');
  });

  test("an unscheduled pod is deleted at once; finalizers hold an object until removed", async () => {
    await core.createNamespacedPod({ namespace: "default", body: podManifest("never-scheduled", undefined) });
    await core.deleteNamespacedPod({ namespace: "default", name: "never-scheduled" });
    expect(await cluster.admin.get("pods", "never-scheduled")).toBeUndefined();

    await core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name: "held", finalizers: ["example.com/hold"] }, data: { a: "b" } } });
    await core.deleteNamespacedConfigMap({ namespace: "default", name: "held" });
    const held = await core.readNamespacedConfigMap({ namespace: "default", name: "held" });
    expect(held.metadata?.deletionTimestamp).toBeInstanceOf(Date);
    await core.patchNamespacedConfigMap({ namespace: "default", name: "held", body: [{ op: "remove", path: "/metadata/finalizers" }] });
    expect(await cluster.admin.get("configmaps", "held")).toBeUndefined();
  });
});

describe("watch", () => {
  test("delivers ADDED, MODIFIED and DELETED in order from a list's resourceVersion", async () => {
    const list = await core.listNamespacedPod({ namespace: "default" });
    const recorder = new WatchRecorder();
    await recorder.start(nodeConfig, "/api/v1/namespaces/default/pods", {
      resourceVersion: list.metadata?.resourceVersion ?? "",
      allowWatchBookmarks: true,
    });
    await core.createNamespacedPod({ namespace: "default", body: podManifest("watched", nodeName) });
    await core.patchNamespacedPod(
      { namespace: "default", name: "watched", body: { metadata: { labels: { stage: "two" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await core.deleteNamespacedPod({ namespace: "default", name: "watched", gracePeriodSeconds: 0 });

    const events = [await recorder.next(), await recorder.next(), await recorder.next()];
    expect(events.map((event) => [event.type, nameOf(event.object)])).toEqual([
      ["ADDED", "watched"],
      ["MODIFIED", "watched"],
      ["DELETED", "watched"],
    ]);
    const versions = events.map((event) => Number((event.object["metadata"] as JsonObject)["resourceVersion"]));
    expect(versions).toEqual([...versions].sort((left, right) => left - right));

    await cluster.admin.sendBookmarks();
    const bookmark = await recorder.next();
    expect(bookmark.type).toBe("BOOKMARK");
    expect(Number((bookmark.object["metadata"] as JsonObject)["resourceVersion"])).toBe(versions[2] ?? 0);
    recorder.stop();
  });

  test("a field-selected watch sees a pod enter and leave the selection", async () => {
    await core.createNamespacedPod({ namespace: "default", body: podManifest("arriving", undefined) });
    const recorder = new WatchRecorder();
    await recorder.start(nodeConfig, "/api/v1/pods", { fieldSelector: `spec.nodeName=${nodeName},metadata.name=arriving` });
    await core.createNamespacedPodBinding({
      namespace: "default",
      name: "arriving",
      body: { metadata: { name: "arriving" }, target: { kind: "Node", name: nodeName } },
    });
    const added = await recorder.next();
    expect([added.type, nameOf(added.object)]).toEqual(["ADDED", "arriving"]);
    await cluster.admin.remove("pods", "arriving");
    expect((await recorder.next()).type).toBe("DELETED");
    recorder.stop();
  });

  test("a resourceVersion older than the retained history gets an ERROR event with 410 Gone", async () => {
    const list = await core.listNamespacedConfigMap({ namespace: "default" });
    await core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name: "churn" } } });
    await cluster.admin.compact();
    const recorder = new WatchRecorder();
    await recorder.start(nodeConfig, "/api/v1/namespaces/default/configmaps", { resourceVersion: list.metadata?.resourceVersion ?? "" });
    const error = await recorder.next();
    expect(error.type).toBe("ERROR");
    expect(error.object["code"]).toBe(410);
    expect(error.object["reason"]).toBe("Expired");
    expect(String(error.object["message"])).toStartWith(`too old resource version: ${list.metadata?.resourceVersion}`);
    await recorder.ended;
  });

  test("compaction under an open watch ends it with 410", async () => {
    const recorder = new WatchRecorder();
    await recorder.start(nodeConfig, "/api/v1/namespaces/default/configmaps", {});
    await cluster.admin.compact({ expireWatches: true });
    let event = await recorder.next();
    while (event.type === "ADDED") event = await recorder.next();
    expect(event.type).toBe("ERROR");
    expect(event.object["code"]).toBe(410);
    await recorder.ended;
  });

  test("a client-node informer relists after its watch expires with 410", async () => {
    await core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name: "informed-1" } } });
    const seen: string[] = [];
    const waiters = new Map<string, () => void>();
    const added = (name: string): Promise<void> =>
      seen.includes(name) ? Promise.resolve() : new Promise((resolve) => waiters.set(name, resolve));
    let connects = 0;
    const informer = new ListWatch<V1ConfigMap>(
      "/api/v1/namespaces/default/configmaps",
      new Watch(nodeConfig),
      () => core.listNamespacedConfigMap({ namespace: "default" }),
      false,
    );
    informer.on("connect", () => {
      connects += 1;
    });
    informer.on("add", (configMap) => {
      const name = configMap.metadata?.name ?? "";
      seen.push(name);
      waiters.get(name)?.();
    });
    await informer.start();
    await added("informed-1");
    const since = (await cluster.admin.requests()).length;
    await cluster.admin.compact({ expireWatches: true });
    await core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name: "informed-2" } } });
    await added("informed-2");
    await informer.stop();
    expect(connects).toBeGreaterThanOrEqual(2);
    const relisted = (await cluster.admin.requests(since)).some((entry) => entry.resource === "configmaps" && entry.verb === "list" && entry.user === nodeUser);
    expect(relisted).toBe(true);
  });

  test("timeoutSeconds ends a watch after a final bookmark; the legacy /watch/ path works", async () => {
    await core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name: "legacy-watched" } } });
    const recorder = new WatchRecorder();
    await recorder.start(nodeConfig, "/api/v1/watch/namespaces/default/configmaps/legacy-watched", { timeoutSeconds: 1, allowWatchBookmarks: true });
    const added = await recorder.next();
    expect([added.type, nameOf(added.object)]).toEqual(["ADDED", "legacy-watched"]);
    expect((await recorder.next()).type).toBe("BOOKMARK");
    await recorder.ended;
  });
});

describe("collections", () => {
  test("limit and continue page through a list at one resourceVersion", async () => {
    for (const name of ["page-a", "page-b", "page-c"]) {
      await core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name, labels: { paged: "yes" } } } });
    }
    const first = await core.listNamespacedConfigMap({ namespace: "default", labelSelector: "paged=yes", limit: 2 });
    expect(first.items.map((item) => item.metadata?.name)).toEqual(["page-a", "page-b"]);
    expect(first.metadata?.remainingItemCount).toBe(1);
    const rest = await core.listNamespacedConfigMap({ namespace: "default", labelSelector: "paged=yes", limit: 2, _continue: first.metadata?._continue ?? "" });
    expect(rest.items.map((item) => item.metadata?.name)).toEqual(["page-c"]);
    expect(rest.metadata?._continue).toBeUndefined();
    expect(rest.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion ?? "");
  });

  test("deletecollection removes what the selector matches", async () => {
    await adminCore.deleteCollectionNamespacedConfigMap({ namespace: "default", labelSelector: "paged=yes" });
    const left = await core.listNamespacedConfigMap({ namespace: "default", labelSelector: "paged=yes" });
    expect(left.items).toHaveLength(0);
  });
});

describe("nodes", () => {
  const initialNode: V1Node = {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: nodeName, labels: { "kubernetes.io/hostname": nodeName } },
    status: {
      conditions: [
        { type: "Ready", status: "False", reason: "KubeletNotReady", message: "starting" },
        { type: "MemoryPressure", status: "False", reason: "KubeletHasSufficientMemory", message: "fine" },
      ],
      addresses: [
        { type: "InternalIP", address: "10.0.0.1" },
        { type: "Hostname", address: nodeName },
      ],
    },
  };

  test("a strategic merge patch of node status merges conditions by type and addresses by type", async () => {
    const created = await core.createNode({ body: initialNode });
    expect(created.status?.conditions).toHaveLength(2);
    const patched = await core.patchNodeStatus(
      {
        name: nodeName,
        body: {
          status: {
            conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status" }],
            addresses: [{ type: "InternalIP", address: "10.0.0.2" }],
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    expect(patched.status?.conditions?.map((condition) => [condition.type, condition.status])).toEqual([
      ["Ready", "True"],
      ["MemoryPressure", "False"],
    ]);
    expect(patched.status?.addresses?.map((address) => address.address)).toEqual(["10.0.0.2", nodeName]);
  });

  test("a JSON merge patch replaces lists wholesale, as RFC 7386 says", async () => {
    const patched = await core.patchNodeStatus(
      { name: nodeName, body: { status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "again" }] } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(patched.status?.conditions?.map((condition) => condition.type)).toEqual(["Ready"]);
  });

  test("writes to the node itself leave status alone; an unchanged write keeps the resourceVersion", async () => {
    const before = await core.readNode({ name: nodeName });
    const labelled = await core.patchNode(
      { name: nodeName, body: { metadata: { labels: { role: "vks" } }, status: { conditions: [] } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(labelled.metadata?.labels?.["role"]).toBe("vks");
    expect(labelled.status?.conditions).toEqual(before.status?.conditions ?? []);
    const again = await core.patchNode(
      { name: nodeName, body: { metadata: { labels: { role: "vks" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(again.metadata?.resourceVersion).toBe(labelled.metadata?.resourceVersion ?? "");
  });

  test("an unknown patch content type is 415", async () => {
    const failure = await failureOf(
      core.patchNode({ name: nodeName, body: { metadata: {} } }, setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply)),
    );
    expect(failure.code).toBe(415);
    expect(failure.status["reason"]).toBe("UnsupportedMediaType");
  });
});

describe("leases", () => {
  const leaseNamespace = "kube-node-lease";

  function leaseManifest(renewTime: Date): V1Lease {
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: nodeName, namespace: leaseNamespace },
      spec: { holderIdentity: nodeName, leaseDurationSeconds: 40, renewTime },
    };
  }

  test("create and renew with MicroTime; a stale renewal conflicts", async () => {
    const created = await coordination.createNamespacedLease({ namespace: leaseNamespace, body: leaseManifest(new V1MicroTime("2025-01-01T00:00:00.123Z")) });
    // client-node has no deserializer for MicroTime: what it reads back is the wire string.
    expect(String(created.spec?.renewTime)).toBe("2025-01-01T00:00:00.123000Z");

    const renewed = await coordination.replaceNamespacedLease({
      namespace: leaseNamespace,
      name: nodeName,
      body: { ...created, spec: { ...created.spec, renewTime: new V1MicroTime("2025-01-01T00:00:10.000Z") } },
    });
    expect(Number(renewed.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));

    const stale = await failureOf(
      coordination.replaceNamespacedLease({
        namespace: leaseNamespace,
        name: nodeName,
        body: { ...created, spec: { ...created.spec, renewTime: new V1MicroTime("2025-01-01T00:00:20.000Z") } },
      }),
    );
    expect(stale.code).toBe(409);
    expect(stale.status["message"]).toBe(
      `Operation cannot be fulfilled on leases.coordination.k8s.io "${nodeName}": the object has been modified; please apply your changes to the latest version and try again`,
    );
  });

  test("a renewTime without six fractional digits is rejected as the real decoder does", async () => {
    const failure = await failureOf(
      coordination.createNamespacedLease({
        namespace: leaseNamespace,
        body: { ...leaseManifest(new Date("2025-01-01T00:00:00.123Z")), metadata: { name: "plain-date", namespace: leaseNamespace } },
      }),
    );
    expect(failure.code).toBe(400);
    expect(failure.status["message"]).toBe(
      'Lease in version "v1" cannot be handled as a Lease: parsing time "2025-01-01T00:00:00.123Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".123Z" as ".000000"',
    );
  });

  test("a lease update must carry a resourceVersion", async () => {
    const current = await coordination.readNamespacedLease({ namespace: leaseNamespace, name: nodeName });
    const failure = await failureOf(
      coordination.replaceNamespacedLease({
        namespace: leaseNamespace,
        name: nodeName,
        body: { ...current, metadata: { name: nodeName, namespace: leaseNamespace } },
      }),
    );
    expect(failure.code).toBe(422);
    expect(failure.status["message"]).toBe(
      `leases.coordination.k8s.io "${nodeName}" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update`,
    );
  });
});

describe("node authorization (opt-in)", () => {
  beforeAll(async () => {
    await cluster.admin.setNodeAuthorization(true);
    await cluster.admin.create("nodes", { metadata: { name: "node-b" } });
    await cluster.admin.create("pods", podManifest("theirs", "node-b") as unknown as JsonObject);
    await cluster.admin.create("secrets", { metadata: { name: "used" }, stringData: { password: "hunter2" } });
    await cluster.admin.create("secrets", { metadata: { name: "unused" }, stringData: { password: "hunter3" } });
    const user = podManifest("secret-user", nodeName) as unknown as JsonObject;
    user["spec"] = { ...(user["spec"] as JsonObject), volumes: [{ name: "creds", secret: { secretName: "used" } }] };
    await cluster.admin.create("pods", user);
  });

  afterAll(async () => {
    await cluster.admin.setNodeAuthorization(false);
  });

  test("a node may write only its own Node", async () => {
    const own = await core.patchNodeStatus(
      { name: nodeName, body: { status: { conditions: [{ type: "Ready", status: "True" }] } } },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    expect(own.metadata?.name).toBe(nodeName);
    const other = await failureOf(
      core.patchNodeStatus({ name: "node-b", body: { status: {} } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch)),
    );
    expect(other.code).toBe(403);
    expect(other.status["message"]).toBe(`nodes "node-b" is forbidden: node "${nodeName}" is not allowed to modify node "node-b"`);
  });

  test("a node creates only mirror pods and writes only pods/status of its own pods", async () => {
    const created = await failureOf(core.createNamespacedPod({ namespace: "default", body: podManifest("not-mirror", nodeName) }));
    expect(created.status["message"]).toBe(
      `pods "not-mirror" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "${nodeName}" can only create mirror pods`,
    );
    const patched = await failureOf(
      core.patchNamespacedPod({ namespace: "default", name: "secret-user", body: { metadata: { labels: { x: "y" } } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch)),
    );
    expect(patched.status["message"]).toBe(
      `pods "secret-user" is forbidden: User "${nodeUser}" cannot patch resource "pods" in API group "" in the namespace "default"`,
    );
    const theirs = await failureOf(
      core.patchNamespacedPodStatus({ namespace: "default", name: "theirs", body: { status: { phase: "Running" } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch)),
    );
    expect(theirs.status["message"]).toBe(`pods "theirs" is forbidden: node "${nodeName}" can only update pod status for pods with spec.nodeName set to itself`);
    const mine = await core.patchNamespacedPodStatus(
      { namespace: "default", name: "secret-user", body: { status: { phase: "Running" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(mine.status?.phase).toBe("Running");
  });

  test("a node reads only the secrets its pods reference", async () => {
    const used = await core.readNamespacedSecret({ namespace: "default", name: "used" });
    expect(used.data?.["password"]).toBe(Buffer.from("hunter2").toString("base64"));
    const unused = await failureOf(core.readNamespacedSecret({ namespace: "default", name: "unused" }));
    expect(unused.status["message"]).toBe(
      `secrets "unused" is forbidden: User "${nodeUser}" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node '${nodeName}' and this object`,
    );
    const listed = await failureOf(core.listNamespacedSecret({ namespace: "default" }));
    expect(listed.code).toBe(403);
    const watchedByName = await core.listNamespacedSecret({ namespace: "default", fieldSelector: "metadata.name=used" });
    expect(watchedByName.items).toHaveLength(1);
  });

  test("a node holds only its own Lease", async () => {
    const other = await failureOf(
      coordination.createNamespacedLease({
        namespace: "kube-node-lease",
        body: { metadata: { name: "node-b" }, spec: { holderIdentity: "node-b", renewTime: new V1MicroTime() } },
      }),
    );
    expect(other.status["message"]).toBe('leases.coordination.k8s.io "node-b" is forbidden: can only access node lease with the same name as the requesting node');
  });
});

describe("events and outages", () => {
  test("node events live in default; a namespace mismatch is invalid", async () => {
    const event = await core.createNamespacedEvent({
      namespace: "default",
      body: {
        metadata: { generateName: `${nodeName}.` },
        involvedObject: { kind: "Node", name: nodeName, uid: nodeName },
        reason: "Starting",
        message: "Starting vks.",
        type: "Normal",
        source: { component: "vks", host: nodeName },
        count: 1,
      },
    });
    expect(event.metadata?.name).toStartWith(`${nodeName}.`);
    const listed = await core.listNamespacedEvent({ namespace: "default", fieldSelector: "involvedObject.kind=Node,reason=Starting" });
    expect(listed.items).toHaveLength(1);

    const mismatch = await failureOf(
      core.createNamespacedEvent({
        namespace: "default",
        body: { metadata: { name: "pod-event" }, involvedObject: { kind: "Pod", name: "x", namespace: "kube-system" }, reason: "Pulled" },
      }),
    );
    expect(mismatch.code).toBe(422);
    expect(mismatch.status["message"]).toBe('Event "pod-event" is invalid: involvedObject.namespace: Invalid value: "kube-system": does not match event.namespace');
  });

  test("an outage refuses connections until restored, on the same port", async () => {
    await cluster.admin.outage("refuse");
    let failed: unknown;
    try {
      await core.listNode();
    } catch (error) {
      failed = error;
    }
    expect(failed).toBeDefined();
    expect(failed instanceof ApiException).toBe(false);
    await cluster.admin.restore();
    const nodes = await core.listNode();
    expect(nodes.items.length).toBeGreaterThan(0);
  });

  test("a resetting server drops connections until restored", async () => {
    await cluster.admin.outage("reset");
    let failed: unknown;
    try {
      await core.listNode();
    } catch (error) {
      failed = error;
    }
    await cluster.admin.restore();
    expect(failed).toBeDefined();
    expect(failed instanceof ApiException).toBe(false);
    expect((await core.listNode()).items.length).toBeGreaterThan(0);
  });

  test("an unavailable server answers 503", async () => {
    await cluster.admin.outage("unavailable");
    try {
      const failure = await failureOf(core.listNode());
      expect(failure.code).toBe(503);
    } finally {
      await cluster.admin.restore();
    }
  });
});

describe("admin helpers", () => {
  test("waitFor resolves once another client has made the change", async () => {
    await cluster.admin.create("pods", podManifest("awaited", nodeName) as unknown as JsonObject);
    const waiting = cluster.admin.waitFor("pods", "awaited", "default", (pod) => {
      const status = pod?.["status"];
      return isJsonObject(status) && status["phase"] === "Running";
    });
    await core.patchNamespacedPodStatus(
      { namespace: "default", name: "awaited", body: { status: { phase: "Running" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const running = await waiting;
    expect(nameOf(running ?? {})).toBe("awaited");
  });

  test("waitFor survives its watch being closed and sees a deletion", async () => {
    await cluster.admin.create("configmaps", { metadata: { name: "doomed" } });
    const openBefore = (await cluster.admin.state()).openWatches;
    const gone = cluster.admin.waitFor("configmaps", "doomed", "default", (configMap) => configMap === undefined);
    while ((await cluster.admin.state()).openWatches === openBefore) await Bun.sleep(5);
    await cluster.admin.closeWatches();
    await core.deleteNamespacedConfigMap({ namespace: "default", name: "doomed" });
    expect(await gone).toBeUndefined();
  });

  test("put bypasses validation, and watchers see it", async () => {
    const stored = await cluster.admin.put({ apiVersion: "v1", kind: "Pod", metadata: { name: "Raw_Pod", namespace: "default" }, spec: {} });
    expect(isJsonObject(stored["metadata"]) && stored["metadata"]["uid"]).toBeTruthy();
    await cluster.admin.remove("pods", "Raw_Pod");
  });
});

describe("selectors and MicroTime in isolation", () => {
  test("label selectors follow the apimachinery grammar", () => {
    const selector = parseLabelSelector("app=web, tier notin (db), !legacy, env");
    expect(labelsMatch(selector, { app: "web", tier: "front", env: "prod" })).toBe(true);
    expect(labelsMatch(selector, { app: "web", tier: "db", env: "prod" })).toBe(false);
    expect(labelsMatch(selector, { app: "web", env: "prod", legacy: "1" })).toBe(false);
    expect(() => parseLabelSelector("app in web")).toThrow();
  });

  test("field selectors split on unescaped commas", () => {
    expect(parseFieldSelector("metadata.name=a\\,b,spec.nodeName!=n").requirements).toEqual([
      { field: "metadata.name", negated: false, value: "a,b" },
      { field: "spec.nodeName", negated: true, value: "n" },
    ]);
  });

  test("MicroTime needs exactly six fractional digits", () => {
    expect(microTimeProblem("2025-01-01T00:00:00.000000Z")).toBeUndefined();
    expect(microTimeProblem("2025-01-01T00:00:00.000000+02:00")).toBeUndefined();
    expect(microTimeProblem("2025-01-01T00:00:00Z")).toContain('cannot parse "Z" as ".000000"');
    expect(microTimeProblem("2025-01-01T00:00:00.1234567Z")).toBeDefined();
  });
});

test("the kubeconfigs name the node and admin users", () => {
  expect(loadConfig(cluster.kubeconfigPath).getCurrentUser()?.name).toBe(nodeUser);
  expect(loadConfig(cluster.adminKubeconfigPath).getCurrentUser()?.name).toBe("vks-test-admin");
});
