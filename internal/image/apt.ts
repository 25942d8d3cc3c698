/**
 * apt-get runs: install, update, download. Every run is non-interactive, waits a bounded time for the dpkg
 * lock (saying who holds it), reports progress from APT::Status-Fd, and fails with apt's own error lines.
 * Callers serialise runs (installer.ts); this module only runs one and reads its output.
 */
import { ImageError } from "./errors.ts";
import { runCommand } from "./command.ts";

export interface AptRunOptions {
  /** Extra environment (vks' policy-rc.d switch, see policy.ts). */
  env?: Record<string, string>;
  onProgress: (message: string) => void;
  /** How long apt waits for a dpkg lock another process holds before giving up. */
  lockTimeoutSeconds: number;
  /** `-o` settings placed before the verb (e.g. a private source list for one host). */
  configOptions?: string[];
  cwd?: string;
}

/** apt-get failed; `lines` are its `E:` lines, `staleLists` says whether `apt-get update` may cure it. */
export class AptError extends ImageError {
  constructor(
    readonly command: string,
    readonly lines: string[],
    readonly staleLists: boolean,
    hint: string,
  ) {
    super("ErrImagePull", `${command} failed: ${lines.length > 0 ? lines.join("; ") : "no error message"}`, { hint });
  }
}

/** Messages apt gives when its package lists are missing or older than the archive. */
const STALE_LISTS =
  /Unable to locate package|has no installation candidate|Version '[^']*' for '[^']*' was not found|Failed to fetch|404\s+Not Found|Unable to fetch some archives/;
/** apt's note that it fetched into a directory its _apt user cannot enter: harmless, and vks' own doing. */
const UNSANDBOXED = /Download is performed unsandboxed as root/;
const LOCK_HOLDER = /Could not get lock (\S+?)\.? It is held by process ([0-9]+)(?: \(([^)]*)\))?/;
const NONINTERACTIVE_ENV: Record<string, string> = {
  DEBIAN_FRONTEND: "noninteractive",
  DEBCONF_NONINTERACTIVE_SEEN: "true",
  APT_LISTCHANGES_FRONTEND: "none",
  // needrestart would otherwise restart services of the host after an upgrade.
  NEEDRESTART_SUSPEND: "1",
  // vks reads apt's messages to report errors, so they must be the untranslated ones.
  LC_ALL: "C.UTF-8",
  LANGUAGE: "",
};

export async function aptInstall(
  targets: string[],
  options: AptRunOptions & { allowDowngrades?: boolean },
): Promise<void> {
  const flags = ["-y", "--no-install-recommends", ...(options.allowDowngrades === true ? ["--allow-downgrades"] : [])];
  await runApt("install", flags, targets, options);
}

/** Returns apt's warnings: a source that could not be fetched is only a warning to apt-get update. */
export async function aptUpdate(options: AptRunOptions): Promise<string[]> {
  return runApt("update", [], [], options);
}

/** Downloads `target`'s .deb into options.cwd without installing it. */
export async function aptDownload(target: string, options: AptRunOptions): Promise<void> {
  await runApt("download", [], [target], options);
}

async function runApt(verb: string, flags: string[], targets: string[], options: AptRunOptions): Promise<string[]> {
  const argv = [
    "apt-get",
    "-o",
    `DPkg::Lock::Timeout=${options.lockTimeoutSeconds}`,
    "-o",
    "APT::Status-Fd=3",
    // A package's changed configuration file never stops an install with a question; the host's copy stays.
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
    ...(options.configOptions ?? []),
    ...flags,
    verb,
    "--",
    ...targets,
  ];
  const progress = new AptProgress(options.onProgress);
  const errors: string[] = [];
  const warnings: string[] = [];
  const result = await runCommand(argv, {
    env: { ...NONINTERACTIVE_ENV, ...options.env },
    cwd: options.cwd,
    onStatusLine: (line) => progress.status(line),
    onStdoutLine: (line) => progress.output(line),
    onStderrLine: (line) => {
      if (line.startsWith("E: ")) errors.push(line.slice(3));
      else if (line.startsWith("W: ") && !UNSANDBOXED.test(line)) {
        warnings.push(line.slice(3));
        options.onProgress(`warning: ${line.slice(3)}`);
      }
    },
  });
  if (result.exitCode === 0) return warnings;
  const command = `apt-get ${verb}${targets.length > 0 ? ` ${targets.join(" ")}` : ""}`;
  const staleLists = errors.some((line) => STALE_LISTS.test(line));
  throw new AptError(command, errors, staleLists, hintFor(verb, errors, progress.lockHolder, targets));
}

function hintFor(verb: string, errors: string[], lockHolder: string | undefined, targets: string[]): string {
  const text = errors.join("\n");
  if (/lock/i.test(text)) {
    return `another package manager (${lockHolder ?? "unknown process"}) holds the dpkg lock; let it finish, then retry`;
  }
  const first = targets[0] ?? "PACKAGE";
  const name = first.split("=")[0] ?? first;
  if (/Version '[^']*' for '[^']*' was not found/.test(text)) {
    return `list the versions apt can install with \`apt-cache madison ${name}\``;
  }
  if (/Unable to locate package|has no installation candidate/.test(text)) {
    return `check the package name with \`apt-cache policy ${name}\` (vks already ran apt-get update)`;
  }
  return `run \`apt-get ${verb} ${targets.join(" ")}\` by hand to see apt's full output`;
}

/** Turns apt's status lines into few, readable progress messages. */
class AptProgress {
  lockHolder: string | undefined;
  private lastDownload = "";
  private lastPackageStep = "";

  constructor(private readonly report: (message: string) => void) {}

  status(line: string): void {
    const [kind, subject = "", percentText = "0", ...rest] = line.split(":");
    const description = rest.join(":").trim();
    const percent = Math.floor(Number.parseFloat(percentText) || 0);
    if (kind === "dlstatus") {
      // One message per tenth of the download is enough to show it moves.
      const message = `downloading: ${description} (${Math.floor(percent / 10) * 10}%)`;
      if (message !== this.lastDownload) this.report(message);
      this.lastDownload = message;
    } else if (kind === "pmstatus") {
      if (subject === "dpkg-exec" || description === this.lastPackageStep) return;
      this.lastPackageStep = description;
      this.report(`${description} (${percent}%)`);
    } else if (kind === "pmerror") {
      this.report(`error: ${subject}: ${description}`);
    } else if (kind === "pmconffile") {
      this.report(`keeping the host's configuration file ${subject}`);
    }
  }

  output(line: string): void {
    const lock = LOCK_HOLDER.exec(line);
    if (lock === null) return;
    const holder = `PID ${lock[2]}${lock[3] === undefined ? "" : ` (${lock[3]})`}`;
    if (holder === this.lockHolder) return;
    this.lockHolder = holder;
    this.report(`waiting for the dpkg lock held by ${holder}`);
  }
}
