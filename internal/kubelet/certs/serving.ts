/**
 * The kubelet API's serving certificate, from one of the three sources the kubelet has:
 *  - files: --tls-cert-file/--tls-private-key-file, loaded once and reloaded when they change on disk
 *    (as kubelets with ReloadKubeletServerCertificateFile do);
 *  - self-signed: neither flag; `<stateDir>/pki/kubelet.crt` and `kubelet.key`, made once and reused;
 *  - csr: --rotate-server-certificates; issued through the CertificateSigningRequest API and renewed.
 * The TLS server takes `current()` when it starts and installs every pair `onRotated` hands it
 * (`server.setSecureContext`). With csr, `current()` is undefined until the first certificate is issued:
 * the kubelet then fails every handshake ("no serving certificate available for the kubelet") rather
 * than serve a certificate nobody can check, and vks does the same: a node:tls server started without
 * a certificate refuses handshakes until setSecureContext gives it one.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { consola } from "consola";
import { ExitCode, VksError, errorMessage } from "../../errors.ts";
import { csrAltNames, selfSignedAltNames, type NodeAddress } from "./alt-names.ts";
import { systemClock, type Clock } from "./clock.ts";
import { KeyPairError, isCurrentlyValid, keyPairFromPem, type ServingKeyPair } from "./keypair.ts";
import { CertificateRotator, type CertificateLog, type CsrClient } from "./rotation.ts";
import { createSelfSignedPair, readSelfSigned, selfSignedFiles, selfSignedStaleness, writeSelfSigned } from "./self-signed.ts";
import { RotatedCertificateStore } from "./store.ts";
import type { AlternativeNames } from "./x509.ts";

export type { NodeAddress } from "./alt-names.ts";
export type { ServingKeyPair } from "./keypair.ts";
export type { CertificateLog, CsrClient, CsrSubmission, IssuedCertificate } from "./rotation.ts";
export type { Clock } from "./clock.ts";

export type ServingCertificateSource = "files" | "self-signed" | "csr";

export interface ServingCertificateOptions {
  /** vks' state directory; certificates vks makes or obtains live in `<stateDir>/pki`. */
  stateDir: string;
  nodeName: string;
  /** The machine's host name: the self-signed certificate's subject, as the kubelet's. */
  hostname: string;
  /** The Node's status addresses: the names the certificate must carry. */
  addresses: readonly NodeAddress[];
  /** --tls-cert-file and --tls-private-key-file: both or neither. */
  tlsCertFile?: string;
  tlsPrivateKeyFile?: string;
  /** --rotate-server-certificates: obtain the certificate through `csrClient`. */
  rotateServerCertificates?: boolean;
  csrClient?: CsrClient;
  clock?: Clock;
  /** Uniform in [0, 1): the renewal jitter. */
  random?: () => number;
  log?: CertificateLog;
  /** How often configured files are checked for replacement; the kubelet checks every minute. */
  fileCheckIntervalMs?: number;
}

export type RotationListener = (pair: ServingKeyPair) => void;

const DEFAULT_FILE_CHECK_MS = 60_000;

const consolaLog: CertificateLog = {
  info: (message) => consola.info(message),
  warn: (message) => consola.warn(message),
};

/** Reads one configured file, failing with the flag's name and what to do. */
async function readFlagFile(flag: string, path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new VksError(`${flag} ${path}: no such file`, { exitCode: ExitCode.notFound, hint: `give the path of a PEM file, or leave out --tls-cert-file and --tls-private-key-file for a self-signed certificate` });
    }
    if (code === "EACCES" || code === "EPERM") {
      throw new VksError(`${flag} ${path}: permission denied`, { exitCode: ExitCode.permission, hint: "run vks as a user that can read it (a key is usually readable by root only)" });
    }
    throw new VksError(`${flag} ${path}: cannot read: ${errorMessage(err)}`, { exitCode: ExitCode.invalidInput, cause: err });
  }
}

