// Watch streams: newline-delimited JSON events replayed from the store's history and then live,
// filtered per watcher so that objects entering or leaving a selector appear as ADDED or DELETED.
import type { ServerResponse } from "node:http";
import { cloneJson, objectAt, type JsonObject } from "./json.ts";
import { apiVersionOf } from "./resources.ts";
import { selects, type Selection } from "./selection.ts";
import type { ObjectStore, StoredChange } from "./store.ts";
import { ApiError, expired } from "./status.ts";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchRequest {
  selection: Selection;
  /** Where to start: undefined (or "0") first lists current objects as ADDED, a revision replays after it. */
  startRevision: number | undefined;
  allowBookmarks: boolean;
  /** Ends the list of initial ADDED events with a BOOKMARK annotated `k8s.io/initial-events-end`. */
  sendInitialEvents: boolean;
  timeoutSeconds: number | undefined;
}

class ActiveWatch {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private finished = false;

  constructor(
    readonly request: WatchRequest,
    private readonly response: ServerResponse,
    private readonly store: ObjectStore,
    private readonly onFinish: (watch: ActiveWatch) => void,
  ) {}

  start(): void {
    this.response.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-cache, private" });
    this.response.flushHeaders();
    this.response.on("close", () => this.finish());
    const { selection, startRevision } = this.request;
    if (startRevision === undefined) {
      for (const object of this.store.list(selection.type, selection.namespace === "" ? undefined : selection.namespace)) {
        if (selects(selection, object)) this.send("ADDED", object);
      }
      if (this.request.sendInitialEvents) this.sendBookmark({ "k8s.io/initial-events-end": "true" });
    } else {
      const changes = this.store.changesSince(startRevision);
      if (!Array.isArray(changes)) {
        // Unreachable for future revisions: the handler rejects those before a stream starts.
        const current = this.store.revision();
        this.expire(expired(`too old resource version: ${startRevision} (${current})`));
        return;
      }
      for (const change of changes) this.deliver(change);
    }
    if (this.request.timeoutSeconds !== undefined) {
      this.timer = setTimeout(() => {
        if (this.request.allowBookmarks) this.sendBookmark(undefined);
        this.close();
      }, this.request.timeoutSeconds * 1000);
    }
  }

  deliver(change: StoredChange): void {
    const { selection } = this.request;
    if (change.resourceType !== selection.type || this.finished) return;
    const matchedBefore = change.previous !== undefined && selects(selection, change.previous);
    if (change.type === "DELETED") {
      if (matchedBefore) this.send("DELETED", change.object);
      return;
    }
    const matchesNow = selects(selection, change.object);
    if (matchesNow) this.send(matchedBefore ? "MODIFIED" : "ADDED", change.object);
    else if (matchedBefore && change.previous !== undefined) {
      // Leaving the selector reads as a deletion of the last matching state, stamped with this revision.
      const departed = cloneJson(change.previous);
      departed["metadata"] = { ...objectAt(departed, "metadata"), resourceVersion: String(change.revision) };
      this.send("DELETED", departed);
    }
  }

  sendBookmark(annotations: Record<string, string> | undefined): void {
    if (!this.request.allowBookmarks || this.finished) return;
    const { type } = this.request.selection;
    const metadata: JsonObject = { resourceVersion: String(this.store.revision()), creationTimestamp: null };
    if (annotations !== undefined) metadata["annotations"] = annotations;
    this.send("BOOKMARK", { kind: type.kind, apiVersion: apiVersionOf(type), metadata });
  }

  /** Ends the stream with an ERROR event, as the server does when a watch falls out of history. */
  expire(error: ApiError): void {
    this.send("ERROR", error.status);
    this.close();
  }

  close(): void {
    if (this.finished) return;
    this.finish();
    this.response.end();
  }

  destroy(): void {
    this.finish();
    this.response.destroy();
  }

  private send(type: WatchEventType, object: JsonObject): void {
    if (this.finished) return;
    this.response.write(`${JSON.stringify({ type, object })}\n`);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.onFinish(this);
  }
}

export class WatchHub {
  private readonly watches = new Set<ActiveWatch>();
  private readonly unsubscribe: () => void;

  constructor(private readonly store: ObjectStore) {
    this.unsubscribe = store.onChange((change) => {
      for (const watch of this.watches) watch.deliver(change);
    });
  }

  open(request: WatchRequest, response: ServerResponse): void {
    const watch = new ActiveWatch(request, response, this.store, (finished) => this.watches.delete(finished));
    this.watches.add(watch);
    watch.start();
  }

  count(): number {
    return this.watches.size;
  }

  bookmarkAll(): void {
    for (const watch of this.watches) watch.sendBookmark(undefined);
  }

  /** Sends every open watch the 410 the real server sends when etcd compacts under a running watch. */
  expireAll(): void {
    for (const watch of [...this.watches]) watch.expire(expired("The resourceVersion for the provided watch is too old."));
  }

  /** Ends every stream cleanly, as when the server's watch timeout elapses. */
  closeAll(): void {
    for (const watch of [...this.watches]) watch.close();
  }

  /** Drops every stream without a proper end, as a crash or network failure would. */
  destroyAll(): void {
    for (const watch of [...this.watches]) watch.destroy();
  }

  dispose(): void {
    this.unsubscribe();
    this.destroyAll();
  }
}
