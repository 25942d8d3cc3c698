// The REST semantics of each verb on top of the store, as the apiserver's generic registry implements
// them: create with generateName and AlreadyExists, updates with optimistic concurrency, the three
// patch types, graceful and finalizer-aware deletion, the status subresource and pod binding.
import { randomBytes } from "node:crypto";
import type { AdmissionPlugin } from "./admission.ts";
import type { UserInfo } from "./auth.ts";
import {
  certificateRequestKind,
  populateConditionTimestamps,
  prepareCertificateRequestApproval,
  prepareCertificateRequestCreate,
} from "./certificate-requests.ts";
import { cloneJson, isJsonObject, numberAt, objectAt, stringAt, type JsonObject, type JsonValue } from "./json.ts";
import { MalformedPatchError, PatchNotApplicableError } from "./patch/errors.ts";
import { applyJsonPatch } from "./patch/json-patch.ts";
import { applyMergePatch } from "./patch/merge.ts";
import { patchSchemaFor } from "./patch/schemas.ts";
import { applyStrategicMergePatch } from "./patch/strategic.ts";
import { apiVersionOf, resourceTypes, resourceTypeNamed, type ResourceType } from "./resources.ts";
import { selects, type Selection } from "./selection.ts";
import type { ObjectStore } from "./store.ts";
import {
  alreadyExists,
  ApiError,
  badRequest,
  conflict,
  expired,
  forbidden,
  invalid,
  invalidValue,
  modifiedConflictDetail,
  notFound,
  successStatus,
  timeout,
  unsupportedMediaType,
} from "./status.ts";
import {
  applyDefaults,
  gracePeriodFor,
  prepareForCreate,
  prepareForStatusUpdate,
  prepareForUpdate,
  readyToRemove,
  returnsDeletedObject,
} from "./strategies.ts";
import { formatTime } from "./time.ts";
import { checkDecodable, validateCreate, validateUpdate } from "./validation.ts";

export const patchContentTypes = [
  "application/json-patch+json",
  "application/merge-patch+json",
  "application/strategic-merge-patch+json",
] as const;
export type PatchContentType = (typeof patchContentTypes)[number];

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface ListOptions {
  limit?: number;
  continueToken?: string;
  /** The `resourceVersion` parameter; a revision newer than the store's is refused like the real one. */
  resourceVersion?: string;
}

/** What a write answered: the body and the HTTP status the real server uses for it. */
export interface WriteResult {
  code: number;
  body: JsonObject;
}

const protectedNamespaces = new Set(["default", "kube-system", "kube-public"]);
// The real NameGenerator's alphabet leaves out vowels and look-alikes so names never spell words.
const generatedNameAlphabet = "bcdfghjklmnpqrstvwxz2456789";

function generateName(prefix: string): string {
  const bytes = randomBytes(5);
  const suffix = [...bytes].map((byte) => generatedNameAlphabet[byte % generatedNameAlphabet.length]).join("");
  return `${prefix.slice(0, 58)}${suffix}`;
}

function metadataOf(object: JsonObject): JsonObject {
  const metadata = objectAt(object, "metadata") ?? {};
  object["metadata"] = metadata;
  return metadata;
}

function resourceVersionOf(object: JsonObject): string {
  return stringAt(objectAt(object, "metadata"), "resourceVersion") ?? "";
}

function createsOnUpdate(type: ResourceType): boolean {
  return type.kind === "Lease" || type.kind === "Event";
}

function allowsUnconditionalUpdate(type: ResourceType): boolean {
  return type.kind !== "Lease";
}

function stamped(type: ResourceType, object: JsonObject): JsonObject {
  const { apiVersion: _apiVersion, kind: _kind, ...rest } = object;
  return { apiVersion: apiVersionOf(type), kind: type.kind, ...rest };
}

interface ContinueToken {
  revision: number;
  after: string;
}

function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify(token), "utf8").toString("base64url");
}

function decodeContinue(text: string): ContinueToken {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    parsed = undefined;
  }
  if (isJsonObject(parsed) && typeof parsed["revision"] === "number" && typeof parsed["after"] === "string") {
    return { revision: parsed["revision"], after: parsed["after"] };
  }
  throw badRequest(`continue key is not valid: ${text}`);
}

function objectKey(object: JsonObject): string {
  const metadata = objectAt(object, "metadata");
  return `${stringAt(metadata, "namespace") ?? ""}/${stringAt(metadata, "name") ?? ""}`;
}

export class Registry {
  constructor(
    private readonly store: ObjectStore,
    private readonly admit: AdmissionPlugin = () => undefined,
    private readonly now: () => Date = () => new Date(),
  ) {}

