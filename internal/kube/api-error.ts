/**
 * Every failed API call becomes a KubeApiError that names the request (verb, resource, object) and, for the
 * answers a user can act on (unreachable, 401, 403), says what to do. Callers branch on `status`.
 */
import { ApiException } from "@kubernetes/client-node";
import { ExitCode, VksError, errorMessage, type ExitCodeValue } from "../errors.ts";

/** What was being asked of the API server, as RBAC spells it. */
export interface ApiRequest {
  verb: "get" | "list" | "watch" | "create" | "update" | "patch" | "delete";
  /** Plural resource, with subresource after a slash: `pods/status`. */
  resource: string;
  /** API group; "" for core. */
  group?: string;
  namespace?: string;
  name?: string;
}

export class KubeApiError extends VksError {
  override readonly name = "KubeApiError";
  constructor(
    message: string,
    readonly request: ApiRequest,
    /** HTTP status; undefined when no answer came back (connection refused, TLS failure, timeout). */
    readonly status: number | undefined,
    /** The Status object's reason (`NotFound`, `Conflict`, `Expired`, …) when the server sent one. */
    readonly reason: string | undefined,
    options: { hint?: string; exitCode?: ExitCodeValue; cause?: unknown },
  ) {
    super(message, options);
  }

  get unreachable(): boolean {
    return this.status === undefined;
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 409;
}

export function isAlreadyExists(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 409 && err.reason === "AlreadyExists";
}

/** 410 Gone: a watch or list asked for a resourceVersion the server no longer has. */
export function isGone(err: unknown): boolean {
  return err instanceof KubeApiError && (err.status === 410 || err.reason === "Expired" || err.reason === "Gone");
}

/** Credentials or permissions: retrying cannot help, a human must act. */
export function isAccessDenied(err: unknown): boolean {
  return err instanceof KubeApiError && (err.status === 401 || err.status === 403);
}

interface StatusBody {
  message?: string;
  reason?: string;
}

function parseStatusBody(body: unknown): StatusBody {
  let value: unknown = body;
  if (typeof body === "string") {
    try {
      value = JSON.parse(body);
    } catch {
      return { message: body.trim() || undefined };
    }
  }
  if (typeof value !== "object" || value === null) return {};
  const record = value as Record<string, unknown>;
  return {
    message: typeof record.message === "string" ? record.message : undefined,
    reason: typeof record.reason === "string" ? record.reason : undefined,
  };
}

export function describeRequest(request: ApiRequest): string {
  const group = request.group ? `.${request.group}` : "";
  const object = request.name === undefined ? request.resource + group : `${request.resource}${group} ${request.name}`;
  const where = request.namespace === undefined ? "" : ` in namespace ${request.namespace}`;
  return `${request.verb} ${object}${where}`;
}

function rbacRule(request: ApiRequest): string {
  const scope = request.namespace === undefined ? "cluster-wide" : `in namespace ${request.namespace} (or cluster-wide)`;
  const group = request.group ? `API group "${request.group}"` : `the core API group`;
  return `"${request.verb}" on "${request.resource}" in ${group}, ${scope}`;
}

/**
 * Authorizers (RBAC, the Node authorizer) word a refusal `User "X" cannot VERB resource …`; anything else
 * with 403 came from an admission plugin, which no role binding can lift: for a node that is NodeRestriction.
 */
export function refusedByAuthorizer(message: string): boolean {
  return /\bUser "[^"]*" cannot /.test(message);
}

function forbiddenHint(request: ApiRequest, message: string): string {
  if (refusedByAuthorizer(message)) {
    return `grant the kubeconfig's user ${rbacRule(request)} (a node needs the rules of ClusterRole system:node, or use the admin kubeconfig)`;
  }
  if (/\bnode "[^"]*" (is not allowed|can only|cannot|can not|must not)\b/.test(message) || /\bnode .* UID mismatch\b/.test(message)) {
    return (
      "refused by admission (NodeRestriction), not by RBAC: a node may change only its own Node and Lease, " +
      "labels outside kubernetes.io/k8s.io (or the kubelet's allowed ones), and the status of pods bound to it; " +
      "drop the refused change (e.g. the label from --node-labels) or have an administrator make it"
    );
  }
  return "refused by an admission plugin of the API server, not by RBAC: the message above names what it refuses";
}

/** A Status reason sent in a watch stream's ERROR event, which arrives as data rather than as an HTTP error. */
export function watchStatusError(request: ApiRequest, status: { code?: number; reason?: string; message?: string }): KubeApiError {
  return new KubeApiError(
    `${describeRequest(request)}: ${status.message ?? status.reason ?? "watch error"}`,
    request,
    status.code,
    status.reason,
    { exitCode: ExitCode.unavailable },
  );
}

/** Maps whatever a client-node call threw to a KubeApiError for `request` against `server`. */
export function toKubeApiError(err: unknown, request: ApiRequest, server: string): KubeApiError {
  if (err instanceof KubeApiError) return err;
  const what = describeRequest(request);
  if (err instanceof ApiException) {
    const status = parseStatusBody(err.body);
    const code = err.code;
    const detail = status.message ?? `HTTP ${code}`;
    if (code === 401) {
      return new KubeApiError(`${what}: the API server at ${server} rejected vks' credentials (401 Unauthorized)`, request, code, status.reason, {
        exitCode: ExitCode.permission,
        hint: "the kubeconfig's client certificate or token is invalid or expired; use a current kubeconfig (--kubeconfig)",
        cause: err,
      });
    }
    if (code === 403) {
      return new KubeApiError(`${what}: forbidden: ${detail}`, request, code, status.reason, {
        exitCode: ExitCode.permission,
        hint: forbiddenHint(request, detail),
        cause: err,
      });
    }
    return new KubeApiError(`${what}: ${detail}`, request, code, status.reason, {
      exitCode: code === 404 ? ExitCode.notFound : code === 409 ? ExitCode.conflict : code === 422 || code === 400 ? ExitCode.invalidInput : ExitCode.unavailable,
      cause: err,
    });
  }
  return new KubeApiError(`${what}: cannot reach the API server at ${server}: ${errorMessage(err)}`, request, undefined, undefined, {
    exitCode: ExitCode.unavailable,
    hint: "check that the API server is running and that the kubeconfig's server address and CA are right",
    cause: err,
  });
}
