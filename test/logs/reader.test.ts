// The argv of the program that reads a container's log (pure).
import { describe, expect, test } from "bun:test";
import { logReaderCommand } from "../../internal/logs/logs.ts";

const journal = { logs: { mode: "journal" as const }, unitName: "vks.default.p.c.u.service", container: "c", scope: "system" as const };

describe("logReaderCommand, journal mode", () => {
  test("following without --tail starts at the first line (journalctl -f alone shows the last 10)", () => {
    const argv = logReaderCommand({ ...journal, follow: true });
    expect(argv.slice(argv.indexOf("--lines"), argv.indexOf("--lines") + 2)).toEqual(["--lines", "all"]);
    expect(argv).toContain("--follow");
  });

  test("--tail N is passed as is, followed or not; no --lines when neither follows nor tails", () => {
    expect(logReaderCommand({ ...journal, follow: true, tail: 3 }).join(" ")).toContain("--lines 3 --follow");
    expect(logReaderCommand({ ...journal, follow: false, tail: 0 }).join(" ")).toContain("--lines 0");
    expect(logReaderCommand({ ...journal, follow: false })).not.toContain("--lines");
  });
});
