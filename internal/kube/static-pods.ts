/**
 * Static pods (the kubelet's staticPodPath, `vks serve --pod-manifest-path DIR`): every manifest file in
 * DIR runs as a pod without the API server asking for it, and a mirror pod in the API server shows it.
 *
 * As the kubelet does: a static pod is named `<name>-<nodeName>`; its UID is a hash of the pod as
 * written, the node name and the file, so an edited file is a new pod (the old one is stopped, the new one
 * started); it carries the annotations kubernetes.io/config.hash, config.source=file and config.seen. The
 * mirror pod has the same name, spec and annotations plus kubernetes.io/config.mirror (= the hash) and a
 * controller owner reference to the Node; the API server gives it its own UID. Status is reported on the
 * mirror pod; a mirror pod deleted through the API is created again (deleting it never stops the pod:
 * removing the file does). Files are followed with a directory watch (debounced) and a periodic rescan,
 * because a watch can miss changes (editors that rename, network filesystems) and DIR may not exist yet.
 * Dotfiles are ignored, as the kubelet ignores them.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { ValidationError, VksError, errorMessage } from "../errors.ts";
import { parseManifests } from "../pod/manifest.ts";
import { validatePod } from "../pod/validate.ts";
import type { PodProvider } from "../pod/provider.ts";
import { isConflict, isNotFound } from "./api-error.ts";
import type { KubeClient } from "./client.ts";
import type { NodeReference } from "./lease.ts";
import { podKeyOf } from "./node-pods.ts";

export const CONFIG_MIRROR = "kubernetes.io/config.mirror";
export const CONFIG_HASH = "kubernetes.io/config.hash";
export const CONFIG_SOURCE = "kubernetes.io/config.source";
export const CONFIG_SEEN = "kubernetes.io/config.seen";

/** The kubelet's fileCheckFrequency: a missed watch event shows up within this. */
const RESCAN_MS = 20_000;
/** Editors write a file in several steps; one sync after the burst. */
const DEBOUNCE_MS = 300;

export function isMirrorPod(pod: V1Pod | undefined): boolean {
  return pod?.metadata?.annotations?.[CONFIG_MIRROR] !== undefined;
}

/** A pod vks runs from a manifest file (the static pod itself, never its mirror). */
export function isStaticPod(pod: V1Pod | undefined): boolean {
  return pod?.metadata?.annotations?.[CONFIG_SOURCE] === "file" && !isMirrorPod(pod);
}

/** JSON with sorted keys, so the hash does not depend on the order fields were written in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof Date) return v;
    const record = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(record).sort().map((k) => [k, record[k]]));
  });
}

/** The kubelet's static pod UID: a hash of the pod, the node (host:) and the file (file:). */
export function staticPodHash(pod: V1Pod, nodeName: string, file: string): string {
  return createHash("md5").update(canonical(pod)).update(`host:${nodeName}`).update(`file:${file}`).digest("hex");
}

/**
 * What a static pod may not use: the node cannot read API objects for a pod the API server does not know,
 * and NodeRestriction refuses a mirror pod that refers to them (as the kubelet refuses such static pods).
 */
export function staticPodProblems(pod: V1Pod): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  const refused = "a static pod cannot refer to API objects (the mirror pod would be refused by NodeRestriction)";
  if (pod.spec?.serviceAccountName) problems.push({ path: "spec.serviceAccountName", message: refused });
  const containers = [
    ...(pod.spec?.initContainers ?? []).map((container, index) => ({ container, path: `spec.initContainers[${index}]` })),
    ...(pod.spec?.containers ?? []).map((container, index) => ({ container, path: `spec.containers[${index}]` })),
  ];
  for (const { container, path } of containers) {
    (container.envFrom ?? []).forEach((source, index) => {
      if (source.configMapRef || source.secretRef) problems.push({ path: `${path}.envFrom[${index}]`, message: refused });
    });
    (container.env ?? []).forEach((variable, index) => {
      if (variable.valueFrom?.configMapKeyRef || variable.valueFrom?.secretKeyRef) problems.push({ path: `${path}.env[${index}].valueFrom`, message: refused });
    });
  }
  (pod.spec?.volumes ?? []).forEach((volume, index) => {
    const projected = (volume.projected?.sources ?? []).some((source) => source.configMap || source.secret || source.serviceAccountToken);
    if (volume.configMap || volume.secret || volume.persistentVolumeClaim || projected) problems.push({ path: `spec.volumes[${index}]`, message: refused });
  });
  return problems;
}

