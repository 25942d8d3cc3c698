/**
 * Pod volumes, the pure part: which volumes vks serves and what is wrong with a pod's volumes and
 * volumeMounts (validation), and how a container's mounts become bind mounts into its unit's own mount
 * namespace (planning). Writing the volumes' content is volume-data.ts's job (the engine's side, I/O).
 *
 * Every volume's host directory is `<volumeDirectory>/<volume name>` (volumeDirectory is per pod UID, under
 * the state dir), except hostPath, whose directory is the host path itself.
 */
import type { V1Container, V1Pod, V1Volume } from "@kubernetes/client-node";
import { posix } from "node:path";
import { ExitCode, VksError } from "../errors.ts";
import type { BindMount } from "../systemd/types.ts";
import { isDns1123Label } from "../unit/name.ts";
import { expandReferences, lookupFrom } from "./expand.ts";
import { parseQuantity } from "./qos.ts";
import { divisorProblem, isResourceField, RESOURCE_FIELDS } from "./resource-field.ts";

/** The volume sources vks writes or binds itself. */
export const SERVED_VOLUME_SOURCES = ["emptyDir", "configMap", "secret", "hostPath", "downwardAPI", "projected"] as const;
export type ServedVolumeSource = (typeof SERVED_VOLUME_SOURCES)[number];

export const HOST_PATH_TYPES = ["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"] as const;

/** Why the other sources are refused: each needs a controller, a driver or a network client vks does not have. */
function unservedReason(source: string): string {
  switch (source) {
    case "persistentVolumeClaim":
      return "not supported: vks has no volume controller to bind claims; use a hostPath volume for data that must outlive the pod";
    case "ephemeral":
      return "not supported: generic ephemeral volumes need a storage provisioner; use emptyDir";
    case "csi":
      return "not supported: vks runs no CSI drivers";
    case "image":
      return "not supported: vks pulls no OCI images to mount";
    case "gitRepo":
      return "not supported (deprecated in Kubernetes): clone the repository in the container's command into an emptyDir";
    default:
      return `not supported: vks cannot mount ${source} volumes; use hostPath with the storage mounted on the host`;
  }
}

/** Field paths a downwardAPI volume item may name (the kubelet's list for volumes, not env). */
const DOWNWARD_VOLUME_FIELD = /^metadata\.(name|namespace|uid|labels|annotations)$|^metadata\.(labels|annotations)\['(.+)'\]$/;
const MAX_MODE = 0o777;

type Fields = Record<string, unknown>;
type AddProblem = (path: string, message: string) => void;

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Kubernetes' validateLocalDescendingPath: relative, and no `..` element (an item path may not even start with `..`). */
function localPathProblem(path: string, kind: "item" | "subPath"): string | undefined {
  if (path.startsWith("/")) return "must be a relative path";
  if (path.split("/").includes("..")) return "must not contain '..'";
  if (kind === "item" && path.startsWith("..")) return "must not start with '..'";
  if (path.includes("\0")) return "must not contain a NUL character";
  return undefined;
}

function checkMode(value: unknown, path: string, add: AddProblem): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_MODE) {
    add(path, "must be a number between 0 and 0777 (octal), both inclusive");
  }
}

function checkItems(items: unknown, path: string, add: AddProblem, checkSource: (item: Fields, itemPath: string) => void): void {
  if (items === undefined) return;
  if (!Array.isArray(items)) {
    add(path, "must be a list");
    return;
  }
  const seen = new Map<string, number>();
  items.forEach((item, index) => {
    const itemPath = `${path}[${index}]`;
    if (!isFields(item)) {
      add(itemPath, "must be a mapping");
      return;
    }
    if (typeof item.path !== "string" || item.path === "") {
      add(`${itemPath}.path`, "required");
    } else {
      const problem = localPathProblem(item.path, "item");
      if (problem !== undefined) add(`${itemPath}.path`, problem);
      const normalized = posix.normalize(item.path);
      const first = seen.get(normalized);
      if (first !== undefined) add(`${itemPath}.path`, `duplicate path "${item.path}" (also ${path}[${first}].path)`);
      else seen.set(normalized, index);
    }
    checkMode(item.mode, `${itemPath}.mode`, add);
    checkSource(item, itemPath);
  });
}

function checkKeyItems(items: unknown, path: string, add: AddProblem): void {
  checkItems(items, path, add, (item, itemPath) => {
    if (typeof item.key !== "string" || item.key === "") add(`${itemPath}.key`, "required");
  });
}

