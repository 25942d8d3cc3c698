/**
 * Environment of a package's unit: Environment= assignments, EnvironmentFile= contents and `$VAR`
 * substitution in command lines (systemd.exec(5), systemd.service(5) "Command lines"). Pure.
 *
 * systemd substitutes `$FOO` and `${FOO}` when it starts a command. vks starts the package's program in
 * its own transient unit, where internal/systemd escapes `$` so that manifest values stay literal (as the
 * kubelet leaves an image's ENTRYPOINT/CMD alone); the package unit's references are therefore resolved
 * here, against the unit's own Environment= and EnvironmentFile= as they are when the image is resolved.
 */
import { splitQuotedWords } from "./unitfile.ts";

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Parses one Environment= value (`A=1 "B=two words"`). Malformed words are reported, not kept. */
export function parseEnvironmentAssignments(value: string): { entries: string[]; problems: string[] } {
  const entries: string[] = [];
  const problems: string[] = [];
  for (const word of splitQuotedWords(value)) {
    const equals = word.text.indexOf("=");
    const name = equals < 0 ? "" : word.text.slice(0, equals);
    if (VARIABLE_NAME.test(name)) entries.push(word.text);
    else problems.push(`invalid environment assignment ${JSON.stringify(word.text)}, ignoring`);
  }
  return { entries, problems };
}

/** EnvironmentFile=`-/etc/default/ssh`: a leading `-` means a missing file is fine. */
export function parseEnvironmentFileSetting(value: string): { path: string; optional: boolean } {
  return value.startsWith("-") ? { path: value.slice(1), optional: true } : { path: value, optional: false };
}

/**
 * Parses an EnvironmentFile= file as systemd does: `KEY=VALUE` lines, `#`/`;` comments, '…' literal,
 * "…" with \" \\ \$ \` escapes, unquoted values with backslash escapes and trailing blanks trimmed, and a
 * backslash before a newline continuing the line. Lines that are not assignments are reported.
 */
export function parseEnvironmentFile(text: string): { entries: string[]; problems: string[] } {
  const entries: string[] = [];
  const problems: string[] = [];
  let i = 0;
  let line = 1;
  const skipToLineEnd = (): void => {
    while (i < text.length && text[i] !== "\n") i++;
  };
  while (i < text.length) {
    while (i < text.length && /[ \t\r\n]/.test(text[i] ?? "")) {
      if (text[i] === "\n") line++;
      i++;
    }
    if (i >= text.length) break;
    const startLine = line;
    if (text[i] === "#" || text[i] === ";") {
      skipToLineEnd();
      continue;
    }
    const keyStart = i;
    while (i < text.length && text[i] !== "=" && text[i] !== "\n") i++;
    const key = text.slice(keyStart, i).trim();
    if (text[i] !== "=" || !VARIABLE_NAME.test(key)) {
      problems.push(`line ${startLine}: not a KEY=VALUE assignment, ignoring`);
      skipToLineEnd();
      continue;
    }
    i++;
    while (i < text.length && (text[i] === " " || text[i] === "\t")) i++;
    let value = "";
    // Whitespace at the end of an unquoted value is dropped; trailingBlanks counts what may be dropped.
    let trailingBlanks = 0;
    while (i < text.length && text[i] !== "\n") {
      const char = text[i] ?? "";
      if (char === "'") {
        const close = text.indexOf("'", i + 1);
        const end = close < 0 ? text.length : close;
        value += text.slice(i + 1, end);
        line += countNewlines(text.slice(i + 1, end));
        i = end + 1;
        trailingBlanks = 0;
      } else if (char === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          const inner = text[i] ?? "";
          const next = text[i + 1];
          if (inner === "\\" && next === "\n") {
            i += 2;
            line++;
          } else if (inner === "\\" && next !== undefined && '"\\`$'.includes(next)) {
            value += next;
            i += 2;
          } else {
            if (inner === "\n") line++;
            value += inner;
            i++;
          }
        }
        i++;
        trailingBlanks = 0;
      } else if (char === "\\") {
        const next = text[i + 1];
        if (next === "\n") line++;
        else if (next !== undefined) value += next;
        i += 2;
        trailingBlanks = 0;
      } else {
        value += char;
        trailingBlanks = char === " " || char === "\t" || char === "\r" ? trailingBlanks + 1 : 0;
        i++;
      }
    }
    entries.push(`${key}=${value.slice(0, value.length - trailingBlanks)}`);
  }
  return { entries, problems };
}

function countNewlines(text: string): number {
  return text.split("\n").length - 1;
}

/** Later entries win, as systemd applies Environment= then EnvironmentFile= in order. */
export function environmentMap(entries: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const entry of entries) {
    const equals = entry.indexOf("=");
    if (equals > 0) map.set(entry.slice(0, equals), entry.slice(equals + 1));
  }
  return map;
}

/**
 * Substitutes variables in an already unquoted argv as systemd does: a word that is exactly `$FOO`
 * becomes the value split at whitespace (quotes in the value group and are removed; zero words when
 * unset or empty); `${FOO}` anywhere becomes the exact value, as does `${FOO:-default}` (default when
 * unset or empty) and `${FOO:+alternate}` (alternate when set and non-empty); `$$` is a literal `$`.
 * Unknown variables are empty strings.
 */
export function expandEnvironmentInArgv(argv: readonly string[], environment: ReadonlyMap<string, string>): string[] {
  const result: string[] = [];
  for (const word of argv) {
    const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(word);
    if (whole !== null) {
      result.push(...splitValueIntoWords(environment.get(whole[1] ?? "") ?? ""));
    } else {
      result.push(expandBracedVariables(word, environment));
    }
  }
  return result;
}

function expandBracedVariables(word: string, environment: ReadonlyMap<string, string>): string {
  let result = "";
  for (let i = 0; i < word.length; i++) {
    const char = word[i];
    if (char !== "$") {
      result += char;
      continue;
    }
    if (word[i + 1] === "$") {
      result += "$";
      i++;
      continue;
    }
    const braced = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}/.exec(word.slice(i));
    if (braced === null) {
      result += char;
      continue;
    }
    const value = environment.get(braced[1] ?? "") ?? "";
    const operator = braced[2];
    const operand = braced[3] ?? "";
    if (operator === "-") result += value === "" ? operand : value;
    else if (operator === "+") result += value === "" ? "" : operand;
    else result += value;
    i += braced[0].length - 1;
  }
  return result;
}

/** Whitespace splitting with quote grouping but no escape processing, as systemd splits `$FOO`. */
function splitValueIntoWords(value: string): string[] {
  const words: string[] = [];
  let current = "";
  let inWord = false;
  let quote: string | undefined;
  for (const char of value) {
    if (quote !== undefined) {
      if (char === quote) quote = undefined;
      else current += char;
    } else if (char === '"' || char === "'") {
      quote = char;
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(current);
      current = "";
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (inWord) words.push(current);
  return words;
}
