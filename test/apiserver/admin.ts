// The admin endpoint: a plain-HTTP port through which a test process that cannot host the server
// itself (Bun tests, since the server needs Node) drives a TestApiServer.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { BearerToken, DenyRule } from "./auth.ts";
import { adminUser } from "./handler.ts";
import { isJsonObject, parseJson, type JsonValue } from "./json.ts";
import { adminRoutes, type ServerState } from "./protocol.ts";
import type { AllowRule } from "./rbac.ts";
import type { OutageMode, TestApiServer } from "./server.ts";
import { ApiError } from "./status.ts";

const outageModes: readonly OutageMode[] = ["refuse", "reset", "unavailable"];

async function readJson(request: IncomingMessage): Promise<JsonValue | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  const text = Buffer.concat(chunks).toString("utf8");
  return text.trim() === "" ? null : parseJson(text);
}

function reply(response: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body ?? null);
  response.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  response.end(text);
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function toDenyRule(value: JsonValue): DenyRule {
  if (!isJsonObject(value)) throw new Error("a deny rule must be an object");
  const rule: DenyRule = {};
  for (const key of ["users", "groups", "verbs", "resources", "namespaces", "names"] as const) {
    const field = value[key];
    if (field === undefined) continue;
    if (!isStringList(field)) throw new Error(`deny rule field ${key} must be a list of strings`);
    rule[key] = field;
  }
  return rule;
}

function toAllowRule(value: JsonValue): AllowRule {
  if (!isJsonObject(value)) throw new Error("an allow rule must be an object");
  if (!isStringList(value["verbs"])) throw new Error("an allow rule needs verbs, a list of strings");
  const rule: AllowRule = { verbs: value["verbs"] };
  if (value["name"] !== undefined) {
    if (typeof value["name"] !== "string") throw new Error("allow rule field name must be a string");
    rule.name = value["name"];
  }
  for (const key of ["users", "groups", "apiGroups", "resources", "resourceNames", "namespaces", "nonResourceURLs"] as const) {
    const field = value[key];
    if (field === undefined) continue;
    if (!isStringList(field)) throw new Error(`allow rule field ${key} must be a list of strings`);
    rule[key] = field;
  }
  return rule;
}

function toBearerToken(value: JsonValue): BearerToken {
  if (!isJsonObject(value) || typeof value["token"] !== "string" || typeof value["user"] !== "string") {
    throw new Error("a token needs string fields token and user");
  }
  const token: BearerToken = { token: value["token"], user: value["user"] };
  for (const key of ["groups", "audiences"] as const) {
    const field = value[key];
    if (field === undefined) continue;
    if (!isStringList(field)) throw new Error(`token ${key} must be a list of strings`);
    token[key] = field;
  }
  if (value["uid"] !== undefined) {
    if (typeof value["uid"] !== "string") throw new Error("token uid must be a string");
    token.uid = value["uid"];
  }
  const extra = value["extra"];
  if (extra !== undefined) {
    if (!isJsonObject(extra) || !Object.values(extra).every(isStringList)) throw new Error("token extra must map names to lists of strings");
    token.extra = extra as Record<string, string[]>;
  }
  return token;
}

export class AdminEndpoint {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private port = 0;

