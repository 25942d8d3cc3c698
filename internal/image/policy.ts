/**
 * Keeping packages from starting their own daemons while vks installs them.
 *
 * Maintainer scripts start services through invoke-rc.d or deb-systemd-invoke, and both ask
 * /usr/sbin/policy-rc.d first: exit status 101 means "do not". For the length of an install vks moves the
 * host's policy-rc.d aside (a rename, so it comes back byte for byte with its mode, owner and times) and
 * puts its own in place. That one denies only when the caller's environment carries VKS_POLICY_RC_D=deny,
 * which vks sets for its own apt-get and which dpkg passes down to the maintainer scripts; anyone else's
 * install meanwhile gets the answer of the saved policy (or "allowed" when there was none), so vks never
 * changes what another package manager run does.
 *
 * The caller must hold the host-wide install lock (lock.ts): then no other vks is in the middle of a swap,
 * and a vks policy found in place is a leftover of a vks that died, which is undone first.
 */
import { existsSync, readFileSync, renameSync, unlinkSync, writeFileSync, chmodSync } from "node:fs";
import { ExitCode, VksError } from "../errors.ts";

export const POLICY_RC_D_PATH = "/usr/sbin/policy-rc.d";
export const POLICY_ENV_NAME = "VKS_POLICY_RC_D";
export const POLICY_ENV_DENY = "deny";
/** Present in every policy-rc.d vks writes, so a leftover one is recognised as vks'. */
export const POLICY_MARKER = "vks-policy-rc.d";

export function savedPolicyPath(policyPath: string): string {
  return `${policyPath}.vks-saved`;
}

/** Single-quotes a path for /bin/sh (the script is a file vks writes, not a command it runs). */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

export function policyScript(policyPath: string): string {
  const saved = shellQuote(savedPolicyPath(policyPath));
  return [
    "#!/bin/sh",
    `# ${POLICY_MARKER}: put here by vks while it installs packages; vks restores the previous file after.`,
    "# vks' own installs must not start the packages' daemons (exit 101 = action forbidden); every other",
    "# caller gets the answer of the policy that was here before, or 'allowed' when there was none.",
    `if [ "\${${POLICY_ENV_NAME}:-}" = ${POLICY_ENV_DENY} ]; then exit 101; fi`,
    `if [ -x ${saved} ]; then exec ${saved} "$@"; fi`,
    "exit 0",
    "",
  ].join("\n");
}

function isVksPolicy(path: string): boolean {
  try {
    return readFileSync(path, "utf8").includes(POLICY_MARKER);
  } catch {
    return false;
  }
}

/**
 * Undoes a swap left behind by a vks that died mid-install. Refuses, rather than guess, when both a
 * foreign policy and a saved one exist (someone replaced the policy while vks' was in place).
 */
export function recoverPolicy(policyPath: string = POLICY_RC_D_PATH): void {
  const saved = savedPolicyPath(policyPath);
  const current = existsSync(policyPath);
  const hasSaved = existsSync(saved);
  if (current && isVksPolicy(policyPath)) {
    if (hasSaved) renameSync(saved, policyPath);
    else unlinkSync(policyPath);
    return;
  }
  if (!hasSaved) return;
  if (!current) {
    renameSync(saved, policyPath);
    return;
  }
  throw new VksError(`both ${policyPath} and ${saved} exist, and the first is not vks'`, {
    exitCode: ExitCode.conflict,
    hint: `a vks install was interrupted and the policy replaced since; keep the right one as ${policyPath} and delete ${saved}`,
  });
}

/**
 * Runs task with vks' policy-rc.d in place; task gets the environment entries that make it deny. The
 * host's file is back in place when this returns or throws.
 */
export async function withServiceStartsDenied<T>(
  task: (env: Record<string, string>) => Promise<T>,
  policyPath: string = POLICY_RC_D_PATH,
): Promise<T> {
  recoverPolicy(policyPath);
  const saved = savedPolicyPath(policyPath);
  const hadPolicy = existsSync(policyPath);
  if (hadPolicy) renameSync(policyPath, saved);
  try {
    const temporary = `${policyPath}.vks-new-${process.pid}`;
    writeFileSync(temporary, policyScript(policyPath), { mode: 0o755 });
    // The mode given to writeFileSync is filtered by the umask; the script must be executable regardless.
    chmodSync(temporary, 0o755);
    renameSync(temporary, policyPath);
    return await task({ [POLICY_ENV_NAME]: POLICY_ENV_DENY });
  } finally {
    if (hadPolicy) renameSync(saved, policyPath);
    else if (existsSync(policyPath) && isVksPolicy(policyPath)) unlinkSync(policyPath);
  }
}
