/**
 * The kubelet's restart back-off (10 s, doubling to 300 s, reset once a container ran 10 minutes) for
 * systemd 252, which has one fixed RestartSec= (RestartSteps= came in 254) that cannot be changed on a
 * loaded unit (SetUnitProperties refuses RestartUSec).
 *
 * The unit waits for itself: every container unit that restarts gets a first ExecStartPre, run with full
 * privileges ("+": it must write vks' state dir whatever User= the container has, and sees the host's
 * files, not the container's mounts), that keeps the kubelet's back-off entry for the container in one
 * small file and sleeps out the back-off before the program starts again. So the back-off holds when no
 * vks runs (`pod up -d`) and across restarts of vks, and systemd's NRestarts stays the restart count. The
 * command is `/bin/sh SCRIPT FILE RESTARTSEC`: no `$` or `;` in its words, so it survives a daemon-reload
 * (launcher.ts), and marked ignore-failure ("-"): a missing script costs the back-off, never the container.
 *
 * The file holds the kubelet's flowcontrol.Backoff entry: "LAST_UPDATE BACKOFF" (epoch seconds).
 * - no file: the container's first start; "now 0" is written (no entry yet).
 * - BACKOFF 0, or more than 600 s (twice the maximum) since LAST_UPDATE: the kubelet finds no entry or an
 *   expired one and restarts at once; the entry becomes "now 10".
 * - otherwise: wait BACKOFF seconds after the exit (systemd already waited RestartSec of them), then the
 *   entry becomes "now min(2 BACKOFF, 300)".
 * The exits after a first start are therefore followed by restarts after 0, 10, 20, 40, … 300 s, as with
 * the kubelet; while the unit waits, the file says how long (the CrashLoopBackOff message).
 */
import { readFileSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ExecCommand } from "../systemd/types.ts";

/** The kubelet's initial and maximum container back-off (pkg/kubelet: backOffPeriod, MaxContainerBackOff). */
export const INITIAL_BACKOFF_SECONDS = 10;
export const MAX_BACKOFF_SECONDS = 300;
/**
 * The longest the gate can hold a start (the maximum back-off) plus systemd's default start timeout: a
 * unit's TimeoutStartSec must allow for it, as systemd times each ExecStartPre against it.
 */
export const BACKOFF_START_TIMEOUT_USEC = BigInt(MAX_BACKOFF_SECONDS + 90) * 1_000_000n;

export const RESTART_BACKOFF_SCRIPT = `# vks restart back-off gate (vks internal/pod/restart-backoff.ts); $1 the entry file, $2 RestartSec.
# With $2 "exit" (ExecStopPost) it records how the main process ended, for lastState.
PATH=/usr/bin:/bin
file=$1
if [ "\${2-}" = exit ]; then
  started=$(cat "$file.started" 2>/dev/null) || started=0
  mkdir -p "\${file%/*}" &&
    printf '%s %s %s %s %s\\n' "\${EXIT_CODE:-none}" "\${EXIT_STATUS:-0}" "\${SERVICE_RESULT:-unknown}" "\${started:-0}" "$(date +%s%6N)" >"$file.exit.tmp" &&
    mv -f "$file.exit.tmp" "$file.exit"
  exit 0
fi
already=\${2:-0}
now=$(date +%s)
last=
backoff=
if [ -r "$file" ]; then read -r last backoff <"$file" || true; fi
case "$last:$backoff" in
  *[!0-9:]* | :* | *:) last= backoff= ;;
esac
put() {
  mkdir -p "\${file%/*}" && printf '%s %s\\n' "$1" "$2" >"$file.tmp" && mv -f "$file.tmp" "$file"
  date +%s%6N >"$file.started"
}
if [ -z "$backoff" ]; then
  put "$now" 0
  exit 0
fi
if [ "$backoff" -eq 0 ] || [ $((now - last)) -gt ${2 * MAX_BACKOFF_SECONDS} ]; then
  put "$now" ${INITIAL_BACKOFF_SECONDS}
  exit 0
fi
wait=$((backoff - already))
if [ "$wait" -gt 0 ]; then sleep "$wait"; fi
next=$((backoff * 2))
if [ "$next" -gt ${MAX_BACKOFF_SECONDS} ]; then next=${MAX_BACKOFF_SECONDS}; fi
put "$(date +%s)" "$next"
`;