function checkDownwardItems(items: unknown, path: string, containerNames: Set<string>, add: AddProblem): void {
  checkItems(items, path, add, (item, itemPath) => {
    const { fieldRef, resourceFieldRef } = item;
    if ((fieldRef === undefined) === (resourceFieldRef === undefined)) {
      add(itemPath, "must give exactly one of fieldRef, resourceFieldRef");
      return;
    }
    if (isFields(fieldRef)) {
      if (typeof fieldRef.fieldPath !== "string" || !DOWNWARD_VOLUME_FIELD.test(fieldRef.fieldPath)) {
        add(
          `${itemPath}.fieldRef.fieldPath`,
          "supported: metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations, metadata.labels['<key>'], metadata.annotations['<key>']",
        );
      }
    }
    if (isFields(resourceFieldRef)) {
      const resource = resourceFieldRef.resource;
      if (typeof resource !== "string" || !isResourceField(resource)) {
        add(`${itemPath}.resourceFieldRef.resource`, `must be one of ${RESOURCE_FIELDS.join(", ")}`);
      } else if (resourceFieldRef.divisor !== undefined) {
        const problem = divisorProblem(resource, String(resourceFieldRef.divisor));
        if (problem !== undefined) add(`${itemPath}.resourceFieldRef.divisor`, problem);
      }
      const containerName = resourceFieldRef.containerName;
      if (typeof containerName !== "string" || containerName === "") {
        add(`${itemPath}.resourceFieldRef.containerName`, "required in a volume");
      } else if (!containerNames.has(containerName)) {
        add(`${itemPath}.resourceFieldRef.containerName`, `names no container of this pod ("${containerName}")`);
      }
    }
  });
}

function checkSource(source: string, value: unknown, path: string, containerNames: Set<string>, add: AddProblem): void {
  const fields = isFields(value) ? value : {};
  switch (source) {
    case "emptyDir": {
      if (fields.medium !== undefined && fields.medium !== "" && fields.medium !== "Memory") {
        add(`${path}.medium`, `"${String(fields.medium)}" is not supported: use "" (disk) or "Memory" (tmpfs)`);
      }
      if (fields.sizeLimit !== undefined) {
        const quantity = parseQuantity(String(fields.sizeLimit));
        if (quantity === undefined || quantity.numerator < 0n) add(`${path}.sizeLimit`, "must be a non-negative quantity");
      }
      return;
    }
    case "configMap":
    case "secret": {
      const nameField = source === "configMap" ? "name" : "secretName";
      if (typeof fields[nameField] !== "string" || fields[nameField] === "") add(`${path}.${nameField}`, "required");
      checkMode(fields.defaultMode, `${path}.defaultMode`, add);
      checkKeyItems(fields.items, `${path}.items`, add);
      return;
    }
    case "hostPath": {
      if (typeof fields.path !== "string" || !fields.path.startsWith("/")) add(`${path}.path`, "must be an absolute path");
      else if (fields.path.split("/").includes("..")) add(`${path}.path`, "must not contain '..'");
      const type = fields.type ?? "";
      if (!HOST_PATH_TYPES.some((known) => known === type)) {
        add(`${path}.type`, `must be one of ${HOST_PATH_TYPES.map((known) => JSON.stringify(known)).join(", ")}`);
      }
      return;
    }
    case "downwardAPI": {
      checkMode(fields.defaultMode, `${path}.defaultMode`, add);
      checkDownwardItems(fields.items, `${path}.items`, containerNames, add);
      return;
    }
    case "projected": {
      checkMode(fields.defaultMode, `${path}.defaultMode`, add);
      const sources = fields.sources;
      if (!Array.isArray(sources)) return;
      sources.forEach((projection, index) => {
        const projectionPath = `${path}.sources[${index}]`;
        const kinds = isFields(projection) ? Object.keys(projection).filter((key) => projection[key] !== undefined && projection[key] !== null) : [];
        if (kinds.length !== 1 || !isFields(projection)) {
          add(projectionPath, "must give exactly one of configMap, secret, downwardAPI, serviceAccountToken");
          return;
        }
        const [kind = ""] = kinds;
        const inner = isFields(projection[kind]) ? (projection[kind] as Fields) : {};
        const innerPath = `${projectionPath}.${kind}`;
        if (kind === "configMap" || kind === "secret") {
          if (typeof inner.name !== "string" || inner.name === "") add(`${innerPath}.name`, "required");
          checkKeyItems(inner.items, `${innerPath}.items`, add);
        } else if (kind === "downwardAPI") {
          checkDownwardItems(inner.items, `${innerPath}.items`, containerNames, add);
        } else if (kind === "serviceAccountToken") {
          const tokenPath = inner.path;
          if (typeof tokenPath !== "string" || tokenPath === "") add(`${innerPath}.path`, "required");
          else {
            const problem = localPathProblem(tokenPath, "item");
            if (problem !== undefined) add(`${innerPath}.path`, problem);
          }
          const seconds = inner.expirationSeconds;
          if (seconds !== undefined && (typeof seconds !== "number" || !Number.isInteger(seconds) || seconds < 600)) {
            add(`${innerPath}.expirationSeconds`, "must be at least 600 (10 minutes)");
          }
        } else {
          add(innerPath, `not supported: vks projects configMap, secret, downwardAPI and serviceAccountToken only`);
        }
      });
      return;
    }
  }
}

