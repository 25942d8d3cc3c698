// TokenReview and SubjectAccessReview as a kubelet asks them (as its node identity, with the Node
// authorizer on): who a bearer token is, and whether a user may do something.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ApiException, AuthenticationV1Api, AuthorizationV1Api, KubeConfig, type V1SubjectAccessReviewSpec } from "@kubernetes/client-node";
import { startTestApiServer, type RunningTestApiServer } from "./client.ts";
import { isJsonObject, parseJson, type JsonObject } from "./json.ts";

let cluster: RunningTestApiServer;
let authentication: AuthenticationV1Api;
let authorization: AuthorizationV1Api;

async function failureOf(call: Promise<unknown>): Promise<{ code: number; status: JsonObject }> {
  try {
    await call;
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    const parsed = typeof error.body === "string" ? parseJson(error.body) : undefined;
    return { code: error.code, status: isJsonObject(parsed) ? parsed : {} };
  }
  throw new Error("expected the call to fail");
}

/** The status of a TokenReview (through the admin port), read from the wire: client-node drops unset fields. */
async function reviewToken(token: string, audiences?: string[]): Promise<JsonObject> {
  const response = await fetch(`${cluster.adminUrl}/apis/authentication.k8s.io/v1/tokenreviews`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token, ...(audiences === undefined ? {} : { audiences }) } }),
  });
  expect(response.status).toBe(201);
  const body = (await response.json()) as JsonObject;
  return isJsonObject(body["status"]) ? body["status"] : {};
}

async function review(spec: V1SubjectAccessReviewSpec): Promise<{ allowed: boolean; denied?: boolean; reason?: string }> {
  const result = await authorization.createSubjectAccessReview({ body: { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec } });
  return { allowed: result.status?.allowed ?? false, ...(result.status?.denied === undefined ? {} : { denied: result.status.denied }), ...(result.status?.reason === undefined ? {} : { reason: result.status.reason }) };
}

beforeAll(async () => {
  cluster = await startTestApiServer({
    nodeName: "node-a",
    nodeAuthorization: true,
    tokens: [{ token: "robot-token", user: "robot", groups: ["robots"] }],
    allowRules: [{ name: "stats-readers", users: ["stats-reader"], verbs: ["get"], resources: ["nodes/stats", "nodes/proxy"] }],
  });
  const config = new KubeConfig();
  config.loadFromFile(cluster.kubeconfigPath);
  authentication = config.makeApiClient(AuthenticationV1Api);
  authorization = config.makeApiClient(AuthorizationV1Api);
});

afterAll(async () => {
  await cluster?.stop();
});

describe("TokenReview", () => {
  test("a node may review tokens; a known token comes back authenticated with its user and the API audiences", async () => {
    const result = await authentication.createTokenReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: "robot-token" } } });
    expect(result.status?.authenticated).toBe(true);
    expect(result.status?.user).toEqual({ username: "robot", groups: ["robots", "system:authenticated"] });
    expect(result.status?.audiences).toEqual(["https://kubernetes.default.svc.cluster.local"]);
  });

  test("an unknown token is not an error but an unauthenticated review", async () => {
    expect(await reviewToken("no-such-token")).toEqual({ user: {}, error: "invalid bearer token" });
  });

  test("audiences: a static token answers only for the API audiences; a token with its own audiences for those", async () => {
    expect(await reviewToken("robot-token", ["https://kubernetes.default.svc.cluster.local", "other"])).toMatchObject({
      authenticated: true,
      audiences: ["https://kubernetes.default.svc.cluster.local"],
    });
    expect(await reviewToken("robot-token", ["vault"])).toEqual({ user: {}, error: "invalid bearer token" });
    await cluster.admin.setTokens([
      { token: "robot-token", user: "robot", groups: ["robots"] },
      { token: "vault-token", user: "vault-client", uid: "1234", audiences: ["vault"], extra: { scopes: ["read"] } },
    ]);
    expect(await reviewToken("vault-token", ["vault"])).toEqual({
      authenticated: true,
      user: { username: "vault-client", uid: "1234", groups: ["system:authenticated"], extra: { scopes: ["read"] } },
      audiences: ["vault"],
    });
    // Not meant for the API server, so it does not authenticate requests to it either.
    const direct = await fetch(`${cluster.url}/api/v1/namespaces`, { headers: { Authorization: "Bearer vault-token" }, tls: { rejectUnauthorized: false } });
    expect(direct.status).toBe(401);
  });

  test("an empty token is a bad request; tokenreviews cannot be listed", async () => {
    const empty = await failureOf(authentication.createTokenReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: "" } } }));
    expect(empty.code).toBe(400);
    expect(empty.status["message"]).toBe("token is required for TokenReview in authentication");
    const list = await fetch(`${cluster.adminUrl}/apis/authentication.k8s.io/v1/tokenreviews`);
    expect(list.status).toBe(405);
  });
});

