/**
 * systemd unit-file syntax (systemd.syntax(7), "Command lines" in systemd.service(5)). Pure.
 *
 * The parser is as lenient as systemd: a line systemd would ignore with a warning is ignored here with a
 * warning, so a package unit that loads on the host also parses here. Values are kept as written (after
 * joining continued lines); meaning is given by the helpers below, which know which keys are lists.
 * Specifiers (`%n`) and environment variables (`$FOO`) are left in place: see specifiers.ts and
 * environment.ts, which expand them the way systemd does once the unit's context is known.
 */

export interface UnitAssignment {
  key: string;
  value: string;
  /** 1-based line on which the (possibly continued) assignment starts. */
  line: number;
}

export interface UnitSection {
  name: string;
  /** In file order, repeated keys included. A section named twice is one section, as in systemd. */
  assignments: UnitAssignment[];
}

export interface UnitFile {
  sections: UnitSection[];
  /** Lines systemd would ignore, each with its line number. */
  warnings: string[];
}

const COMMENT_STARTS = "#;";
const WHITESPACE = /\s/;

export function parseUnitFile(text: string): UnitFile {
  const sections: UnitSection[] = [];
  const warnings: string[] = [];
  let current: UnitSection | undefined;
  let pending: { text: string; line: number } | undefined;

  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const raw = (lines[index] ?? "").replace(/\r$/, "");
    const lineNumber = index + 1;
    // Comment lines are dropped even inside a continued line, so a commented-out middle line of a wrapped
    // value does not end it (systemd.syntax, Example 1).
    const firstNonBlank = raw.trimStart()[0];
    if (firstNonBlank !== undefined && COMMENT_STARTS.includes(firstNonBlank)) continue;

    const joined = pending === undefined ? raw : pending.text + raw;
    const startLine = pending?.line ?? lineNumber;
    if (endsWithOddBackslashes(joined)) {
      pending = { text: joined.slice(0, -1) + " ", line: startLine };
      continue;
    }
    pending = undefined;
    current = handleLogicalLine(joined, startLine, current, sections, warnings);
  }
  if (pending !== undefined) current = handleLogicalLine(pending.text, pending.line, current, sections, warnings);
  return { sections, warnings };
}

function endsWithOddBackslashes(line: string): boolean {
  let count = 0;
  for (let i = line.length - 1; i >= 0 && line[i] === "\\"; i--) count++;
  return count % 2 === 1;
}

function handleLogicalLine(
  text: string,
  line: number,
  current: UnitSection | undefined,
  sections: UnitSection[],
  warnings: string[],
): UnitSection | undefined {
  const stripped = text.trim();
  if (stripped === "") return current;
  if (stripped.startsWith("[")) {
    if (!stripped.endsWith("]") || stripped.length < 3) {
      warnings.push(`line ${line}: invalid section header ${JSON.stringify(stripped)}, ignoring`);
      return current;
    }
    const name = stripped.slice(1, -1);
    const existing = sections.find((section) => section.name === name);
    if (existing !== undefined) return existing;
    const created: UnitSection = { name, assignments: [] };
    sections.push(created);
    return created;
  }
  const equals = stripped.indexOf("=");
  if (equals < 0) {
    warnings.push(`line ${line}: missing '=', ignoring ${JSON.stringify(stripped)}`);
    return current;
  }
  if (current === undefined) {
    warnings.push(`line ${line}: assignment outside of any section, ignoring`);
    return current;
  }
  const key = stripped.slice(0, equals).trim();
  if (key === "") {
    warnings.push(`line ${line}: assignment without a key, ignoring`);
    return current;
  }
  current.assignments.push({ key, value: stripped.slice(equals + 1).trim(), line });
  return current;
}

/** Drop-ins apply as if appended to the unit, section by section (systemd.unit(5), "Description"). */
export function mergeUnitFiles(base: UnitFile, ...dropIns: UnitFile[]): UnitFile {
  const sections: UnitSection[] = base.sections.map((section) => ({ name: section.name, assignments: [...section.assignments] }));
  const warnings = [...base.warnings];
  for (const dropIn of dropIns) {
    warnings.push(...dropIn.warnings);
    for (const section of dropIn.sections) {
      const target = sections.find((candidate) => candidate.name === section.name);
      if (target === undefined) sections.push({ name: section.name, assignments: [...section.assignments] });
      else target.assignments.push(...section.assignments);
    }
  }
  return { sections, warnings };
}

