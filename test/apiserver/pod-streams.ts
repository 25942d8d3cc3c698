// Where the API server sends pods/log, pods/exec, pods/attach and pods/portforward on the kubelet, as
// the pod registry's LogLocation, ExecLocation, AttachLocation and PortForwardLocation build it: the
// container defaulted or checked against the spec, and the query re-encoded from the parsed options.
import { arrayAt, isJsonObject, objectAt, stringAt, type JsonObject } from "./json.ts";
import { badRequest, forbiddenField, invalid, invalidValue, type FieldError } from "./status.ts";

export type PodStream = "log" | "exec" | "attach" | "portforward";

/** Go's url.QueryEscape: only letters, digits and -_.~ stay; spaces become +. */
function queryEscape(text: string): string {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, "+");
}

/** url.Values.Encode: keys sorted, each key's values in order. */
export function encodeQuery(values: ReadonlyMap<string, readonly string[]>): string {
  return [...values.keys()]
    .sort()
    .flatMap((key) => (values.get(key) ?? []).map((value) => `${queryEscape(key)}=${queryEscape(value)}`))
    .join("&");
}

/** runtime.Convert_Slice_string_To_bool: absent is false, "0" and "false" are false, anything else true. */
function queryBool(query: URLSearchParams, key: string): boolean {
  const values = query.getAll(key);
  if (values.length === 0) return false;
  const first = values[0] ?? "";
  return !(first === "0" || first.toLowerCase() === "false");
}

/** An optional int64 query parameter; an empty value counts as absent, as the real converter treats it. */
function queryInteger(query: URLSearchParams, key: string): number | undefined {
  const text = query.get(key);
  if (text === null || text === "") return undefined;
  if (!/^[+-]?\d+$/.test(text)) throw badRequest(`strconv.ParseInt: parsing ${JSON.stringify(text)}: invalid syntax`);
  return Number(text);
}

function containerNames(pod: JsonObject): string[] {
  const spec = objectAt(pod, "spec");
  // VisitContainers' order: init containers, containers, ephemeral containers.
  return ["initContainers", "containers", "ephemeralContainers"].flatMap((field) =>
    (arrayAt(spec, field) ?? []).filter(isJsonObject).map((container) => stringAt(container, "name") ?? ""),
  );
}

/** validateContainer: the named container must exist; unnamed, the pod must have exactly one. */
function chooseContainer(pod: JsonObject, requested: string): string {
  const podName = stringAt(objectAt(pod, "metadata"), "name") ?? "";
  if (requested !== "") {
    if (!containerNames(pod).includes(requested)) throw badRequest(`container ${requested} is not valid for pod ${podName}`);
    return requested;
  }
  const regular = (arrayAt(objectAt(pod, "spec"), "containers") ?? []).filter(isJsonObject);
  if (regular.length === 1) return stringAt(regular[0], "name") ?? "";
  if (regular.length === 0) throw badRequest(`a container name must be specified for pod ${podName}`);
  throw badRequest(`a container name must be specified for pod ${podName}, choose one of: [${containerNames(pod).join(" ")}]`);
}

/** ValidatePodLogOptions, answered with 422 on PodLogOptions. */
function logOptionProblems(tailLines: number | undefined, limitBytes: number | undefined, sinceSeconds: number | undefined, sinceTime: string | undefined): FieldError[] {
  const problems: FieldError[] = [];
  if (tailLines !== undefined && tailLines < 0) problems.push(invalidValue("tailLines", tailLines, "must be greater than or equal to 0"));
  if (limitBytes !== undefined && limitBytes < 1) problems.push(invalidValue("limitBytes", limitBytes, "must be greater than 0"));
  if (sinceSeconds !== undefined && sinceTime !== undefined) problems.push(forbiddenField("", "at most one of `sinceTime` or `sinceSeconds` may be specified"));
  else if (sinceSeconds !== undefined && sinceSeconds < 1) problems.push(invalidValue("sinceSeconds", sinceSeconds, "must be greater than 0"));
  return problems;
}

