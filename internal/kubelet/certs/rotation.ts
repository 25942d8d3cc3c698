/**
 * Serving certificates from the cluster, as the kubelet's certificate manager (client-go
 * util/certificate) obtains them with --rotate-server-certificates: a new P-256 key and a CSR for
 * signer kubernetes.io/kubelet-serving, the issued certificate stored and served, and a renewal at a
 * jittered 70–90 % of each certificate's lifetime. Failures are retried with back-off while the old
 * certificate keeps serving; a change of the node's addresses that the certificate does not cover
 * starts a new request at once.
 */
import { VksError, errorMessage } from "../../errors.ts";
import type { Clock } from "./clock.ts";
import { coversAltNames, isCurrentlyValid, type ServingKeyPair } from "./keypair.ts";
import type { RotatedCertificateStore } from "./store.ts";
import { createCertificateRequest, generateServingKey, privateKeyPem, type AlternativeNames, type DistinguishedName } from "./x509.ts";

export const KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving";

/**
 * The usages the CSR asks for. Newer kubelets leave out key encipherment for EC keys; API servers
 * accept both sets, and older ones (v1.26 and before) only this one.
 */
export const KUBELET_SERVING_USAGES = ["digital signature", "key encipherment", "server auth"] as const;

/** How long one request may wait for approval and signing before it is abandoned (client-go: 15 minutes). */
export const CERTIFICATE_WAIT_TIMEOUT_MS = 15 * 60_000;

/** Retry delays after failed requests: client-go's 2 s doubling for five tries, then every 32 s. */
const RETRY_DELAYS_MS = [2_000, 4_000, 8_000, 16_000] as const;
const RETRY_STEADY_MS = 32_000;
const RETRY_JITTER = 0.1;

export interface CsrSubmission {
  /** PKCS#10 request in PEM. */
  requestPem: string;
  signerName: string;
  usages: readonly string[];
}

export interface IssuedCertificate {
  /** Name of the CertificateSigningRequest object, for messages. */
  csrName: string;
  /** The certificate chain in PEM, leaf first, as status.certificate holds it. */
  certificatePem: string;
}

/** The CertificateSigningRequest API, as far as a node uses it. */
export interface CsrClient {
  /**
   * Creates a CSR and waits until it carries a certificate. Rejects (with a message quoting the reason)
   * when it is denied or fails, when `timeoutMs` passes, or when `signal` aborts.
   */
  requestCertificate(submission: CsrSubmission, options: { signal: AbortSignal; timeoutMs: number }): Promise<IssuedCertificate>;
}

export interface CertificateLog {
  info(message: string): void;
  warn(message: string): void;
}

/**
 * When to renew: notBefore plus 70–90 % of the lifetime, uniformly (client-go's jitteryDuration), so that
 * nodes that joined together do not all renew together.
 */
export function rotationDeadline(pair: ServingKeyPair, random: () => number): number {
  const notBefore = pair.certificate.notBefore.getTime();
  const lifetime = pair.certificate.notAfter.getTime() - notBefore;
  return notBefore + lifetime * (0.7 + 0.2 * random());
}

function sameAltNames(left: AlternativeNames | undefined, right: AlternativeNames | undefined): boolean {
  if (left === undefined || right === undefined) return left === right;
  return left.dnsNames.join(",") === right.dnsNames.join(",") && left.ipAddresses.join(",") === right.ipAddresses.join(",");
}

export interface CertificateRotatorOptions {
  nodeName: string;
  store: RotatedCertificateStore;
  client: CsrClient;
  clock: Clock;
  random: () => number;
  log: CertificateLog;
  /** Called with every newly issued pair. */
  publish: (pair: ServingKeyPair) => void;
  /** The pair already serving (from the store or the configured files), if any. */
  initial: ServingKeyPair | undefined;
  altNames: AlternativeNames;
}

export class CertificateRotator {
  private pair: ServingKeyPair | undefined;
  private altNames: AlternativeNames;
  /** The names of the request in flight or last issued: a change back to them needs no new request. */
  private requestedAltNames: AlternativeNames | undefined;
  private readonly stopping = new AbortController();
  /** Aborted to cut short the current wait (or request) because the wanted names changed. */
  private interrupt = new AbortController();
  private deadline: number | undefined;
  private loop: Promise<void> | undefined;
  private lastFailure: string | undefined;

  constructor(private readonly options: CertificateRotatorOptions) {
    this.pair = options.initial;
    this.altNames = options.altNames;
  }