/** The static pod the kubelet would run for `pod` from `file` on `nodeName`. */
export function staticPodFrom(pod: V1Pod, nodeName: string, file: string, seen: Date): V1Pod {
  const hash = staticPodHash(pod, nodeName, file);
  const name = `${pod.metadata?.name ?? ""}-${nodeName}`;
  return {
    ...pod,
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      ...pod.metadata,
      name,
      namespace: pod.metadata?.namespace || "default",
      uid: hash,
      annotations: { ...pod.metadata?.annotations, [CONFIG_HASH]: hash, [CONFIG_SOURCE]: "file", [CONFIG_SEEN]: seen.toISOString() },
    },
    spec: { ...pod.spec, containers: pod.spec?.containers ?? [], nodeName },
  };
}

/** The mirror pod of `staticPod`: what the API server shows of it (it assigns the mirror its own uid). */
export function mirrorPodOf(staticPod: V1Pod, node: NodeReference): V1Pod {
  const hash = staticPod.metadata?.annotations?.[CONFIG_HASH] ?? "";
  const { uid: _uid, creationTimestamp: _created, resourceVersion: _version, ...metadata } = staticPod.metadata ?? {};
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      ...metadata,
      annotations: { ...metadata.annotations, [CONFIG_MIRROR]: hash },
      ownerReferences: [{ apiVersion: "v1", kind: "Node", name: node.name, uid: node.uid, controller: true }],
    },
    spec: staticPod.spec,
  };
}

export interface StaticPodHooks {
  /** A manifest file that cannot run (the message names the file and field); the other files still run. */
  onInvalidFile?(file: string, message: string): void;
  onCreated?(pod: V1Pod): void;
  onDeleted?(pod: V1Pod): void;
  onMirrorCreated?(pod: V1Pod): void;
  onError?(what: string, err: unknown): void;
}

export interface StaticPodOptions {
  client: KubeClient;
  provider: PodProvider;
  nodeName: string;
  /** The registered Node (for the mirror pods' owner reference); undefined while it is not. */
  node: () => NodeReference | undefined;
  /** The API server's pods bound to this node (the watch cache). */
  pods: { get(key: string): V1Pod | undefined; list(): V1Pod[] };
  /** Where status of a static pod goes once translated to its mirror (serve's status writer). */
  pushStatus: (pod: V1Pod) => void;
  /** --pod-manifest-path; undefined: no static pods (leftovers from an earlier run are stopped). */
  directory?: string;
  hooks?: StaticPodHooks;
}

