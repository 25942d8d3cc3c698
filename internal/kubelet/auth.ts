/**
 * Who may use the kubelet API, decided as the kubelet decides it: x509 client certificates verified
 * against the client CA, bearer tokens through the API server's TokenReview, and every request
 * authorized by a SubjectAccessReview on the node's subresources. Both reviews are cached with the
 * kubelet's default TTLs, so a busy `kubectl logs -f` or metrics scrape costs the API server nothing.
 */
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import { errorMessage } from "../errors.ts";

export interface KubeletUser {
  name: string;
  groups: string[];
  uid?: string;
  extra?: Record<string, string[]>;
}

/** What a request asks of the node, as the kubelet maps paths and methods to authorization attributes. */
export interface NodeAccess {
  verb: string;
  /** The `nodes` subresource: proxy, stats, metrics, log, spec. */
  subresource: string;
  nodeName: string;
}

export type TokenVerdict = { authenticated: true; user: KubeletUser } | { authenticated: false; error: string };
export interface AccessVerdict {
  allowed: boolean;
  reason: string;
}

/** The API server's review APIs; internal/kube implements it with the node's own credentials. */
export interface ReviewClient {
  reviewToken(token: string): Promise<TokenVerdict>;
  reviewAccess(user: KubeletUser, access: NodeAccess): Promise<AccessVerdict>;
}

export interface AuthSettings {
  /** Off by default, as the kubelet's --anonymous-auth=false in every hardened setup: no credentials → 401. */
  anonymous: boolean;
  /** Cache TTLs; the kubelet's defaults (webhook cacheTTL 2m/… ) unless a test shortens them. */
  tokenValidTtlMs?: number;
  tokenInvalidTtlMs?: number;
  accessAllowedTtlMs?: number;
  accessDeniedTtlMs?: number;
  now?: () => number;
  /**
   * Told (once per subject) about a client certificate that did not verify against the client CA: the
   * usual cause of `kubectl logs` getting 401 is an API server whose kubelet client CA vks does not know.
   */
  onUntrustedCertificate?: (subject: string, reason: string) => void;
}

const TOKEN_VALID_TTL_MS = 2 * 60_000;
const TOKEN_INVALID_TTL_MS = 30_000;
const ACCESS_ALLOWED_TTL_MS = 5 * 60_000;
const ACCESS_DENIED_TTL_MS = 30_000;
/** Bounds the caches: entries beyond this are dropped oldest first (a flood of bad tokens must not grow memory). */
const CACHE_LIMIT = 4096;

class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  constructor(private readonly now: () => number) {}

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: V, ttlMs: number): void {
    this.entries.delete(key);
    if (this.entries.size >= CACHE_LIMIT) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, { value, expiresAt: this.now() + ttlMs });
  }
}

/** Why a request was not let in: 401 (who are you?) or 403 (you may not), with the text the kubelet sends. */
export class AccessDenied extends Error {
  override readonly name = "AccessDenied";
  constructor(
    readonly status: 401 | 403,
    message: string,
  ) {
    super(message);
  }
}

const ANONYMOUS: KubeletUser = { name: "system:anonymous", groups: ["system:unauthenticated"] };

const asList = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/** The user a verified client certificate names: CN is the user, each O a group, as kube-apiserver reads them. */
function certificateUser(socket: TLSSocket): KubeletUser | undefined {
  if (!socket.authorized || typeof socket.getPeerCertificate !== "function") return undefined;
  const certificate = socket.getPeerCertificate();
  const name = asList(certificate.subject?.CN)[0];
  if (name === undefined || name === "") return undefined;
  return { name, groups: [...asList(certificate.subject?.O), "system:authenticated"] };
}

/** A client certificate that was presented but did not verify: its subject and why, else undefined. */
function untrustedCertificate(socket: TLSSocket): { subject: string; reason: string } | undefined {
  if (socket.authorized || typeof socket.getPeerCertificate !== "function") return undefined;
  const certificate = socket.getPeerCertificate();
  const commonName = asList(certificate?.subject?.CN)[0];
  if (commonName === undefined) return undefined;
  const reason = socket.authorizationError;
  return { subject: `CN=${commonName}`, reason: reason === undefined || reason === null ? "not verified" : String(reason) };
}

