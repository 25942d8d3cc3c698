/**
 * Which group IDs the host's group database knows: systemd 252 adds a supplementary group only when it
 * can resolve it (get_group_creds without ALLOW_MISSING), and fails the unit with 216/GROUP otherwise.
 */

/** The subset of `gids` that `getent group` resolves (files, LDAP, whatever NSS is configured with). */
export function knownGroupIds(gids: readonly number[]): Set<number> {
  const known = new Set<number>();
  if (gids.length === 0) return known;
  let output = "";
  try {
    // getent exits 2 when some key is missing and still prints the ones it found.
    const run = Bun.spawnSync(["getent", "group", ...gids.map(String)], { stdout: "pipe", stderr: "ignore", stdin: "ignore" });
    output = run.stdout.toString();
  } catch {
    return known;
  }
  for (const line of output.split("\n")) {
    const gid = Number(line.split(":")[2]);
    if (line !== "" && Number.isInteger(gid)) known.add(gid);
  }
  return known;
}
