/**
 * Who an exec'd command runs as: the uid, gid and supplementary groups systemd gives the container's
 * process, from the unit's User=, Group= and SupplementaryGroups=.
 *
 * systemd 252 (execute.c, measured in test/e2e/exec.test.ts): User= (a name or a number) is looked up in
 * the user database; the group is Group= or else the user's primary group; for a non-zero gid the
 * supplementary groups are initgroups(user, gid) (every group listing the user, plus gid), then
 * SupplementaryGroups= are added. Without User= the unit runs as the manager's own user. Lookups go
 * through NSS with getent(1), so LDAP or sssd users resolve as they do for systemd.
 */
import { ExitCode, VksError } from "../errors.ts";
import type { UnitExecContext } from "../systemd/exec-context.ts";
import type { ManagerScope } from "../systemd/types.ts";
import type { Account } from "./environment.ts";

export interface ExecIdentity {
  uid: number;
  gid: number;
  /** Supplementary groups, without duplicates. */
  groups: number[];
  /** The passwd entry of User=; undefined when the unit sets none. */
  account: Account | undefined;
}

export interface PasswdEntry extends Account {
  uid: number;
  gid: number;
}

const GETENT = "/usr/bin/getent";
/** getent's "key not found" exit status. */
const GETENT_NOT_FOUND = 2;

function parseId(text: string | undefined): number | undefined {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** One passwd line (`name:x:uid:gid:gecos:home:shell`); undefined when it is not one. */
export function parsePasswdEntry(line: string): PasswdEntry | undefined {
  const fields = line.replace(/\n$/, "").split(":");
  if (fields.length < 7) return undefined;
  const uid = parseId(fields[2]);
  const gid = parseId(fields[3]);
  if (uid === undefined || gid === undefined) return undefined;
  return { name: fields[0] ?? "", uid, gid, home: fields[5] ?? "", shell: fields.slice(6).join(":") };
}

/** The gid of one group line (`name:x:gid:members`); undefined when it is not one. */
export function parseGroupId(line: string): number | undefined {
  return parseId(line.split(":")[2]);
}

/** `getent initgroups NAME` prints the name, then the gids of the groups that list the user. */
export function parseInitgroups(line: string): number[] {
  return line
    .trim()
    .split(/\s+/)
    .slice(1)
    .flatMap((word) => parseId(word) ?? []);
}

/** The groups a process of the unit has, in systemd's rules (see the module comment). */
export function supplementaryGroups(options: { gid: number; hasUser: boolean; memberOf: number[]; configured: number[] }): number[] {
  const base = options.hasUser && options.gid !== 0 ? [options.gid, ...options.memberOf] : [];
  return [...new Set([...base, ...options.configured])];
}

async function getent(database: "passwd" | "group" | "initgroups", key: string): Promise<string | undefined> {
  const child = Bun.spawn([GETENT, database, key], { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  const [output, status] = await Promise.all([new Response(child.stdout).text(), child.exited]);
  if (status === GETENT_NOT_FOUND) return undefined;
  if (status !== 0) {
    throw new VksError(`getent ${database} ${key} failed with exit status ${status}`, {
      exitCode: ExitCode.unavailable,
      hint: "the user database (NSS) did not answer; check /etc/nsswitch.conf",
    });
  }
  return output;
}

function unknownIdentity(what: string, name: string, unitName: string): VksError {
  return new VksError(`${what} "${name}" of ${unitName} is not in the user database any more`, {
    exitCode: ExitCode.failure,
    hint: "the container started as it; restore the account or recreate the pod",
  });
}

async function groupId(name: string, unitName: string): Promise<number> {
  const numeric = parseId(name);
  if (numeric !== undefined) return numeric;
  const gid = parseGroupId((await getent("group", name)) ?? "");
  if (gid === undefined) throw unknownIdentity("group", name, unitName);
  return gid;
}

export async function resolveIdentity(context: UnitExecContext, scope: ManagerScope): Promise<ExecIdentity> {
  const configured = await Promise.all(context.supplementaryGroups.map((name) => groupId(name, context.unitName)));
  const explicitGid = context.group === "" ? undefined : await groupId(context.group, context.unitName);
  if (context.user === "") {
    // The manager's own user: root for the system manager, the caller for a user manager vks talks to.
    const uid = scope === "system" ? 0 : (process.getuid?.() ?? 0);
    const gid = explicitGid ?? (scope === "system" ? 0 : (process.getgid?.() ?? 0));
    return { uid, gid, groups: supplementaryGroups({ gid, hasUser: false, memberOf: [], configured }), account: undefined };
  }
  const entry = parsePasswdEntry((await getent("passwd", context.user)) ?? "");
  if (entry === undefined) throw unknownIdentity("user", context.user, context.unitName);
  const gid = explicitGid ?? entry.gid;
  const memberOf = gid === 0 ? [] : parseInitgroups((await getent("initgroups", entry.name)) ?? "");
  return {
    uid: entry.uid,
    gid,
    groups: supplementaryGroups({ gid, hasUser: true, memberOf, configured }),
    account: { name: entry.name, home: entry.home, shell: entry.shell },
  };
}