function bearerToken(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

export class KubeletAuth {
  private readonly tokens: TtlCache<TokenVerdict>;
  private readonly access: TtlCache<AccessVerdict>;
  private readonly now: () => number;
  private readonly reportedCertificates = new Set<string>();

  constructor(
    private readonly reviews: ReviewClient,
    private readonly settings: AuthSettings,
  ) {
    this.now = settings.now ?? Date.now;
    this.tokens = new TtlCache(this.now);
    this.access = new TtlCache(this.now);
  }

  /** The request's user, or AccessDenied(401). A certificate wins over a token, as in the kubelet's union authenticator. */
  async authenticate(request: IncomingMessage): Promise<KubeletUser> {
    const socket = request.socket as TLSSocket;
    const fromCertificate = certificateUser(socket);
    if (fromCertificate !== undefined) return fromCertificate;
    const untrusted = untrustedCertificate(socket);
    // A few subjects are enough to point at the cause; a client making up subjects must not grow the set.
    if (untrusted !== undefined && !this.reportedCertificates.has(untrusted.subject) && this.reportedCertificates.size < 16) {
      this.reportedCertificates.add(untrusted.subject);
      this.settings.onUntrustedCertificate?.(untrusted.subject, untrusted.reason);
    }
    const token = bearerToken(request);
    if (token !== undefined) {
      // A token that does not authenticate is refused even where anonymous access is on, as kube-apiserver does.
      const verdict = await this.reviewToken(token);
      if (verdict.authenticated) return verdict.user;
      throw new AccessDenied(401, "Unauthorized");
    }
    if (this.settings.anonymous) return ANONYMOUS;
    throw new AccessDenied(401, "Unauthorized");
  }

  /** Resolves when `user` may do `access`, else AccessDenied(403) with the kubelet's message. */
  async authorize(user: KubeletUser, access: NodeAccess): Promise<void> {
    const key = JSON.stringify([user.name, [...user.groups].sort(), user.uid ?? "", access.verb, access.subresource, access.nodeName]);
    let verdict = this.access.get(key);
    if (verdict === undefined) {
      try {
        verdict = await this.reviews.reviewAccess(user, access);
      } catch (err) {
        // Not cached: an unreachable API server must not lock users out for the denied TTL.
        throw new AccessDenied(403, `Authorization error (user=${user.name}, verb=${access.verb}, resource=nodes, subresource=${access.subresource}): ${errorMessage(err)}`);
      }
      this.access.set(key, verdict, verdict.allowed ? (this.settings.accessAllowedTtlMs ?? ACCESS_ALLOWED_TTL_MS) : (this.settings.accessDeniedTtlMs ?? ACCESS_DENIED_TTL_MS));
    }
    if (!verdict.allowed) {
      const reason = verdict.reason === "" ? "" : `: ${verdict.reason}`;
      throw new AccessDenied(403, `Forbidden (user=${user.name}, verb=${access.verb}, resource=nodes, subresource=${access.subresource})${reason}`);
    }
  }

  private async reviewToken(token: string): Promise<TokenVerdict> {
    const cached = this.tokens.get(token);
    if (cached !== undefined) return cached;
    let verdict: TokenVerdict;
    try {
      verdict = await this.reviews.reviewToken(token);
    } catch (err) {
      // Not cached, for the same reason as above: the next request asks again.
      return { authenticated: false, error: errorMessage(err) };
    }
    this.tokens.set(token, verdict, verdict.authenticated ? (this.settings.tokenValidTtlMs ?? TOKEN_VALID_TTL_MS) : (this.settings.tokenInvalidTtlMs ?? TOKEN_INVALID_TTL_MS));
    return verdict;
  }
}

const VERB_BY_METHOD: Record<string, string> = { GET: "get", HEAD: "get", POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" };

/**
 * The kubelet's mapping of a path to the node subresource authorization checks (its
 * NodeAuthorizerAttributesGetter): stats, metrics, logs and spec have their own; everything else,
 * exec/attach/portForward/containerLogs/pods/healthz included, is `proxy`.
 */
export function nodeAccessFor(method: string, path: string, nodeName: string): NodeAccess {
  const verb = VERB_BY_METHOD[method] ?? method.toLowerCase();
  const under = (prefix: string): boolean => path === prefix || path.startsWith(`${prefix}/`);
  let subresource = "proxy";
  if (under("/stats")) subresource = "stats";
  else if (under("/metrics")) subresource = "metrics";
  else if (under("/logs")) subresource = "log";
  else if (under("/spec")) subresource = "spec";
  return { verb, subresource, nodeName };
}
