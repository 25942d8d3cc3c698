import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtemp, mkdir, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode, VksError } from "../../internal/errors.ts";
import {
  CorruptRecordError,
  PodRecordStore,
  recordProblem,
  stateDirFor,
  type PodRecord,
  type RecordProblem,
} from "../../internal/state/records.ts";
import { unitNameFor } from "../../internal/unit/name.ts";

const UID = "0f8e4c1a-6b2d-4e59-9a7c-3d1f2b8e6a40";

function podRecord(namespace: string, name: string, uid = UID): PodRecord {
  return {
    version: 1,
    namespace,
    name,
    uid,
    createdAt: "2024-05-06T07:08:09Z",
    manifest: {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace, uid, creationTimestamp: new Date("2024-05-06T07:08:09Z") },
      spec: { containers: [{ name: "web", image: "nginx-light", env: [{ name: "SECRET", value: "s3cret" }] }] },
    },
    units: [{ container: "web", unitName: unitNameFor({ namespace, pod: name, container: "web", uid }), image: "nginx-light" }],
    logs: { mode: "journal" },
  };
}

let stateDir: string;
let problems: RecordProblem[];
let store: PodRecordStore;

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), "vks-records-"));
  problems = [];
  store = new PodRecordStore(stateDir, { onProblem: (problem) => problems.push(problem) });
});

afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

describe("stateDirFor", () => {
  test("system scope uses /var/lib/vks", () => {
    expect(stateDirFor("system", {})).toBe("/var/lib/vks");
  });

  test("user scope prefers XDG_STATE_HOME, then HOME", () => {
    expect(stateDirFor("user", { XDG_STATE_HOME: "/x/state", HOME: "/home/u" })).toBe("/x/state/vks");
    expect(stateDirFor("user", { HOME: "/home/u" })).toBe("/home/u/.local/state/vks");
    expect(stateDirFor("user", { XDG_STATE_HOME: "", HOME: "/home/u" })).toBe("/home/u/.local/state/vks");
  });

  test("a relative XDG_STATE_HOME is ignored, as the XDG spec requires", () => {
    expect(stateDirFor("user", { XDG_STATE_HOME: "state", HOME: "/home/u" })).toBe("/home/u/.local/state/vks");
  });

  test("VKS_STATE_DIR overrides both scopes", () => {
    expect(stateDirFor("system", { VKS_STATE_DIR: "/tmp/s/" })).toBe("/tmp/s");
    expect(stateDirFor("user", { VKS_STATE_DIR: "/tmp/s", HOME: "/home/u" })).toBe("/tmp/s");
  });

  test("a relative VKS_STATE_DIR is rejected", () => {
    expect(() => stateDirFor("system", { VKS_STATE_DIR: "rel/dir" })).toThrow(VksError);
  });

  test("user scope without HOME says what to set", () => {
    expect(() => stateDirFor("user", {})).toThrow(/HOME/);
  });

  test("defaults to process.env", () => {
    expect(stateDirFor("user")).toBe(stateDirFor("user", process.env));
  });
});

describe("PodRecordStore", () => {
  test("a missing state directory reads as empty", async () => {
    const missing = new PodRecordStore(join(stateDir, "does", "not", "exist"));
    expect(await missing.list()).toEqual([]);
    expect(await missing.get("default", "web")).toBeUndefined();
    await missing.delete("default", "web");
  });

  test("put then get returns the record, manifest dates included", async () => {
    const record = podRecord("default", "web");
    await store.put(record);
    const read = await store.get("default", "web");
    expect(read).toEqual(record);
    expect(read?.manifest.metadata?.creationTimestamp).toBeInstanceOf(Date);
  });

  test("records live at <stateDir>/pods/<namespace>/<name>.json, private to the owner", async () => {
    await store.put(podRecord("kube-system", "dns.v1"));
    const path = join(stateDir, "pods", "kube-system", "dns.v1.json");
    expect(store.pathFor("kube-system", "dns.v1")).toBe(path);
    expect(JSON.parse(await readFile(path, "utf8")).name).toBe("dns.v1");
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(stateDir, "pods", "kube-system"))).mode & 0o777).toBe(0o700);
  });

  test("put replaces the previous record and leaves no temp files", async () => {
    await store.put(podRecord("default", "web", "aaaa"));
    await store.put(podRecord("default", "web", "bbbb"));
    expect((await store.get("default", "web"))?.uid).toBe("bbbb");
    expect(await readdir(join(stateDir, "pods", "default"))).toEqual(["web.json"]);
  });

  test("concurrent puts of one pod leave exactly one whole record", async () => {
    const uids = Array.from({ length: 20 }, (_, i) => `uid-${i}`);
    await Promise.all(uids.map((uid) => store.put(podRecord("default", "web", uid))));
    const read = await store.get("default", "web");
    expect(uids).toContain(read?.uid ?? "");
    expect(await readdir(join(stateDir, "pods", "default"))).toEqual(["web.json"]);
  });

  test("pod a and pod a.b are separate records", async () => {
    await store.put(podRecord("default", "a"));
    await store.put(podRecord("default", "a.b"));
    expect((await store.get("default", "a"))?.name).toBe("a");
    expect((await store.get("default", "a.b"))?.name).toBe("a.b");
    await store.delete("default", "a");
    expect(await store.get("default", "a")).toBeUndefined();
    expect((await store.get("default", "a.b"))?.name).toBe("a.b");
  });

  test("delete forgets the pod and tolerates a missing record", async () => {
    await store.put(podRecord("default", "web"));
    await store.delete("default", "web");
    expect(await store.get("default", "web")).toBeUndefined();
    await store.delete("default", "web");
    await store.delete("nowhere", "web");
  });

  test("list returns every record sorted by namespace and name", async () => {
    await store.put(podRecord("zeta", "b"));
    await store.put(podRecord("alpha", "z"));
    await store.put(podRecord("zeta", "a"));
    const listed = await store.list();
    expect(listed.map((r) => `${r.namespace}/${r.name}`)).toEqual(["alpha/z", "zeta/a", "zeta/b"]);
    expect(problems).toEqual([]);
  });

  test("names that could escape the state directory are refused", async () => {
    for (const [namespace, name] of [
      ["..", "web"],
      ["default", ".."],
      ["default", "../../etc/passwd"],
      ["a/b", "web"],
      ["default", ""],
    ] as const) {
      expect(() => store.pathFor(namespace, name)).toThrow(VksError);
      await expect(store.get(namespace, name)).rejects.toThrow(VksError);
      await expect(store.delete(namespace, name)).rejects.toThrow(VksError);
    }
  });

  test("put refuses a malformed record", async () => {
    const record = podRecord("default", "web");
    const foreignUnit = { ...record, units: [{ container: "web", unitName: "sshd.service", image: "x" }] };
    await expect(store.put(foreignUnit)).rejects.toThrow(/not a vks unit name/);
    expect(await store.get("default", "web")).toBeUndefined();
  });

  test("file logs keep their directory", async () => {
    const record: PodRecord = { ...podRecord("default", "web"), logs: { mode: "file", directory: "/var/log/pods/x" } };
    await store.put(record);
    expect((await store.get("default", "web"))?.logs).toEqual({ mode: "file", directory: "/var/log/pods/x" });
  });
});

