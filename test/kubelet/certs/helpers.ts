// Test doubles for the serving certificate: a clock the test moves, a CSR API that signs with a test CA
// through openssl (or denies, or never answers), and a log that keeps its lines.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { VksError, ExitCode } from "../../../internal/errors.ts";
import type { Clock } from "../../../internal/kubelet/certs/clock.ts";
import type { CertificateLog, CsrClient, CsrSubmission, IssuedCertificate } from "../../../internal/kubelet/certs/rotation.ts";
import { createCertificateAuthority, type KeyPairFiles } from "../../apiserver/certs.ts";

const execFileAsync = promisify(execFile);

interface Sleeper {
  until: number;
  wake: () => void;
}

/** Time stands still until the test advances it; sleepers wake when their deadline is passed. */
export class ManualClock implements Clock {
  private readonly sleepers = new Set<Sleeper>();
  constructor(private time: number) {}

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const sleeper: Sleeper = {
        until: this.time + ms,
        wake: () => {
          this.sleepers.delete(sleeper);
          signal.removeEventListener("abort", sleeper.wake);
          resolve();
        },
      };
      signal.addEventListener("abort", sleeper.wake);
      this.sleepers.add(sleeper);
    });
  }

  /** How many are asleep right now. */
  get sleeping(): number {
    return this.sleepers.size;
  }

  /** The earliest wake-up time among the sleepers. */
  nextWake(): number | undefined {
    let earliest: number | undefined;
    for (const sleeper of this.sleepers) if (earliest === undefined || sleeper.until < earliest) earliest = sleeper.until;
    return earliest;
  }

  advanceTo(time: number): void {
    this.time = Math.max(this.time, time);
    for (const sleeper of [...this.sleepers]) if (sleeper.until <= this.time) sleeper.wake();
  }

  advanceBy(ms: number): void {
    this.advanceTo(this.time + ms);
  }
}

export type Decision = "approve" | "deny" | "hang";

function opensslDate(ms: number): string {
  // YYYYMMDDHHMMSSZ, as `openssl ca -startdate/-enddate` take it.
  return new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
}

/**
 * A CSR API with a test CA behind it: each request is answered by `decide` (by call number, from 0):
 * signed by openssl, denied like the API server reports it, or left pending until aborted. Certificates
 * are valid from `now()` for `lifetimeMs`, so that a test clock and the certificates agree.
 */
export class FakeCsrApi implements CsrClient {
  readonly ca: KeyPairFiles;
  readonly submissions: CsrSubmission[] = [];
  private readonly dir: string;
  private readonly configPath: string;

  constructor(
    parent: string,
    public decide: (call: number) => Decision = () => "approve",
    private readonly now: () => number = Date.now,
    public lifetimeMs = 24 * 3600_000,
  ) {
    this.dir = mkdtempSync(join(parent, "ca-"));
    this.ca = createCertificateAuthority(this.dir);
    mkdirSync(join(this.dir, "issued"));
    writeFileSync(join(this.dir, "index.txt"), "");
    writeFileSync(join(this.dir, "serial"), `${randomBytes(8).toString("hex")}\n`);
    this.configPath = join(this.dir, "ca.cnf");
    // `openssl ca` rather than `x509 -req`: only it sets an arbitrary start date (OpenSSL 3.0).
    writeFileSync(
      this.configPath,
      [
        "[ca]", "default_ca = test",
        "[test]", `database = ${join(this.dir, "index.txt")}`, `new_certs_dir = ${join(this.dir, "issued")}`,
        `serial = ${join(this.dir, "serial")}`, "default_md = sha256", "policy = any", "copy_extensions = copyall", "unique_subject = no",
        "[any]", "commonName = supplied", "organizationName = optional",
      ].join("\n") + "\n",
    );
  }

  get caPem(): string {
    return readFileSync(this.ca.certPath, "utf8");
  }

  async requestCertificate(submission: CsrSubmission, options: { signal: AbortSignal; timeoutMs: number }): Promise<IssuedCertificate> {
    const call = this.submissions.length;
    this.submissions.push(submission);
    const name = `csr-${call}`;
    const decision = this.decide(call);
    if (decision === "deny") {
      throw new VksError(`certificate signing request ${name} was denied: NotAllowed: node addresses are not allowed`, { exitCode: ExitCode.permission });
    }
    if (decision === "hang") {
      await new Promise<void>((resolve) => options.signal.addEventListener("abort", () => resolve(), { once: true }));
      throw new VksError(`stopped waiting for certificate signing request ${name}`);
    }
    const requestPath = join(this.dir, `${name}.csr`);
    const certPath = join(this.dir, `${name}.crt`);
    writeFileSync(requestPath, submission.requestPem);
    const start = Math.floor(this.now() / 1000) * 1000;
    await execFileAsync("openssl", [
      "ca", "-batch", "-notext", "-preserveDN", "-config", this.configPath, "-cert", this.ca.certPath, "-keyfile", this.ca.keyPath,
      "-startdate", opensslDate(start), "-enddate", opensslDate(start + this.lifetimeMs), "-in", requestPath, "-out", certPath,
    ]);
    return { csrName: name, certificatePem: readFileSync(certPath, "utf8") };
  }
}

export class RecordingLog implements CertificateLog {
  readonly lines: string[] = [];
  info(message: string): void {
    this.lines.push(`info: ${message}`);
  }
  warn(message: string): void {
    this.lines.push(`warn: ${message}`);
  }
}

/** Polls until `check` returns something other than undefined/false. */
export async function eventually<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** The VksError `promise` rejects with; anything else (another error, or none at all) fails the test. */
export async function failure(promise: Promise<unknown>): Promise<VksError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof VksError) return err;
    throw err;
  }
  throw new Error("expected a VksError");
}
