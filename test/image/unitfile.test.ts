import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { imageFromUnit } from "../../internal/image/unitimage.ts";
import {
  lastValue,
  listValues,
  mergeUnitFiles,
  parseExecLine,
  parseUnitFile,
  splitQuotedWords,
  UnitSyntaxError,
} from "../../internal/image/unitfile.ts";

const UNITS_DIR = join(import.meta.dir, "testdata", "units");
const UPDATE = process.env.UPDATE_GOLDEN === "1";

/** Every unit file under testdata/units (drop-in .conf files are merged, not tested alone). */
function unitFixtures(): string[] {
  const found: string[] = [];
  for (const packageDir of readdirSync(UNITS_DIR, { withFileTypes: true })) {
    if (!packageDir.isDirectory()) continue;
    for (const entry of readdirSync(join(UNITS_DIR, packageDir.name), { withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith(".service")) found.push(join(UNITS_DIR, packageDir.name, entry.name));
    }
  }
  return found.sort();
}

function goldenFor(unitPath: string): unknown {
  const unit = parseUnitFile(readFileSync(unitPath, "utf8"));
  const dropInDir = `${unitPath}.d`;
  const dropIns = existsSync(dropInDir)
    ? readdirSync(dropInDir)
        .filter((name) => name.endsWith(".conf"))
        .sort()
        .map((name) => parseUnitFile(readFileSync(join(dropInDir, name), "utf8")))
    : [];
  const merged = mergeUnitFiles(unit, ...dropIns);

  const exec = merged.sections.flatMap((section) =>
    section.assignments
      .filter((assignment) => assignment.key.startsWith("Exec"))
      .map((assignment) => {
        try {
          return { line: assignment.line, key: assignment.key, commands: parseExecLine(assignment.value) };
        } catch (err) {
          if (!(err instanceof UnitSyntaxError)) throw err;
          return { line: assignment.line, key: assignment.key, error: err.message };
        }
      }),
  );
  // Templates are resolved as instance "example" so that %i and %I show what they expand to.
  const unitName = basename(unitPath).replace("@.", "@example.");
  const image = imageFromUnit(merged, {
    unitName,
    host: { hostname: "host.example.org", machineId: "0123456789abcdef0123456789abcdef" },
    readEnvironmentFile: () => undefined,
    findExecutable: (name) => `/usr/bin/${name}`,
  });
  return { unit, dropIns, exec, image };
}

describe("unit file goldens (real Debian units)", () => {
  for (const unitPath of unitFixtures()) {
    const relative = unitPath.slice(UNITS_DIR.length + 1);
    test(relative, () => {
      const actual = goldenFor(unitPath);
      const goldenPath = `${unitPath}.json`;
      if (UPDATE) writeFileSync(goldenPath, JSON.stringify(actual, null, 2) + "\n");
      expect(existsSync(goldenPath)).toBe(true);
      expect(JSON.parse(JSON.stringify(actual))).toEqual(JSON.parse(readFileSync(goldenPath, "utf8")));
    });
  }
  test("fixtures exist", () => {
    expect(unitFixtures().length).toBeGreaterThan(15);
    expect(existsSync(dirname(UNITS_DIR))).toBe(true);
  });
});

describe("parseUnitFile", () => {
  test("continuation joins with a space and skips comment lines in between", () => {
    const unit = parseUnitFile("[S]\nA=one \\\n# gone\n; gone too\n  two\nB=x\n");
    expect(listValues(unit, "S", "A")).toEqual(["one    two"]);
    expect(lastValue(unit, "S", "B")).toBe("x");
  });
  test("an even number of trailing backslashes does not continue", () => {
    const unit = parseUnitFile("[S]\nA=x\\\\\nB=y\n");
    expect(lastValue(unit, "S", "A")).toBe("x\\\\");
    expect(lastValue(unit, "S", "B")).toBe("y");
  });
  test("a comment line ending in a backslash does not swallow the next line", () => {
    const unit = parseUnitFile("[S]\n# comment \\\nA=kept\n");
    expect(lastValue(unit, "S", "A")).toBe("kept");
  });
  test("empty assignment resets a list and unsets a single value", () => {
    const unit = parseUnitFile("[S]\nL=a\nL=b\nL=\nL=c\nV=1\nV=\n");
    expect(listValues(unit, "S", "L")).toEqual(["c"]);
    expect(lastValue(unit, "S", "V")).toBeUndefined();
  });
  test("repeated sections merge; CRLF line ends are tolerated", () => {
    const unit = parseUnitFile("[S]\r\nA=1\r\n[T]\r\nB=2\r\n[S]\r\nA=3\r\n");
    expect(listValues(unit, "S", "A")).toEqual(["1", "3"]);
    expect(unit.sections.map((section) => section.name)).toEqual(["S", "T"]);
  });
  test("lines systemd ignores are warnings", () => {
    const unit = parseUnitFile("Outside=1\n[S]\nnoequals\n[bad\n=novalue\n");
    expect(unit.warnings).toHaveLength(4);
  });
});

describe("splitQuotedWords", () => {
  test("quotes group, escapes resolve in both quote kinds", () => {
    expect(splitQuotedWords(`a "b c" 'd\\te' f\\x41 \\u00e9\\101 "x"'y'z`).map((word) => word.text)).toEqual([
      "a",
      "b c",
      "d\te",
      "fA",
      "éA",
      "xyz",
    ]);
  });
  test("errors: unbalanced quote, unknown escape, NUL, trailing backslash", () => {
    expect(() => splitQuotedWords(`"open`)).toThrow(UnitSyntaxError);
    expect(() => splitQuotedWords(`\\q`)).toThrow(/unknown escape/);
    expect(() => splitQuotedWords(`\\x00`)).toThrow(UnitSyntaxError);
    expect(() => splitQuotedWords(`a\\`)).toThrow(/trailing backslash/);
  });
});

describe("parseExecLine", () => {
  test("prefixes are recorded and stripped", () => {
    const [command] = parseExecLine("-:+/usr/bin/true x");
    expect(command).toMatchObject({
      path: "/usr/bin/true",
      argv: ["/usr/bin/true", "x"],
      ignoreFailure: true,
      noEnvironmentExpansion: true,
      fullPrivileges: true,
    });
  });
  test("@ takes argv[0] from the next word", () => {
    expect(parseExecLine("@/usr/sbin/sshd sshd-listener -D")[0]).toMatchObject({
      path: "/usr/sbin/sshd",
      argv: ["sshd-listener", "-D"],
      argv0FromNextWord: true,
    });
  });
  test("!! replaces !, and + excludes !", () => {
    expect(parseExecLine("!!/bin/x")[0]).toMatchObject({ noCredentialChange: false, noCredentialChangeWithoutAmbient: true });
    expect(() => parseExecLine("+!/bin/x")).toThrow(/absolute path or a bare file name|must be/);
  });
  test("a repeated prefix ends the prefixes, leaving an invalid path", () => {
    expect(() => parseExecLine("--/bin/x")).toThrow(UnitSyntaxError);
  });
  test("lone ; separates commands, \\; is a literal argument", () => {
    const commands = parseExecLine("/bin/echo a ; /bin/echo b \\; c");
    expect(commands.map((command) => command.argv)).toEqual([["/bin/echo", "a"], ["/bin/echo", "b", ";", "c"]]);
  });
  test("empty value is no command; bare names are kept for the search path; relative paths are refused", () => {
    expect(parseExecLine("")).toEqual([]);
    expect(parseExecLine("udevadm info")[0]?.path).toBe("udevadm");
    expect(() => parseExecLine("bin/x")).toThrow(/absolute path or a bare file name/);
    expect(() => parseExecLine("- ")).toThrow(/empty executable path/);
    expect(() => parseExecLine("@/bin/x")).toThrow(/argv\[0\]/);
  });
});