/** Loads --tls-cert-file/--tls-private-key-file into a checked pair, or fails naming the flag at fault. */
export async function loadConfiguredKeyPair(certFile: string, keyFile: string): Promise<ServingKeyPair> {
  const [certPem, keyPem] = await Promise.all([readFlagFile("--tls-cert-file", certFile), readFlagFile("--tls-private-key-file", keyFile)]);
  try {
    return keyPairFromPem(certPem, keyPem);
  } catch (err) {
    if (!(err instanceof KeyPairError)) throw err;
    const invalid = ExitCode.invalidInput;
    switch (err.problem) {
      case "no-certificate":
        throw new VksError(`--tls-cert-file ${certFile}: not a PEM certificate (${err.message})`, { exitCode: invalid, hint: "the file must hold the serving certificate as -----BEGIN CERTIFICATE-----, intermediates after it" });
      case "malformed-certificate":
        throw new VksError(`--tls-cert-file ${certFile}: ${err.message}`, { exitCode: invalid });
      case "no-key":
        throw new VksError(`--tls-private-key-file ${keyFile}: ${err.message}`, { exitCode: invalid, hint: "the file must hold an unencrypted PEM private key (BEGIN PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)" });
      case "mismatch":
        throw new VksError(`--tls-private-key-file ${keyFile} does not belong to the certificate in --tls-cert-file ${certFile}`, { exitCode: invalid, hint: "give the key the certificate was issued for" });
    }
  }
}

export class ServingCertificate {
  private pair: ServingKeyPair | undefined;
  private readonly listeners = new Set<RotationListener>();
  private readonly readyWaiters = new Set<(pair: ServingKeyPair) => void>();
  private readonly closing = new AbortController();
  /** Wakes the self-signed or files loop early (addresses changed). */
  private wake = new AbortController();
  private background: Promise<void> | undefined;
  private rotator: CertificateRotator | undefined;
  private addresses: readonly NodeAddress[];
  private readonly clock: Clock;
  private readonly log: CertificateLog;

  private constructor(
    readonly source: ServingCertificateSource,
    private readonly options: ServingCertificateOptions,
  ) {
    this.addresses = options.addresses;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? consolaLog;
  }

  /** `<stateDir>/pki`, the kubelet's --cert-dir. */
  static pkiDirectory(stateDir: string): string {
    return join(stateDir, "pki");
  }

  /**
   * Picks the source from the options (as the kubelet picks it from its flags), loads or makes the
   * first certificate, and starts whatever keeps it current. Fails with a VksError on bad flags or files.
   */
  static async open(options: ServingCertificateOptions): Promise<ServingCertificate> {
    const { tlsCertFile, tlsPrivateKeyFile } = options;
    if ((tlsCertFile === undefined) !== (tlsPrivateKeyFile === undefined)) {
      const missing = tlsCertFile === undefined ? "--tls-cert-file" : "--tls-private-key-file";
      throw new VksError(`${missing} is required with ${missing === "--tls-cert-file" ? "--tls-private-key-file" : "--tls-cert-file"}`, {
        exitCode: ExitCode.usage,
        hint: "give both files, or neither for a self-signed certificate",
      });
    }
    const source: ServingCertificateSource = options.rotateServerCertificates ? "csr" : tlsCertFile !== undefined ? "files" : "self-signed";
    const serving = new ServingCertificate(source, options);
    if (source === "csr") await serving.openRotation();
    else if (source === "files") await serving.openFiles(tlsCertFile!, tlsPrivateKeyFile!);
    else await serving.openSelfSigned();
    return serving;
  }

  /** The pair to serve; undefined only with csr before the first certificate is issued. */
  current(): ServingKeyPair | undefined {
    return this.pair;
  }

