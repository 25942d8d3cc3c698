/**
 * Private APT configurations for `host/name` images: the package comes only from the source the operator
 * configured for that host (`--apt-source host=DEB_LINE`), never from the host's other sources.
 *
 * Each host gets its own directory under vks' state: a one-line sources.list and its own package lists.
 * The lists must be separate too: `apt-get update` deletes list files that belong to no configured source,
 * so pointing it at the shared lists with a one-source configuration would wipe the host's own.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ExitCode } from "../errors.ts";
import { ImageError } from "./errors.ts";

/** `deb [options] URI suite [component...]`, one line. */
const DEB_LINE = /^deb(\s+\[[^\]\n]*\])?\s+\S+\s+\S+(\s+\S+)*$/;

export interface HostSource {
  /** `-o` settings that make apt-get see only this host's source and lists. */
  configOptions: string[];
  directory: string;
}

/** Checks a `--apt-source` value; the error names the flag so the operator knows where to fix it. */
export function validateDebLine(host: string, debLine: string): void {
  if (!DEB_LINE.test(debLine.trim())) {
    throw new ImageError("ErrImagePull", `the APT source for ${host} is not a one-line "deb" entry: ${JSON.stringify(debLine)}`, {
      exitCode: ExitCode.usage,
      hint: `use --apt-source ${host}='deb [signed-by=/usr/share/keyrings/KEY.gpg] https://${host}/debian bookworm main'`,
    });
  }
}

export function prepareHostSource(stateDir: string, host: string, aptSources: Readonly<Record<string, string>>): HostSource {
  const debLine = aptSources[host];
  if (debLine === undefined) {
    const configured = Object.keys(aptSources);
    throw new ImageError("ErrImagePull", `no APT source is configured for host ${host}`, {
      exitCode: ExitCode.invalidInput,
      hint:
        `start vks with --apt-source ${host}='deb [signed-by=/usr/share/keyrings/KEY.gpg] https://${host}/debian bookworm main'` +
        (configured.length > 0 ? ` (configured hosts: ${configured.join(", ")})` : ""),
    });
  }
  validateDebLine(host, debLine);
  // apt-get silently skips a .deb whose path holds a ':' (it reads `name:arch`), so a port's ':' becomes
  // '_', which no host name contains ('/' cannot occur either, by ref.ts' grammar).
  const directory = join(stateDir, "image", "apt-sources", host.replaceAll(":", "_"));
  const lists = join(directory, "lists");
  mkdirSync(join(lists, "partial"), { recursive: true });
  const sourceList = join(directory, "sources.list");
  writeFileSync(sourceList, `${debLine.trim()}\n`);
  return {
    directory,
    configOptions: [
      "-o",
      `Dir::Etc::SourceList=${sourceList}`,
      "-o",
      "Dir::Etc::SourceParts=/dev/null",
      "-o",
      `Dir::State::Lists=${lists}`,
      // Empty cache paths keep apt from overwriting the host's pkgcache.bin with this one-source view.
      "-o",
      "Dir::Cache::pkgcache=",
      "-o",
      "Dir::Cache::srcpkgcache=",
    ],
  };
}
