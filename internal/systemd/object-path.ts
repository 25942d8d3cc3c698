/**
 * Unit object paths, computed as systemd computes them (sd-bus's bus_label_escape): every byte that is
 * not an ASCII letter or digit, and a digit in first position, becomes `_xx`. Knowing the mapping saves
 * a GetUnit round trip per unit and lets a PropertiesChanged signal be tied to its unit name by its path.
 */
export const UNIT_PATH_PREFIX = "/org/freedesktop/systemd1/unit/";

function isAsciiAlnum(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a);
}

export function escapeObjectPathLabel(label: string): string {
  if (label === "") return "_";
  let escaped = "";
  const bytes = new TextEncoder().encode(label);
  bytes.forEach((byte, index) => {
    const isDigit = byte >= 0x30 && byte <= 0x39;
    escaped += isAsciiAlnum(byte) && !(index === 0 && isDigit) ? String.fromCharCode(byte) : `_${byte.toString(16).padStart(2, "0")}`;
  });
  return escaped;
}

/** The inverse of escapeObjectPathLabel; undefined when `label` is not a valid escaped label. */
export function unescapeObjectPathLabel(label: string): string | undefined {
  if (label === "_") return "";
  const bytes: number[] = [];
  for (let i = 0; i < label.length; i++) {
    const char = label[i];
    if (char === "_") {
      const hex = label.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(label.charCodeAt(i));
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

export function unitObjectPath(unitName: string): string {
  return UNIT_PATH_PREFIX + escapeObjectPathLabel(unitName);
}

/** The unit name a unit object path stands for; undefined for other paths. */
export function unitNameFromObjectPath(path: string): string | undefined {
  if (!path.startsWith(UNIT_PATH_PREFIX)) return undefined;
  const label = path.slice(UNIT_PATH_PREFIX.length);
  if (label === "" || label.includes("/")) return undefined;
  return unescapeObjectPathLabel(label);
}
