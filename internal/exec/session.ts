/**
 * Ending an exec session: the command and everything it started, even when vks itself dies.
 *
 * The command runs in a session of its own (its pid is the session id), and the kernel keeps a session
 * id from being reused while any process still has it, so "every process of the container's cgroup
 * whose session is ours" is exactly what the exec started, minus what left on purpose (setsid daemons)
 * or moved to another cgroup. Killing that set takes a few rounds: a process can fork between the read
 * of cgroup.procs and its kill.
 *
 * The guard is a small shell outside the session and the container's cgroup, holding the read end of a
 * pipe only vks writes: "done" dismisses it, "kill" (or end of file: vks died, even by SIGKILL, or a
 * TERM/INT/HUP to the guard) makes it end the session. kill() and vks' death are thus handled by the
 * same code, and an exec can never outlive the vks that started it, which is what the kubelet API needs
 * when a stream breaks and what `vks pod exec` needs when it is killed.
 */
import type { FileSink, Subprocess } from "bun";

/** Rounds of reading cgroup.procs before giving up on a process that keeps forking (each round kills). */
const KILL_ROUNDS = 100;

export const GUARD_SCRIPT = `# vks-exec-guard: ends an exec session when told to or when vks goes away (internal/exec/session.ts).
sid=$1 procs=$2
end_session() {
  kill -s KILL -- "-$sid" 2>/dev/null
  rounds=0
  while [ "$rounds" -lt ${KILL_ROUNDS} ]; do
    found=
    while read -r pid; do
      line=
      { read -r line <"/proc/$pid/stat"; } 2>/dev/null || continue
      set -- \${line##*") "}
      if [ "\${4-}" = "$sid" ]; then
        kill -s KILL "$pid" 2>/dev/null
        found=1
      fi
    done <"$procs"
    [ -n "$found" ] || return 0
    rounds=$((rounds + 1))
  done
}
trap 'end_session; exit 0' TERM INT HUP
read -r verdict || verdict=
[ "$verdict" = done ] || end_session
`;

export class SessionGuard {
  private settled = false;

  private constructor(
    private readonly guard: Subprocess<"pipe", "ignore", "ignore">,
    private readonly control: FileSink,
  ) {}

  /** Starts guarding the session `sessionId` of processes in the cgroup whose directory is `cgroupDirectory`. */
  static start(sessionId: number, cgroupDirectory: string): SessionGuard {
    const guard = Bun.spawn(["/bin/sh", "-c", GUARD_SCRIPT, "vks-exec-guard", String(sessionId), `${cgroupDirectory}/cgroup.procs`], {
      stdin: "pipe",
      stdout: "ignore",
      stderr: "ignore",
      // Its own session: a signal to vks' process group (Ctrl-C, a supervisor) must not end it first.
      detached: true,
      env: { PATH: "/usr/bin:/bin" },
    });
    // A finished CLI must not wait for the guard; the pipe closing when vks exits is the guard's cue.
    guard.unref();
    return new SessionGuard(guard, guard.stdin);
  }

  /** Ends the session now; resolves when the guard is done (every process it found is killed). */
  async endSession(): Promise<void> {
    this.tell("kill");
    await this.guard.exited;
  }

  /** The session is over by itself: the guard leaves whatever the command left running alone. */
  dismiss(): void {
    this.tell("done");
  }

  private tell(verdict: "kill" | "done"): void {
    if (this.settled) return;
    this.settled = true;
    try {
      this.control.write(`${verdict}\n`);
      void Promise.resolve(this.control.end()).catch(() => undefined);
    } catch {
      // The guard is gone already (killed with vks' cgroup): nothing left to tell.
    }
  }
}
