// A journald for the sandbox's manager, for tests and benchmarks that read container output from the
// journal. The user sandbox has a private /run, so the journald started here serves only that manager;
// in the system sandbox (test/sandbox.sh --system) and on a real host the system's own journald already
// runs and nothing is started.
import { existsSync, rmSync } from "node:fs";

const JOURNALD = "/lib/systemd/systemd-journald";
const STDOUT_SOCKET = "/run/systemd/journal/stdout";

export interface SandboxJournald {
  stop(): Promise<void>;
}

/** Whether a journal is there to log to, or can be started here. */
export const journalAvailable = existsSync(STDOUT_SOCKET) || (process.env.VKS_SANDBOX === "1" && existsSync(JOURNALD));

async function journaldAnswers(tag: string): Promise<boolean> {
  const probe = Bun.spawn(["systemd-cat", "-t", tag, "echo", "probe"], { stdout: "ignore", stderr: "ignore" });
  if ((await probe.exited) !== 0) return false;
  const read = Bun.spawn(["journalctl", "-t", tag, "-o", "cat", "--no-pager"], { stdout: "pipe", stderr: "ignore" });
  return (await new Response(read.stdout).text()).includes("probe");
}

/**
 * Starts journald when none runs, and resolves once a message sent to it can be read back: its socket
 * file appears before it accepts, and a unit started in between would lose its output for good.
 */
export async function ensureJournald(): Promise<SandboxJournald> {
  if (existsSync(STDOUT_SOCKET) || process.env.VKS_SANDBOX !== "1") return { stop: async () => {} };
  const journald = Bun.spawn([JOURNALD], { stdout: "ignore", stderr: "ignore" });
  const tag = `vks-journald-probe-${process.pid}`;
  for (let attempt = 0; ; attempt++) {
    if (existsSync(STDOUT_SOCKET) && (await journaldAnswers(tag))) break;
    if (attempt >= 200) {
      journald.kill();
      throw new Error("journald started in the sandbox never answered");
    }
    await Bun.sleep(50);
  }
  return {
    async stop() {
      journald.kill();
      await journald.exited;
      // Its sockets outlive it; left behind, they would make later `auto` pods in this sandbox pick the journal.
      rmSync("/run/systemd/journal", { recursive: true, force: true });
    },
  };
}
