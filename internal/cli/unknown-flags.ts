/**
 * citty ignores flags a command does not declare, so `vks serve --kubconfig F` ran without F and
 * `vks units ls --bogus` passed silently. Like kubectl and systemctl, vks refuses them (exit 2) and
 * suggests the flag that was probably meant.
 */
import type { ArgsDef } from "citty";
import { ExitCode, VksError } from "../errors.ts";

interface FlagTable {
  /** Long names, with `--`: every declared flag, its aliases, and `--no-x` for booleans. */
  long: Set<string>;
  /** Single letters usable as `-x`, and bundled (`-it`) when they are booleans. */
  short: Set<string>;
  /** Flags that take the next word as their value (strings given without `=`). */
  takesValue: Set<string>;
}

function aliasesOf(alias: string | string[] | undefined): string[] {
  return alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
}

function flagTable(args: ArgsDef): FlagTable {
  const table: FlagTable = { long: new Set(["--help", "--version"]), short: new Set(["h"]), takesValue: new Set() };
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    const names = [name, ...aliasesOf("alias" in def ? def.alias : undefined)];
    for (const each of names) {
      if (each.length === 1) table.short.add(each);
      table.long.add(`--${each}`);
      if (def.type === "boolean") table.long.add(`--no-${each}`);
      if (def.type !== "boolean") {
        table.takesValue.add(each.length === 1 ? `-${each}` : `--${each}`);
        table.takesValue.add(`--${each}`);
      }
    }
  }
  return table;
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = previous[0] ?? 0;
    previous[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = previous[j] ?? 0;
      previous[j] = Math.min(above + 1, (previous[j - 1] ?? 0) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return previous[b.length] ?? 0;
}

function suggestion(flag: string, table: FlagTable): string | undefined {
  let best: { name: string; cost: number } | undefined;
  for (const name of table.long) {
    if (name.startsWith("--no-")) continue;
    const cost = distance(flag, name);
    if (cost <= Math.max(2, Math.floor(name.length / 4)) && (best === undefined || cost < best.cost)) best = { name, cost };
  }
  return best?.name;
}

/**
 * Throws a usage error for the first flag in `words` (the command's own words, before any `--`) that
 * `args` does not declare.
 */
export function refuseUnknownFlags(words: string[], args: ArgsDef, commandPath: string): void {
  const table = flagTable(args);
  for (let index = 0; index < words.length; index++) {
    const word = words[index] ?? "";
    if (word === "-" || !word.startsWith("-") || /^-\d/.test(word)) continue;
    if (word.startsWith("--")) {
      const name = word.includes("=") ? word.slice(0, word.indexOf("=")) : word;
      if (!table.long.has(name)) throw unknownFlag(name, commandPath, suggestion(name, table));
      if (!word.includes("=") && table.takesValue.has(name)) index++;
      continue;
    }
    const letters = word.slice(1);
    for (const letter of letters.includes("=") ? letters.slice(0, letters.indexOf("=")) : letters) {
      if (!table.short.has(letter)) throw unknownFlag(`-${letter}`, commandPath, undefined);
    }
    if (letters.length === 1 && table.takesValue.has(word)) index++;
  }
}

function unknownFlag(flag: string, commandPath: string, meant: string | undefined): VksError {
  return new VksError(`unknown flag ${flag} for ${commandPath}${meant === undefined ? "" : `; did you mean ${meant}?`}`, {
    exitCode: ExitCode.usage,
    hint: `see ${commandPath} --help for its flags`,
  });
}
