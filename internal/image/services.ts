/**
 * A package vks installed must not come up by itself at the next boot: its program runs as a container,
 * under vks' control. Postinst scripts enable their units (deb-systemd-helper enable, update-rc.d
 * defaults); after the install vks disables the units of the packages that install added, and only those.
 * A package that was on the host before is left as it was.
 *
 * `systemctl --root=/ disable` is the tool for it: it works whether or not systemd (or any bus) is running,
 * never asks for a daemon-reload (which would re-read vks' transient units, see internal/pod/launcher.ts), removes the wants
 * links the postinst made, handles an init script through systemd-sysv-install, and leaves
 * deb-systemd-helper's record saying "enabled once", so the next upgrade's postinst sees the links gone
 * (was-enabled is false) and does not enable the unit again.
 */
import { lstatSync } from "node:fs";
import { basename } from "node:path";
import { errorMessage } from "../errors.ts";
import { runCommand } from "./command.ts";
import { packageFiles } from "./dpkg.ts";

/** Where packages put system units; both spellings occur on Debian 12 (/lib is /usr/lib's alias). */
const SYSTEM_UNIT_DIRS = ["/lib/systemd/system/", "/usr/lib/systemd/system/"];
const ENABLEABLE_UNIT = /^[A-Za-z0-9:_.\\-]+\.(service|socket|timer|path)$/;
const INIT_SCRIPT_DIR = "/etc/init.d/";
const INIT_SCRIPT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

/** Units and init scripts a package ships that could be enabled to start at boot. */
export function bootStartableUnits(files: readonly string[]): string[] {
  const units = new Set<string>();
  for (const file of files) {
    const dir = SYSTEM_UNIT_DIRS.find((candidate) => file.startsWith(candidate));
    if (dir === undefined) continue;
    const name = file.slice(dir.length);
    // Templates are enabled per instance, which no postinst does for an unknown instance; files in
    // subdirectories (foo.target.wants/…, drop-ins) are static and not the admin's to disable.
    if (name.includes("/") || name.includes("@.") || !ENABLEABLE_UNIT.test(name)) continue;
    if (isSymlink(file)) continue;
    units.add(name);
  }
  for (const file of files) {
    if (!file.startsWith(INIT_SCRIPT_DIR)) continue;
    const script = basename(file);
    if (file !== INIT_SCRIPT_DIR + script || !INIT_SCRIPT_NAME.test(script)) continue;
    // With a native unit of the same name the init script is ignored by systemd already.
    if (!units.has(`${script}.service`)) units.add(`${script}.service`);
  }
  return [...units].sort();
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Disables the boot-startable units of `packages` (names vks just installed). Returns what it disabled.
 * A failure is reported as progress, not thrown: the package is installed and usable either way.
 */
export async function disableBootStart(
  packages: readonly string[],
  onProgress: (message: string) => void,
): Promise<Map<string, string[]>> {
  const disabled = new Map<string, string[]>();
  for (const name of packages) {
    const units = bootStartableUnits(await packageFiles(name));
    if (units.length === 0) continue;
    const result = await runCommand(["systemctl", "--root=/", "disable", "--", ...units]).catch(
      (err: unknown) => ({ exitCode: -1, stdout: "", stderr: errorMessage(err) }),
    );
    if (result.exitCode !== 0) {
      onProgress(`warning: could not disable ${units.join(", ")} of ${name}: ${result.stderr.trim()}`);
      continue;
    }
    onProgress(`disabled start at boot of ${units.join(", ")} (installed by vks for ${name})`);
    disabled.set(name, units);
  }
  return disabled;
}