/** Where the engine keeps the gate script and the per-pod entry files. */
export interface RestartBackOffPaths {
  /** The script ExecStartPre runs. */
  script: string;
  /** The pod's entry directory (per pod UID): container `c` keeps its entry in `<it>/c`. */
  directory: string;
}

export function restartBackOffScript(stateDir: string): string {
  return join(stateDir, "restart-backoff.sh");
}

export function podBackOffDirectory(stateDir: string, uid: string): string {
  return join(stateDir, "backoff", uid);
}

export function backOffEntryFile(directory: string, container: string): string {
  return join(directory, container);
}

/** The gate command for one container (first in ExecStartPre). */
export function restartGateCommand(paths: RestartBackOffPaths, container: string, restartSeconds: number): ExecCommand {
  return {
    path: "/bin/sh",
    argv: ["/bin/sh", paths.script, backOffEntryFile(paths.directory, container), String(restartSeconds)],
    ignoreFailure: true,
    privileged: true,
  };
}

/** ExecStopPost: records the main process's exit ($EXIT_CODE, $EXIT_STATUS, $SERVICE_RESULT) for lastState. */
export function exitRecorderCommand(paths: RestartBackOffPaths, container: string): ExecCommand {
  return {
    path: "/bin/sh",
    argv: ["/bin/sh", paths.script, backOffEntryFile(paths.directory, container), "exit"],
    ignoreFailure: true,
    privileged: true,
  };
}

/** How the container's previous run ended, as its unit's ExecStopPost recorded it. */
export interface RecordedExit {
  /** systemd's $EXIT_CODE: exited, killed, dumped. */
  code: string;
  /** $EXIT_STATUS: the exit status, or the signal's name (TERM). */
  status: string;
  /** $SERVICE_RESULT: success, exit-code, signal, oom-kill, … */
  result: string;
  startedMicros: bigint;
  finishedMicros: bigint;
}

export function readRecordedExit(directory: string, container: string): RecordedExit | undefined {
  let text: string;
  try {
    text = readFileSync(`${backOffEntryFile(directory, container)}.exit`, "utf8");
  } catch {
    return undefined;
  }
  const match = /^(\S+) (\S+) (\S+) (\d+) (\d+)\n?$/.exec(text);
  if (match === null) return undefined;
  return { code: match[1] ?? "", status: match[2] ?? "", result: match[3] ?? "", startedMicros: BigInt(match[4] ?? "0"), finishedMicros: BigInt(match[5] ?? "0") };
}

/** Writes the gate script when it is missing or another vks wrote another version of it. */
export async function installRestartBackOffScript(stateDir: string): Promise<void> {
  const path = restartBackOffScript(stateDir);
  const current = await readFile(path, "utf8").catch(() => undefined);
  if (current === RESTART_BACKOFF_SCRIPT) return;
  await mkdir(stateDir, { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, RESTART_BACKOFF_SCRIPT, { mode: 0o755 });
  await rename(temporary, path);
}

export interface BackOffEntry {
  /** Epoch seconds of the last back-off decision. */
  lastUpdate: number;
  /** The current back-off in seconds: what a restart after the next exit waits (0: no entry yet). */
  backOffSeconds: number;
}

/** The container's entry, or undefined when it has none (never started, or not by a gated unit). */
export function readBackOffEntry(directory: string, container: string): BackOffEntry | undefined {
  let text: string;
  try {
    text = readFileSync(backOffEntryFile(directory, container), "utf8");
  } catch {
    return undefined;
  }
  const match = /^(\d+) (\d+)\n?$/.exec(text);
  if (match === null) return undefined;
  return { lastUpdate: Number(match[1]), backOffSeconds: Number(match[2]) };
}

/** A new container (created, or created again after a reboot) starts without the old one's back-off. */
export async function forgetBackOff(directory: string, container: string): Promise<void> {
  const file = backOffEntryFile(directory, container);
  await Promise.all([file, `${file}.exit`, `${file}.started`].map((path) => rm(path, { force: true })));
}

export async function removePodBackOff(directory: string): Promise<void> {
  await rm(directory, { recursive: true, force: true });
}