  get subject(): DistinguishedName {
    return { commonName: `system:node:${this.options.nodeName}`, organizations: ["system:nodes"] };
  }

  /** When the next request is due; undefined while waiting for addresses or after stop(). */
  nextRotation(): Date | undefined {
    return this.deadline === undefined ? undefined : new Date(this.deadline);
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.interrupt.abort();
    await this.loop;
  }

  /** New wanted names: if the certificate (or the request in flight) does not cover them, request anew now. */
  updateAltNames(altNames: AlternativeNames): void {
    this.altNames = altNames;
    if (!this.satisfied() && !sameAltNames(this.requestedAltNames, altNames)) this.interrupt.abort();
  }

  /** client-go certSatisfiesTemplate: the right subject and every wanted name (extra names are fine). */
  private satisfied(): boolean {
    const pair = this.pair;
    if (pair === undefined) return false;
    const subject = pair.certificate.subject;
    return (
      subject.commonName === this.subject.commonName &&
      (subject.organizations ?? []).includes("system:nodes") &&
      coversAltNames(pair.certificate.altNames, this.altNames)
    );
  }

  /** The kubelet asks for nothing before it knows at least one of its IP addresses. */
  private canRequest(): boolean {
    return this.altNames.ipAddresses.length > 0;
  }

  private dueAt(): number {
    const pair = this.pair;
    if (pair === undefined || !this.satisfied() || !isCurrentlyValid(pair, this.options.clock.now())) return this.options.clock.now();
    return rotationDeadline(pair, this.options.random);
  }

  /** Waits `ms` unless stopped or interrupted; true when the wait ran its course. */
  private async wait(ms: number): Promise<boolean> {
    const signal = this.interrupt.signal;
    if (ms > 0) await this.options.clock.sleep(ms, signal);
    return !signal.aborted;
  }

  private resetInterrupt(): void {
    if (this.interrupt.signal.aborted) this.interrupt = new AbortController();
  }

  private async run(): Promise<void> {
    const { clock } = this.options;
    while (!this.stopping.signal.aborted) {
      this.resetInterrupt();
      if (!this.canRequest()) {
        this.deadline = undefined;
        this.options.log.warn("serving certificate: no node IP address known yet; not requesting a certificate until there is one");
        await this.wait(Number.MAX_SAFE_INTEGER);
        continue;
      }
      this.deadline = this.dueAt();
      if (!(await this.wait(this.deadline - clock.now()))) continue;
      await this.rotateWithRetries();
    }
    this.deadline = undefined;
  }

  /** Requests until one succeeds, pausing between failures; returns early when stopped or interrupted. */
  private async rotateWithRetries(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (await this.rotateOnce()) return;
      const base = RETRY_DELAYS_MS[attempt] ?? RETRY_STEADY_MS;
      const delay = base * (1 + RETRY_JITTER * this.options.random());
      this.deadline = this.options.clock.now() + delay;
      if (!(await this.wait(delay))) return;
    }
  }

  /** One request: a new key, a CSR, the wait for its certificate, storing and publishing it. */
  private async rotateOnce(): Promise<boolean> {
    const altNames = this.altNames;
    const key = generateServingKey();
    const requestPem = createCertificateRequest({ subject: this.subject, altNames }, key);
    this.requestedAltNames = altNames;
    try {
      const issued = await this.options.client.requestCertificate(
        { requestPem, signerName: KUBELET_SERVING_SIGNER, usages: KUBELET_SERVING_USAGES },
        { signal: this.interrupt.signal, timeoutMs: CERTIFICATE_WAIT_TIMEOUT_MS },
      );
      const pair = await this.options.store.save(issued.certificatePem, privateKeyPem(key), this.options.clock.now());
      this.pair = pair;
      this.lastFailure = undefined;
      this.options.log.info(
        `serving certificate: ${issued.csrName} issued, valid until ${pair.certificate.notAfter.toISOString()} (${this.options.store.currentPath})`,
      );
      this.options.publish(pair);
      return true;
    } catch (err) {
      this.requestedAltNames = undefined;
      if (this.interrupt.signal.aborted) return false;
      const message = errorMessage(err);
      if (message !== this.lastFailure) {
        const keeping = this.pair === undefined ? "the kubelet port refuses TLS until one is issued" : "the current certificate keeps serving";
        const hint = err instanceof VksError && err.hint !== undefined ? `; hint: ${err.hint}` : "";
        this.options.log.warn(`serving certificate request failed: ${message}; retrying (${keeping})${hint}`);
      }
      this.lastFailure = message;
      return false;
    }
  }
}
