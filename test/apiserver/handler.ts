// Serves one HTTP request against the registry: routing, authentication and authorization, body
// decoding, verb dispatch, and Status responses for every failure.
import type { IncomingMessage, ServerResponse } from "node:http";
import { authenticate, type BearerToken, type UserInfo } from "./auth.ts";
import { authorizeRequest, type AuthorizationPolicy } from "./authorizer.ts";
import type { UpgradeStream } from "./backend-proxy.ts";
import { serveConnect, type ConnectContext } from "./connect.ts";
import { discoveryDocument } from "./discovery.ts";
import { isJsonObject, numberAt, objectAt, parseJson, stringAt, type JsonObject, type JsonValue } from "./json.ts";
import type { DeleteOptions, Registry } from "./registry.ts";
import { connectSubresources, findResourceType, type ResourceType, type Subresource } from "./resources.ts";
import { reviewSubjectAccess, reviewToken } from "./reviews.ts";
import { parseRequest, type ResourceRequest } from "./routing.ts";
import { parseSelection } from "./selection.ts";
import { ApiError, badRequest, methodNotAllowed, pathNotFound, unauthorized, unknownError, unprocessable, unsupportedMediaType } from "./status.ts";
import { requestToken, type TokenIssuer } from "./token-request.ts";
import { checkDecodable } from "./validation.ts";
import type { WatchHub } from "./watch.ts";

/** What the request log keeps of each request, for tests that assert on how vks talks to the server. */
export interface RequestRecord {
  sequence: number;
  method: string;
  path: string;
  query: string;
  user: string | undefined;
  verb: string | undefined;
  resource: string | undefined;
  subresource: string | undefined;
  namespace: string | undefined;
  name: string | undefined;
  contentType: string | undefined;
  code: number;
}

export interface HandlerContext {
  registry: Registry;
  watches: WatchHub;
  tokens: () => readonly BearerToken[];
  apiAudiences: () => readonly string[];
  policy: AuthorizationPolicy;
  connect: ConnectContext;
  /** Issues service account tokens; undefined when the server has no signing key. */
  tokenIssuer: TokenIssuer | undefined;
  defaultWatchTimeoutSeconds: number | undefined;
  serverAddress: () => string;
  record: (entry: Omit<RequestRecord, "sequence">) => void;
}

/** Requests on the admin endpoint act as this user and skip authentication and authorization. */
export const adminUser: UserInfo = { name: "vks-test-admin", groups: ["system:masters", "system:authenticated"] };

// The real limit is 3 MiB; larger bodies are refused before decoding.
const maxBodyBytes = 3 * 1024 * 1024;
const jsonBodyTypes = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"];

function sendJson(response: ServerResponse, code: number, body: JsonValue): void {
  const text = JSON.stringify(body);
  response.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  response.end(text);
}

