/**
 * OOM kills as the kernel logs them: what tells an OOM-killed container from one killed by SIGKILL on a
 * cgroup v1 host, where systemd 252 reports neither (its oom-kill result needs cgroup v2's
 * memory.events; on v1 an OOM kill is Result=signal, status 9). The kubelet's cAdvisor reads the same
 * kernel lines. Reading the kernel ring buffer needs root (CAP_SYSLOG), as enforcing limits does.
 */
import { readFileSync } from "node:fs";

/** One `oom-kill:constraint=…,task_memcg=…,task=…,pid=…` line: which cgroup lost which process, when. */
export interface OomKill {
  /** Seconds since boot, as the kernel stamps the line. */
  uptimeSeconds: number;
  /** The victim's memory cgroup path (in the kernel's root view). */
  taskMemcg: string;
  pid: number;
}

const OOM_LINE = /^\[\s*(\d+\.\d+)\]\s+oom-kill:(.*)$/;

export function parseOomKills(dmesg: string): OomKill[] {
  const kills: OomKill[] = [];
  for (const line of dmesg.split("\n")) {
    const match = OOM_LINE.exec(line.trim());
    if (match === null) continue;
    const fields = new Map<string, string>();
    // The values hold no commas except nodemask's "(null)" forms; the fields vks needs never do.
    for (const part of (match[2] ?? "").split(",")) {
      const separator = part.indexOf("=");
      if (separator > 0) fields.set(part.slice(0, separator), part.slice(separator + 1));
    }
    const taskMemcg = fields.get("task_memcg");
    const pid = Number(fields.get("pid"));
    if (taskMemcg === undefined || !Number.isInteger(pid)) continue;
    kills.push({ uptimeSeconds: Number(match[1]), taskMemcg, pid });
  }
  return kills;
}

/** When the machine booted, in ms since the epoch (/proc/stat btime, whole seconds). */
function bootTimeMs(): number | undefined {
  try {
    const match = /^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"));
    return match?.[1] === undefined ? undefined : Number(match[1]) * 1000;
  } catch {
    return undefined;
  }
}

/** The kernel clock and btime can disagree by up to a second; a kill is matched within this margin. */
const MATCH_MARGIN_MS = 2_000;

/**
 * Whether the kernel OOM-killed a process of `unitName` between `fromMs` and `toMs` (epoch ms). False when
 * the log cannot be read: the container is then reported as killed by signal 9, never guessed OOMKilled.
 */
export async function unitOomKilled(unitName: string, fromMs: number, toMs: number): Promise<boolean> {
  const boot = bootTimeMs();
  if (boot === undefined) return false;
  let output = "";
  try {
    const child = Bun.spawn(["dmesg"], { stdout: "pipe", stderr: "ignore", stdin: "ignore" });
    output = await new Response(child.stdout).text();
    if ((await child.exited) !== 0) return false;
  } catch {
    return false;
  }
  return parseOomKills(output).some((kill) => {
    if (!kill.taskMemcg.endsWith(`/${unitName}`)) return false;
    const at = boot + kill.uptimeSeconds * 1000;
    return at >= fromMs - MATCH_MARGIN_MS && at <= toMs + MATCH_MARGIN_MS;
  });
}