/**
 * Problems of `spec.volumes`: names (required, DNS-1123 label, unique), exactly one source, a source vks
 * serves, and that source's own fields. Returns the declared names, for the mounts' checks.
 */
export function checkVolumes(volumes: unknown, containerNames: Set<string>, add: AddProblem): Set<string> {
  const names = new Map<string, number>();
  if (volumes === undefined) return new Set();
  if (!Array.isArray(volumes)) {
    add("spec.volumes", "must be a list");
    return new Set();
  }
  volumes.forEach((volume, index) => {
    const path = `spec.volumes[${index}]`;
    if (!isFields(volume)) {
      add(path, "must be a mapping");
      return;
    }
    const name = volume.name;
    if (typeof name !== "string" || name === "") add(`${path}.name`, "required");
    else if (!isDns1123Label(name)) add(`${path}.name`, "must be a DNS-1123 label (lowercase letters, digits, '-'; at most 63)");
    else {
      const first = names.get(name);
      if (first !== undefined) add(`${path}.name`, `duplicate name "${name}" (also spec.volumes[${first}].name)`);
      else names.set(name, index);
    }
    const sources = Object.keys(volume).filter((key) => key !== "name" && volume[key] !== undefined && volume[key] !== null);
    if (sources.length !== 1) {
      add(path, `must give exactly one volume source (${SERVED_VOLUME_SOURCES.join(", ")})`);
      return;
    }
    const [source = ""] = sources;
    if (!SERVED_VOLUME_SOURCES.some((served) => served === source)) {
      add(`${path}.${source}`, unservedReason(source));
      return;
    }
    checkSource(source, volume[source], `${path}.${source}`, containerNames, add);
  });
  return new Set(names.keys());
}

/** Problems of one container's `volumeMounts`; `volumeNames` are the pod's declared volumes. */
export function checkVolumeMounts(mounts: unknown, path: string, volumeNames: Set<string>, add: AddProblem): void {
  if (mounts === undefined) return;
  if (!Array.isArray(mounts)) {
    add(path, "must be a list");
    return;
  }
  const destinations = new Map<string, number>();
  mounts.forEach((mount, index) => {
    const mountPath = `${path}[${index}]`;
    if (!isFields(mount)) {
      add(mountPath, "must be a mapping");
      return;
    }
    if (typeof mount.name !== "string" || mount.name === "") add(`${mountPath}.name`, "required");
    else if (!volumeNames.has(mount.name)) add(`${mountPath}.name`, `names no volume in spec.volumes ("${mount.name}")`);
    const destination = mount.mountPath;
    if (typeof destination !== "string" || destination === "") {
      add(`${mountPath}.mountPath`, "required");
    } else if (!destination.startsWith("/")) {
      add(`${mountPath}.mountPath`, "must be an absolute path");
    } else if (destination.split("/").includes("..")) {
      add(`${mountPath}.mountPath`, "must not contain '..' (systemd refuses it)");
    } else if (posix.normalize(destination) === "/") {
      add(`${mountPath}.mountPath`, "must not be /: vks runs containers on the host's root filesystem");
    } else {
      const normalized = normalizedMountPath(destination);
      const first = destinations.get(normalized);
      if (first !== undefined) add(`${mountPath}.mountPath`, `must be unique: "${destination}" is also ${path}[${first}].mountPath`);
      else destinations.set(normalized, index);
    }
    if (mount.subPath !== undefined && mount.subPath !== "" && mount.subPathExpr !== undefined && mount.subPathExpr !== "") {
      add(`${mountPath}.subPathExpr`, "subPathExpr and subPath are mutually exclusive");
    }
    for (const field of ["subPath", "subPathExpr"] as const) {
      const value = mount[field];
      if (typeof value !== "string" || value === "") continue;
      const problem = localPathProblem(value, "subPath");
      if (problem !== undefined) add(`${mountPath}.${field}`, problem);
    }
    const propagation = mount.mountPropagation;
    if (propagation !== undefined && propagation !== "None") {
      add(
        `${mountPath}.mountPropagation`,
        `"${String(propagation)}" is not supported: systemd gives each unit a private mount namespace, so only None can be honoured`,
      );
    }
    if (mount.recursiveReadOnly !== undefined && mount.recursiveReadOnly !== "Disabled") {
      add(`${mountPath}.recursiveReadOnly`, "not supported: only Disabled");
    }
  });
}