  get(type: ResourceType, namespace: string, name: string): JsonObject {
    const object = this.store.get(type, type.namespaced ? namespace : "", name);
    if (object === undefined) throw notFound(type, name);
    return object;
  }

  /** Refuses revisions the store has not reached, as the real server does after waiting for them. */
  checkRevisionReached(resourceVersion: string | undefined): number | undefined {
    if (resourceVersion === undefined || resourceVersion === "" || resourceVersion === "0") return undefined;
    if (!/^\d+$/.test(resourceVersion)) throw badRequest(`invalid resource version: ${resourceVersion}`);
    const revision = Number(resourceVersion);
    if (revision > this.store.revision()) {
      throw timeout(`Too large resource version: ${revision}, current: ${this.store.revision()}`);
    }
    return revision;
  }

  list(selection: Selection, options: ListOptions): JsonObject {
    const { type } = selection;
    this.checkRevisionReached(options.resourceVersion);
    let revision = this.store.revision();
    let after = "";
    if (options.continueToken !== undefined && options.continueToken !== "") {
      const token = decodeContinue(options.continueToken);
      const history = this.store.changesSince(token.revision);
      if (!Array.isArray(history)) {
        throw expired(
          "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        );
      }
      revision = token.revision;
      after = token.after;
    }
    const matching = this.store
      .list(type, selection.namespace === "" ? undefined : selection.namespace)
      .filter((object) => selects(selection, object) && objectKey(object) > after);
    const limit = options.limit !== undefined && options.limit > 0 ? options.limit : matching.length;
    const page = matching.slice(0, limit);
    const metadata: JsonObject = { resourceVersion: String(revision) };
    const last = page[page.length - 1];
    if (page.length < matching.length && last !== undefined) {
      metadata["continue"] = encodeContinue({ revision, after: objectKey(last) });
      metadata["remainingItemCount"] = matching.length - page.length;
    }
    // Items of a typed list carry no kind/apiVersion on the wire; only the list itself does.
    const items = page.map(({ kind: _kind, apiVersion: _apiVersion, ...item }) => item);
    return { kind: type.listKind, apiVersion: apiVersionOf(type), metadata, items };
  }

  create(type: ResourceType, namespace: string, body: JsonObject, user?: UserInfo): JsonObject {
    checkDecodable(type, body);
    const object = cloneJson(body);
    const metadata = metadataOf(object);
    this.reconcileNamespace(type, namespace, metadata);
    if ((stringAt(metadata, "resourceVersion") ?? "") !== "") throw badRequest("resourceVersion should not be set on objects to be created");
    delete metadata["resourceVersion"];
    const prefix = stringAt(metadata, "generateName") ?? "";
    if ((stringAt(metadata, "name") ?? "") === "" && prefix !== "") metadata["name"] = generateName(prefix);
    const created = stamped(type, object);
    applyDefaults(type, created);
    prepareForCreate(type, created, this.now());
    if (type.kind === certificateRequestKind) prepareCertificateRequestCreate(created, user);
    const name = stringAt(metadataOf(created), "name") ?? "";
    this.admit({ operation: "CREATE", type, subresource: "", namespace, name, user, object: created, oldObject: undefined });
    validateCreate(type, created);
    if (type.namespaced) this.requireNamespace(namespace);
    if (this.store.get(type, type.namespaced ? namespace : "", name) !== undefined) throw alreadyExists(type, name);
    return this.store.create(type, created);
  }

  /** PUT, of the main resource or its status; `code` is 201 when a PUT created the object. */
  update(type: ResourceType, namespace: string, name: string, body: JsonObject, subresource: string, user?: UserInfo): WriteResult {
    checkDecodable(type, body);
    const object = cloneJson(body);
    const metadata = metadataOf(object);
    this.reconcileNamespace(type, namespace, metadata);
    const bodyName = stringAt(metadata, "name") ?? "";
    if (bodyName !== name) throw badRequest(`the name of the object (${bodyName}) does not match the name on the URL (${name})`);
    const current = this.store.get(type, type.namespaced ? namespace : "", name);
    if (current === undefined) {
      if (subresource === "" && createsOnUpdate(type)) {
        delete metadata["resourceVersion"];
        return { code: 201, body: this.create(type, namespace, object, user) };
      }
      throw notFound(type, name);
    }
    const requestedVersion = stringAt(metadata, "resourceVersion") ?? "";
    if (requestedVersion === "" && !allowsUnconditionalUpdate(type)) {
      throw invalid(type.group, type.resource, name, [invalidValue("metadata.resourceVersion", 0, "must be specified for an update")]);
    }
    return { code: 200, body: this.replace(type, current, object, requestedVersion, subresource, user) };
  }

  patch(type: ResourceType, namespace: string, name: string, contentType: string, patchBody: JsonValue, subresource: string, user?: UserInfo): JsonObject {
    const mediaType = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
    if (!(patchContentTypes as readonly string[]).includes(mediaType)) throw unsupportedMediaType(mediaType, patchContentTypes);
    const current = this.get(type, namespace, name);
    let patched: JsonValue;
    try {
      if (mediaType === "application/json-patch+json") patched = applyJsonPatch(current, patchBody);
      else if (mediaType === "application/merge-patch+json") patched = applyMergePatch(current, patchBody);
      else patched = applyStrategicMergePatch(current, patchBody, patchSchemaFor(type.kind));
    } catch (error) {
      if (error instanceof MalformedPatchError) throw badRequest(error.message);
      if (error instanceof PatchNotApplicableError) throw new ApiError(422, "Invalid", error.message);
      throw error;
    }
    if (!isJsonObject(patched)) throw badRequest("the patch did not produce an object");
    checkDecodable(type, patched);
    const metadata = metadataOf(patched);
    if ((stringAt(metadata, "name") ?? "") !== name) {
      throw invalid(type.group, type.kind, name, [invalidValue("metadata.name", metadata["name"] ?? null, "field is immutable")]);
    }
    this.reconcileNamespace(type, namespace, metadata);
    // A resourceVersion inside the patch is a precondition; otherwise the patch applies to what it read.
    return this.replace(type, current, patched, resourceVersionOf(patched), subresource, user);
  }

  delete(type: ResourceType, namespace: string, name: string, options: DeleteOptions, user?: UserInfo): WriteResult {
    const current = this.get(type, namespace, name);
    this.admit({ operation: "DELETE", type, subresource: "", namespace, name, user, object: undefined, oldObject: current });
    const metadata = metadataOf(current);
    const uid = stringAt(metadata, "uid") ?? "";
    const { preconditions } = options;
    if (preconditions?.uid !== undefined && preconditions.uid !== uid) {
      throw conflict(type, name, `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${uid}`);
    }
    if (preconditions?.resourceVersion !== undefined && preconditions.resourceVersion !== resourceVersionOf(current)) {
      throw conflict(
        type,
        name,
        `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${resourceVersionOf(current)}`,
      );
    }
    if (type.kind === "Namespace" && protectedNamespaces.has(name)) throw forbidden(type, name, "this namespace may not be deleted");

    const grace = gracePeriodFor(type, current, options.gracePeriodSeconds);
    const hasFinalizers = (Array.isArray(metadata["finalizers"]) ? metadata["finalizers"] : []).length > 0;
    if (grace > 0 || hasFinalizers) {
      // A pending graceful deletion only ever gets shorter, never longer.
      const pendingGrace = numberAt(metadata, "deletionGracePeriodSeconds");
      if (metadata["deletionTimestamp"] !== undefined && pendingGrace !== undefined && pendingGrace <= grace) {
        return { code: 200, body: current };
      }
      const marked = cloneJson(current);
      const markedMetadata = metadataOf(marked);
      markedMetadata["deletionTimestamp"] = formatTime(new Date(this.now().getTime() + grace * 1000));
      markedMetadata["deletionGracePeriodSeconds"] = grace;
      return { code: 200, body: this.store.update(type, marked) };
    }
    return this.remove(type, namespace, name, current);
  }

  deleteCollection(selection: Selection, options: DeleteOptions, user?: UserInfo): JsonObject {
    const { type } = selection;
    const items: JsonValue[] = [];
    for (const object of this.store.list(type, selection.namespace === "" ? undefined : selection.namespace)) {
      if (!selects(selection, object)) continue;
      const metadata = objectAt(object, "metadata");
      const result = this.delete(type, stringAt(metadata, "namespace") ?? "", stringAt(metadata, "name") ?? "", options, user);
      const { kind: _kind, apiVersion: _apiVersion, ...item } = result.body;
      items.push(returnsDeletedObject(type) ? item : object);
    }
    return { kind: type.listKind, apiVersion: apiVersionOf(type), metadata: { resourceVersion: String(this.store.revision()) }, items };
  }

  /** POST pods/{name}/binding: what the scheduler does to place a pod on a node. */
  bind(type: ResourceType, namespace: string, name: string, body: JsonObject, user?: UserInfo): JsonObject {
    if (body["kind"] !== undefined && body["kind"] !== "Binding") throw badRequest(`the object provided is unrecognized (must be of type Binding): ${String(body["kind"])}`);
    const bodyName = stringAt(objectAt(body, "metadata"), "name") ?? "";
    if (bodyName !== "" && bodyName !== name) throw badRequest(`the name of the object (${bodyName}) does not match the name on the URL (${name})`);
    const nodeName = stringAt(objectAt(body, "target"), "name") ?? "";
    if (nodeName === "") throw invalid("", "Binding", name, [invalidValue("target.name", "", "must not be empty")]);
    const bindingType = { group: "", resource: "pods/binding" };
    const current = this.get(type, namespace, name);
    const spec = objectAt(current, "spec") ?? {};
    const assigned = stringAt(spec, "nodeName") ?? "";
    if (assigned !== "") throw conflict(bindingType, name, `pod ${name} is already assigned to node "${assigned}"`);
    if (objectAt(current, "metadata")?.["deletionTimestamp"] !== undefined) throw conflict(bindingType, name, `pod ${name} is being deleted, cannot be assigned to a host`);
    const bound = cloneJson(current);
    bound["spec"] = { ...spec, nodeName };
    this.admit({ operation: "CREATE", type, subresource: "binding", namespace, name, user, object: bound, oldObject: current });
    const status = objectAt(bound, "status") ?? {};
    const conditions = (Array.isArray(status["conditions"]) ? status["conditions"] : []).filter(
      (condition) => !(isJsonObject(condition) && condition["type"] === "PodScheduled"),
    );
    conditions.push({ type: "PodScheduled", status: "True", lastProbeTime: null, lastTransitionTime: formatTime(this.now()) });
    bound["status"] = { ...status, conditions };
    this.store.update(type, bound);
    return successStatus(type, name, stringAt(objectAt(current, "metadata"), "uid") ?? "");
  }

  /** Common tail of update and patch: concurrency check, strategy rules, validation, store. */
  private replace(type: ResourceType, current: JsonObject, incoming: JsonObject, requestedVersion: string, subresource: string, user: UserInfo | undefined): JsonObject {
    const name = stringAt(objectAt(current, "metadata"), "name") ?? "";
    if (requestedVersion !== "" && requestedVersion !== resourceVersionOf(current)) throw conflict(type, name, modifiedConflictDetail);
    let updated: JsonObject;
    if (subresource === "status") {
      updated = prepareForStatusUpdate(incoming, current);
    } else if (subresource === "approval") {
      updated = prepareCertificateRequestApproval(incoming, current);
    } else {
      updated = stamped(type, incoming);
      applyDefaults(type, updated);
      prepareForUpdate(type, updated, current);
    }
    if (type.kind === certificateRequestKind && subresource !== "") populateConditionTimestamps(updated, current, this.now());
    updated = stamped(type, updated);
    metadataOf(updated)["resourceVersion"] = resourceVersionOf(current);
    const namespace = stringAt(objectAt(current, "metadata"), "namespace") ?? "";
    this.admit({ operation: "UPDATE", type, subresource, namespace, name, user, object: updated, oldObject: current });
    validateUpdate(type, updated, current, subresource);
    if (readyToRemove(updated)) {
      const metadata = objectAt(updated, "metadata");
      return this.remove(type, stringAt(metadata, "namespace") ?? "", name, updated).body;
    }
    return this.store.update(type, updated);
  }

  private remove(type: ResourceType, namespace: string, name: string, current: JsonObject): WriteResult {
    const storedNamespace = type.namespaced ? namespace : "";
    if (type.kind === "Namespace") {
      // Stands in for the namespace controller, which empties a terminating namespace before it goes.
      for (const contained of resourceTypes.filter((candidate) => candidate.namespaced)) {
        for (const object of this.store.list(contained, name)) {
          this.store.remove(contained, name, stringAt(objectAt(object, "metadata"), "name") ?? "");
        }
      }
    }
    const tombstone = this.store.remove(type, storedNamespace, name) ?? current;
    if (returnsDeletedObject(type)) return { code: 200, body: tombstone };
    return { code: 200, body: successStatus(type, name, stringAt(objectAt(current, "metadata"), "uid") ?? "") };
  }

  private reconcileNamespace(type: ResourceType, namespace: string, metadata: JsonObject): void {
    if (!type.namespaced) {
      delete metadata["namespace"];
      return;
    }
    const bodyNamespace = stringAt(metadata, "namespace") ?? "";
    if (bodyNamespace !== "" && bodyNamespace !== namespace) {
      throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    metadata["namespace"] = namespace;
  }

  private requireNamespace(namespace: string): void {
    const namespaces = resourceTypeNamed("namespaces");
    if (namespaces !== undefined && this.store.get(namespaces, "", namespace) === undefined) throw notFound(namespaces, namespace);
  }
}
