/**
 * vks' own memory of the pods it runs: one JSON record per pod under `<stateDir>/pods/<namespace>/<name>.json`.
 *
 * systemd knows the units; only the record knows the manifest they came from, so `pod up`, `serve` and
 * `units gc` can tell a pod's units apart from leftovers. Records are written atomically (temp file, fsync,
 * rename) so a crash leaves either the old record or the new one, never half of one. They are read
 * defensively: the files are plain text a user can edit, so a damaged record is reported and skipped,
 * never allowed to take every other pod down with it.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { consola } from "consola";
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, readdir, rename, unlink } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import { ExitCode, VksError, errorMessage } from "../errors.ts";
import { isDns1123Label, isDns1123Subdomain, isVksUnitName } from "../unit/name.ts";
import type { ManagerScope } from "../systemd/types.ts";


export const POD_RECORD_VERSION = 1;

export interface PodUnitRecord {
  container: string;
  unitName: string;
  /** The image reference as written in the manifest. */
  image: string;
}

export type PodLogs = { mode: "journal" } | { mode: "file"; directory: string };

export interface PodRecord {
  version: typeof POD_RECORD_VERSION;
  namespace: string;
  name: string;
  uid: string;
  /** RFC 3339. */
  createdAt: string;
  /** The pod as applied, with metadata.uid, namespace and creationTimestamp filled in. */
  manifest: V1Pod;
  units: PodUnitRecord[];
  logs: PodLogs;
  /** Who created the pod: `pod up` (restored at boot by `vks pod restore`) or `serve` (from the API server). Absent in older records. */
  origin?: PodOrigin;
  /** A `pod up -d` pod that `vks pod restore` starts again when its units are gone after a reboot. */
  restoreAtBoot?: boolean;
  /**
   * Per container: restarts of its earlier units (a reboot takes the unit and systemd's NRestarts with it)
   * and the last restartCount a vks process saw, so restartCount continues when the unit is made again.
   */
  restarts?: Record<string, ContainerRestarts>;
  /**
   * Set when the node itself failed the pod (admission's OutOfcpu, activeDeadlineSeconds): its status
   * says so after a vks restart too.
   */
  failure?: { reason: string; message: string; rejected: boolean };
}

export type PodOrigin = "pod-up" | "serve";

export interface ContainerRestarts {
  /** Restarts before the current unit was created. */
  before: number;
  /** The highest restartCount seen (before + the unit's NRestarts). */
  seen: number;
}

/** A record file that could not be used, and why. */
export interface RecordProblem {
  path: string;
  message: string;
}

export interface RecordScan {
  records: PodRecord[];
  problems: RecordProblem[];
}

export class CorruptRecordError extends VksError {
  override readonly name = "CorruptRecordError";
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`pod record ${path} is unusable: ${problem}`, {
      exitCode: ExitCode.invalidInput,
      hint: `fix or remove ${path}; removing it makes vks forget the pod (its units remain, see \`vks units ls\`)`,
    });
  }
}

/**
 * Where vks keeps its records: /var/lib/vks for the system manager, the XDG state directory for a user
 * manager, or $VKS_STATE_DIR when set (tests and unusual layouts).
 */
export function stateDirFor(
  scope: ManagerScope,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  const override = env.VKS_STATE_DIR;
  if (override) {
    // A relative directory would silently change with the working directory of whoever runs vks.
    if (!isAbsolute(override)) {
      throw new VksError(`VKS_STATE_DIR must be an absolute path, not ${JSON.stringify(override)}`, {
        exitCode: ExitCode.usage,
        hint: "set VKS_STATE_DIR to an absolute directory, or unset it to use the default",
      });
    }
    return resolve(override);
  }
  if (scope === "system") return "/var/lib/vks";

  // The XDG base directory spec says relative values are invalid and must be ignored.
  const xdgStateHome = env.XDG_STATE_HOME;
  if (xdgStateHome && isAbsolute(xdgStateHome)) return join(xdgStateHome, "vks");
  const home = env.HOME;
  if (home && isAbsolute(home)) return join(home, ".local", "state", "vks");
  throw new VksError("cannot find a state directory for --user: neither XDG_STATE_HOME nor HOME is set", {
    exitCode: ExitCode.usage,
    hint: "set HOME, XDG_STATE_HOME or VKS_STATE_DIR to an absolute directory",
  });
}

