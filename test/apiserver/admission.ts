// The admission seam of the write path: plugins see each create, update and delete with the old and
// new object and may refuse it, as the real server's admission chain does after authorization.
import type { UserInfo } from "./auth.ts";
import type { JsonObject } from "./json.ts";
import type { ResourceType } from "./resources.ts";

export type AdmissionOperation = "CREATE" | "UPDATE" | "DELETE";

export interface AdmissionRequest {
  operation: AdmissionOperation;
  type: ResourceType;
  subresource: string;
  namespace: string;
  name: string;
  /** Undefined for the server's own writes (start-up namespaces, the namespace controller). */
  user: UserInfo | undefined;
  /** The object to be stored; undefined on DELETE. */
  object: JsonObject | undefined;
  /** The stored object; undefined on CREATE. */
  oldObject: JsonObject | undefined;
}

/** Throws an ApiError to refuse the request. */
export type AdmissionPlugin = (request: AdmissionRequest) => void;
