import { describe, expect, test } from "bun:test";
import {
  environmentMap,
  expandEnvironmentInArgv,
  parseEnvironmentAssignments,
  parseEnvironmentFile,
} from "../../internal/image/environment.ts";
import {
  expandSpecifiers,
  systemSpecifierValues,
  unescapeUnitNamePart,
  UnsupportedSpecifierError,
} from "../../internal/image/specifiers.ts";
import { imageFromUnit } from "../../internal/image/unitimage.ts";
import { parseUnitFile } from "../../internal/image/unitfile.ts";

describe("specifiers", () => {
  test("unit-name and directory specifiers", () => {
    const values = systemSpecifierValues("systemd-fsck@dev-disk-by\\x2dlabel-root.service");
    expect(expandSpecifiers("%n|%N|%p|%i|%j", values)).toBe(
      "systemd-fsck@dev-disk-by\\x2dlabel-root.service|systemd-fsck@dev-disk-by\\x2dlabel-root|systemd-fsck|dev-disk-by\\x2dlabel-root|fsck",
    );
    expect(expandSpecifiers("%I %f", values)).toBe("dev/disk/by-label/root /dev/disk/by-label/root");
    expect(expandSpecifiers("%t/%S/%C/%L/%E/%T/%V %%", values)).toBe("/run//var/lib//var/cache//var/log//etc//tmp//var/tmp %");
  });
  test("non-template units have an empty instance", () => {
    expect(expandSpecifiers("[%i]", systemSpecifierValues("ssh.service"))).toBe("[]");
  });
  test("%u follows User=, %U needs a number for another user", () => {
    expect(expandSpecifiers("%u %U", systemSpecifierValues("x.service"))).toBe("root 0");
    expect(expandSpecifiers("%u", systemSpecifierValues("x.service", {}, "daemon"))).toBe("daemon");
    expect(() => expandSpecifiers("%U", systemSpecifierValues("x.service", {}, "daemon"))).toThrow(UnsupportedSpecifierError);
  });
  test("host facts only when supplied; unknown letters refused", () => {
    expect(() => expandSpecifiers("%H", systemSpecifierValues("x.service"))).toThrow(/%H/);
    expect(expandSpecifiers("%H %l", systemSpecifierValues("x.service", { hostname: "a.b.c" }))).toBe("a.b.c a");
    expect(() => expandSpecifiers("%d", systemSpecifierValues("x.service"))).toThrow(/not supported/);
    expect(() => expandSpecifiers("100%", systemSpecifierValues("x.service"))).toThrow(UnsupportedSpecifierError);
  });
  test("unescaping unit name parts", () => {
    expect(unescapeUnitNamePart("home-user\\x2dname")).toBe("home/user-name");
  });
});

describe("environment", () => {
  test("Environment= assignments", () => {
    expect(parseEnvironmentAssignments(`A=1 "B=two words" 'C=x\\ty' bad`)).toEqual({
      entries: ["A=1", "B=two words", "C=x\ty"],
      problems: ['invalid environment assignment "bad", ignoring'],
    });
  });
  test("EnvironmentFile= contents", () => {
    const text = [
      "# comment",
      "; also a comment",
      "PLAIN=value with spaces   ",
      "SINGLE='lit $x \\n'",
      'DOUBLE="a \\"q\\" \\$HOME \\n"',
      "ESCAPED=a\\ b",
      "CONT=one\\",
      "two",
      "  INDENTED = yes",
      "not an assignment",
      "EMPTY=",
    ].join("\n");
    expect(parseEnvironmentFile(text)).toEqual({
      entries: [
        "PLAIN=value with spaces",
        "SINGLE=lit $x \\n",
        'DOUBLE=a "q" $HOME \\n',
        "ESCAPED=a b",
        "CONT=onetwo",
        "INDENTED=yes",
        "EMPTY=",
      ],
      problems: ["line 10: not a KEY=VALUE assignment, ignoring"],
    });
  });
  test("$FOO splits, ${FOO} stays one word, $$ is a dollar, unknown is empty", () => {
    const env = environmentMap(["OPTS=-a  'b c' -d", "ONE=x y", "EMPTY="]);
    expect(expandEnvironmentInArgv(["/bin/p", "$OPTS", "${ONE}", "pre${ONE}post", "$$HOME", "$UNSET", "${UNSET}", "$EMPTY"], env)).toEqual([
      "/bin/p",
      "-a",
      "b c",
      "-d",
      "x y",
      "prex ypost",
      "$HOME",
      "",
    ]);
    expect(expandEnvironmentInArgv(["${UNSET:-dflt}", "${ONE:-dflt}", "${ONE:+alt}", "${EMPTY:+alt}", "mid$ONE"], env)).toEqual([
      "dflt",
      "x y",
      "alt",
      "",
      "mid$ONE",
    ]);
  });
  test("the unit image reads environment files for $VARS and honours ':'", () => {
    const unit = parseUnitFile(
      "[Service]\nEnvironment=A=from-unit\nEnvironmentFile=-/etc/default/x\nExecStartPre=:/bin/echo $A\nExecStart=/usr/sbin/xd -f $XD_OPTS ${A}\n",
    );
    const image = imageFromUnit(unit, {
      unitName: "x.service",
      host: {},
      readEnvironmentFile: (path) => (path === "/etc/default/x" ? 'XD_OPTS="-v --port 22"\nA=from-file\n' : undefined),
      findExecutable: () => undefined,
    });
    expect(image.entrypoint).toEqual(["/usr/sbin/xd"]);
    expect(image.cmd).toEqual(["-f", "-v", "--port", "22", "from-file"]);
    expect(image.execStartPre).toEqual([{ path: "/bin/echo", argv: ["/bin/echo", "$A"], ignoreFailure: false }]);
    expect(image.environmentFiles).toEqual([{ path: "/etc/default/x", optional: true }]);
  });
  test("a unit vks cannot take over explains why instead of guessing", () => {
    const context = { unitName: "x.service", host: {}, readEnvironmentFile: () => undefined, findExecutable: () => undefined };
    const twoStarts = imageFromUnit(parseUnitFile("[Service]\nType=oneshot\nExecStart=/bin/a\nExecStart=/bin/b\n"), context);
    expect(twoStarts.entrypoint).toEqual([]);
    expect(twoStarts.explanation).toMatch(/2 ExecStart= commands.*give the container a command/);
    expect(imageFromUnit(parseUnitFile("[Service]\nExecStart=/bin/a %d\n"), context).explanation).toMatch(/%d/);
    expect(imageFromUnit(parseUnitFile("[Service]\nExecStart=missing-tool\n"), context).explanation).toMatch(/search path/);
    expect(imageFromUnit(parseUnitFile("[Service]\nExecStart=/bin/a 'open\n"), context).explanation).toMatch(/unbalanced/);
    expect(imageFromUnit(parseUnitFile("[Service]\nExecStop=/bin/a\n"), context).explanation).toMatch(/no ExecStart/);
  });
});
