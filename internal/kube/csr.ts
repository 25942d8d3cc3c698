/**
 * The CertificateSigningRequest calls a node makes for its serving certificate, as client-go's
 * util/certificate/csr does them for the kubelet: create a CSR named `csr-<random>`, then follow that one
 * object (a watch on its name, re-read after every gap) until it carries a certificate, is denied or
 * failed, or the wait runs out.
 */
import { CertificatesV1Api, Observable, Watch, type ConfigurationOptions, type KubeConfig, type ObservableMiddleware, type RequestContext, type ResponseContext } from "@kubernetes/client-node";
import { ExitCode, VksError } from "../errors.ts";
import type { CsrClient, CsrSubmission, IssuedCertificate } from "../kubelet/certs/rotation.ts";
import { toKubeApiError, watchStatusError, type ApiRequest } from "./api-error.ts";
import { sleep } from "./backoff.ts";
import { PooledFetchHttpLibrary } from "./client.ts";

const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;
/** Between re-reads when a watch cannot be opened (an API server or proxy that refuses watches). */
const DEFAULT_POLL_INTERVAL_MS = 2_000;
/** A watch is reopened at least this often, so that a silently dead connection cannot stall the wait. */
const WATCH_WINDOW_SECONDS = 60;
const CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
const GROUP = "certificates.k8s.io";

/** The parts of a CSR the wait looks at, the same in the generated type and in watch JSON. */
interface CsrState {
  metadata?: { name?: string; resourceVersion?: string };
  status?: {
    certificate?: string;
    conditions?: { type?: string; status?: string; reason?: string; message?: string }[];
  };
}

/** The CSR reached an end other than a certificate; waiting longer cannot change that. */
class CsrOutcomeError extends VksError {
  override readonly name = "CsrOutcomeError";
}

function quoteCondition(condition: { reason?: string; message?: string }): string {
  const parts = [condition.reason, condition.message].filter((part): part is string => part !== undefined && part !== "");
  return parts.length === 0 ? "no reason given" : parts.join(": ");
}

/** The certificate PEM when issued, undefined while pending; throws CsrOutcomeError when denied or failed. */
function outcome(name: string, csr: CsrState): string | undefined {
  for (const condition of csr.status?.conditions ?? []) {
    if (condition.status === "False") continue;
    if (condition.type === "Denied") {
      throw new CsrOutcomeError(`certificate signing request ${name} was denied: ${quoteCondition(condition)}`, {
        exitCode: ExitCode.permission,
        hint: "an approver or administrator refused the node's serving certificate; check the request's SANs (node addresses) and the approval policy",
      });
    }
    if (condition.type === "Failed") {
      throw new CsrOutcomeError(`certificate signing request ${name} failed: ${quoteCondition(condition)}`, {
        exitCode: ExitCode.unavailable,
        hint: "the signer could not issue it; check kube-controller-manager's cluster-signing settings for kubernetes.io/kubelet-serving",
      });
    }
  }
  const certificate = csr.status?.certificate;
  if (certificate === undefined || certificate === "") return undefined;
  return Buffer.from(certificate, "base64").toString("utf8");
}

function isApproved(csr: CsrState): boolean {
  return (csr.status?.conditions ?? []).some((condition) => condition.type === "Approved" && condition.status !== "False");
}

export interface KubeCsrClientOptions {
  requestTimeoutMs?: number;
  pollIntervalMs?: number;
}

export class KubeCsrClient implements CsrClient {
  private readonly certificates: CertificatesV1Api;
  private readonly options: ConfigurationOptions<ObservableMiddleware>;
  private readonly pollIntervalMs: number;

  constructor(
    private readonly config: KubeConfig,
    /** The API server URL, for messages. */
    private readonly server: string,
    options: KubeCsrClientOptions = {},
  ) {
    this.certificates = config.makeApiClient(CertificatesV1Api);
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const middleware: ObservableMiddleware = {
      pre: (context: RequestContext) => {
        context.setSignal(AbortSignal.timeout(timeoutMs));
        return new Observable(Promise.resolve(context));
      },
      post: (context: ResponseContext) => new Observable(Promise.resolve(context)),
    };
    // As KubeClient: pooled connections, except through a proxy, which needs client-node's own agent.
    const httpApi = config.getCurrentCluster()?.proxyUrl ? undefined : new PooledFetchHttpLibrary();
    this.options = { ...(httpApi === undefined ? {} : { httpApi }), middleware: [middleware], middlewareMergeStrategy: "append" };
  }

