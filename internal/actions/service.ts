/**
 * `vks service install`: writes the unit files that run vks under systemd, enables them for boot and
 * optionally (re)starts serve. Two units, both rendered here (examples/ holds the same text for a
 * /usr/local/bin/vks install, checked by a test):
 *
 * - vks-serve.service: `vks serve` as a Type=notify service (READY once the node is registered, a
 *   watchdog fed from serve's loops), restarted always, stopped without touching the pods.
 * - vks-pods.service: `vks pod restore` at boot for `pod up -d` pods, `vks pod checkpoint` at shutdown.
 */
import { consola } from "consola";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { basename, isAbsolute, join } from "node:path";
import { ExitCode, VksError } from "../errors.ts";
import { RESTORE_UNIT } from "../pod/engine.ts";
import type { ManagerScope } from "../systemd/types.ts";
import { UnitFiles } from "../systemd/unit-files.ts";

export const SERVE_UNIT = "vks-serve.service";
export { RESTORE_UNIT };

export interface UnitTemplateOptions {
  scope: ManagerScope;
  /** Absolute path of the vks binary the units run. */
  binary: string;
  /** Flags every vks command of the units gets (--user, --state-dir). */
  commonArgs: string[];
  /** serve's own flags (--kubeconfig, --pod-manifest-path, …). */
  serveArgs: string[];
  /** WatchdogSec= in seconds. */
  watchdogSeconds: number;
}

/**
 * One ExecStart= word in unit-file syntax: double-quoted, with `\` and `"` escaped, `$` doubled (no
 * variable expansion) and `%` doubled (no specifier expansion), so each word reaches vks as written.
 */
export function unitFileWord(word: string): string {
  if (/[\n\r\0]/.test(word)) {
    throw new VksError(`a unit file cannot carry ${JSON.stringify(word)} (newline or NUL)`, { exitCode: ExitCode.usage, hint: "pass the value without line breaks" });
  }
  const escaped = word.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\$/g, "$$$$").replace(/%/g, "%%");
  return /^[A-Za-z0-9_@./:=,+-]+$/.test(word) ? escaped : `"${escaped}"`;
}

function execLine(argv: string[]): string {
  return argv.map(unitFileWord).join(" ");
}

function bootTarget(scope: ManagerScope): string {
  return scope === "user" ? "default.target" : "multi-user.target";
}

export function renderServeUnit(options: UnitTemplateOptions): string {
  return `# Written by vks service install. Runs this host as a Kubernetes node.
[Unit]
Description=vks: this host as a Kubernetes node (a virtual kubelet for systemd)
Wants=network-online.target
After=network-online.target dbus.service dbus.socket ${RESTORE_UNIT}
# Restart=always without a start rate limit: a node that gave up would never come back by itself.
StartLimitIntervalSec=0

[Service]
# READY=1 once the node is registered with the API server; STATUS= lines show in systemctl status.
Type=notify
NotifyAccess=main
ExecStart=${execLine([options.binary, "serve", ...options.commonArgs, ...options.serveArgs])}
Restart=always
RestartSec=5s
# Waiting for the API server (--startup-timeout, 60 s by default) counts as starting.
TimeoutStartSec=5min
# WATCHDOG=1 is sent while serve's lease and node-status loops keep completing; a wedged vks is restarted.
WatchdogSec=${options.watchdogSeconds}s
# Pods are units of their own and keep running when vks stops, as with the kubelet. Only vks' main
# process is signalled: a package install it started finishes rather than leaving dpkg half-done.
KillMode=process
TimeoutStopSec=30s

[Install]
WantedBy=${bootTarget(options.scope)}
`;
}

export function renderRestoreUnit(options: UnitTemplateOptions): string {
  return `# Written by vks service install. Starts vks pod up -d pods again at boot.
[Unit]
Description=vks: pods of vks pod up -d, started again at boot
Wants=network-online.target
After=network-online.target dbus.service dbus.socket local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${execLine([options.binary, "pod", "restore", ...options.commonArgs])}
# At shutdown, while the pods still run (they are ordered before this unit), their restart counts are
# recorded so that restartCount continues after the reboot.
ExecStop=${execLine([options.binary, "pod", "checkpoint", ...options.commonArgs])}
TimeoutStartSec=infinity

[Install]
WantedBy=${bootTarget(options.scope)}
`;
}

export interface ServiceInstallOptions {
  scope: ManagerScope;
  stateDir?: string;
  /** Where the unit files go; default /etc/systemd/system, or $XDG_CONFIG_HOME/systemd/user with --user. */
  unitDir?: string;
  binary?: string;
  serveArgs: string[];
  watchdogSeconds: number;
  /** Write the files and reload only: no enable, no start. */
  noEnable: boolean;
  /** Also (re)start vks-serve.service now. */
  now: boolean;
}

export function defaultUnitDir(scope: ManagerScope, env: Readonly<Record<string, string | undefined>> = process.env): string {
  if (scope === "system") return "/etc/systemd/system";
  const config = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : env.HOME ? join(env.HOME, ".config") : undefined;
  if (config === undefined) {
    throw new VksError("cannot find the user unit directory: neither XDG_CONFIG_HOME nor HOME is set", { exitCode: ExitCode.usage, hint: "pass --unit-dir" });
  }
  return join(config, "systemd", "user");
}

/** The running binary, unless vks runs from source (under bun), which a unit cannot run as it is. */
function defaultBinary(): string {
  const binary = process.execPath;
  if (basename(binary) === "bun" || basename(binary) === "node") {
    throw new VksError("vks runs from source here; the units need the compiled binary", {
      exitCode: ExitCode.usage,
      hint: "build it (bun run build) and pass --binary /path/to/dist/vks",
    });
  }
  return binary;
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = `${path}.vks-new`;
  await writeFile(temp, text, { mode: 0o644 });
  await rename(temp, path);
}

export async function serviceInstall(options: ServiceInstallOptions): Promise<void> {
  const binary = options.binary ?? defaultBinary();
  if (!isAbsolute(binary)) throw new VksError(`--binary must be an absolute path, not ${binary}`, { exitCode: ExitCode.usage, hint: "e.g. --binary /usr/local/bin/vks" });
  const commonArgs = [...(options.scope === "user" ? ["--user"] : []), ...(options.stateDir === undefined ? [] : ["--state-dir", options.stateDir])];
  const template: UnitTemplateOptions = { scope: options.scope, binary, commonArgs, serveArgs: options.serveArgs, watchdogSeconds: options.watchdogSeconds };
  const unitDir = options.unitDir ?? defaultUnitDir(options.scope);
  await mkdir(unitDir, { recursive: true });
  await writeAtomically(join(unitDir, SERVE_UNIT), renderServeUnit(template));
  await writeAtomically(join(unitDir, RESTORE_UNIT), renderRestoreUnit(template));
  consola.success(`wrote ${join(unitDir, SERVE_UNIT)} and ${join(unitDir, RESTORE_UNIT)}`);
  const units = await UnitFiles.connect(options.scope);
  try {
    if (!options.noEnable) await units.enable([SERVE_UNIT, RESTORE_UNIT]);
    await units.reload();
    if (!options.noEnable) consola.success(`enabled ${SERVE_UNIT} and ${RESTORE_UNIT} (${bootTarget(options.scope)})`);
    if (options.now) {
      await units.restart(SERVE_UNIT);
      consola.success(`${SERVE_UNIT} (re)started; systemctl${options.scope === "user" ? " --user" : ""} status ${SERVE_UNIT} shows when the node is registered`);
    }
  } finally {
    units.close();
  }
}
