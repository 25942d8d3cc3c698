/**
 * Pod volumes, the engine's part: the content of each volume on the host, under the pod's volume
 * directory (`<stateDir>/volumes/<pod uid>/<volume>`), made before the pod's units start and removed with
 * the pod. The units see it only through their own bind mounts (volumes.ts); nothing here touches a
 * container's mountPath.
 *
 * - emptyDir: a directory (mode 0777, as the kubelet makes it); `medium: Memory` mounts a tmpfs there
 *   (size = sizeLimit) so every container of the pod shares one tmpfs and it survives container restarts.
 * - configMap, secret, downwardAPI, projected: files written with the kubelet's atomic layout: a
 *   timestamped directory `..2006_01_02_15_04_05.N`, the `..data` symlink switched to it with one rename,
 *   and each top-level name a symlink through `..data`, so a reader sees the old set or the new one, never
 *   half of each. Secret and projected volumes live on a tmpfs, as with the kubelet, so secret values never
 *   reach a disk.
 * - hostPath: the kubelet's `type` checks and creations; the host path itself is bound.
 */
import type { V1ConfigMap, V1Container, V1KeyToPath, V1Pod, V1Secret, V1Volume } from "@kubernetes/client-node";
import { chown, chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { dirname, join, posix } from "node:path";
import { ExitCode, VksError, errorMessage } from "../errors.ts";
import type { PodObjectSource, ServiceAccountToken } from "./objects.ts";
import { parseQuantity } from "./qos.ts";
import { ResourceFieldError, isResourceField, resourceFieldContainer, resourceFieldValue, type Allocatable } from "./resource-field.ts";
import { volumeSource } from "./volumes.ts";

/** The kubelet's limit on a Secret's (and ConfigMap's) data. */
export const MAX_OBJECT_BYTES = 1024 * 1024;
const DEFAULT_MODE = 0o644;
const DATA_LINK = "..data";
/** Kubernetes' IsConfigMapKey (Secrets use the same rule). */
const CONFIG_KEY = /^[-._a-zA-Z0-9]{1,253}$/;

/** Where a pod's volumes live: one directory per pod UID, so a pod re-created under the same name starts empty. */
export function podVolumeDirectory(stateDir: string, uid: string): string {
  return join(stateDir, "volumes", uid);
}

/** A volume that could not be set up: the kubelet's FailedMount, with the field to blame. */
export class VolumeSetupError extends VksError {
  override readonly name = "VolumeSetupError";
  constructor(
    readonly volume: string,
    readonly field: string,
    /** The kubelet's own text after "MountVolume.SetUp failed for volume …", e.g. `configmap "x" not found`. */
    readonly reason: string,
    options: { hint?: string; exitCode?: (typeof ExitCode)[keyof typeof ExitCode]; retryAfterMs?: number } = {},
  ) {
    super(`${field}: MountVolume.SetUp failed for volume "${volume}" : ${reason}`, { exitCode: ExitCode.invalidInput, ...options });
  }
}

export interface VolumeSetupOptions {
  objects: PodObjectSource;
  /** Mount tmpfs for Memory emptyDirs, secrets and projected volumes. False leaves them on disk. */
  canMount: boolean;
  /** When to try again after a missing object (serve's work queue honours it; pod up reports once and ends). */
  retryAfterMs?: number;
  /** Tokens already issued for this pod, by volume/path, renewed at 80 % of their lifetime. */
  tokens?: Map<string, ServiceAccountToken & { issuedAt: Date }>;
  /** The node's allocatable resources, for resourceFieldRef without a limit; the host's capacity when absent. */
  allocatable?: Allocatable;
}

/** A file of a volume: its path relative to the volume, content and mode. */
interface PayloadFile {
  content: Buffer;
  mode: number;
  /** The kubelet makes a projected token readable by the pod's runAsUser only. */
  owner?: number;
}
type Payload = Map<string, PayloadFile>;

/** Every volume of the pod, made or refreshed. Throws VolumeSetupError for the first that cannot be. */
export async function preparePodVolumes(pod: V1Pod, directory: string, options: VolumeSetupOptions): Promise<void> {
  const volumes = pod.spec?.volumes ?? [];
  if (volumes.length === 0) return;
  await mkdir(directory, { recursive: true, mode: 0o711 });
  for (const [index, volume] of volumes.entries()) await prepareVolume(pod, volume, index, directory, options);
}

/** Refreshes the content of the volumes that follow objects (configMap, secret, downwardAPI, projected). */
export async function refreshPodVolumes(pod: V1Pod, directory: string, options: VolumeSetupOptions): Promise<void> {
  for (const [index, volume] of (pod.spec?.volumes ?? []).entries()) {
    const source = volumeSource(volume);
    if (source === "emptyDir" || source === "hostPath") continue;
    await prepareVolume(pod, volume, index, directory, options);
  }
}

export function podHasVolumeData(pod: V1Pod): boolean {
  return (pod.spec?.volumes ?? []).some((volume) => volume.hostPath === undefined);
}

async function prepareVolume(pod: V1Pod, volume: V1Volume, index: number, directory: string, options: VolumeSetupOptions): Promise<void> {
  const source = volumeSource(volume);
  const field = `spec.volumes[${index}].${source}`;
  const target = join(directory, volume.name);
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  switch (source) {
    case "hostPath":
      await checkHostPath(volume, field);
      return;
    case "emptyDir": {
      await mkdir(target, { recursive: true });
      if (volume.emptyDir?.medium === "Memory" && options.canMount) {
        const size = volume.emptyDir.sizeLimit === undefined ? undefined : quantityBytes(String(volume.emptyDir.sizeLimit));
        await mountTmpfs(target, size, volume.name, field);
      }
      // The kubelet makes emptyDirs world-writable so any runAsUser can use them; fsGroup adds setgid.
      await chmod(target, 0o777);
      if (fsGroup !== undefined && fsGroup !== null) {
        await chown(target, -1, fsGroup);
        await chmod(target, 0o2777);
      }
      return;
    }
    case "secret":
    case "projected":
      await mkdir(target, { recursive: true });
      if (options.canMount) await mountTmpfs(target, undefined, volume.name, field);
      break;
    case "configMap":
    case "downwardAPI":
      await mkdir(target, { recursive: true });
      break;
  }
  const payload = await volumePayload(pod, volume, field, options);
  await writeAtomically(target, payload, fsGroup ?? undefined);
}

async function volumePayload(pod: V1Pod, volume: V1Volume, field: string, options: VolumeSetupOptions): Promise<Payload> {
  const payload: Payload = new Map();
  if (volume.configMap !== undefined) {
    const { name = "", items, optional, defaultMode } = volume.configMap;
    const object = await options.objects.configMap(namespaceOf(pod), name);
    if (object === undefined) {
      if (optional === true) return payload;
      throw missingObject(volume.name, `${field}.name`, "configmap", name, options);
    }
    addKeys(payload, configMapData(object), items, defaultMode ?? DEFAULT_MODE, optional === true, volume.name, `${field}.items`, "configmap");
  } else if (volume.secret !== undefined) {
    const { secretName = "", items, optional, defaultMode } = volume.secret;
    const object = await options.objects.secret(namespaceOf(pod), secretName);
    if (object === undefined) {
      if (optional === true) return payload;
      throw missingObject(volume.name, `${field}.secretName`, "secret", secretName, options);
    }
    addKeys(payload, secretData(object, volume.name, `${field}.secretName`), items, defaultMode ?? DEFAULT_MODE, optional === true, volume.name, `${field}.items`, "secret");
  } else if (volume.downwardAPI !== undefined) {
    addDownward(payload, pod, volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? DEFAULT_MODE, volume.name, `${field}.items`, options.allocatable);
  } else if (volume.projected !== undefined) {
    const defaultMode = volume.projected.defaultMode ?? DEFAULT_MODE;
    for (const [index, projection] of (volume.projected.sources ?? []).entries()) {
      const sourceField = `${field}.sources[${index}]`;
      if (projection.configMap) {
        const { name = "", items, optional } = projection.configMap;
        const object = await options.objects.configMap(namespaceOf(pod), name);
        if (object === undefined) {
          if (optional === true) continue;
          throw missingObject(volume.name, `${sourceField}.configMap.name`, "configmap", name, options);
        }
        addKeys(payload, configMapData(object), items, defaultMode, optional === true, volume.name, `${sourceField}.configMap.items`, "configmap");
      } else if (projection.secret) {
        const { name = "", items, optional } = projection.secret;
        const object = await options.objects.secret(namespaceOf(pod), name);
        if (object === undefined) {
          if (optional === true) continue;
          throw missingObject(volume.name, `${sourceField}.secret.name`, "secret", name, options);
        }
        addKeys(payload, secretData(object, volume.name, `${sourceField}.secret.name`), items, defaultMode, optional === true, volume.name, `${sourceField}.secret.items`, "secret");
      } else if (projection.downwardAPI) {
        addDownward(payload, pod, projection.downwardAPI.items ?? [], defaultMode, volume.name, `${sourceField}.downwardAPI.items`, options.allocatable);
      } else if (projection.serviceAccountToken) {
        const token = await serviceAccountToken(pod, volume.name, projection.serviceAccountToken, `${sourceField}.serviceAccountToken`, options);
        payload.set(posix.normalize(projection.serviceAccountToken.path), {
          content: Buffer.from(token, "utf8"),
          // The kubelet: 0600 owned by the pod's runAsUser when every container shares one, else defaultMode.
          mode: volume.projected.defaultMode ?? (sharedRunAsUser(pod) === undefined ? DEFAULT_MODE : 0o600),
          ...(sharedRunAsUser(pod) === undefined ? {} : { owner: sharedRunAsUser(pod) }),
        });
      }
    }
  }
  return payload;
}

function missingObject(volume: string, field: string, kind: "configmap" | "secret", name: string, options: VolumeSetupOptions): VolumeSetupError {
  const kindName = kind === "configmap" ? "ConfigMap" : "Secret";
  return new VolumeSetupError(volume, field, `${kind} "${name}" not found`, {
    hint: `create the ${kindName} "${name}" (under pod up: a document in the same file), or mark the reference optional: true; under serve the pod starts once it exists`,
    ...(options.retryAfterMs === undefined ? {} : { retryAfterMs: options.retryAfterMs }),
  });
}

function namespaceOf(pod: V1Pod): string {
  return pod.metadata?.namespace || "default";
}

function configMapData(object: V1ConfigMap): Map<string, Buffer> {
  const data = new Map<string, Buffer>();
  for (const [key, value] of Object.entries(object.data ?? {})) data.set(key, Buffer.from(value, "utf8"));
  for (const [key, value] of Object.entries(object.binaryData ?? {})) data.set(key, Buffer.from(value, "base64"));
  return data;
}

function secretData(object: V1Secret, volume: string, field: string): Map<string, Buffer> {
  const data = new Map<string, Buffer>();
  for (const [key, value] of Object.entries(object.data ?? {})) data.set(key, Buffer.from(value, "base64"));
  // stringData is write-only in the API; a manifest's Secret document may still carry it.
  for (const [key, value] of Object.entries(object.stringData ?? {})) data.set(key, Buffer.from(value, "utf8"));
  const total = [...data.values()].reduce((sum, value) => sum + value.length, 0);
  if (total > MAX_OBJECT_BYTES) {
    throw new VolumeSetupError(volume, field, `secret "${object.metadata?.name ?? ""}" is ${total} bytes; Secrets are limited to 1 MiB (${MAX_OBJECT_BYTES} bytes)`, {
      hint: "split the Secret, or mount the data from a hostPath",
    });
  }
  return data;
}

function addKeys(
  payload: Payload,
  data: Map<string, Buffer>,
  items: V1KeyToPath[] | undefined,
  defaultMode: number,
  optional: boolean,
  volume: string,
  field: string,
  kind: "configmap" | "secret",
): void {
  if (items === undefined || items.length === 0) {
    for (const [key, content] of data) {
      // The API server admits only such keys; a manifest's documents are not checked by one, and a key
      // is a file name here, so `../x` must never reach the writer.
      if (!CONFIG_KEY.test(key) || key.startsWith("..")) {
        throw new VolumeSetupError(volume, field.replace(/\.items$/, ""), `${kind} key ${JSON.stringify(key)} is not a valid file name (letters, digits, '-', '_', '.'; not starting with '..')`, {
          hint: "rename the key, or map it to a path with items",
        });
      }
      payload.set(key, { content, mode: defaultMode });
    }
    return;
  }
  for (const [index, item] of items.entries()) {
    const content = data.get(item.key);
    if (content === undefined) {
      if (optional) continue;
      throw new VolumeSetupError(volume, `${field}[${index}].key`, `${kind} references non-existent config key: ${item.key}`, {
        hint: `add the key "${item.key}" or remove the item`,
      });
    }
    payload.set(posix.normalize(item.path), { content, mode: item.mode ?? defaultMode });
  }
}

function addDownward(
  payload: Payload,
  pod: V1Pod,
  items: NonNullable<NonNullable<V1Volume["downwardAPI"]>["items"]>,
  defaultMode: number,
  volume: string,
  field: string,
  allocatable: Allocatable | undefined,
): void {
  for (const [index, item] of items.entries()) {
    let value: string;
    if (item.fieldRef !== undefined) {
      value = downwardFieldValue(pod, item.fieldRef.fieldPath);
    } else if (item.resourceFieldRef !== undefined) {
      const { containerName, resource, divisor } = item.resourceFieldRef;
      const container = pod.spec ? resourceFieldContainer(pod, pod.spec.containers[0] as V1Container, containerName) : undefined;
      if (container === undefined || !isResourceField(resource)) {
        throw new VolumeSetupError(volume, `${field}[${index}].resourceFieldRef`, `cannot resolve ${resource} of container "${containerName ?? ""}"`);
      }
      try {
        value = resourceFieldValue(container, resource, divisor === undefined ? undefined : String(divisor), allocatable ?? nodeAllocatable());
      } catch (err) {
        if (!(err instanceof ResourceFieldError)) throw err;
        throw new VolumeSetupError(volume, `${field}[${index}].resourceFieldRef`, err.message);
      }
    } else {
      continue;
    }
    payload.set(posix.normalize(item.path), { content: Buffer.from(value, "utf8"), mode: item.mode ?? defaultMode });
  }
}

/** The node's capacity stands in for allocatable: vks reserves nothing for itself. */
function nodeAllocatable(): Record<string, string> {
  return { cpu: String(cpus().length), memory: String(totalmem()) };
}

const SUBSCRIPTED = /^metadata\.(labels|annotations)\['(.+)'\]$/;

/** The kubelet's downward API file content: a map is `key="value"` lines sorted by key, quoted as Go's %q. */
function downwardFieldValue(pod: V1Pod, fieldPath: string): string {
  const subscripted = SUBSCRIPTED.exec(fieldPath);
  if (subscripted !== null) {
    const [, map, key = ""] = subscripted;
    return (map === "labels" ? pod.metadata?.labels : pod.metadata?.annotations)?.[key] ?? "";
  }
  switch (fieldPath) {
    case "metadata.name":
      return pod.metadata?.name ?? "";
    case "metadata.namespace":
      return namespaceOf(pod);
    case "metadata.uid":
      return pod.metadata?.uid ?? "";
    case "metadata.labels":
    case "metadata.annotations": {
      const map = (fieldPath === "metadata.labels" ? pod.metadata?.labels : pod.metadata?.annotations) ?? {};
      return Object.keys(map)
        .sort()
        .map((key) => `${key}=${JSON.stringify(map[key])}`)
        .join("\n");
    }
  }
  return "";
}

/** The runAsUser every container runs as, when they agree (the kubelet then gives it the token file). */
function sharedRunAsUser(pod: V1Pod): number | undefined {
  const users = new Set(
    [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map(
      (container) => container.securityContext?.runAsUser ?? pod.spec?.securityContext?.runAsUser,
    ),
  );
  const [user] = users;
  return users.size === 1 && typeof user === "number" ? user : undefined;
}

async function serviceAccountToken(
  pod: V1Pod,
  volume: string,
  projection: { path: string; audience?: string; expirationSeconds?: number },
  field: string,
  options: VolumeSetupOptions,
): Promise<string> {
  if (options.objects.serviceAccountToken === undefined) {
    throw new VolumeSetupError(volume, field, "no service account tokens can be issued here: there is no API server", {
      hint: "run the pod under vks serve, or remove the serviceAccountToken source",
    });
  }
  const key = `${volume}/${projection.path}`;
  const cached = options.tokens?.get(key);
  // Renewed at 80 % of its lifetime, as the kubelet's token manager does.
  if (cached !== undefined) {
    const lifetime = cached.expiresAt.getTime() - cached.issuedAt.getTime();
    if (Date.now() < cached.issuedAt.getTime() + lifetime * 0.8) return cached.token;
  }
  const issued = await options.objects.serviceAccountToken({
    namespace: namespaceOf(pod),
    serviceAccountName: pod.spec?.serviceAccountName || "default",
    audiences: projection.audience ? [projection.audience] : [],
    expirationSeconds: projection.expirationSeconds ?? 3600,
    podName: pod.metadata?.name ?? "",
    podUid: pod.metadata?.uid ?? "",
  });
  options.tokens?.set(key, { ...issued, issuedAt: new Date() });
  return issued.token;
}

/** Bytes of a quantity, rounded up. */
function quantityBytes(text: string): number | undefined {
  const quantity = parseQuantity(text);
  if (quantity === undefined || quantity.numerator <= 0n) return undefined;
  return Number((quantity.numerator + quantity.denominator - 1n) / quantity.denominator);
}

/**
 * Creates the subPath directories of emptyDir volumes that binds reach into, as the kubelet does before
 * starting a container, with the volume's own mode so group and other keep their access.
 */
export async function createSubPathDirectories(pod: V1Pod, directory: string, binds: { source: string }[]): Promise<void> {
  const emptyDirs = new Set((pod.spec?.volumes ?? []).filter((volume) => volume.emptyDir !== undefined).map((volume) => volume.name));
  for (const { source } of binds) {
    if (!source.startsWith(`${directory}/`)) continue;
    const [volume = "", ...rest] = source.slice(directory.length + 1).split("/");
    if (!emptyDirs.has(volume) || rest.length === 0) continue;
    const volumeMode = (await stat(join(directory, volume))).mode & 0o7777;
    let path = join(directory, volume);
    for (const part of rest) {
      path = join(path, part);
      if ((await lstat(path).catch(() => undefined)) !== undefined) continue;
      await mkdir(path, { mode: volumeMode });
      await chmod(path, volumeMode);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The atomic writer

/** The kubelet's timestamped directory prefix: `..2006_01_02_15_04_05.` (UTC), completed by mkdtemp. */
function timestampPrefix(now = new Date()): string {
  const pad = (value: number) => String(value).padStart(2, "0");
  return `..${now.getUTCFullYear()}_${pad(now.getUTCMonth() + 1)}_${pad(now.getUTCDate())}_${pad(now.getUTCHours())}_${pad(now.getUTCMinutes())}_${pad(now.getUTCSeconds())}.`;
}

/** The files under `..data` now, by relative path; empty when there is no `..data` yet. */
async function currentPayload(target: string): Promise<Map<string, { content: Buffer; mode: number }>> {
  const files = new Map<string, { content: Buffer; mode: number }>();
  const walk = async (relative: string): Promise<void> => {
    const entries = await readdir(join(target, DATA_LINK, relative), { withFileTypes: true });
    for (const entry of entries) {
      const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(path);
      else {
        const full = join(target, DATA_LINK, path);
        files.set(path, { content: await readFile(full), mode: (await stat(full)).mode & 0o7777 });
      }
    }
  };
  try {
    await walk("");
  } catch {
    files.clear();
  }
  return files;
}

function samePayload(current: Map<string, { content: Buffer; mode: number }>, payload: Payload, fsGroup: number | undefined): boolean {
  if (current.size !== payload.size) return false;
  for (const [path, file] of payload) {
    const existing = current.get(path);
    if (existing === undefined || !existing.content.equals(file.content) || existing.mode !== withGroupRead(file.mode, fsGroup)) return false;
  }
  return true;
}

/** With fsGroup, the kubelet adds group read to every file of a read-only volume (SetVolumeOwnership). */
function withGroupRead(mode: number, fsGroup: number | undefined): number {
  return fsGroup === undefined ? mode : mode | 0o440;
}

/**
 * Writes `payload` under `target` with the kubelet's AtomicWriter layout; does nothing when the content
 * and modes are already those. The switch is one rename of a `..data_tmp` symlink over `..data`.
 */
export async function writeAtomically(target: string, payload: Payload, fsGroup?: number): Promise<void> {
  if (samePayload(await currentPayload(target), payload, fsGroup) && (await isDataLink(target))) return;
  const previous = await readlink(join(target, DATA_LINK)).catch(() => undefined);
  const stamped = await mkdtemp(join(target, timestampPrefix()));
  await chmod(stamped, 0o755);
  for (const [path, file] of payload) {
    const full = join(stamped, path);
    await mkdir(dirname(full), { recursive: true, mode: 0o755 });
    await writeFile(full, file.content, { mode: file.mode });
    const mode = withGroupRead(file.mode, fsGroup);
    await chmod(full, mode); // writeFile's mode is filtered by the umask.
    if (fsGroup !== undefined || file.owner !== undefined) await chown(full, file.owner ?? -1, fsGroup ?? -1);
  }
  if (fsGroup !== undefined) await chown(stamped, -1, fsGroup);
  const temporaryLink = join(target, "..data_tmp");
  await rm(temporaryLink, { force: true });
  await symlink(posix.basename(stamped), temporaryLink);
  await rename(temporaryLink, join(target, DATA_LINK));
  // Visible names: one symlink per top-level entry, through ..data; names no longer in the payload go.
  const wanted = new Set([...payload.keys()].map((path) => path.split("/")[0] ?? path));
  for (const name of wanted) {
    const link = join(target, name);
    const existing = await lstat(link).catch(() => undefined);
    if (existing === undefined) await symlink(posix.join(DATA_LINK, name), link);
  }
  for (const name of await readdir(target)) {
    if (name.startsWith("..") || wanted.has(name)) continue;
    await rm(join(target, name), { force: true, recursive: true });
  }
  if (previous !== undefined && previous !== posix.basename(stamped)) await rm(join(target, previous), { recursive: true, force: true });
}

async function isDataLink(target: string): Promise<boolean> {
  return (await lstat(join(target, DATA_LINK)).catch(() => undefined))?.isSymbolicLink() ?? false;
}

// ---------------------------------------------------------------------------------------------------
// hostPath

async function checkHostPath(volume: V1Volume, field: string): Promise<void> {
  const path = volume.hostPath?.path ?? "";
  const type = volume.hostPath?.type ?? "";
  const info = await stat(path).catch(() => undefined);
  const fail = (what: string) => new VolumeSetupError(volume.name, `${field}.path`, `hostPath type check failed: ${path} is not ${what}`, {
    hint: `create ${path} on the host, or change ${field}.type`,
  });
  switch (type) {
    case "DirectoryOrCreate":
      if (info === undefined) {
        await mkdir(path, { recursive: true, mode: 0o755 });
        return;
      }
      if (!info.isDirectory()) throw fail("a directory");
      return;
    case "Directory":
      if (info === undefined || !info.isDirectory()) throw fail("a directory");
      return;
    case "FileOrCreate":
      if (info === undefined) {
        await mkdir(dirname(path), { recursive: true, mode: 0o755 });
        await writeFile(path, "", { mode: 0o644, flag: "a" });
        return;
      }
      if (!info.isFile()) throw fail("a file");
      return;
    case "File":
      if (info === undefined || !info.isFile()) throw fail("a file");
      return;
    case "Socket":
      if (info === undefined || !info.isSocket()) throw fail("a socket file");
      return;
    case "CharDevice":
      if (info === undefined || !info.isCharacterDevice()) throw fail("a character device");
      return;
    case "BlockDevice":
      if (info === undefined || !info.isBlockDevice()) throw fail("a block device");
      return;
    default:
      // No type: no check, as with the kubelet; a path that does not exist would fail the unit
      // (systemd status 226/NAMESPACE), so say so now.
      if (info === undefined) {
        throw new VolumeSetupError(volume.name, `${field}.path`, `hostPath ${path} does not exist`, {
          hint: `create it, or set ${field}.type to DirectoryOrCreate or FileOrCreate`,
        });
      }
  }
}

// ---------------------------------------------------------------------------------------------------
// tmpfs mounts and removal

/** Mount points at or below `directory`, deepest first (from /proc/self/mountinfo, octal escapes undone). */
async function mountsBelow(directory: string): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  const points = text
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => point !== undefined)
    .map((point) => point.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))))
    .filter((point) => point === directory || point.startsWith(`${directory}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

async function run(argv: string[]): Promise<{ ok: boolean; output: string }> {
  const child = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { ok: code === 0, output: `${stdout}${stderr}`.trim() };
}

async function mountTmpfs(target: string, sizeBytes: number | undefined, volume: string, field: string): Promise<void> {
  if ((await mountsBelow(target)).includes(target)) return;
  const options = ["mode=0777", ...(sizeBytes === undefined ? [] : [`size=${sizeBytes}`])].join(",");
  const result = await run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", target]);
  if (!result.ok) {
    throw new VolumeSetupError(volume, field, `mount of tmpfs at ${target} failed: ${result.output}`, {
      exitCode: ExitCode.failure,
      hint: "vks mounts tmpfs volumes as root; run vks as root",
    });
  }
}

/** Unmounts every tmpfs of the pod's volumes and removes its volume directory. */
export async function removePodVolumes(directory: string): Promise<void> {
  for (const point of await mountsBelow(directory)) {
    const result = await run(["umount", point]);
    // A busy mount is detached lazily so the directory can still go.
    if (!result.ok) await run(["umount", "-l", point]);
  }
  try {
    await rm(directory, { recursive: true, force: true });
  } catch (err) {
    throw new VksError(`cannot remove pod volumes ${directory}: ${errorMessage(err)}`, { cause: err });
  }
}
