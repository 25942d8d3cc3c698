/**
 * The engine's side of secret env: writing a container's env file (only the manager's user can read it)
 * and the host's allocatable resources for resourceFieldRef.
 */
import { randomBytes } from "node:crypto";
import { statfsSync } from "node:fs";
import { chmod, mkdir, open, rename, rm } from "node:fs/promises";
import { availableParallelism, totalmem } from "node:os";
import { dirname } from "node:path";
import { formatEnvironmentFile } from "./env-file.ts";
import type { Allocatable } from "./resource-field.ts";

/**
 * Writes the file atomically (a reader never sees half of it) with mode 0600 from the start, in a
 * directory only the owner can enter: the values never sit anywhere another user could read.
 */
export async function writeSecretEnvFile(path: string, assignments: readonly string[]): Promise<void> {
  const directory = dirname(path);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  // mkdir's mode applies only to directories it creates; one left by an older run is tightened too.
  await chmod(directory, 0o700);
  const temporary = `${directory}/.${randomBytes(6).toString("hex")}.tmp`;
  const file = await open(temporary, "wx", 0o600);
  try {
    await file.writeFile(formatEnvironmentFile(assignments), "utf8");
    await file.sync();
  } catch (err) {
    await file.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw err;
  }
  await file.close();
  await rename(temporary, path);
}

/** The kubelet's default hard eviction threshold for memory, left out of allocatable. */
const MEMORY_RESERVED_BYTES = 100 * 1024 * 1024;
/** The kubelet's default nodefs.available threshold. */
const FILESYSTEM_RESERVED_FRACTION = 0.1;

/**
 * What the node reports as allocatable (as serve's node status computes it): all CPUs, memory less the
 * eviction threshold, and the state directory's filesystem less its threshold.
 */
export function hostAllocatable(stateDir: string): Allocatable {
  let storageBytes = 0;
  try {
    const stats = statfsSync(stateDir);
    storageBytes = stats.blocks * stats.bsize;
  } catch {
    // The state directory may not exist yet; an unknown size counts as 0, as in the node status.
  }
  return {
    cpu: String(availableParallelism()),
    memory: `${Math.floor(Math.max(0, totalmem() - MEMORY_RESERVED_BYTES) / 1024)}Ki`,
    "ephemeral-storage": `${Math.floor((storageBytes * (1 - FILESYSTEM_RESERVED_FRACTION)) / 1024)}Ki`,
  };
}