export class StaticPods {
  /** The static pods the files ask for, by pod key. */
  private desired = new Map<string, V1Pod>();
  /** Per file, the last problem reported, so an unchanged bad file is reported once. */
  private readonly reported = new Map<string, string>();
  /** When each static pod (by uid) was first seen: config.seen stays put across rescans. */
  private readonly seen = new Map<string, Date>();
  private running: Promise<void> = Promise.resolve();
  private dirty = false;
  private watcher: FSWatcher | undefined;
  private debounce: ReturnType<typeof setTimeout> | undefined;
  private rescan: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly options: StaticPodOptions) {}

  /** Reads the directory: the static pods to run now (serve passes them to the engine's reconcile). */
  async load(): Promise<V1Pod[]> {
    await this.scan();
    this.loaded = true;
    return [...this.desired.values()];
  }

  /** Follows the directory and keeps pods and mirror pods in line until `signal` aborts. */
  start(signal: AbortSignal): void {
    const directory = this.options.directory;
    this.requestSync();
    if (directory === undefined) return;
    this.rescan = setInterval(() => this.requestRescan(), RESCAN_MS);
    this.watchDirectory(directory);
    signal.addEventListener("abort", () => this.stop(), { once: true });
  }

  stop(): void {
    clearInterval(this.rescan);
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
  }

  /** Resolves when no sync is running or queued (tests). */
  async idle(): Promise<void> {
    while (this.dirty) await this.running;
    await this.running;
  }

  /**
   * The status writer's view of a static pod: the same status addressed to its mirror pod (the mirror's
   * uid and resourceVersion), or undefined when the mirror does not exist yet (it gets the status when made).
   */
  translate(pod: V1Pod): V1Pod | undefined {
    const mirror = this.options.pods.get(podKeyOf(pod));
    if (mirror === undefined || !isMirrorPod(mirror) || mirror.metadata?.annotations?.[CONFIG_MIRROR] !== pod.metadata?.uid) return undefined;
    return { ...mirror, status: pod.status };
  }

  /**
   * A pod of this node changed in the API server. A mirror that shows the static pod gets its status (a new
   * mirror has none); anything else under a static pod's name (a mirror deleted, being deleted, or of an
   * older version) makes the mirror again.
   */
  apiPodChanged(pod: V1Pod, deleted = false): void {
    const staticPod = this.desired.get(podKeyOf(pod));
    if (staticPod === undefined) {
      // A mirror pod without a static pod (its file was removed while vks was down): sync deletes it.
      if (!deleted && isMirrorPod(pod)) this.requestSync();
      return;
    }
    const current = !deleted && isMirrorPod(pod) && pod.metadata?.annotations?.[CONFIG_MIRROR] === staticPod.metadata?.uid && !pod.metadata?.deletionTimestamp;
    if (!current) {
      this.requestSync();
      return;
    }
    // The writer patches only what differs, so an event for a mirror already showing the status costs no write.
    void this.options.provider
      .getPodStatus(staticPod.metadata?.namespace ?? "default", staticPod.metadata?.name ?? "")
      .then((status) => {
        if (status !== undefined) this.options.pushStatus({ ...pod, status });
      })
      .catch((err: unknown) => this.options.hooks?.onError?.(`static pod ${podKeyOf(pod)}`, err));
  }

  private watchDirectory(directory: string): void {
    try {
      this.watcher = watch(directory, { persistent: false }, () => this.requestRescan());
      this.watcher.on("error", () => {
        // The directory went away: the periodic rescan notices it coming back and watches it again.
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      this.watcher = undefined;
    }
  }

  private requestRescan(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      if (this.watcher === undefined && this.options.directory !== undefined) this.watchDirectory(this.options.directory);
      this.requestSync(true);
    }, DEBOUNCE_MS);
    this.debounce.unref?.();
  }

  /** Runs one sync after the current one; requests meanwhile coalesce into it. */
  private requestSync(rescan = false): void {
    if (!this.loaded) return;
    if (rescan) this.rescanWanted = true;
    if (this.dirty) return;
    this.dirty = true;
    this.running = this.running.then(async () => {
      this.dirty = false;
      const scan = this.rescanWanted;
      this.rescanWanted = false;
      try {
        if (scan) await this.scan();
        await this.sync();
      } catch (err) {
        this.options.hooks?.onError?.("static pods", err);
      }
    });
  }

  private rescanWanted = false;
  /** Nothing is synced before the first scan: an empty desired set would stop every static pod. */
  private loaded = false;

  /** Reads every manifest file of the directory into `desired`; a bad file is reported and skipped. */
  private async scan(): Promise<void> {
    const directory = this.options.directory;
    const desired = new Map<string, V1Pod>();
    if (directory !== undefined) {
      for (const file of await manifestFiles(directory)) {
        try {
          const text = await readFile(file, "utf8");
          for (const pod of parseManifests(text, file)) {
            const problems = staticPodProblems(pod);
            if (problems.length > 0) throw new ValidationError(file, problems);
            const uid = staticPodHash(pod, this.options.nodeName, file);
            const seen = this.seen.get(uid) ?? new Date();
            this.seen.set(uid, seen);
            const staticPod = staticPodFrom(pod, this.options.nodeName, file, seen);
            // Refused now, naming the file and field, rather than by the engine each time it is retried.
            validatePod(structuredClone(staticPod), file);
            const key = podKeyOf(staticPod);
            if (desired.has(key)) throw new VksError(`${file}: pod ${key} is defined twice among the static pod manifests`, { hint: "give each static pod its own name" });
            desired.set(key, staticPod);
          }
          this.reported.delete(file);
        } catch (err) {
          const message = errorMessage(err);
          if (this.reported.get(file) !== message) {
            this.reported.set(file, message);
            this.options.hooks?.onInvalidFile?.(file, message);
          }
        }
      }
    }
    this.desired = desired;
  }

  /** Stops static pods no file asks for (or an older version of one), starts the missing ones, then the mirrors. */
  private async sync(): Promise<void> {
    const { provider } = this.options;
    for (const running of await provider.listPods()) {
      if (!isStaticPod(running)) continue;
      const wanted = this.desired.get(podKeyOf(running));
      if (wanted?.metadata?.uid === running.metadata?.uid) continue;
      await provider.deletePod(running);
      this.options.hooks?.onDeleted?.(running);
    }
    for (const pod of this.desired.values()) {
      const key = podKeyOf(pod);
      try {
        const running = await provider.getPod(pod.metadata?.namespace ?? "default", pod.metadata?.name ?? "");
        if (running === undefined) {
          await provider.createPod(pod);
          this.options.hooks?.onCreated?.(pod);
        }
        await this.ensureMirror(pod);
      } catch (err) {
        this.options.hooks?.onError?.(`static pod ${key}`, err);
      }
    }
    // The kubelet deletes mirror pods whose static pod is gone.
    for (const mirror of this.options.pods.list()) {
      if (!isMirrorPod(mirror) || this.desired.has(podKeyOf(mirror))) continue;
      try {
        await this.options.client.deletePod(mirror.metadata?.namespace ?? "default", mirror.metadata?.name ?? "", mirror.metadata?.uid ?? "");
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) this.options.hooks?.onError?.(`mirror pod ${podKeyOf(mirror)}`, err);
      }
    }
  }

  /** Makes the mirror pod match the static pod: created when missing, replaced when it mirrors another version. */
  private async ensureMirror(pod: V1Pod): Promise<void> {
    const node = this.options.node();
    if (node === undefined) return;
    const namespace = pod.metadata?.namespace ?? "default";
    const name = pod.metadata?.name ?? "";
    const hash = pod.metadata?.uid ?? "";
    let current = this.options.pods.get(podKeyOf(pod)) ?? (await this.options.client.getPod(namespace, name));
    if (current !== undefined) {
      const upToDate = isMirrorPod(current) && current.metadata?.annotations?.[CONFIG_MIRROR] === hash && !current.metadata?.deletionTimestamp;
      if (upToDate) return;
      if (!isMirrorPod(current)) {
        // A pod of the API server's own holds the name: it is not vks' to delete; the mirror waits for it.
        this.options.hooks?.onError?.(`static pod ${namespace}/${name}`, new VksError(`a pod that is not its mirror pod already has the name ${namespace}/${name}`));
        return;
      }
      // A mirror of an older version, or one being deleted: the kubelet deletes it at once and makes it again.
      try {
        await this.options.client.deletePod(namespace, name, current.metadata?.uid ?? "");
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
      current = undefined;
    }
    try {
      // Its status follows when the watch shows it (apiPodChanged): the status writer needs it in the cache.
      const created = await this.options.client.createPod(namespace, mirrorPodOf(pod, node));
      this.options.hooks?.onMirrorCreated?.(created);
    } catch (err) {
      // Created meanwhile (a watch event raced this): the next event or rescan checks it again.
      if (isConflict(err)) return;
      throw err;
    }
  }
}

/** The manifest files of `directory`, sorted; none when it does not exist (yet). Dotfiles are skipped. */
async function manifestFiles(directory: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(directory);
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const name of names.sort()) {
    if (name.startsWith(".")) continue;
    const path = join(directory, name);
    try {
      if ((await stat(path)).isFile()) files.push(path);
    } catch {
      // Removed between readdir and stat.
    }
  }
  return files;
}
