import { expect, test } from "bun:test";
import { canEnter } from "../../internal/exec/exec.ts";

const DIRECTORY = 0o040000;
const tree: Record<string, { mode: number; uid: number; gid: number }> = {
  "/": { mode: DIRECTORY | 0o755, uid: 0, gid: 0 },
  "/root": { mode: DIRECTORY | 0o700, uid: 0, gid: 0 },
  "/srv": { mode: DIRECTORY | 0o750, uid: 0, gid: 50 },
  "/srv/app": { mode: DIRECTORY | 0o755, uid: 7, gid: 7 },
  "/file": { mode: 0o100755, uid: 0, gid: 0 },
};
const stat = (path: string) => tree[path];

test("canEnter: search permission on every directory of the path, by owner, group or others", () => {
  expect(canEnter("/root", { uid: 0, gid: 0, groups: [] }, stat)).toBe(true);
  expect(canEnter("/root", { uid: 101, gid: 104, groups: [] }, stat)).toBe(false);
  expect(canEnter("/srv/app", { uid: 7, gid: 7, groups: [] }, stat)).toBe(false);
  expect(canEnter("/srv/app", { uid: 7, gid: 7, groups: [50] }, stat)).toBe(true);
  expect(canEnter("/srv/app/", { uid: 8, gid: 50, groups: [] }, stat)).toBe(true);
  expect(canEnter("/missing", { uid: 0, gid: 0, groups: [] }, stat)).toBe(false);
  expect(canEnter("/file", { uid: 0, gid: 0, groups: [] }, stat)).toBe(false);
});