describe("damaged records", () => {
  async function writeRaw(namespace: string, fileName: string, content: string): Promise<string> {
    const directory = join(stateDir, "pods", namespace);
    await mkdir(directory, { recursive: true });
    const path = join(directory, fileName);
    await writeFile(path, content);
    return path;
  }

  test("a corrupt record does not hide the others from list, and is reported", async () => {
    await store.put(podRecord("default", "good"));
    const brokenPath = await writeRaw("default", "broken.json", "{ not json");
    const listed = await store.list();
    expect(listed.map((r) => r.name)).toEqual(["good"]);
    expect(problems).toHaveLength(1);
    expect(problems[0]?.path).toBe(brokenPath);
    expect(problems[0]?.message).toContain("JSON");
  });

  test("scan returns the problems instead of reporting them", async () => {
    await writeRaw("default", "broken.json", "[]");
    const scanned = await store.scan();
    expect(scanned.records).toEqual([]);
    expect(scanned.problems.map((p) => p.message)).toEqual(["not a JSON object"]);
    expect(problems).toEqual([]);
  });

  test("get of a corrupt record throws CorruptRecordError naming the file", async () => {
    const path = await writeRaw("default", "broken.json", "");
    let caught: unknown;
    try {
      await store.get("default", "broken");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CorruptRecordError);
    expect((caught as CorruptRecordError).message).toContain(path);
    expect((caught as CorruptRecordError).hint).toContain(path);
    expect((caught as CorruptRecordError).exitCode).toBe(ExitCode.invalidInput);
  });

  test("a record filed under another pod's name is rejected", async () => {
    await writeRaw("default", "other.json", JSON.stringify(podRecord("default", "web")));
    await expect(store.get("default", "other")).rejects.toThrow(/filed as default\/other/);
    expect(await store.list()).toEqual([]);
    expect(problems).toHaveLength(1);
  });

  test("temp files and unrelated files are ignored", async () => {
    await store.put(podRecord("default", "web"));
    await writeRaw("default", ".web.json.123.abcd.tmp", "{");
    await writeRaw("default", "notes.txt", "hello");
    expect((await store.list()).map((r) => r.name)).toEqual(["web"]);
    expect(problems).toEqual([]);
  });

  test("badly named files and directories are reported", async () => {
    await writeRaw("default", "Bad_Name.json", "{}");
    await writeRaw("Bad_Namespace", "web.json", "{}");
    await store.list();
    expect(problems.map((p) => p.message).sort()).toEqual([
      "directory name is not a valid namespace",
      "file name is not a valid pod name",
    ]);
  });
});

describe("recordProblem", () => {
  const good = JSON.parse(JSON.stringify(podRecord("default", "web"))) as Record<string, unknown>;

  test("accepts a well-formed record", () => {
    expect(recordProblem(good)).toBeUndefined();
  });

  const broken: [string, Record<string, unknown>, RegExp][] = [
    ["a newer version", { version: 2 }, /unsupported version 2/],
    ["no uid", { uid: undefined }, /uid/],
    ["a bad timestamp", { createdAt: "yesterday" }, /createdAt/],
    ["no manifest", { manifest: "pod" }, /manifest/],
    ["mismatched manifest", { manifest: { metadata: { name: "web", namespace: "default", uid: "other" } } }, /does not match/],
    ["units not a list", { units: {} }, /units/],
    ["a unit without image", { units: [{ container: "web", unitName: `vks.default.web.web.${UID}.service` }] }, /image/],
    ["a foreign unit name", { units: [{ container: "web", unitName: "dbus.service", image: "x" }] }, /not a vks unit name/],
    ["unknown log mode", { logs: { mode: "syslog" } }, /logs.mode/],
    ["relative log directory", { logs: { mode: "file", directory: "logs" } }, /absolute/],
  ];
  for (const [what, override, message] of broken) {
    test(`rejects ${what}`, () => {
      expect(recordProblem({ ...good, ...override })).toMatch(message);
    });
  }
});