function normalizedMountPath(path: string): string {
  const normalized = posix.normalize(path);
  return normalized.length > 1 && normalized.endsWith("/") ? normalized.slice(0, -1) : normalized;
}

/** The served source of a volume validatePod accepted. */
export function volumeSource(volume: V1Volume): ServedVolumeSource {
  const source = SERVED_VOLUME_SOURCES.find((candidate) => volume[candidate] !== undefined && volume[candidate] !== null);
  if (source === undefined) {
    throw new VksError(`volume "${volume.name}" has no source vks serves`, {
      exitCode: ExitCode.software,
      hint: "this is a bug in vks: validatePod refuses such volumes",
    });
  }
  return source;
}

/**
 * Whether the kubelet mounts a volume of this source read-only whatever the mount says: the content of
 * configMap, secret, downwardAPI and projected volumes is the kubelet's, not the container's.
 */
export function isReadOnlySource(source: ServedVolumeSource): boolean {
  return source === "configMap" || source === "secret" || source === "downwardAPI" || source === "projected";
}

/** Where a volume's data lives on the host: the host path itself for hostPath, else under the pod's volume directory. */
export function volumeHostPath(volume: V1Volume, volumeDirectory: string): string {
  const hostPath = volume.hostPath?.path;
  return hostPath !== undefined ? posix.normalize(hostPath) : posix.join(volumeDirectory, volume.name);
}

export interface ContainerBinds {
  bindPaths: BindMount[];
  bindReadOnlyPaths: BindMount[];
}

function planError(message: string, hint: string): VksError {
  return new VksError(message, { exitCode: ExitCode.invalidInput, hint });
}

/**
 * The bind mounts of one container: each volumeMount's host directory (plus subPath, or subPathExpr
 * expanded against the container's env) at mountPath, read-only when the mount or the source says so.
 * Symlinks in the source are followed when systemd mounts, so a configMap key mounted with subPath is the
 * file of that moment and does not follow later updates, as with the kubelet.
 */
export function containerBinds(
  pod: V1Pod,
  container: V1Container,
  containerPath: string,
  env: { name: string; value: string }[],
  volumeDirectory: string | undefined,
): ContainerBinds {
  const binds: ContainerBinds = { bindPaths: [], bindReadOnlyPaths: [] };
  const volumes = new Map((pod.spec?.volumes ?? []).map((volume) => [volume.name, volume]));
  const lookup = lookupFrom(env.map(({ name, value }) => [name, value] as const));
  (container.volumeMounts ?? []).forEach((mount, index) => {
    const mountPath = `${containerPath}.volumeMounts[${index}]`;
    const volume = volumes.get(mount.name);
    if (volume === undefined) throw planError(`${mountPath}.name: names no volume ("${mount.name}")`, "declare the volume in spec.volumes");
    const source = volumeSource(volume);
    if (source !== "hostPath" && volumeDirectory === undefined) {
      throw new VksError(`${mountPath}: no volume directory to mount from`, {
        exitCode: ExitCode.software,
        hint: "this is a bug in vks: the engine passes the pod's volume directory to planPod",
      });
    }
    let subPath = mount.subPath ?? "";
    if (mount.subPathExpr !== undefined && mount.subPathExpr !== "") {
      subPath = expandReferences(mount.subPathExpr, lookup);
      const problem = localPathProblem(subPath, "subPath");
      if (problem !== undefined) {
        throw planError(`${mountPath}.subPathExpr: expands to "${subPath}", which ${problem}`, "change the expression or the variables it uses");
      }
    }
    const hostPath = volumeHostPath(volume, volumeDirectory ?? "");
    const bind: BindMount = {
      source: subPath === "" ? hostPath : posix.join(hostPath, subPath),
      destination: normalizedMountPath(mount.mountPath),
      ignoreMissing: false,
      recursive: true,
    };
    if (mount.readOnly === true || isReadOnlySource(source)) binds.bindReadOnlyPaths.push(bind);
    else binds.bindPaths.push(bind);
  });
  return binds;
}