export interface PodRecordStoreOptions {
  /** Told about every record list() had to skip. Defaults to a warning on the console. */
  onProblem?: (problem: RecordProblem) => void;
}

export class PodRecordStore {
  private readonly podsDir: string;
  private readonly onProblem: (problem: RecordProblem) => void;

  constructor(
    readonly stateDir: string,
    options: PodRecordStoreOptions = {},
  ) {
    this.podsDir = join(stateDir, "pods");
    this.onProblem =
      options.onProblem ?? ((problem) => consola.warn(`skipping pod record ${problem.path}: ${problem.message}`));
  }

  /** Where the record of `namespace/name` lives. Throws for names that could escape the state directory. */
  pathFor(namespace: string, name: string): string {
    return join(this.namespaceDir(namespace), `${checkedPodName(name)}.json`);
  }

  /** Creates or replaces the record atomically. */
  async put(record: PodRecord): Promise<void> {
    const problem = recordProblem(record);
    if (problem !== undefined) {
      throw new VksError(`refusing to store pod record ${record.namespace}/${record.name}: ${problem}`, {
        exitCode: ExitCode.software,
      });
    }
    const directory = this.namespaceDir(record.namespace);
    const path = this.pathFor(record.namespace, record.name);
    // Records hold whole manifests, environment values included: keep them private to the owner.
    await storage("create", directory, () => mkdir(directory, { recursive: true, mode: 0o700 }));

    // The leading dot keeps in-flight files out of list(); the random part keeps concurrent writers apart.
    const tempPath = join(directory, `.${record.name}.json.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
    try {
      await storage("write", tempPath, async () => {
        const file = await open(tempPath, "wx", 0o600);
        try {
          await file.writeFile(JSON.stringify(record, null, 2) + "\n", "utf8");
          await file.sync();
        } finally {
          await file.close();
        }
      });
      await storage("replace", path, () => rename(tempPath, path));
    } catch (err) {
      await unlink(tempPath).catch(() => undefined);
      throw err;
    }
    // Without this the rename itself may not survive a crash.
    await syncDirectory(directory);
  }

  /** The record of `namespace/name`; undefined when there is none. Throws CorruptRecordError if unreadable. */
  async get(namespace: string, name: string): Promise<PodRecord | undefined> {
    const path = this.pathFor(namespace, name);
    const outcome = await readRecord(path, namespace, name);
    if (outcome.kind === "missing") return undefined;
    if (outcome.kind === "problem") throw new CorruptRecordError(path, outcome.message);
    return outcome.record;
  }

  /** Forgets `namespace/name`. Deleting a record that does not exist is not an error. */
  async delete(namespace: string, name: string): Promise<void> {
    const path = this.pathFor(namespace, name);
    const removed = await storage("remove", path, () =>
      unlink(path).then(
        () => true,
        (err: unknown) => {
          if (errnoCode(err) === "ENOENT") return false;
          throw err;
        },
      ),
    );
    if (removed) await syncDirectory(this.namespaceDir(namespace));
  }

  /** Every readable record, sorted by namespace and name; unusable ones go to `onProblem`. */
  async list(): Promise<PodRecord[]> {
    const { records, problems } = await this.scan();
    for (const problem of problems) this.onProblem(problem);
    return records;
  }

  /** Every readable record plus a problem for each record file that could not be used. */
  async scan(): Promise<RecordScan> {
    const records: PodRecord[] = [];
    const problems: RecordProblem[] = [];
    for (const namespace of await directoryEntries(this.podsDir, "directories")) {
      const directory = join(this.podsDir, namespace);
      if (!isDns1123Label(namespace)) {
        problems.push({ path: directory, message: "directory name is not a valid namespace" });
        continue;
      }
      for (const fileName of await directoryEntries(directory, "files")) {
        // Dot files are temp files of writes in progress (or left by a crash): never records.
        if (fileName.startsWith(".") || !fileName.endsWith(".json")) continue;
        const path = join(directory, fileName);
        const name = fileName.slice(0, -".json".length);
        if (!isDns1123Subdomain(name)) {
          problems.push({ path, message: "file name is not a valid pod name" });
          continue;
        }
        const outcome = await readRecord(path, namespace, name);
        if (outcome.kind === "record") records.push(outcome.record);
        else if (outcome.kind === "problem") problems.push({ path, message: outcome.message });
        // "missing": deleted since the directory was read, which is fine.
      }
    }
    records.sort((a, b) => compareStrings(a.namespace, b.namespace) || compareStrings(a.name, b.name));
    return { records, problems };
  }

  private namespaceDir(namespace: string): string {
    if (!isDns1123Label(namespace)) {
      throw new VksError(`invalid namespace ${JSON.stringify(namespace)}: it must be a DNS-1123 label`, {
        exitCode: ExitCode.invalidInput,
      });
    }
    return join(this.podsDir, namespace);
  }
}

function checkedPodName(name: string): string {
  if (!isDns1123Subdomain(name)) {
    throw new VksError(`invalid pod name ${JSON.stringify(name)}: it must be a DNS-1123 subdomain`, {
      exitCode: ExitCode.invalidInput,
    });
  }
  return name;
}

type ReadOutcome =
  | { kind: "record"; record: PodRecord }
  | { kind: "missing" }
  | { kind: "problem"; message: string };

async function readRecord(path: string, namespace: string, name: string): Promise<ReadOutcome> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return { kind: "missing" };
    return { kind: "problem", message: `cannot read it: ${errorMessage(err)}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { kind: "problem", message: `not valid JSON: ${errorMessage(err)}` };
  }
  const problem = recordProblem(value);
  if (problem !== undefined) return { kind: "problem", message: problem };
  const record = value as PodRecord; // recordProblem found nothing wrong with the shape
  // The path is the key: a record filed under another pod's name would make vks act on the wrong units.
  if (record.namespace !== namespace || record.name !== name) {
    return {
      kind: "problem",
      message: `it describes pod ${record.namespace}/${record.name}, but is filed as ${namespace}/${name}`,
    };
  }
  return { kind: "record", record: { ...record, manifest: reviveManifestDates(record.manifest) } };
}

/**
 * client-node types metadata timestamps as Date, which JSON turns into strings: turn them back so the
 * manifest read is the same type as the one written. Only metadata is revived; vks does not read the
 * manifest's status from the record.
 */
function reviveManifestDates(manifest: V1Pod): V1Pod {
  const metadata = manifest.metadata;
  if (metadata === undefined) return manifest;
  const revived = { ...metadata };
  for (const key of ["creationTimestamp", "deletionTimestamp"] as const) {
    const stamp: unknown = metadata[key];
    if (typeof stamp === "string") revived[key] = new Date(stamp);
  }
  return { ...manifest, metadata: revived };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function isRfc3339(value: unknown): boolean {
  return typeof value === "string" && RFC3339.test(value) && !Number.isNaN(Date.parse(value));
}

/** What is wrong with a would-be PodRecord, or undefined when it has the right shape. */
export function recordProblem(value: unknown): string | undefined {
  if (!isObject(value)) return "not a JSON object";
  if (value.version !== POD_RECORD_VERSION) {
    return `unsupported version ${JSON.stringify(value.version)} (this vks reads version ${POD_RECORD_VERSION})`;
  }
  if (!isNonEmptyString(value.namespace) || !isDns1123Label(value.namespace)) return "namespace is missing or invalid";
  if (!isNonEmptyString(value.name) || !isDns1123Subdomain(value.name)) return "name is missing or invalid";
  if (!isNonEmptyString(value.uid)) return "uid is missing";
  if (!isRfc3339(value.createdAt)) return "createdAt is not an RFC 3339 timestamp";

  const manifest = value.manifest;
  if (!isObject(manifest) || !isObject(manifest.metadata)) return "manifest is missing or has no metadata";
  const metadata = manifest.metadata;
  if (metadata.name !== value.name || metadata.namespace !== value.namespace || metadata.uid !== value.uid) {
    return "manifest metadata (name, namespace, uid) does not match the record";
  }
  if (manifest.spec !== undefined && !isObject(manifest.spec)) return "manifest.spec is not an object";

  if (!Array.isArray(value.units)) return "units is not a list";
  for (const [index, unit] of value.units.entries()) {
    if (!isObject(unit)) return `units[${index}] is not an object`;
    if (!isNonEmptyString(unit.container)) return `units[${index}].container is missing`;
    if (!isNonEmptyString(unit.image)) return `units[${index}].image is missing`;
    // vks stops and removes the units a record lists: never let it name a unit vks did not create.
    if (typeof unit.unitName !== "string" || !isVksUnitName(unit.unitName)) {
      return `units[${index}].unitName ${JSON.stringify(unit.unitName)} is not a vks unit name`;
    }
  }

  if (value.origin !== undefined && value.origin !== "pod-up" && value.origin !== "serve") return `origin ${JSON.stringify(value.origin)} is neither "pod-up" nor "serve"`;
  if (value.restoreAtBoot !== undefined && typeof value.restoreAtBoot !== "boolean") return "restoreAtBoot is not a boolean";
  if (value.restarts !== undefined) {
    if (!isObject(value.restarts)) return "restarts is not an object";
    for (const [container, counts] of Object.entries(value.restarts)) {
      if (!isObject(counts) || !isCount(counts.before) || !isCount(counts.seen)) return `restarts.${container} needs non-negative integer before and seen`;
    }
  }

  const logs = value.logs;
  if (!isObject(logs)) return "logs is missing";
  if (logs.mode === "journal") return undefined;
  if (logs.mode === "file") {
    if (typeof logs.directory !== "string" || !isAbsolute(logs.directory)) {
      return "logs.directory must be an absolute path";
    }
    return undefined;
  }
  return `logs.mode ${JSON.stringify(logs.mode)} is neither "journal" nor "file"`;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

async function directoryEntries(directory: string, kind: "directories" | "files"): Promise<string[]> {
  try {
    const entries = await readdir(directory, { withFileTypes: true });
    return entries
      .filter((entry) => (kind === "directories" ? entry.isDirectory() : entry.isFile()))
      .map((entry) => entry.name)
      .sort(compareStrings);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return [];
    throw storageError("read", directory, err);
  }
}

async function syncDirectory(directory: string): Promise<void> {
  await storage("sync", directory, async () => {
    const handle = await open(directory, "r");
    try {
      await handle.sync();
    } catch (err) {
      // Some filesystems cannot fsync a directory; the rename has happened, only its durability is weaker.
      const code = errnoCode(err);
      if (code !== "EINVAL" && code !== "ENOTSUP") throw err;
    } finally {
      await handle.close();
    }
  });
}

async function storage<T>(action: string, path: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    throw err instanceof VksError ? err : storageError(action, path, err);
  }
}

function storageError(action: string, path: string, cause: unknown): VksError {
  const code = errnoCode(cause);
  const denied = code === "EACCES" || code === "EPERM" || code === "EROFS";
  return new VksError(`cannot ${action} ${path}: ${errorMessage(cause)}`, {
    cause,
    exitCode: denied ? ExitCode.permission : ExitCode.failure,
    hint: denied
      ? "run vks as root for the system manager, use --user, or point VKS_STATE_DIR at a writable directory"
      : undefined,
  });
}

function errnoCode(err: unknown): string | undefined {
  if (!isObject(err)) return undefined;
  const code = err.code;
  return typeof code === "string" ? code : undefined;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
