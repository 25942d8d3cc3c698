/**
 * `%` specifiers in a package's unit (systemd.unit(5), "Specifiers"). Pure.
 *
 * systemd expands them when it loads a unit file. vks starts a package's program in a transient unit of its
 * own, where internal/systemd escapes `%` so that manifest values stay literal; the specifiers of the
 * package's unit must therefore be expanded here, as the system manager would have expanded them for that
 * unit. Supported: the unit-name ones (%n %N %p %P %i %I %j %J %f), the system manager's directories
 * (%t %S %C %L %E %T %V %h), the manager's user (%g %G, and %u %U unless User= names someone else),
 * host facts the caller supplies (%H %l %m %b %v %a %o %w %W %A %B %M) and `%%`. Anything else (e.g. %d
 * credentials, %s shell, %y fragment path) makes expansion fail with UnsupportedSpecifierError, which the
 * resolver reports instead of guessing.
 */

export class UnsupportedSpecifierError extends Error {
  override readonly name = "UnsupportedSpecifierError";
  constructor(
    readonly specifier: string,
    readonly text: string,
  ) {
    super(`specifier %${specifier} in ${JSON.stringify(text)} is not supported by vks`);
  }
}

/** Facts about the host that some specifiers name; the resolver reads them, tests make them up. */
export interface HostFacts {
  hostname?: string;
  machineId?: string;
  bootId?: string;
  kernelRelease?: string;
  /** systemd's architecture name (x86-64, arm64, …), not Debian's. */
  architecture?: string;
  /** Fields of /etc/os-release. */
  osRelease?: Record<string, string>;
}

/** Maps specifier letters to their values for one unit of the system manager. */
export type SpecifierValues = ReadonlyMap<string, string>;

/**
 * The values for `unitName` (e.g. `ssh.service`, or `getty@tty1.service`) run by the system manager.
 * `user` is the unit's User= setting, if any: %u/%U then name that user, and %U needs a numeric User=.
 */
export function systemSpecifierValues(unitName: string, host: HostFacts = {}, user?: string): SpecifierValues {
  const dot = unitName.lastIndexOf(".");
  const nameWithoutType = dot < 0 ? unitName : unitName.slice(0, dot);
  const at = nameWithoutType.indexOf("@");
  const prefix = at < 0 ? nameWithoutType : nameWithoutType.slice(0, at);
  const instance = at < 0 ? "" : nameWithoutType.slice(at + 1);
  const lastDash = prefix.lastIndexOf("-");
  const prefixTail = lastDash < 0 ? prefix : prefix.slice(lastDash + 1);

  const values = new Map<string, string>([
    ["%", "%"],
    ["n", unitName],
    ["N", nameWithoutType],
    ["p", prefix],
    ["P", unescapeUnitNamePart(prefix)],
    ["i", instance],
    ["I", unescapeUnitNamePart(instance)],
    ["j", prefixTail],
    ["J", unescapeUnitNamePart(prefixTail)],
    ["f", unescapedPath(instance !== "" ? instance : prefix)],
    ["t", "/run"],
    ["S", "/var/lib"],
    ["C", "/var/cache"],
    ["L", "/var/log"],
    ["E", "/etc"],
    ["T", "/tmp"],
    ["V", "/var/tmp"],
    ["h", "/root"],
    ["g", "root"],
    ["G", "0"],
  ]);
  if (user === undefined || user === "root" || user === "0") {
    values.set("u", "root");
    values.set("U", "0");
  } else if (/^[0-9]+$/.test(user)) {
    values.set("U", user);
  } else {
    values.set("u", user);
  }
  const optional: [string, string | undefined][] = [
    ["H", host.hostname],
    ["l", host.hostname?.split(".")[0]],
    ["m", host.machineId],
    ["b", host.bootId],
    ["v", host.kernelRelease],
    ["a", host.architecture],
    ["o", host.osRelease?.ID],
    ["w", host.osRelease?.VERSION_ID ?? (host.osRelease === undefined ? undefined : "")],
    ["W", host.osRelease?.VARIANT_ID ?? (host.osRelease === undefined ? undefined : "")],
    ["A", host.osRelease?.IMAGE_VERSION ?? (host.osRelease === undefined ? undefined : "")],
    ["B", host.osRelease?.BUILD_ID ?? (host.osRelease === undefined ? undefined : "")],
    ["M", host.osRelease?.IMAGE_ID ?? (host.osRelease === undefined ? undefined : "")],
  ];
  for (const [letter, value] of optional) if (value !== undefined) values.set(letter, value);
  return values;
}

/** Replaces every `%x` in `text`. Throws UnsupportedSpecifierError for a letter without a value. */
export function expandSpecifiers(text: string, values: SpecifierValues): string {
  let result = "";
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char !== "%") {
      result += char;
      continue;
    }
    const letter = text[i + 1];
    if (letter === undefined) throw new UnsupportedSpecifierError("", text);
    const value = values.get(letter);
    if (value === undefined) throw new UnsupportedSpecifierError(letter, text);
    result += value;
    i++;
  }
  return result;
}

/** Undoes systemd-escape: `-` stands for `/`, `\xNN` for a byte. */
export function unescapeUnitNamePart(part: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < part.length; i++) {
    const char = part[i] ?? "";
    const hex = char === "\\" && part[i + 1] === "x" ? part.slice(i + 2, i + 4) : "";
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 3;
    } else if (char === "-") {
      bytes.push(0x2f);
    } else {
      bytes.push(...new TextEncoder().encode(char));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

function unescapedPath(part: string): string {
  const unescaped = unescapeUnitNamePart(part);
  return unescaped.startsWith("/") ? unescaped : `/${unescaped}`;
}
