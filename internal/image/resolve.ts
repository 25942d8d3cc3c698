/**
 * Turning a container's `image` into a ResolvedImage, with the kubelet's pull policies:
 *
 * - Always: bring the package to the candidate version on every resolve (package lists refreshed when
 *   older than listsMaxAgeSeconds); a .deb URL is fetched and installed every time.
 * - IfNotPresent: install only when the package is missing or at another version than pinned.
 * - Never: fail with ErrImageNeverPull unless it is installed (at the pinned version, if pinned).
 *
 * A pinned version (`name=version`, or a .deb URL, whose file name pins one) makes Always behave as
 * IfNotPresent: the pin says which version, so there is nothing newer to look for. Path images are
 * never pulled; they must exist and be executable.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { AptError, aptDownload } from "./apt.ts";
import { downloadDeb } from "./deb.ts";
import { installedVersion } from "./dpkg.ts";
import { ImageError } from "./errors.ts";
import { PackageInstaller } from "./installer.ts";
import { imageOfInstalledPackage, isExecutableFile } from "./packageimage.ts";
import { POLICY_RC_D_PATH } from "./policy.ts";
import {
  type DebReference,
  type PathReference,
  parseImageReference,
  type RepoReference,
  versionWithoutEpoch,
} from "./ref.ts";
import { prepareHostSource } from "./sources.ts";
import type { PullPolicy, ResolvedImage } from "./types.ts";

export { PullBackOff } from "./backoff.ts";
export { ImageError } from "./errors.ts";

export interface ImageResolverOptions {
  /** vks' state directory: the record of installed packages and per-host APT configurations go here. */
  stateDir: string;
  /** `--apt-source host=DEB_LINE` values: the only source each `host/name` image may come from. */
  aptSources?: Record<string, string>;
  /** Progress of installs, each message prefixed with the image it concerns. */
  onProgress?: (message: string) => void;
  /** Bound on waiting for the dpkg lock or another vks' install (default 600 s). */
  lockTimeoutSeconds?: number;
  /** Package lists older than this are refreshed before an Always pull (default 300 s). */
  listsMaxAgeSeconds?: number;
  /** Shared by every vks on the host (default /var/lib/vks/image-install.lock). */
  hostLockPath?: string;
  /** Tests point this elsewhere; vks swaps the real one during installs (default /usr/sbin/policy-rc.d). */
  policyRcDPath?: string;
}

/** Deliberately persistent and outside any per-user state: every vks on the host must share it. */
export const DEFAULT_HOST_LOCK_PATH = "/var/lib/vks/image-install.lock";
const DEFAULT_LOCK_TIMEOUT_SECONDS = 600;
const DEFAULT_LISTS_MAX_AGE_SECONDS = 300;
/** The key under which the host's own sources' last update is remembered. */
const HOST_SOURCES = "";

/**
 * The pull policy a container gets when its manifest names none. The kubelet defaults to Always for
 * untagged images; vks defaults to IfNotPresent for every image, because a pull here is an apt upgrade of
 * a host package, which should not happen merely because a container restarted.
 */
export function defaultPullPolicy(_ref: string): PullPolicy {
  return "IfNotPresent";
}

export class ImageResolver {
  private readonly installer: PackageInstaller;
  private readonly lastListsUpdate = new Map<string, number>();
  private readonly aptSources: Readonly<Record<string, string>>;
  private readonly listsMaxAgeMs: number;

  constructor(private readonly options: ImageResolverOptions) {
    this.aptSources = options.aptSources ?? {};
    this.listsMaxAgeMs = (options.listsMaxAgeSeconds ?? DEFAULT_LISTS_MAX_AGE_SECONDS) * 1000;
    this.installer = new PackageInstaller({
      stateDir: options.stateDir,
      lockTimeoutSeconds: options.lockTimeoutSeconds ?? DEFAULT_LOCK_TIMEOUT_SECONDS,
      hostLockPath: options.hostLockPath ?? DEFAULT_HOST_LOCK_PATH,
      policyRcDPath: options.policyRcDPath ?? POLICY_RC_D_PATH,
    });
  }