/** metav1.Time from a query parameter: RFC 3339, re-printed in whole seconds as the log location writes it. */
function querySinceTime(query: URLSearchParams): string | undefined {
  const text = query.get("sinceTime");
  if (text === null || text === "") return undefined;
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(text);
  const parsed = match === null ? Number.NaN : Date.parse(text);
  if (Number.isNaN(parsed)) throw badRequest(`parsing time ${JSON.stringify(text)} as "2006-01-02T15:04:05Z07:00": cannot parse ${JSON.stringify(text)} as "2006"`);
  return new Date(Math.floor(parsed / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A kubelet path with its query; `insecureSkipVerify` is set when the logs request asked to skip TLS checks. */
export interface StreamLocation {
  path: string;
  insecureSkipVerify: boolean;
}

/** PodLogOptions decoded from the query and validated, before the pod is even looked up. */
export interface LogOptions {
  container: string;
  follow: boolean;
  previous: boolean;
  timestamps: boolean;
  sinceSeconds: number | undefined;
  sinceTime: string | undefined;
  tailLines: number | undefined;
  limitBytes: number | undefined;
  insecureSkipTLSVerifyBackend: boolean;
}

export function parseLogOptions(query: URLSearchParams, podName: string): LogOptions {
  const options: LogOptions = {
    container: query.get("container") ?? "",
    follow: queryBool(query, "follow"),
    previous: queryBool(query, "previous"),
    timestamps: queryBool(query, "timestamps"),
    sinceSeconds: queryInteger(query, "sinceSeconds"),
    sinceTime: querySinceTime(query),
    tailLines: queryInteger(query, "tailLines"),
    limitBytes: queryInteger(query, "limitBytes"),
    insecureSkipTLSVerifyBackend: queryBool(query, "insecureSkipTLSVerifyBackend"),
  };
  const problems = logOptionProblems(options.tailLines, options.limitBytes, options.sinceSeconds, options.sinceTime);
  if (problems.length > 0) throw invalid("", "PodLogOptions", podName, problems);
  return options;
}

/** LogLocation; undefined when the pod is not bound yet, which the real server answers with 204. */
export function logLocation(pod: JsonObject, options: LogOptions): StreamLocation | undefined {
  const podName = stringAt(objectAt(pod, "metadata"), "name") ?? "";
  const container = chooseContainer(pod, options.container);
  if ((stringAt(objectAt(pod, "spec"), "nodeName") ?? "") === "") return undefined;
  const params = new Map<string, string[]>();
  if (options.follow) params.set("follow", ["true"]);
  if (options.previous) params.set("previous", ["true"]);
  if (options.timestamps) params.set("timestamps", ["true"]);
  if (options.sinceSeconds !== undefined) params.set("sinceSeconds", [String(options.sinceSeconds)]);
  if (options.sinceTime !== undefined) params.set("sinceTime", [options.sinceTime]);
  if (options.tailLines !== undefined) params.set("tailLines", [String(options.tailLines)]);
  if (options.limitBytes !== undefined) params.set("limitBytes", [String(options.limitBytes)]);
  const namespace = stringAt(objectAt(pod, "metadata"), "namespace") ?? "";
  const encoded = encodeQuery(params);
  return {
    path: `/containerLogs/${namespace}/${podName}/${container}${encoded === "" ? "" : `?${encoded}`}`,
    insecureSkipVerify: options.insecureSkipTLSVerifyBackend,
  };
}

function requireHost(pod: JsonObject): void {
  if ((stringAt(objectAt(pod, "spec"), "nodeName") ?? "") === "") {
    throw badRequest(`pod ${stringAt(objectAt(pod, "metadata"), "name") ?? ""} does not have a host assigned`);
  }
}

/** ExecLocation and AttachLocation: stdin/stdout/stderr/tty become input/output/error/tty=1. */
export function execOrAttachLocation(stream: "exec" | "attach", pod: JsonObject, query: URLSearchParams): StreamLocation {
  const container = chooseContainer(pod, query.get("container") ?? "");
  requireHost(pod);
  const params = new Map<string, string[]>();
  if (queryBool(query, "stdin")) params.set("input", ["1"]);
  if (queryBool(query, "stdout")) params.set("output", ["1"]);
  if (queryBool(query, "stderr")) params.set("error", ["1"]);
  if (queryBool(query, "tty")) params.set("tty", ["1"]);
  if (stream === "exec" && query.getAll("command").length > 0) params.set("command", query.getAll("command"));
  const metadata = objectAt(pod, "metadata");
  const encoded = encodeQuery(params);
  const path = `/${stream}/${stringAt(metadata, "namespace") ?? ""}/${stringAt(metadata, "name") ?? ""}/${container}`;
  return { path: encoded === "" ? path : `${path}?${encoded}`, insecureSkipVerify: false };
}

/** PortForwardLocation: the ports, each `ports` value possibly comma-separated, joined into one `port`. */
export function portForwardLocation(pod: JsonObject, query: URLSearchParams): StreamLocation {
  const ports: string[] = [];
  for (const value of query.getAll("ports")) {
    for (const part of value.split(",")) {
      if (!/^\d+$/.test(part) || Number(part) > 65535) {
        throw badRequest(`cannot convert to []int32: strconv.ParseUint: parsing ${JSON.stringify(part)}: ${/^\d+$/.test(part) ? "value out of range" : "invalid syntax"}`);
      }
      ports.push(String(Number(part)));
    }
  }
  requireHost(pod);
  const metadata = objectAt(pod, "metadata");
  const path = `/portForward/${stringAt(metadata, "namespace") ?? ""}/${stringAt(metadata, "name") ?? ""}`;
  const encoded = encodeQuery(new Map(ports.length > 0 ? [["port", [ports.join(",")]]] : []));
  return { path: encoded === "" ? path : `${path}?${encoded}`, insecureSkipVerify: false };
}

