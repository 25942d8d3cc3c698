/**
 * What a pod leaves in the state directory besides its record: secret env files, volume content, the
 * restart back-off's entries, probe results and log files. `pod down` and serve's deletes remove them with
 * the pod; a vks killed in between (or a record removed by hand) leaves them behind, and `vks units gc`
 * collects them as it collects orphan units.
 */
import { readdir, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { podSecretEnvDirectory } from "./env-file.ts";
import { probeResultsFile } from "./probes/results-file.ts";
import { podBackOffDirectory } from "./restart-backoff.ts";
import { podVolumeDirectory, removePodVolumes } from "./volume-data.ts";

/** Younger than this, an entry may belong to a pod another vks is creating right now (record not yet read). */
export const ORPHAN_MIN_AGE_MS = 60_000;

export interface OrphanStateEntry {
  path: string;
  kind: "secret-env" | "volumes" | "backoff" | "probes" | "logs";
}

export interface KnownPods {
  uids: ReadonlySet<string>;
  /** The log directories of pods that keep logs in files. */
  logDirectories: ReadonlySet<string>;
}

async function entries(directory: string): Promise<string[]> {
  try {
    return await readdir(directory);
  } catch {
    return [];
  }
}

async function oldEnough(path: string, now: number, minAgeMs: number): Promise<boolean> {
  try {
    return now - (await stat(path)).mtimeMs >= minAgeMs;
  } catch {
    return false;
  }
}

/** Entries of per-pod state whose pod vks has no record of, older than `minAgeMs`. */
export async function findOrphanState(stateDir: string, known: KnownPods, now = Date.now(), minAgeMs = ORPHAN_MIN_AGE_MS): Promise<OrphanStateEntry[]> {
  const candidates: OrphanStateEntry[] = [];
  // Each place is named by the pod's uid, as the engine names it (the same functions make the paths).
  const byUid: [OrphanStateEntry["kind"], (uid: string) => string][] = [
    ["secret-env", (uid) => podSecretEnvDirectory(stateDir, uid)],
    ["volumes", (uid) => podVolumeDirectory(stateDir, uid)],
    ["backoff", (uid) => podBackOffDirectory(stateDir, uid)],
  ];
  for (const [kind, pathOf] of byUid) {
    for (const uid of await entries(dirname(pathOf("x")))) {
      if (!known.uids.has(uid)) candidates.push({ kind, path: pathOf(uid) });
    }
  }
  const probesDirectory = dirname(probeResultsFile(stateDir, "x"));
  for (const file of await entries(probesDirectory)) {
    const uid = file.endsWith(".json") ? file.slice(0, -".json".length) : undefined;
    if (uid !== undefined && !known.uids.has(uid)) candidates.push({ kind: "probes", path: probeResultsFile(stateDir, uid) });
  }
  const logsDirectory = join(stateDir, "logs");
  const knownLogNames = new Set([...known.logDirectories].map((directory) => basename(directory)));
  for (const name of await entries(logsDirectory)) {
    if (!knownLogNames.has(name)) candidates.push({ kind: "logs", path: join(logsDirectory, name) });
  }
  const orphans: OrphanStateEntry[] = [];
  for (const candidate of candidates) if (await oldEnough(candidate.path, now, minAgeMs)) orphans.push(candidate);
  return orphans;
}

/** Removes what findOrphanState found; volume directories are unmounted first, as with a pod's removal. */
export async function removeOrphanState(orphans: OrphanStateEntry[]): Promise<void> {
  for (const orphan of orphans) {
    if (orphan.kind === "volumes") await removePodVolumes(orphan.path);
    else await rm(orphan.path, { recursive: true, force: true });
  }
}
