/**
 * Fetching a .deb named by URL and checking it is the file the manifest asked for: the sha256 digest when
 * one is given (a mismatch is refused; without one the install goes ahead with a warning), and always the
 * package name and version in the file's control data against its file name.
 */
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../errors.ts";
import { debControl } from "./dpkg.ts";
import { ImageError } from "./errors.ts";
import { LOOPBACK_HOSTS, type DebReference, versionWithoutEpoch } from "./ref.ts";

export interface DownloadedDeb {
  path: string;
  /** sha256 of the file as fetched. */
  sha256: string;
  /** The control data's version, epoch included. */
  version: string;
  warnings: string[];
}

/** Downloads `ref` into `directory` (which the caller removes) and verifies it. */
export async function downloadDeb(
  ref: DebReference,
  directory: string,
  onProgress: (message: string) => void,
): Promise<DownloadedDeb> {
  const warnings: string[] = [];
  if (ref.digest === undefined) {
    const warning = `${ref.url} has no @sha256: digest; installing it unverified`;
    warnings.push(warning);
    onProgress(`warning: ${warning}`);
  }
  onProgress(`downloading ${ref.url}`);
  let response: Response;
  try {
    response = await fetch(ref.url, { redirect: "follow" });
  } catch (err) {
    throw pullError(ref, `cannot fetch it: ${errorMessage(err)}`, err);
  }
  if (!response.ok || response.body === null) {
    throw pullError(ref, `the server answered ${response.status} ${response.statusText}`);
  }
  const finalUrl = new URL(response.url || ref.url);
  if (finalUrl.protocol !== "https:" && !(finalUrl.protocol === "http:" && LOOPBACK_HOSTS.includes(finalUrl.hostname))) {
    throw pullError(ref, `it redirected to ${finalUrl.href}, which is not https`);
  }

  // apt-get installs a local file only when its name ends in .deb; the epoch's ':' is left out.
  const path = join(directory, `${ref.name}_${versionWithoutEpoch(ref.version)}_${ref.architecture}.deb`);
  const hash = createHash("sha256");
  const writer = Bun.file(path).writer();
  try {
    for await (const chunk of response.body) {
      hash.update(chunk);
      writer.write(chunk);
    }
  } catch (err) {
    throw pullError(ref, `the download broke off: ${errorMessage(err)}`, err);
  } finally {
    await writer.end();
  }
  const sha256 = hash.digest("hex");
  if (ref.digest !== undefined && sha256 !== ref.digest.hex) {
    rmSync(path, { force: true });
    throw new ImageError("ErrImagePull", `${ref.url}: digest mismatch: expected sha256:${ref.digest.hex}, got sha256:${sha256}`, {
      hint: "the file on the server is not the one the manifest names; fix the digest only if you trust the new file",
    });
  }

  const control = await debControl(path).catch((err: unknown) => {
    throw pullError(ref, `it is not a Debian package (${errorMessage(err)})`, err);
  });
  const versionMatches = control.version === ref.version || versionWithoutEpoch(control.version) === ref.version;
  if (control.name !== ref.name || !versionMatches || control.architecture !== ref.architecture) {
    throw pullError(
      ref,
      `the file holds ${control.name} ${control.version} (${control.architecture}), but its name says ` +
        `${ref.name} ${ref.version} (${ref.architecture})`,
    );
  }
  return { path, sha256, version: control.version, warnings };
}

function pullError(ref: DebReference, problem: string, cause?: unknown): ImageError {
  return new ImageError("ErrImagePull", `${ref.url}: ${problem}`, {
    hint: "check that the URL is reachable from this host and names a .deb file",
    cause,
  });
}