function assignmentsFor(unit: UnitFile, section: string, key: string): UnitAssignment[] {
  return unit.sections.find((candidate) => candidate.name === section)?.assignments.filter((a) => a.key === key) ?? [];
}

/** A single-valued setting: the last assignment wins; an empty one resets it to the default (undefined). */
export function lastValue(unit: UnitFile, section: string, key: string): string | undefined {
  const value = assignmentsFor(unit, section, key).at(-1)?.value;
  return value === undefined || value === "" ? undefined : value;
}

/** A list setting: every assignment after the last empty one, which resets the list. */
export function listValues(unit: UnitFile, section: string, key: string): string[] {
  const values = assignmentsFor(unit, section, key).map((assignment) => assignment.value);
  const lastReset = values.lastIndexOf("");
  return values.slice(lastReset + 1);
}

export class UnitSyntaxError extends Error {
  override readonly name = "UnitSyntaxError";
}

export interface QuotedWord {
  /** The word with quotes removed and escapes resolved. */
  text: string;
  /** The word exactly as written, to tell a lone `;` from an escaped `\;`. */
  raw: string;
}

const SIMPLE_ESCAPES: Record<string, string> = {
  a: "\x07",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
  "\\": "\\",
  '"': '"',
  "'": "'",
  s: " ",
};

/**
 * Splits a value into words by systemd's quoting rules: whitespace separates words, "…" and '…' group
 * (both resolve C escapes, unlike a shell's single quotes), and quotes may open mid-word as systemd's
 * extract_first_word allows. Throws UnitSyntaxError on unbalanced quotes or an unknown escape.
 */
export function splitQuotedWords(value: string): QuotedWord[] {
  const words: QuotedWord[] = [];
  let i = 0;
  while (i < value.length) {
    while (i < value.length && WHITESPACE.test(value[i] ?? "")) i++;
    if (i >= value.length) break;
    const start = i;
    let text = "";
    let quote: string | undefined;
    for (; i < value.length; i++) {
      const char = value[i] ?? "";
      if (quote === undefined && WHITESPACE.test(char)) break;
      if (char === "\\") {
        const escaped = readEscape(value, i);
        text += escaped.text;
        i = escaped.end - 1;
        continue;
      }
      if (quote === undefined && (char === '"' || char === "'")) {
        quote = char;
        continue;
      }
      if (char === quote) {
        quote = undefined;
        continue;
      }
      text += char;
    }
    if (quote !== undefined) throw new UnitSyntaxError(`unbalanced ${quote} quote in ${JSON.stringify(value)}`);
    words.push({ text, raw: value.slice(start, i) });
  }
  return words;
}

/** Resolves the escape starting at value[at] (a backslash); returns its text and the index after it. */
function readEscape(value: string, at: number): { text: string; end: number } {
  const next = value[at + 1];
  if (next === undefined) throw new UnitSyntaxError(`trailing backslash in ${JSON.stringify(value)}`);
  const simple = SIMPLE_ESCAPES[next];
  if (simple !== undefined) return { text: simple, end: at + 2 };
  // A lone `\;` stands for a literal ";" argument, not a command separator (systemd.service(5)).
  if (next === ";") return { text: ";", end: at + 2 };
  const hexDigits = next === "x" ? 2 : next === "u" ? 4 : next === "U" ? 8 : 0;
  if (hexDigits > 0) {
    const digits = value.slice(at + 2, at + 2 + hexDigits);
    if (!new RegExp(`^[0-9a-fA-F]{${hexDigits}}$`).test(digits)) {
      throw new UnitSyntaxError(`invalid escape \\${next}${digits} in ${JSON.stringify(value)}`);
    }
    return { text: codePoint(Number.parseInt(digits, 16), value), end: at + 2 + hexDigits };
  }
  if (next >= "0" && next <= "7") {
    const digits = value.slice(at + 1, at + 4);
    if (!/^[0-7]{3}$/.test(digits)) {
      throw new UnitSyntaxError(`invalid octal escape \\${digits} in ${JSON.stringify(value)}: it takes three digits`);
    }
    return { text: codePoint(Number.parseInt(digits, 8), value), end: at + 4 };
  }
  throw new UnitSyntaxError(`unknown escape \\${next} in ${JSON.stringify(value)} (write \\\\ for a backslash)`);
}

