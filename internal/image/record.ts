/**
 * Which packages vks installed, so that a later clean-up can tell them from the host's own. A small JSON
 * file in vks' state directory, replaced atomically; a package installed before vks looked is never in it.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ExitCode, VksError } from "../errors.ts";

export interface InstalledPackageRecord {
  version: string;
  /** The image reference whose install brought the package (for a dependency: the one that pulled it in). */
  reference: string;
  /** ISO 8601. */
  installedAt: string;
  /** Units vks disabled from starting at boot. */
  disabledUnits: string[];
}

export interface InstalledPackagesFile {
  packages: Record<string, InstalledPackageRecord>;
}

export function installedRecordPath(stateDir: string): string {
  return join(stateDir, "image", "installed-packages.json");
}

export function readInstalledRecord(stateDir: string): InstalledPackagesFile {
  let text: string;
  try {
    text = readFileSync(installedRecordPath(stateDir), "utf8");
  } catch {
    return { packages: {} };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new VksError(`${installedRecordPath(stateDir)} is not valid JSON`, {
      exitCode: ExitCode.software,
      hint: "fix or remove the file; it only lists which packages vks installed",
      cause: err,
    });
  }
  if (typeof parsed !== "object" || parsed === null || !("packages" in parsed)) return { packages: {} };
  return parsed as InstalledPackagesFile;
}

export function recordInstalledPackages(stateDir: string, added: Record<string, InstalledPackageRecord>): void {
  const record = readInstalledRecord(stateDir);
  Object.assign(record.packages, added);
  const path = installedRecordPath(stateDir);
  mkdirSync(join(stateDir, "image"), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(record, null, 2) + "\n");
  renameSync(temporary, path);
}
