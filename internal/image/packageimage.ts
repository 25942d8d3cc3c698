/**
 * The ResolvedImage of an installed package: its program and how to run it, read from the package's
 * service unit when it ships one, else the executable named like the package.
 *
 * Which unit: the non-template `.service` the package ships named like the package, or the only one; with
 * several and none named like the package the image has no entrypoint and says why. A package shipping
 * none may still have a unit named like it from a companion package (nginx's is in nginx-common): that
 * one is used when it exists on the host. Only the vendor unit and the package's own drop-ins count;
 * an administrator's overrides in /etc/systemd belong to the host's service, not to the image.
 */
import { accessSync, constants, existsSync, lstatSync, readFileSync, statSync } from "node:fs";
import { hostname, release } from "node:os";
import { basename, dirname } from "node:path";
import { packageFiles } from "./dpkg.ts";
import type { HostFacts } from "./specifiers.ts";
import type { ResolvedImage } from "./types.ts";
import { imageFromUnit, type UnitImage } from "./unitimage.ts";
import { mergeUnitFiles, parseUnitFile } from "./unitfile.ts";

const SERVICE_UNIT = /^\/(?:usr\/)?lib\/systemd\/system\/([^/@]+\.service)$/;
const UNIT_DIRS = ["/lib/systemd/system", "/usr/lib/systemd/system"];
const EXECUTABLE_DIRS = ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/games"];
/** systemd's fixed search path for bare ExecStart= names on Debian 12 (split bin/sbin). */
const SYSTEMD_EXEC_SEARCH_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

export interface PackageIdentity {
  name: string;
  version: string;
  /** The manifest's reference, copied into the ResolvedImage. */
  reference: string;
}

export async function imageOfInstalledPackage(pkg: PackageIdentity): Promise<ResolvedImage> {
  const files = await packageFiles(pkg.name);
  const base: ResolvedImage = {
    reference: pkg.reference,
    entrypoint: [],
    cmd: [],
    environment: [],
    environmentFiles: [],
    runtimeDirectory: [],
    execStartPre: [],
    imageID: `dpkg:${pkg.name}=${pkg.version}`,
  };

  const choice = chooseServiceUnit(pkg.name, files);
  if (choice.kind === "unit") {
    const unitImage = unitImageOf(choice.path, files);
    const warnings = [...(choice.note === undefined ? [] : [choice.note]), ...unitImage.warnings];
    const { warnings: _omitted, explanation, ...settings } = unitImage;
    const image: ResolvedImage = { ...base, ...settings };
    if (explanation !== undefined) image.explanation = explanation;
    if (warnings.length > 0) image.warnings = warnings;
    return image;
  }
  if (choice.kind === "ambiguous") {
    return {
      ...base,
      explanation:
        `${pkg.name} ships several service units (${choice.units.join(", ")}) and none is named ${pkg.name}.service: ` +
        "give the container a command",
    };
  }
  const executable = chooseExecutable(pkg.name, files);
  if (executable.path !== undefined) return { ...base, entrypoint: [executable.path] };
  return { ...base, explanation: executable.explanation };
}

type UnitChoice = { kind: "unit"; path: string; note?: string } | { kind: "ambiguous"; units: string[] } | { kind: "none" };

export function chooseServiceUnit(name: string, files: readonly string[]): UnitChoice {
  const units = new Map<string, string>();
  for (const file of files) {
    const match = SERVICE_UNIT.exec(file);
    if (match === null || isSymlink(file)) continue;
    // /lib and /usr/lib are one directory on Debian 12; keep the first spelling of each unit.
    const unitName = match[1] ?? "";
    if (!units.has(unitName)) units.set(unitName, file);
  }
  const named = units.get(`${name}.service`);
  if (named !== undefined) return { kind: "unit", path: named };
  if (units.size === 1) return { kind: "unit", path: [...units.values()][0] ?? "" };
  if (units.size > 1) return { kind: "ambiguous", units: [...units.keys()].sort() };
  for (const dir of UNIT_DIRS) {
    const companion = `${dir}/${name}.service`;
    if (existsSync(companion) && !isSymlink(companion)) {
      return { kind: "unit", path: companion, note: `${name} ships no service unit; using ${companion} from the host` };
    }
  }
  return { kind: "none" };
}

export function chooseExecutable(name: string, files: readonly string[]): { path?: string; explanation?: string } {
  const executables = files.filter((file) => EXECUTABLE_DIRS.includes(dirname(file)) && isExecutableFile(file));
  const named = executables.find((file) => basename(file) === name);
  if (named !== undefined) return { path: named };
  if (executables.length === 1) return { path: executables[0] };
  if (executables.length === 0) {
    return { explanation: `${name} ships neither a service unit nor a program in ${EXECUTABLE_DIRS.join(", ")}: give the container a command` };
  }
  return {
    explanation:
      `${name} ships no service unit and several programs (${executables.map((file) => basename(file)).sort().join(", ")}), ` +
      `none named ${name}: give the container a command`,
  };
}

function unitImageOf(unitPath: string, files: readonly string[]): UnitImage {
  const unit = parseUnitFile(readFileSync(unitPath, "utf8"));
  const dropInDir = `${unitPath}.d/`;
  const dropIns = files
    .filter((file) => file.startsWith(dropInDir) && file.endsWith(".conf") && !file.slice(dropInDir.length).includes("/"))
    .sort((a, b) => basename(a).localeCompare(basename(b)))
    .map((file) => parseUnitFile(readFileSync(file, "utf8")));
  return imageFromUnit(mergeUnitFiles(unit, ...dropIns), {
    unitName: basename(unitPath),
    host: hostFacts(),
    readEnvironmentFile: readIfExists,
    findExecutable: (bare) =>
      SYSTEMD_EXEC_SEARCH_PATH.map((dir) => `${dir}/${bare}`).find((candidate) => isExecutableFile(candidate)),
  });
}

function hostFacts(): HostFacts {
  const osRelease = readIfExists("/etc/os-release");
  return {
    hostname: hostname(),
    machineId: readIfExists("/etc/machine-id")?.trim(),
    bootId: readIfExists("/proc/sys/kernel/random/boot_id")?.trim().replaceAll("-", ""),
    kernelRelease: release(),
    architecture: SYSTEMD_ARCHITECTURES[process.arch],
    osRelease: osRelease === undefined ? undefined : parseOsRelease(osRelease),
  };
}

/** process.arch to systemd's architecture names (%a). */
const SYSTEMD_ARCHITECTURES: Partial<Record<string, string>> = {
  x64: "x86-64",
  arm64: "arm64",
  ia32: "x86",
  arm: "arm",
  ppc64: "ppc64-le",
  s390x: "s390x",
  riscv64: "riscv64",
};

function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match === null) continue;
    fields[match[1] ?? ""] = (match[2] ?? "").replace(/^(["'])(.*)\1$/, "$2");
  }
  return fields;
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

export function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
