import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ORPHAN_MIN_AGE_MS, findOrphanState, removeOrphanState } from "../../internal/pod/orphan-state.ts";

const stateDir = mkdtempSync(join(tmpdir(), "vks-orphan-state-"));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

const KNOWN = "11111111-1111-4111-8111-111111111111";
const GONE = "22222222-2222-4222-8222-222222222222";

function make(path: string, file = false): void {
  mkdirSync(file ? join(path, "..") : path, { recursive: true });
  if (file) writeFileSync(path, "{}");
}

describe("state of pods vks has no record of (units gc)", () => {
  for (const uid of [KNOWN, GONE]) {
    make(join(stateDir, "secret-env", uid));
    make(join(stateDir, "volumes", uid, "data"));
    make(join(stateDir, "backoff", uid));
    make(join(stateDir, "probes", `${uid}.json`), true);
    make(join(stateDir, "logs", `default_web_${uid}`));
  }
  const known = { uids: new Set([KNOWN]), logDirectories: new Set([join(stateDir, "logs", `default_web_${KNOWN}`)]) };

  test("nothing younger than a minute is taken: it may be a pod another vks is creating", async () => {
    expect(await findOrphanState(stateDir, known, Date.now())).toEqual([]);
  });

  test("every place named by an unknown uid is found, none of a known pod's; then removed", async () => {
    const later = Date.now() + ORPHAN_MIN_AGE_MS + 1000;
    const orphans = await findOrphanState(stateDir, known, later);
    expect(orphans.map((orphan) => orphan.kind).sort()).toEqual(["backoff", "logs", "probes", "secret-env", "volumes"]);
    expect(orphans.every((orphan) => orphan.path.includes(GONE))).toBe(true);
    await removeOrphanState(orphans);
    for (const orphan of orphans) expect(existsSync(orphan.path)).toBe(false);
    expect(existsSync(join(stateDir, "volumes", KNOWN, "data"))).toBe(true);
    expect(existsSync(join(stateDir, "probes", `${KNOWN}.json`))).toBe(true);
    expect(await findOrphanState(stateDir, known, later)).toEqual([]);
  });

  test("a state directory without any of these places has nothing to collect", async () => {
    const empty = mkdtempSync(join(tmpdir(), "vks-orphan-empty-"));
    try {
      expect(await findOrphanState(empty, known, Date.now() + ORPHAN_MIN_AGE_MS * 2)).toEqual([]);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
