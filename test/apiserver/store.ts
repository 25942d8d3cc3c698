// The in-memory equivalent of etcd: objects by key, one global revision that every write bumps
// (it becomes metadata.resourceVersion), and a bounded history of changes that watches replay from.
import { cloneJson, jsonEqual, objectAt, stringAt, type JsonObject } from "./json.ts";
import type { ResourceType } from "./resources.ts";

export type ChangeType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoredChange {
  type: ChangeType;
  revision: number;
  resourceType: ResourceType;
  object: JsonObject;
  /** The object before this change, so watches with selectors can tell objects entering and leaving them. */
  previous: JsonObject | undefined;
}

export type ChangeListener = (change: StoredChange) => void;

/** Why history cannot serve a revision: it was compacted away, or lies in the future. */
export type HistoryGap = { gap: "compacted"; oldestRetained: number } | { gap: "future"; current: number };

function storageKey(type: ResourceType, namespace: string, name: string): string {
  return `${type.group}/${type.resource}/${namespace}/${name}`;
}

export function namespaceOf(object: JsonObject): string {
  return stringAt(objectAt(object, "metadata"), "namespace") ?? "";
}

export function nameOf(object: JsonObject): string {
  return stringAt(objectAt(object, "metadata"), "name") ?? "";
}

function withRevision(object: JsonObject, revision: number): JsonObject {
  const copy = cloneJson(object);
  copy["metadata"] = { ...objectAt(copy, "metadata"), resourceVersion: String(revision) };
  return copy;
}

function withoutRevision(object: JsonObject): JsonObject {
  const metadata = { ...objectAt(object, "metadata") };
  delete metadata["resourceVersion"];
  return { ...object, metadata };
}

export class ObjectStore {
  private readonly objects = new Map<string, JsonObject>();
  private readonly history: StoredChange[] = [];
  private readonly listeners = new Set<ChangeListener>();
  private currentRevision: number;
  /** Changes at or below this revision are gone; a watch may start at it but not before it. */
  private compactedRevision: number;

  constructor(
    private historyLimit: number,
    initialRevision: number,
  ) {
    this.currentRevision = initialRevision;
    this.compactedRevision = initialRevision;
  }

  revision(): number {
    return this.currentRevision;
  }

  get(type: ResourceType, namespace: string, name: string): JsonObject | undefined {
    const stored = this.objects.get(storageKey(type, namespace, name));
    return stored === undefined ? undefined : cloneJson(stored);
  }

  /** Objects of a type, optionally in one namespace, ordered by namespace then name as etcd keys are. */
  list(type: ResourceType, namespace: string | undefined): JsonObject[] {
    const prefix = namespace === undefined ? `${type.group}/${type.resource}/` : `${type.group}/${type.resource}/${namespace}/`;
    return [...this.objects.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0))
      .map(([, object]) => cloneJson(object));
  }

  create(type: ResourceType, object: JsonObject): JsonObject {
    const stored = withRevision(object, this.currentRevision + 1);
    this.objects.set(storageKey(type, namespaceOf(object), nameOf(object)), stored);
    this.record("ADDED", type, stored, undefined);
    return cloneJson(stored);
  }

  /** Stores a new version; like etcd's GuaranteedUpdate, an unchanged object keeps its revision and emits nothing. */
  update(type: ResourceType, object: JsonObject): JsonObject {
    const key = storageKey(type, namespaceOf(object), nameOf(object));
    const previous = this.objects.get(key);
    if (previous !== undefined && jsonEqual(withoutRevision(previous), withoutRevision(object))) return cloneJson(previous);
    const stored = withRevision(object, this.currentRevision + 1);
    this.objects.set(key, stored);
    this.record(previous === undefined ? "ADDED" : "MODIFIED", type, stored, previous);
    return cloneJson(stored);
  }

  /** Removes an object; the DELETED event carries the deletion's own revision, as the real one does. */
  remove(type: ResourceType, namespace: string, name: string): JsonObject | undefined {
    const key = storageKey(type, namespace, name);
    const previous = this.objects.get(key);
    if (previous === undefined) return undefined;
    this.objects.delete(key);
    const tombstone = withRevision(previous, this.currentRevision + 1);
    this.record("DELETED", type, tombstone, previous);
    return cloneJson(tombstone);
  }

  /** The changes after `revision`, oldest first, or why they cannot be replayed. */
  changesSince(revision: number): StoredChange[] | HistoryGap {
    if (revision > this.currentRevision) return { gap: "future", current: this.currentRevision };
    if (revision < this.compactedRevision) return { gap: "compacted", oldestRetained: this.compactedRevision + 1 };
    return this.history.filter((change) => change.revision > revision);
  }

  /** Forgets all history, so every watch from an older revision gets 410 Gone. */
  compact(): void {
    this.history.length = 0;
    this.compactedRevision = this.currentRevision;
  }

  setHistoryLimit(limit: number): void {
    this.historyLimit = limit;
    this.trimHistory();
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private record(type: ChangeType, resourceType: ResourceType, object: JsonObject, previous: JsonObject | undefined): void {
    this.currentRevision += 1;
    const change: StoredChange = { type, revision: this.currentRevision, resourceType, object, previous };
    this.history.push(change);
    this.trimHistory();
    for (const listener of this.listeners) listener(change);
  }

  private trimHistory(): void {
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift();
      if (dropped !== undefined) this.compactedRevision = dropped.revision;
    }
  }
}