  /** Calls `listener` with every new pair from now on; returns a function that unsubscribes it. */
  onRotated(listener: RotationListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The first pair: at once when there is one, else when it is issued. Rejects when `signal` aborts or on close(). */
  ready(signal?: AbortSignal): Promise<ServingKeyPair> {
    if (this.pair !== undefined) return Promise.resolve(this.pair);
    return new Promise((resolve, reject) => {
      const stop = () => {
        this.readyWaiters.delete(done);
        signal?.removeEventListener("abort", stop);
        this.closing.signal.removeEventListener("abort", stop);
        reject(new VksError("stopped before a serving certificate was issued", { exitCode: ExitCode.unavailable }));
      };
      const done = (pair: ServingKeyPair) => {
        signal?.removeEventListener("abort", stop);
        this.closing.signal.removeEventListener("abort", stop);
        resolve(pair);
      };
      if (signal?.aborted || this.closing.signal.aborted) return stop();
      this.readyWaiters.add(done);
      signal?.addEventListener("abort", stop);
      this.closing.signal.addEventListener("abort", stop);
    });
  }

  /**
   * The node's addresses changed: a self-signed certificate that does not name them all is replaced,
   * and with csr a new certificate is requested. Configured files are never touched.
   */
  updateAddresses(addresses: readonly NodeAddress[]): void {
    this.addresses = addresses;
    if (this.rotator !== undefined) this.rotator.updateAltNames(csrAltNames(addresses));
    else if (this.source === "self-signed") this.wake.abort();
  }

  /** When the certificate is next due to be replaced (csr: the jittered renewal; self-signed: its expiry). */
  nextRotation(): Date | undefined {
    if (this.rotator !== undefined) return this.rotator.nextRotation();
    if (this.source === "self-signed") return this.pair?.certificate.notAfter;
    return undefined;
  }

  /** Stops renewing or watching; the current pair stays readable. */
  async close(): Promise<void> {
    this.closing.abort();
    this.wake.abort();
    await this.rotator?.stop();
    await this.background;
  }

  private publish(pair: ServingKeyPair): void {
    this.pair = pair;
    for (const waiter of this.readyWaiters) waiter(pair);
    this.readyWaiters.clear();
    for (const listener of this.listeners) {
      try {
        listener(pair);
      } catch (err) {
        this.log.warn(`serving certificate: a rotation listener failed: ${errorMessage(err)}`);
      }
    }
  }

  private get pkiDirectory(): string {
    return ServingCertificate.pkiDirectory(this.options.stateDir);
  }

  /** Takes note of a wake-up: later ones abort the fresh signal, so none is lost between check and sleep. */
  private consumeWake(): void {
    if (this.wake.signal.aborted && !this.closing.signal.aborted) this.wake = new AbortController();
  }

  /** Sleeps up to `ms` unless closed or woken. */
  private async sleep(ms: number): Promise<void> {
    await this.clock.sleep(ms, this.wake.signal);
  }

  // ---- files ----

  private async openFiles(certFile: string, keyFile: string): Promise<void> {
    const pair = await loadConfiguredKeyPair(certFile, keyFile);
    this.warnIfExpired(pair, `--tls-cert-file ${certFile}`);
    this.pair = pair;
    this.background = this.watchFiles(certFile, keyFile);
  }

  private warnIfExpired(pair: ServingKeyPair, what: string): void {
    if (!isCurrentlyValid(pair, this.clock.now())) {
      this.log.warn(`${what} is valid only from ${pair.certificate.notBefore.toISOString()} to ${pair.certificate.notAfter.toISOString()}; serving it anyway, clients will reject it`);
    }
  }

  /** Picks up a renewed pair written over the configured files (cert-manager, an operator's script). */
  private async watchFiles(certFile: string, keyFile: string): Promise<void> {
    const interval = this.options.fileCheckIntervalMs ?? DEFAULT_FILE_CHECK_MS;
    while (!this.closing.signal.aborted) {
      this.consumeWake();
      await this.sleep(interval);
      if (this.closing.signal.aborted) return;
      let fresh: ServingKeyPair;
      try {
        fresh = await loadConfiguredKeyPair(certFile, keyFile);
      } catch (err) {
        // Half-written replacements are normal while someone swaps the files; the loaded pair keeps serving.
        this.log.warn(`serving certificate: not reloading: ${errorMessage(err)}`);
        continue;
      }
      if (fresh.certPem === this.pair?.certPem && fresh.keyPem === this.pair.keyPem) continue;
      this.log.info(`serving certificate: reloaded ${certFile}, valid until ${fresh.certificate.notAfter.toISOString()}`);
      this.publish(fresh);
    }
  }

  // ---- self-signed ----

  private selfSignedAltNames(): AlternativeNames {
    return selfSignedAltNames(this.options.nodeName, this.options.hostname, this.addresses);
  }

  private async openSelfSigned(): Promise<void> {
    const files = selfSignedFiles(this.pkiDirectory);
    const stored = await readSelfSigned(files);
    if ("unusable" in stored) {
      if (stored.unusable !== "missing") this.log.warn(`serving certificate: replacing ${files.certPath}: ${stored.unusable}`);
    } else {
      const staleness = selfSignedStaleness(stored, this.selfSignedAltNames(), this.clock.now());
      if (staleness === undefined) {
        this.pair = stored;
      } else {
        this.log.info(`serving certificate: replacing the self-signed ${files.certPath}: ${staleness}`);
      }
    }
    if (this.pair === undefined) this.pair = await this.makeSelfSigned();
    this.background = this.keepSelfSignedCurrent();
  }

  private async makeSelfSigned(): Promise<ServingKeyPair> {
    const files = selfSignedFiles(this.pkiDirectory);
    const pair = createSelfSignedPair(this.options.hostname, this.selfSignedAltNames(), this.clock.now());
    try {
      await writeSelfSigned(files, pair);
    } catch (err) {
      throw new VksError(`cannot store the self-signed serving certificate in ${this.pkiDirectory}: ${errorMessage(err)}`, {
        exitCode: ExitCode.permission,
        hint: "make the state directory writable (--state-dir), or give --tls-cert-file and --tls-private-key-file",
        cause: err,
      });
    }
    this.log.info(`serving certificate: self-signed ${files.certPath} (${pair.certificate.subject.commonName}), valid until ${pair.certificate.notAfter.toISOString()}`);
    return pair;
  }

  /** Replaces the self-signed pair when it expires or the addresses outgrow it. */
  private async keepSelfSignedCurrent(): Promise<void> {
    while (!this.closing.signal.aborted) {
      this.consumeWake();
      const pair = this.pair;
      if (pair === undefined) return;
      const staleness = selfSignedStaleness(pair, this.selfSignedAltNames(), this.clock.now());
      if (staleness === undefined) {
        await this.sleep(pair.certificate.notAfter.getTime() - this.clock.now());
        continue;
      }
      this.log.info(`serving certificate: replacing the self-signed certificate: ${staleness}`);
      try {
        this.publish(await this.makeSelfSigned());
      } catch (err) {
        this.log.warn(`serving certificate: ${errorMessage(err)}; retrying in a minute`);
        await this.sleep(60_000);
      }
    }
  }

  // ---- csr ----

  private async openRotation(): Promise<void> {
    const client = this.options.csrClient;
    if (client === undefined) throw new Error("bug: --rotate-server-certificates without a CSR client");
    const store = new RotatedCertificateStore(this.pkiDirectory);
    const stored = await store.load();
    let initial: ServingKeyPair | undefined;
    if (!("unusable" in stored) && isCurrentlyValid(stored, this.clock.now())) {
      initial = stored;
      this.log.info(`serving certificate: ${store.currentPath}, valid until ${stored.certificate.notAfter.toISOString()}`);
    } else {
      if ("unusable" in stored && stored.unusable !== "missing") this.log.warn(`serving certificate: ignoring ${stored.unusable}`);
      // As client-go's file store: the configured files serve until the first certificate is issued.
      if (this.options.tlsCertFile !== undefined && this.options.tlsPrivateKeyFile !== undefined) {
        initial = await loadConfiguredKeyPair(this.options.tlsCertFile, this.options.tlsPrivateKeyFile);
      }
    }
    this.pair = initial;
    this.rotator = new CertificateRotator({
      nodeName: this.options.nodeName,
      store,
      client,
      clock: this.clock,
      random: this.options.random ?? Math.random,
      log: this.log,
      publish: (pair) => this.publish(pair),
      initial,
      altNames: csrAltNames(this.addresses),
    });
    this.rotator.start();
  }
}
