/**
 * One package install by vks, start to end: one at a time (in this process and on the host), with
 * packages' own service starts denied, a retry after `apt-get update` when the lists are stale, the new
 * packages' units kept from starting at boot, and a record of what vks added.
 */
import { errorMessage, ExitCode, VksError } from "../errors.ts";
import { AptError, aptInstall, aptUpdate, type AptRunOptions } from "./apt.ts";
import { installedPackages } from "./dpkg.ts";
import { AsyncMutex, withHostLock } from "./lock.ts";
import { withServiceStartsDenied } from "./policy.ts";
import { type InstalledPackageRecord, recordInstalledPackages } from "./record.ts";
import { disableBootStart } from "./services.ts";

export interface InstallerOptions {
  stateDir: string;
  /** Bound on waiting for the dpkg lock (another package manager) and for another vks' install. */
  lockTimeoutSeconds: number;
  /** The flock file shared by every vks on the host. */
  hostLockPath: string;
  policyRcDPath: string;
}

export interface InstallRequest {
  /** `name`, `name=version` or the absolute path of a .deb file. */
  targets: string[];
  /** The image reference, for the record of what vks installed. */
  reference: string;
  allowDowngrades?: boolean;
  /** `-o` settings for a private source list (repo images); the retry's update uses them too. */
  configOptions?: string[];
  onProgress: (message: string) => void;
}

export class PackageInstaller {
  private readonly mutex = new AsyncMutex();

  constructor(private readonly options: InstallerOptions) {}

  /** Runs task holding both install locks: nothing else of vks touches apt or dpkg meanwhile. */
  exclusive<T>(onProgress: (message: string) => void, task: () => Promise<T>): Promise<T> {
    return this.mutex.runExclusive(() =>
      withHostLock(this.options.hostLockPath, this.options.lockTimeoutSeconds, onProgress, task),
    );
  }

  /** `apt-get update`; call inside exclusive(). Returns apt's warnings (e.g. a source it could not fetch). */
  async update(onProgress: (message: string) => void, configOptions?: string[]): Promise<string[]> {
    onProgress("updating the package lists");
    return aptUpdate(this.aptOptions(onProgress, {}, configOptions));
  }

  /** Installs the request's targets; call inside exclusive(). */
  async install(request: InstallRequest): Promise<void> {
    const unreadable = request.targets.find((target) => target.startsWith("/") && target.includes(":"));
    if (unreadable !== undefined) {
      // apt-get reads `a:b` as a package with an architecture and, for a path, quietly installs nothing.
      throw new VksError(`cannot install ${unreadable}: apt-get ignores .deb paths that contain ':'`, {
        exitCode: ExitCode.software,
        hint: "give vks a state directory whose path has no ':'",
      });
    }
    await withServiceStartsDenied(async (policyEnv) => {
      const before = await installedPackages();
      try {
        const run = (): Promise<void> =>
          aptInstall(request.targets, {
            ...this.aptOptions(request.onProgress, policyEnv, request.configOptions),
            allowDowngrades: request.allowDowngrades === true,
          });
        try {
          await run();
        } catch (err) {
          if (!(err instanceof AptError && err.staleLists)) throw err;
          request.onProgress(`${err.message}; updating the package lists and trying again`);
          await this.update(request.onProgress, request.configOptions);
          await run();
        }
      } finally {
        // Even a failed install may have added dependencies; they get the same treatment. A problem here
        // must not hide apt's own error, and the packages are usable either way: it is reported instead.
        await this.settleAdded(before, request).catch((err: unknown) =>
          request.onProgress(`warning: could not settle the newly installed packages: ${errorMessage(err)}`),
        );
      }
    }, this.options.policyRcDPath);
  }

  private async settleAdded(before: Map<string, string>, request: InstallRequest): Promise<void> {
    const after = await installedPackages();
    const added = [...after.keys()].filter((name) => !before.has(name)).sort();
    if (added.length === 0) return;
    const disabled = await disableBootStart(added, request.onProgress);
    const installedAt = new Date().toISOString();
    const records: Record<string, InstalledPackageRecord> = {};
    for (const name of added) {
      records[name] = {
        version: after.get(name) ?? "",
        reference: request.reference,
        installedAt,
        disabledUnits: disabled.get(name) ?? [],
      };
    }
    recordInstalledPackages(this.options.stateDir, records);
  }

  private aptOptions(
    onProgress: (message: string) => void,
    env: Record<string, string>,
    configOptions: string[] | undefined,
  ): AptRunOptions {
    return { env, onProgress, lockTimeoutSeconds: this.options.lockTimeoutSeconds, configOptions };
  }
}