  async requestCertificate(submission: CsrSubmission, options: { signal: AbortSignal; timeoutMs: number }): Promise<IssuedCertificate> {
    const created = await this.create(submission);
    const name = created.metadata?.name ?? "";
    const deadline = Date.now() + options.timeoutMs;
    let current: CsrState = created;
    for (;;) {
      const certificatePem = outcome(name, current);
      if (certificatePem !== undefined) return { csrName: name, certificatePem };
      if (options.signal.aborted) {
        throw new VksError(`stopped waiting for certificate signing request ${name}`, { exitCode: ExitCode.unavailable });
      }
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) throw this.timedOut(name, current, options.timeoutMs);
      current = await this.nextState(name, current, remainingMs, options.signal);
    }
  }

  private async create(submission: CsrSubmission): Promise<CsrState> {
    const request: ApiRequest = { verb: "create", resource: "certificatesigningrequests", group: GROUP };
    try {
      return await this.certificates.createCertificateSigningRequest(
        {
          body: {
            apiVersion: `${GROUP}/v1`,
            kind: "CertificateSigningRequest",
            metadata: { generateName: "csr-" },
            spec: {
              request: Buffer.from(submission.requestPem, "utf8").toString("base64"),
              signerName: submission.signerName,
              usages: [...submission.usages],
            },
          },
        },
        this.options,
      );
    } catch (err) {
      throw toKubeApiError(err, request, this.server);
    }
  }

  private async read(name: string): Promise<CsrState> {
    const request: ApiRequest = { verb: "get", resource: "certificatesigningrequests", group: GROUP, name };
    try {
      return await this.certificates.readCertificateSigningRequest({ name }, this.options);
    } catch (err) {
      const failure = toKubeApiError(err, request, this.server);
      if (failure.status === 404) {
        throw new CsrOutcomeError(`certificate signing request ${name} was deleted before a certificate was issued`, { exitCode: ExitCode.unavailable, cause: failure });
      }
      throw failure;
    }
  }

  /**
   * The CSR after its next change: from a watch when the server offers one, else (or after the watch
   * ended without news) from a fresh read. A failed read or watch pauses and tries again until the
   * caller's deadline; only a denial, failure or deletion ends the wait early.
   */
  private async nextState(name: string, current: CsrState, remainingMs: number, signal: AbortSignal): Promise<CsrState> {
    try {
      const changed = await this.watchForChange(name, current.metadata?.resourceVersion, remainingMs, signal);
      if (changed !== undefined || signal.aborted) return changed ?? current;
      return await this.read(name);
    } catch (err) {
      if (err instanceof CsrOutcomeError) throw err;
      await sleep(Math.min(this.pollIntervalMs, remainingMs), signal);
      if (signal.aborted) return current;
      try {
        return await this.read(name);
      } catch (readError) {
        if (readError instanceof CsrOutcomeError) throw readError;
        return current;
      }
    }
  }

  /** Resolves with the object from the first change after `resourceVersion`, or undefined when the stream ends without one. */
  private watchForChange(name: string, resourceVersion: string | undefined, remainingMs: number, signal: AbortSignal): Promise<CsrState | undefined> {
    const request: ApiRequest = { verb: "watch", resource: "certificatesigningrequests", group: GROUP, name };
    const windowSeconds = Math.max(1, Math.min(WATCH_WINDOW_SECONDS, Math.ceil(remainingMs / 1000)));
    return new Promise<CsrState | undefined>((resolve, reject) => {
      let controller: AbortController | undefined;
      let settled = false;
      const finish = (result: { value?: CsrState; error?: unknown }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        controller?.abort();
        if (result.error !== undefined) reject(result.error);
        else resolve(result.value);
      };
      const onAbort = () => finish({});
      // The server ends the watch after timeoutSeconds; a connection silent well past that is dead.
      const timer = setTimeout(() => finish({}), Math.min(remainingMs, (windowSeconds + 10) * 1000));
      signal.addEventListener("abort", onAbort);
      const onEvent = (type: string, object: unknown) => {
        if (type === "ADDED" || type === "MODIFIED") {
          const state = object as CsrState;
          // The initial ADDED repeats the state already known; only a newer version is news.
          if (state.metadata?.resourceVersion !== resourceVersion) finish({ value: state });
        } else if (type === "DELETED") {
          finish({ error: new CsrOutcomeError(`certificate signing request ${name} was deleted before a certificate was issued`, { exitCode: ExitCode.unavailable }) });
        } else if (type === "ERROR") {
          const status = (object ?? {}) as { code?: number; reason?: string; message?: string };
          // 410: the version is too old to watch from; a fresh read catches up.
          if (status.code === 410) finish({});
          else finish({ error: watchStatusError(request, status) });
        }
      };
      const onDone = (err: unknown) => finish(err === null || err === undefined ? {} : { error: toKubeApiError(err, request, this.server) });
      new Watch(this.config)
        .watch(
          CSR_PATH,
          { fieldSelector: `metadata.name=${name}`, resourceVersion, timeoutSeconds: windowSeconds, allowWatchBookmarks: false },
          onEvent,
          onDone,
        )
        .then(
          (started) => {
            controller = started;
            if (settled) started.abort();
          },
          (err: unknown) => finish({ error: err }),
        );
    });
  }

  private timedOut(name: string, current: CsrState, timeoutMs: number): VksError {
    const minutes = Math.round(timeoutMs / 60_000);
    const waited = minutes >= 1 ? `${minutes} min` : `${Math.round(timeoutMs / 1000)} s`;
    if (isApproved(current)) {
      return new VksError(`certificate signing request ${name} was approved but no certificate was issued within ${waited}`, {
        exitCode: ExitCode.unavailable,
        hint: "kube-controller-manager signs kubernetes.io/kubelet-serving requests only with its cluster-signing CA configured (--cluster-signing-cert-file/--cluster-signing-key-file)",
      });
    }
    return new VksError(`certificate signing request ${name} was not approved within ${waited}`, {
      exitCode: ExitCode.unavailable,
      hint: `approve it with \`kubectl certificate approve ${name}\`: Kubernetes approves kubelet-serving requests only where an approver (e.g. kubelet-csr-approver) runs`,
    });
  }
}