function sendError(response: ServerResponse, error: ApiError): void {
  sendJson(response, error.code, error.status);
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > maxBodyBytes) throw new ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728", {});
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function mediaTypeOf(request: IncomingMessage): string {
  return (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

async function readObjectBody(request: IncomingMessage): Promise<JsonObject> {
  const mediaType = mediaTypeOf(request);
  if (mediaType !== "application/json" && mediaType !== "") throw unsupportedMediaType(mediaType, jsonBodyTypes);
  const text = await readBody(request);
  const parsed = parseJson(text);
  if (!isJsonObject(parsed)) {
    throw badRequest(`couldn't get version/kind; json parse error: ${text.trim() === "" ? "unexpected end of JSON input" : "invalid JSON object"}`);
  }
  return parsed;
}

function parseInteger(query: URLSearchParams, key: string): number | undefined {
  const text = query.get(key);
  if (text === null || text === "") return undefined;
  if (!/^-?\d+$/.test(text)) throw badRequest(`invalid value for ${key}: ${text}`);
  return Number(text);
}

function isTrue(query: URLSearchParams, key: string): boolean {
  const value = query.get(key);
  return value === "true" || value === "1";
}

/** DeleteOptions from the query, overridden by a DeleteOptions body, as the real handler merges them. */
async function readDeleteOptions(request: IncomingMessage, query: URLSearchParams): Promise<DeleteOptions> {
  const options: DeleteOptions = {};
  const querySeconds = parseInteger(query, "gracePeriodSeconds");
  if (querySeconds !== undefined) options.gracePeriodSeconds = querySeconds;
  const text = await readBody(request);
  if (text.trim() === "") return options;
  const body = parseJson(text);
  if (!isJsonObject(body)) throw badRequest("couldn't get version/kind; json parse error: invalid JSON object");
  if (body["kind"] !== undefined && body["kind"] !== "DeleteOptions") {
    throw badRequest(`the object provided is unrecognized (must be of type DeleteOptions): ${String(body["kind"])}`);
  }
  const bodySeconds = numberAt(body, "gracePeriodSeconds");
  if (bodySeconds !== undefined) options.gracePeriodSeconds = bodySeconds;
  const preconditions = objectAt(body, "preconditions");
  if (preconditions !== undefined) {
    const uid = stringAt(preconditions, "uid");
    const resourceVersion = stringAt(preconditions, "resourceVersion");
    options.preconditions = {
      ...(uid === undefined ? {} : { uid }),
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
    };
  }
  return options;
}

// Subresources that exist only to be created (POSTed to).
const createOnlySubresources = new Set(["binding", "token"]);

function resolveType(info: ResourceRequest): ResourceType {
  const type = findResourceType(info.group, info.version, info.resource);
  if (type === undefined) throw pathNotFound();
  if (info.subresource !== "" && !type.subresources.includes(info.subresource as Subresource)) throw pathNotFound();
  if (type.verbs !== undefined && info.subresource === "" && !type.verbs.includes(info.verb)) throw methodNotAllowed();
  if (createOnlySubresources.has(info.subresource) && info.verb !== "create") throw methodNotAllowed();
  const isNamespaceItself = type.resource === "namespaces";
  if (!type.namespaced && info.namespace !== "" && !isNamespaceItself) throw pathNotFound();
  if (type.namespaced && info.namespace === "") {
    if (info.name !== "") throw pathNotFound();
    if (info.verb !== "list" && info.verb !== "watch") throw methodNotAllowed();
  }
  return type;
}

async function dispatch(
  context: HandlerContext,
  info: ResourceRequest,
  type: ResourceType,
  user: UserInfo,
  request: IncomingMessage,
  response: ServerResponse,
  query: URLSearchParams,
): Promise<void> {
  const { registry } = context;
  const namespace = type.namespaced ? info.namespace : "";
  const { name, subresource } = info;
  switch (info.verb) {
    case "get":
      sendJson(response, 200, registry.get(type, namespace, name));
      return;
    case "list": {
      const selection = parseSelection(type, namespace, query, "");
      const limit = parseInteger(query, "limit");
      const continueToken = query.get("continue");
      const resourceVersion = query.get("resourceVersion");
      sendJson(response, 200, registry.list(selection, {
        ...(limit === undefined ? {} : { limit }),
        ...(continueToken === null ? {} : { continueToken }),
        ...(resourceVersion === null ? {} : { resourceVersion }),
      }));
      return;
    }
    case "watch": {
      const selection = parseSelection(type, namespace, query, name);
      const startRevision = registry.checkRevisionReached(query.get("resourceVersion") ?? undefined);
      const allowBookmarks = isTrue(query, "allowWatchBookmarks");
      const sendInitialEvents = isTrue(query, "sendInitialEvents");
      if (sendInitialEvents && (!allowBookmarks || query.get("resourceVersionMatch") !== "NotOlderThan")) {
        throw unprocessable("sendInitialEvents requires allowWatchBookmarks=true and resourceVersionMatch=NotOlderThan");
      }
      context.watches.open(
        {
          selection,
          startRevision: sendInitialEvents ? undefined : startRevision,
          allowBookmarks,
          sendInitialEvents,
          timeoutSeconds: parseInteger(query, "timeoutSeconds") ?? context.defaultWatchTimeoutSeconds,
        },
        response,
      );
      return;
    }
    case "create": {
      if (name !== "" && subresource === "binding") {
        sendJson(response, 201, registry.bind(type, namespace, name, await readObjectBody(request), user));
        return;
      }
      if (name !== "" && subresource === "token") {
        if (context.tokenIssuer === undefined) throw unknownError("the vks test API server was started without a key to sign tokens with");
        sendJson(response, 201, requestToken(context.tokenIssuer, type, namespace, name, await readObjectBody(request), user));
        return;
      }
      if (name !== "") throw methodNotAllowed();
      if (type.kind === "TokenReview" || type.kind === "SubjectAccessReview") {
        const body = await readObjectBody(request);
        checkDecodable(type, body);
        sendJson(response, 201, type.kind === "TokenReview" ? reviewToken(body, context.tokens(), context.apiAudiences()) : reviewSubjectAccess(body, context.policy));
        return;
      }
      sendJson(response, 201, registry.create(type, namespace, await readObjectBody(request), user));
      return;
    }
    case "update": {
      if (subresource === "binding") throw methodNotAllowed();
      const result = registry.update(type, namespace, name, await readObjectBody(request), subresource, user);
      sendJson(response, result.code, result.body);
      return;
    }
    case "patch": {
      if (subresource === "binding") throw methodNotAllowed();
      const contentType = request.headers["content-type"] ?? "";
      const text = await readBody(request);
      const patch = parseJson(text);
      if (patch === undefined) throw badRequest("error decoding patch: invalid JSON");
      sendJson(response, 200, registry.patch(type, namespace, name, contentType, patch, subresource, user));
      return;
    }
    case "delete": {
      if (subresource !== "") throw methodNotAllowed();
      const result = registry.delete(type, namespace, name, await readDeleteOptions(request, query), user);
      sendJson(response, result.code, result.body);
      return;
    }
    case "deletecollection": {
      const selection = parseSelection(type, namespace, query, "");
      sendJson(response, 200, registry.deleteCollection(selection, await readDeleteOptions(request, query), user));
      return;
    }
    default:
      throw methodNotAllowed();
  }
}

function serveNonResource(context: HandlerContext, method: string, path: string, response: ServerResponse): void {
  if (method !== "GET" && method !== "HEAD") throw methodNotAllowed();
  if (path === "/healthz" || path === "/livez" || path === "/readyz") {
    response.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
    response.end("ok");
    return;
  }
  const document = discoveryDocument(path, context.serverAddress());
  if (document === undefined) throw pathNotFound();
  sendJson(response, 200, document);
}

/**
 * Handles a request; `asUser` is set by the admin endpoint, which skips authentication and
 * authorization, and left undefined on the TLS port, which applies both. `upgrade` carries the raw
 * connection of a request that arrived as an HTTP upgrade (exec, attach, port-forward).
 */
export async function handleRequest(
  context: HandlerContext,
  request: IncomingMessage,
  response: ServerResponse,
  asUser: UserInfo | undefined,
  upgrade?: UpgradeStream,
): Promise<void> {
  const method = request.method ?? "GET";
  const url = new URL(request.url ?? "/", "https://apiserver.invalid");
  const info = parseRequest(method, url);
  const user = asUser ?? authenticate(request, context.tokens(), context.apiAudiences());
  let connectedCode: number | undefined;
  try {
    if (user === undefined) throw unauthorized();
    if (info.kind === "nonResource") {
      serveNonResource(context, method, info.path, response);
      return;
    }
    if (asUser === undefined) {
      const denial = authorizeRequest(context.policy, user, { ...info, name: info.authorizedName });
      if (denial !== undefined) throw denial;
    }
    const type = resolveType(info);
    if (connectSubresources.has(info.subresource)) {
      connectedCode = await serveConnect(context.connect, info, request, response, upgrade, url);
      return;
    }
    // Silently persisting a dry run would hide bugs; refusing it makes the gap visible.
    if (url.searchParams.has("dryRun")) throw badRequest("dryRun is not supported by the vks test API server");
    await dispatch(context, info, type, user, request, response, url.searchParams);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (!response.headersSent) sendError(response, error);
    else response.end();
  } finally {
    context.record({
      method,
      path: url.pathname,
      query: url.search,
      user: user?.name,
      verb: info.kind === "resource" ? info.verb : undefined,
      resource: info.kind === "resource" ? info.resource : undefined,
      subresource: info.kind === "resource" ? info.subresource : undefined,
      namespace: info.kind === "resource" ? info.namespace : undefined,
      name: info.kind === "resource" ? info.name : undefined,
      contentType: request.headers["content-type"],
      code: connectedCode ?? response.statusCode,
    });
  }
}