function codePoint(point: number, value: string): string {
  // NUL cannot be passed in an argument or environment entry, and systemd refuses it too.
  if (point === 0 || point > 0x10ffff) {
    throw new UnitSyntaxError(`escape for code point ${point} is not allowed in ${JSON.stringify(value)}`);
  }
  return String.fromCodePoint(point);
}

/** One command of an Exec*= setting, prefixes decoded. Specifiers and `$VARS` are still unexpanded. */
export interface ParsedExecCommand {
  /** As written after the prefixes: an absolute path, or a bare file name systemd looks up in its fixed path. */
  path: string;
  /** argv[0] first: the path itself, or with `@` the word after it. */
  argv: string[];
  /** `-`: a failing exit status is recorded but counts as success. */
  ignoreFailure: boolean;
  /** `@`: argv[0] is the second word rather than the path. */
  argv0FromNextWord: boolean;
  /** `:`: no `$VAR` substitution. */
  noEnvironmentExpansion: boolean;
  /** `+`: runs without User=, Group=, sandboxing and capability limits. */
  fullPrivileges: boolean;
  /** `!`: User=, Group= and SupplementaryGroups= are not applied; the program drops privileges itself. */
  noCredentialChange: boolean;
  /** `!!`: as `!`, but only where the kernel lacks ambient capabilities (so never on a current kernel). */
  noCredentialChangeWithoutAmbient: boolean;
}

/**
 * Parses one Exec*= value: quoting and escapes as splitQuotedWords, prefixes as systemd.service(5) lists
 * them (each at most once; `+`, `!` and `!!` exclusive), lone `;` words separating commands. An empty value
 * gives no commands (it resets the list). Throws UnitSyntaxError where systemd would reject the line.
 */
export function parseExecLine(value: string): ParsedExecCommand[] {
  const commands: ParsedExecCommand[] = [];
  let words: QuotedWord[] = [];
  for (const word of splitQuotedWords(value)) {
    if (word.raw === ";") {
      if (words.length > 0) commands.push(commandFromWords(words, value));
      words = [];
    } else {
      words.push(word);
    }
  }
  if (words.length > 0) commands.push(commandFromWords(words, value));
  return commands;
}

function commandFromWords(words: QuotedWord[], value: string): ParsedExecCommand {
  const first = words[0]?.text ?? "";
  const command: ParsedExecCommand = {
    path: "",
    argv: [],
    ignoreFailure: false,
    argv0FromNextWord: false,
    noEnvironmentExpansion: false,
    fullPrivileges: false,
    noCredentialChange: false,
    noCredentialChangeWithoutAmbient: false,
  };
  let at = 0;
  for (; at < first.length; at++) {
    const char = first[at];
    const privileged = command.fullPrivileges || command.noCredentialChange || command.noCredentialChangeWithoutAmbient;
    if (char === "-" && !command.ignoreFailure) command.ignoreFailure = true;
    else if (char === "@" && !command.argv0FromNextWord) command.argv0FromNextWord = true;
    else if (char === ":" && !command.noEnvironmentExpansion) command.noEnvironmentExpansion = true;
    else if (char === "+" && !privileged) command.fullPrivileges = true;
    else if (char === "!" && !privileged) command.noCredentialChange = true;
    else if (char === "!" && command.noCredentialChange && !command.noCredentialChangeWithoutAmbient) {
      command.noCredentialChange = false;
      command.noCredentialChangeWithoutAmbient = true;
    } else break;
  }
  command.path = first.slice(at);
  if (command.path === "") throw new UnitSyntaxError(`empty executable path in ${JSON.stringify(value)}`);
  if (!command.path.startsWith("/") && command.path.includes("/")) {
    throw new UnitSyntaxError(
      `executable ${JSON.stringify(command.path)} in ${JSON.stringify(value)} must be an absolute path or a bare file name`,
    );
  }
  const rest = words.slice(1).map((word) => word.text);
  if (command.argv0FromNextWord) {
    if (rest.length === 0) throw new UnitSyntaxError(`'@' needs the word for argv[0] after the path in ${JSON.stringify(value)}`);
    command.argv = rest;
  } else {
    command.argv = [command.path, ...rest];
  }
  return command;
}
