import { describe, expect, test } from "bun:test";
import { parseGroupId, parseInitgroups, parsePasswdEntry, supplementaryGroups } from "../../internal/exec/identity.ts";

describe("identity", () => {
  test("passwd, group and initgroups lines", () => {
    expect(parsePasswdEntry("postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n")).toEqual({
      name: "postgres",
      uid: 101,
      gid: 104,
      home: "/var/lib/postgresql",
      shell: "/bin/bash",
    });
    expect(parsePasswdEntry("")).toBeUndefined();
    expect(parsePasswdEntry("broken:x:abc:1:::")).toBeUndefined();
    expect(parseGroupId("ssl-cert:x:103:postgres\n")).toBe(103);
    expect(parseInitgroups("postgres              103 8\n")).toEqual([103, 8]);
    expect(parseInitgroups("nobody               \n")).toEqual([]);
  });

  test("systemd's group rules: initgroups for a user with a non-zero gid, SupplementaryGroups= added", () => {
    expect(supplementaryGroups({ gid: 104, hasUser: true, memberOf: [103], configured: [] })).toEqual([104, 103]);
    expect(supplementaryGroups({ gid: 33, hasUser: true, memberOf: [103], configured: [8, 33] })).toEqual([33, 103, 8]);
    // gid 0 skips the user database, as systemd does.
    expect(supplementaryGroups({ gid: 0, hasUser: true, memberOf: [103], configured: [] })).toEqual([]);
    expect(supplementaryGroups({ gid: 5, hasUser: false, memberOf: [], configured: [7] })).toEqual([7]);
  });
});
