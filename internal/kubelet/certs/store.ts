/**
 * Where issued serving certificates live, laid out as client-go's certificate file store lays them out
 * for the kubelet: each pair (certificate chain, then key) in `kubelet-server-<timestamp>.pem`, mode 0600,
 * and `kubelet-server-current.pem` a symlink to the pair in use, switched atomically through
 * `kubelet-server-updated.pem`. Tools that read the kubelet's files find vks' in the same shape.
 */
import { lstat, mkdir, readFile, readdir, readlink, rename, symlink, unlink } from "node:fs/promises";
import { basename, join } from "node:path";
import { writeFileAtomic } from "./files.ts";
import { keyPairFromPem, type ServingKeyPair } from "./keypair.ts";
import { decodePem, encodePem } from "./pem.ts";

function timestamp(now: number): string {
  // Go's "2006-01-02-15-04-05", in UTC so that names sort by time whatever the host's zone.
  return new Date(now).toISOString().slice(0, 19).replace(/[T:]/g, "-");
}

/** Splits a combined file into its certificates and its one private key. */
function splitCombined(text: string): { certPem: string; keyPem: string } {
  const blocks = decodePem(text);
  const certPem = blocks
    .filter((block) => block.label === "CERTIFICATE")
    .map((block) => encodePem(block.label, block.der))
    .join("");
  const key = blocks.find((block) => block.label.endsWith("PRIVATE KEY"));
  return { certPem, keyPem: key === undefined ? "" : encodePem(key.label, key.der) };
}

async function isSymlink(path: string): Promise<boolean | undefined> {
  try {
    return (await lstat(path)).isSymbolicLink();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export class RotatedCertificateStore {
  constructor(
    readonly directory: string,
    readonly prefix = "kubelet-server",
  ) {}

  get currentPath(): string {
    return join(this.directory, `${this.prefix}-current.pem`);
  }

  private get updatedPath(): string {
    return join(this.directory, `${this.prefix}-updated.pem`);
  }

  /** The pair in use, or why there is none usable ("missing" on first start). */
  async load(): Promise<ServingKeyPair | { unusable: string }> {
    await this.recover();
    let text: string;
    try {
      text = await readFile(this.currentPath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { unusable: "missing" };
      return { unusable: err instanceof Error ? err.message : String(err) };
    }
    try {
      const { certPem, keyPem } = splitCombined(text);
      return keyPairFromPem(certPem, keyPem);
    } catch (err) {
      return { unusable: `${this.currentPath}: ${err instanceof Error ? err.message : String(err)}` };
    }
  }

  /** Checks the pair, writes it to a new file and makes it current; returns it as stored. */
  async save(certPem: string, keyPem: string, now: number): Promise<ServingKeyPair> {
    const checked = keyPairFromPem(certPem, keyPem);
    await mkdir(this.directory, { recursive: true, mode: 0o755 });
    const previous = await this.currentTarget();
    const name = await this.freshName(now);
    const combined = checked.certPem.trimEnd() + "\n" + checked.keyPem.trimEnd() + "\n";
    await writeFileAtomic(join(this.directory, name), combined, 0o600);
    await unlink(this.updatedPath).catch(() => undefined);
    // A relative link keeps working when the state directory is moved or mounted elsewhere.
    await symlink(name, this.updatedPath);
    await rename(this.updatedPath, this.currentPath);
    await this.prune([name, ...(previous === undefined ? [] : [previous])]);
    return checked;
  }

  /** An interrupted switch left `updated` in place of `current`: finish it, as client-go's store does on start. */
  private async recover(): Promise<void> {
    if ((await isSymlink(this.currentPath)) !== undefined) return;
    if ((await isSymlink(this.updatedPath)) === true) await rename(this.updatedPath, this.currentPath);
  }

  private async currentTarget(): Promise<string | undefined> {
    try {
      return basename(await readlink(this.currentPath));
    } catch {
      return undefined;
    }
  }

  private async freshName(now: number): Promise<string> {
    const existing = new Set(await readdir(this.directory));
    const stem = `${this.prefix}-${timestamp(now)}`;
    for (let suffix = 0; ; suffix++) {
      const name = suffix === 0 ? `${stem}.pem` : `${stem}-${suffix}.pem`;
      if (!existing.has(name)) return name;
    }
  }

  /** Keeps the current pair and the one before it (a rollback needs no API server); older pairs go. */
  private async prune(keep: readonly string[]): Promise<void> {
    const pattern = new RegExp(`^${this.prefix}-\\d{4}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{2}(-\\d+)?\\.pem$`);
    for (const name of await readdir(this.directory)) {
      if (pattern.test(name) && !keep.includes(name)) await unlink(join(this.directory, name)).catch(() => undefined);
    }
  }
}