  /**
   * Resolves `ref` (the manifest's image field, at `fieldPath`) under `pullPolicy`. Throws ImageError with
   * the kubelet's reason: InvalidImageName, ErrImagePull (apt's own error text in the message) or
   * ErrImageNeverPull.
   */
  async resolve(ref: string, pullPolicy: PullPolicy, fieldPath: string): Promise<ResolvedImage> {
    const parsed = parseImageReference(ref, fieldPath);
    // An unconfigured host is a configuration error whether or not the package happens to be installed.
    if (parsed.kind === "repo") prepareHostSource(this.options.stateDir, parsed.host, this.aptSources);
    const onProgress = (message: string): void => this.options.onProgress?.(`${ref}: ${message}`);
    switch (parsed.kind) {
      case "path":
        return resolvePath(parsed, ref, pullPolicy);
      case "package":
        return this.resolvePackage(ref, parsed.name, parsed.version, pullPolicy, onProgress, async (target) => {
          if (pullPolicy === "Always" && parsed.version === undefined) await this.refreshLists(HOST_SOURCES, onProgress);
          await this.installer.install({ targets: [target], reference: ref, allowDowngrades: parsed.version !== undefined, onProgress });
        });
      case "repo":
        return this.resolvePackage(ref, parsed.name, parsed.version, pullPolicy, onProgress, (target) =>
          this.installFromHost(parsed, target, ref, pullPolicy, onProgress),
        );
      case "deb":
        return this.resolveDeb(parsed, ref, pullPolicy, onProgress);
    }
  }

  private async resolvePackage(
    ref: string,
    name: string,
    version: string | undefined,
    pullPolicy: PullPolicy,
    onProgress: (message: string) => void,
    installInsideLock: (target: string) => Promise<void>,
  ): Promise<ResolvedImage> {
    const present = await installedVersion(name);
    const satisfied = present !== undefined && (version === undefined || present === version);
    if (pullPolicy === "Never" && !satisfied) throw neverPull(ref, present);
    const effective = version !== undefined && pullPolicy === "Always" ? "IfNotPresent" : pullPolicy;
    if (effective === "Always" || !satisfied) {
      const target = version === undefined ? name : `${name}=${version}`;
      onProgress(present === undefined ? `installing ${target}` : `${name} ${present} is installed; installing ${target}`);
      await this.installer.exclusive(onProgress, () => installInsideLock(target));
    }
    const installed = await installedVersion(name);
    if (installed === undefined || (version !== undefined && installed !== version)) {
      throw new ImageError("ErrImagePull", `${ref}: apt-get finished but ${name} is ${installed === undefined ? "not installed" : `at ${installed}`}`, {
        hint: `see \`dpkg -s ${name}\`; a held package or a failed postinst can cause this`,
      });
    }
    if (installed !== present) onProgress(`${name} ${installed} is installed`);
    return imageOfInstalledPackage({ name, version: installed, reference: ref });
  }