  constructor(private readonly apiServer: TestApiServer) {
    this.server = createServer((request, response) => {
      this.route(request, response).catch((error: unknown) => {
        if (!response.headersSent) reply(response, 400, { error: error instanceof Error ? error.message : String(error) });
        else response.destroy();
      });
    });
    // Exec, attach and port-forward through the admin port, as a cluster admin.
    this.server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if ((request.url ?? "").startsWith("/admin/")) {
        socket.destroy();
        return;
      }
      this.apiServer.serveUpgrade(request, socket, head, adminUser);
    });
    // Upgraded connections leave the HTTP server's bookkeeping, so stop() closes them itself.
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  async start(host: string, port: number): Promise<{ url: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    return { url: `http://${host}:${this.port}`, port: this.port };
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://admin.invalid");
    const method = request.method ?? "GET";
    const server = this.apiServer;
    if (!url.pathname.startsWith("/admin/")) {
      server.serve(request, response, adminUser);
      return;
    }
    switch (`${method} ${url.pathname}`) {
      case `GET ${adminRoutes.state}`: {
        const state: ServerState = { revision: server.revision(), available: server.isAvailable(), openWatches: server.openWatchCount() };
        reply(response, 200, state);
        return;
      }
      case `POST ${adminRoutes.compact}`: {
        const body = await readJson(request);
        server.compactHistory({ expireWatches: isJsonObject(body) && body["expireWatches"] === true });
        reply(response, 200, { revision: server.revision() });
        return;
      }
      case `POST ${adminRoutes.availability}`: {
        const body = await readJson(request);
        if (!isJsonObject(body) || typeof body["available"] !== "boolean") throw new Error("expected {available: boolean, mode?}");
        const mode = body["mode"] ?? "refuse";
        const outageMode = outageModes.find((candidate) => candidate === mode);
        if (outageMode === undefined) throw new Error(`mode must be one of ${outageModes.join(", ")}`);
        await server.setAvailable(body["available"], outageMode);
        reply(response, 200, { available: server.isAvailable() });
        return;
      }
      case `POST ${adminRoutes.bookmarks}`:
        server.sendBookmarks();
        reply(response, 200, {});
        return;
      case `POST ${adminRoutes.closeWatches}`:
        server.closeWatches();
        reply(response, 200, {});
        return;
      case `GET ${adminRoutes.requests}`: {
        const since = Number(url.searchParams.get("since") ?? "0");
        reply(response, 200, server.requests().filter((record) => record.sequence > since));
        return;
      }
      case `PUT ${adminRoutes.objects}`: {
        const body = await readJson(request);
        if (!isJsonObject(body)) throw new Error("expected an object");
        reply(response, 200, server.putObject(body));
        return;
      }
      case `DELETE ${adminRoutes.objects}`: {
        const resource = url.searchParams.get("resource") ?? "";
        const removed = server.removeObject(resource, url.searchParams.get("namespace") ?? "", url.searchParams.get("name") ?? "");
        reply(response, removed === undefined ? 404 : 200, removed ?? null);
        return;
      }
      case `PUT ${adminRoutes.denyRules}`: {
        const body = await readJson(request);
        if (!Array.isArray(body)) throw new Error("expected a list of deny rules");
        server.setDenyRules(body.map(toDenyRule));
        reply(response, 200, {});
        return;
      }
      case `PUT ${adminRoutes.tokens}`: {
        const body = await readJson(request);
        if (!Array.isArray(body)) throw new Error("expected a list of tokens");
        server.setTokens(body.map(toBearerToken));
        reply(response, 200, {});
        return;
      }
      case `PUT ${adminRoutes.nodeAuthorization}`: {
        const body = await readJson(request);
        if (!isJsonObject(body) || typeof body["enabled"] !== "boolean") throw new Error("expected {enabled: boolean}");
        server.setNodeAuthorization(body["enabled"]);
        reply(response, 200, {});
        return;
      }
      case `PUT ${adminRoutes.allowRules}`: {
        const body = await readJson(request);
        if (!Array.isArray(body)) throw new Error("expected a list of allow rules");
        server.setAllowRules(body.map(toAllowRule));
        reply(response, 200, {});
        return;
      }
      case `PUT ${adminRoutes.kubeletPreferredAddressTypes}`: {
        const body = await readJson(request);
        if (!isJsonObject(body) || !isStringList(body["types"])) throw new Error("expected {types: string[]}");
        server.setKubeletPreferredAddressTypes(body["types"]);
        reply(response, 200, {});
        return;
      }
      case `PUT ${adminRoutes.autoApproveKubeletServing}`: {
        const body = await readJson(request);
        if (!isJsonObject(body) || typeof body["enabled"] !== "boolean") throw new Error("expected {enabled: boolean}");
        server.setAutoApproveKubeletServing(body["enabled"]);
        reply(response, 200, {});
        return;
      }
      case `POST ${adminRoutes.certificateApproval}`: {
        const body = await readJson(request);
        const decision = isJsonObject(body) ? body["decision"] : undefined;
        if (!isJsonObject(body) || typeof body["name"] !== "string" || (decision !== "Approved" && decision !== "Denied")) {
          throw new Error('expected {name: string, decision: "Approved" | "Denied", reason?, message?}');
        }
        const reason = typeof body["reason"] === "string" ? body["reason"] : undefined;
        const message = typeof body["message"] === "string" ? body["message"] : undefined;
        try {
          reply(response, 200, server.decideCertificateRequest(body["name"], decision, adminUser, reason, message));
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          reply(response, error.code, error.status);
        }
        return;
      }
      case `PUT ${adminRoutes.historyLimit}`: {
        const body = await readJson(request);
        if (!isJsonObject(body) || typeof body["limit"] !== "number") throw new Error("expected {limit: number}");
        server.setHistoryLimit(body["limit"]);
        reply(response, 200, {});
        return;
      }
      default:
        reply(response, 404, { error: `no admin route ${method} ${url.pathname}` });
    }
  }
}