describe("SubjectAccessReview", () => {
  test("allow rules answer like RBAC bindings, with RBAC's reason", async () => {
    expect(await review({ user: "stats-reader", groups: ["system:authenticated"], resourceAttributes: { verb: "get", resource: "nodes", subresource: "stats", name: "node-a" } })).toEqual({
      allowed: true,
      reason: 'RBAC: allowed by ClusterRoleBinding "stats-readers" of ClusterRole "stats-readers" to User "stats-reader"',
    });
    expect(await review({ user: "stats-reader", resourceAttributes: { verb: "create", resource: "nodes", subresource: "proxy", name: "node-a" } })).toEqual({ allowed: false });
    expect(await review({ user: "viewer", groups: ["system:authenticated"], resourceAttributes: { verb: "get", resource: "nodes", subresource: "proxy" } })).toEqual({ allowed: false });
    expect(await review({ user: "anyone", groups: ["system:masters"], resourceAttributes: { verb: "delete", resource: "nodes" } })).toEqual({ allowed: true });
  });

  test("groups, wildcards, namespaces and non-resource URLs", async () => {
    await cluster.admin.setAllowRules([
      { name: "metrics", groups: ["monitoring"], verbs: ["get"], nonResourceURLs: ["/metrics", "/stats/*"] },
      { name: "pod-logs", users: ["dev"], verbs: ["*"], resources: ["pods/log", "*/exec"], namespaces: ["team"] },
      { name: "one-node", users: ["dev"], verbs: ["get"], apiGroups: [""], resources: ["nodes"], resourceNames: ["node-a"] },
    ]);
    try {
      expect(await review({ user: "prom", groups: ["monitoring"], nonResourceAttributes: { verb: "get", path: "/stats/summary" } })).toEqual({
        allowed: true,
        reason: 'RBAC: allowed by ClusterRoleBinding "metrics" of ClusterRole "metrics" to Group "monitoring"',
      });
      expect(await review({ user: "prom", groups: ["monitoring"], nonResourceAttributes: { verb: "get", path: "/metricsx" } })).toEqual({ allowed: false });
      expect(await review({ user: "dev", resourceAttributes: { namespace: "team", verb: "create", resource: "pods", subresource: "exec", name: "p" } })).toEqual({
        allowed: true,
        reason: 'RBAC: allowed by RoleBinding "pod-logs/team" of Role "pod-logs" to User "dev"',
      });
      expect(await review({ user: "dev", resourceAttributes: { namespace: "other", verb: "get", resource: "pods", subresource: "log" } })).toEqual({ allowed: false });
      expect((await review({ user: "dev", resourceAttributes: { verb: "get", resource: "nodes", name: "node-a" } })).allowed).toBe(true);
      expect((await review({ user: "dev", resourceAttributes: { verb: "get", resource: "nodes", name: "node-b" } })).allowed).toBe(false);
      expect((await review({ user: "dev", resourceAttributes: { verb: "get", group: "apps", resource: "nodes", name: "node-a" } })).allowed).toBe(false);
      await cluster.admin.setDenyRules([{ users: ["dev"], resources: ["nodes"] }]);
      expect((await review({ user: "dev", resourceAttributes: { verb: "get", resource: "nodes", name: "node-a" } })).allowed).toBe(false);
    } finally {
      await cluster.admin.setDenyRules([]);
    }
  });

  test("node identities go through the Node authorizer first, which gives its reasons", async () => {
    await cluster.admin.create("secrets", { metadata: { name: "mounted" }, stringData: { key: "value" } });
    await cluster.admin.create("pods", {
      metadata: { name: "mounter" },
      spec: { nodeName: "node-a", containers: [{ name: "main", image: "docker.io/library/busybox:1.36" }], volumes: [{ name: "s", secret: { secretName: "mounted" } }] },
    });
    const node = { user: "system:node:node-a", groups: ["system:nodes", "system:authenticated"] };
    expect(await review({ ...node, resourceAttributes: { namespace: "default", verb: "get", resource: "secrets", name: "mounted" } })).toEqual({ allowed: true });
    expect(await review({ ...node, resourceAttributes: { namespace: "default", verb: "get", resource: "secrets", name: "other" } })).toEqual({
      allowed: false,
      reason: "no relationship found between node 'node-a' and this object",
    });
    expect(await review({ ...node, resourceAttributes: { verb: "create", group: "authentication.k8s.io", resource: "tokenreviews" } })).toEqual({ allowed: true });
  });

  test("the spec must name a subject and exactly one kind of attributes", async () => {
    const noSubject = await failureOf(authorization.createSubjectAccessReview({ body: { spec: { resourceAttributes: { verb: "get", resource: "pods" } } } }));
    expect(noSubject.code).toBe(422);
    expect(noSubject.status["message"]).toBe('SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": at least one of user or group must be specified');
    const both = await failureOf(
      authorization.createSubjectAccessReview({ body: { spec: { user: "u", resourceAttributes: { verb: "get" }, nonResourceAttributes: { verb: "get", path: "/x" } } } }),
    );
    expect(String(both.status["message"])).toContain("spec.nonResourceAttributes: Invalid value:");
    expect(String(both.status["message"])).toContain("cannot be specified in combination with resourceAttributes");
  });
});