  /** Called holding the install locks: downloads from the host's source only, installs the file. */
  private async installFromHost(
    parsed: RepoReference,
    target: string,
    ref: string,
    pullPolicy: PullPolicy,
    onProgress: (message: string) => void,
  ): Promise<void> {
    const source = prepareHostSource(this.options.stateDir, parsed.host, this.aptSources);
    const listsAge = this.lastListsUpdate.get(parsed.host);
    // The private lists start empty, and an unpinned Always pull wants the host's newest version.
    if (listsAge === undefined || (pullPolicy === "Always" && parsed.version === undefined)) {
      await this.refreshLists(parsed.host, onProgress, source.configOptions);
    }
    const downloads = join(source.directory, "downloads");
    mkdirSync(downloads, { recursive: true });
    const directory = mkdtempSync(join(downloads, "pull-"));
    try {
      onProgress(`downloading ${target} from ${parsed.host}`);
      const options = { onProgress, lockTimeoutSeconds: 0, configOptions: source.configOptions, cwd: directory };
      const download = async (): Promise<void> => {
        try {
          await aptDownload(target, options);
        } catch (err) {
          if (!(err instanceof AptError)) throw err;
          throw new ImageError("ErrImagePull", `${target} is not available from the APT source for ${parsed.host}: ${err.message}`, {
            hint: `check that the repository configured with --apt-source ${parsed.host}=… carries ${parsed.name}`,
            cause: err,
          });
        }
      };
      await download().catch(async (err: unknown) => {
        // A pinned version may be newer than the lists vks has for this host.
        if (!(err instanceof ImageError && err.cause instanceof AptError && err.cause.staleLists)) throw err;
        onProgress(`${err.message}; updating the lists of ${parsed.host} and trying again`);
        this.lastListsUpdate.delete(parsed.host);
        await this.refreshLists(parsed.host, onProgress, source.configOptions);
        await download();
      });
      const file = readdirSync(directory).find((entry) => entry.endsWith(".deb"));
      if (file === undefined) {
        throw new ImageError("ErrImagePull", `${ref}: apt-get download left no .deb file`, {
          hint: `try \`apt-get download ${target}\` with the source configured for ${parsed.host}`,
        });
      }
      // Dependencies come from the host's usual sources; the package itself is this exact file.
      await this.installer.install({
        targets: [join(directory, file)],
        reference: ref,
        allowDowngrades: parsed.version !== undefined,
        onProgress,
      });
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  }

  private async resolveDeb(
    parsed: DebReference,
    ref: string,
    pullPolicy: PullPolicy,
    onProgress: (message: string) => void,
  ): Promise<ResolvedImage> {
    const present = await installedVersion(parsed.name);
    const satisfied =
      present !== undefined && (present === parsed.version || versionWithoutEpoch(present) === parsed.version);
    if (pullPolicy === "Never" && !satisfied) throw neverPull(ref, present);
    let warnings: string[] = [];
    if (!satisfied) {
      const downloads = join(this.options.stateDir, "image", "downloads");
      mkdirSync(downloads, { recursive: true });
      const directory = mkdtempSync(join(downloads, "deb-"));
      try {
        const deb = await downloadDeb(parsed, directory, onProgress);
        warnings = deb.warnings;
        await this.installer.exclusive(onProgress, () =>
          this.installer.install({ targets: [deb.path], reference: ref, allowDowngrades: true, onProgress }),
        );
      } finally {
        rmSync(directory, { recursive: true, force: true });
      }
    }
    const installed = await installedVersion(parsed.name);
    if (installed === undefined) {
      throw new ImageError("ErrImagePull", `${ref}: the install finished but ${parsed.name} is not installed`, {
        hint: `see \`dpkg -s ${parsed.name}\``,
      });
    }
    const image = await imageOfInstalledPackage({ name: parsed.name, version: installed, reference: ref });
    if (warnings.length > 0) image.warnings = [...warnings, ...(image.warnings ?? [])];
    return image;
  }

  /**
   * `apt-get update` for the host's sources or one private source, at most once per listsMaxAge. For a
   * private source a fetch failure is the error: that source is the only place the package may come from.
   */
  private async refreshLists(key: string, onProgress: (message: string) => void, configOptions?: string[]): Promise<void> {
    const last = this.lastListsUpdate.get(key);
    if (last !== undefined && Date.now() - last < this.listsMaxAgeMs) return;
    const warnings = await this.installer.update(onProgress, configOptions);
    const failures = warnings.filter((warning) => /Failed to fetch|failed to download/.test(warning));
    if (key !== HOST_SOURCES && failures.length > 0) {
      throw new ImageError("ErrImagePull", `apt-get update of the source for ${key} failed: ${failures.join("; ")}`, {
        hint: `check that the --apt-source line for ${key} names a reachable repository`,
      });
    }
    this.lastListsUpdate.set(key, Date.now());
  }
}

function neverPull(ref: string, present: string | undefined): ImageError {
  return new ImageError(
    "ErrImageNeverPull",
    `Container image ${JSON.stringify(ref)} is not present with pull policy of Never` +
      (present === undefined ? "" : ` (installed version is ${present})`),
    { hint: "install the package on the host first, or use imagePullPolicy IfNotPresent" },
  );
}

function resolvePath(parsed: PathReference, ref: string, pullPolicy: PullPolicy): ResolvedImage {
  const reason = pullPolicy === "Never" ? "ErrImageNeverPull" : "ErrImagePull";
  if (!existsSync(parsed.path)) {
    throw new ImageError(reason, `${ref}: no such file`, { hint: "a path image must name an executable already on the host" });
  }
  if (!statSync(parsed.path).isFile()) {
    throw new ImageError(reason, `${ref}: not a regular file`, { hint: "a path image must name an executable file, not a directory" });
  }
  if (!isExecutableFile(parsed.path)) {
    throw new ImageError(reason, `${ref}: not executable`, { hint: `make it executable (chmod +x ${parsed.path}) or name another file` });
  }
  return {
    reference: ref,
    entrypoint: [parsed.path],
    cmd: [],
    environment: [],
    environmentFiles: [],
    runtimeDirectory: [],
    execStartPre: [],
    imageID: `path:${parsed.path}`,
  };
}
