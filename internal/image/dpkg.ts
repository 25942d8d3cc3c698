/**
 * Read-only questions to dpkg's database and to .deb files. Package names reaching here have passed
 * ref.ts' grammar and still go after `--`.
 */
import { ExitCode, VksError } from "../errors.ts";
import { runCommand } from "./command.ts";

const INSTALLED_STATUS = "install ok installed";

/** The installed version of a package, or undefined when it is not (fully) installed. */
export async function installedVersion(name: string): Promise<string | undefined> {
  const result = await runCommand(["dpkg-query", "-W", "-f", "${Status}\t${Version}", "--", name]);
  // dpkg-query exits 1 for a package it has never heard of.
  if (result.exitCode !== 0) return undefined;
  const [status, version] = result.stdout.split("\t");
  return status === INSTALLED_STATUS && version !== undefined && version !== "" ? version : undefined;
}

/** Every fully installed package with its version: comparing two snapshots shows what an install added. */
export async function installedPackages(): Promise<Map<string, string>> {
  const result = await runCommand(["dpkg-query", "-W", "-f", "${Status}\t${Package}\t${Version}\n"]);
  if (result.exitCode !== 0) throw dpkgFailure("dpkg-query -W", result.stderr);
  const packages = new Map<string, string>();
  for (const line of result.stdout.split("\n")) {
    const [status, name, version] = line.split("\t");
    if (status === INSTALLED_STATUS && name !== undefined && version !== undefined) packages.set(name, version);
  }
  return packages;
}

/** Paths a package installed (directories included), as `dpkg-query -L` lists them. */
export async function packageFiles(name: string): Promise<string[]> {
  const result = await runCommand(["dpkg-query", "-L", "--", name]);
  if (result.exitCode !== 0) throw dpkgFailure(`dpkg-query -L ${name}`, result.stderr);
  return result.stdout.split("\n").filter((line) => line.startsWith("/"));
}

export interface DebControl {
  name: string;
  version: string;
  architecture: string;
}

/** The identity a .deb file declares in its control data (what dpkg will install, whatever its name). */
export async function debControl(path: string): Promise<DebControl> {
  const result = await runCommand(["dpkg-deb", "--field", "--", path, "Package", "Version", "Architecture"]);
  if (result.exitCode !== 0) throw dpkgFailure(`dpkg-deb --field ${path}`, result.stderr);
  const fields = new Map<string, string>();
  for (const line of result.stdout.split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const name = fields.get("Package");
  const version = fields.get("Version");
  const architecture = fields.get("Architecture");
  if (name === undefined || version === undefined || architecture === undefined) {
    throw new VksError(`${path} is not a Debian package: its control data lacks Package, Version or Architecture`, {
      exitCode: ExitCode.invalidInput,
    });
  }
  return { name, version, architecture };
}

function dpkgFailure(command: string, stderr: string): VksError {
  return new VksError(`${command} failed: ${stderr.trim() || "no message"}`, {
    exitCode: ExitCode.unavailable,
    hint: "check that dpkg works on this host (`dpkg --audit`)",
  });
}
