/**
 * Probes and lifecycle handlers as the kubelet reads them: the defaults it applies (period 10 s, timeout
 * 1 s, success 1, failure 3), named ports resolved against the container's ports, and the API server's
 * validation rules (exactly one handler; positive periods; successThreshold 1 for liveness and startup),
 * reported by field path.
 */
import type { V1Container, V1ContainerPort, V1Probe } from "@kubernetes/client-node";

export type ProbeKind = "liveness" | "readiness" | "startup";
export const PROBE_FIELDS: Record<ProbeKind, "livenessProbe" | "readinessProbe" | "startupProbe"> = {
  liveness: "livenessProbe",
  readiness: "readinessProbe",
  startup: "startupProbe",
};
/** In the kubelet's event messages: "Liveness probe failed: …". */
export const PROBE_NAMES: Record<ProbeKind, string> = { liveness: "Liveness", readiness: "Readiness", startup: "Startup" };

export type ProbeHandler =
  | { type: "exec"; command: string[] }
  | { type: "httpGet"; scheme: "HTTP" | "HTTPS"; host?: string; port: number; path: string; headers: { name: string; value: string }[] }
  | { type: "tcpSocket"; host?: string; port: number }
  | { type: "grpc"; port: number; service: string }
  | { type: "sleep"; seconds: number };

export interface ProbeSpec {
  kind: ProbeKind;
  handler: ProbeHandler;
  initialDelaySeconds: number;
  periodSeconds: number;
  timeoutSeconds: number;
  successThreshold: number;
  failureThreshold: number;
  /** Probe-level grace period for a liveness/startup kill; the pod's when absent. */
  terminationGracePeriodSeconds?: number;
}

/** The kubelet's (API server's) defaults. */
export const PROBE_DEFAULTS = { periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3, initialDelaySeconds: 0 };

type Fields = Record<string, unknown>;
const isFields = (value: unknown): value is Fields => typeof value === "object" && value !== null && !Array.isArray(value);

const HANDLERS = ["exec", "httpGet", "tcpSocket", "grpc"] as const;
const HOOK_HANDLERS = ["exec", "httpGet", "sleep"] as const;
/** Kubernetes' IANA_SVC_NAME: what a named port may be. */
const PORT_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
/** RFC 7230 token: a header name. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

type Report = (path: string, message: string) => void;

/** A port as written (number or name) → its number, via the container's declared ports for a name. */
export function resolvePort(port: unknown, ports: readonly V1ContainerPort[] | undefined): number | undefined {
  if (typeof port === "number") return Number.isInteger(port) && port >= 1 && port <= 65535 ? port : undefined;
  if (typeof port === "string") {
    if (/^\d+$/.test(port)) return resolvePort(Number(port), ports);
    return ports?.find((candidate) => candidate.name === port)?.containerPort;
  }
  return undefined;
}

function checkPort(port: unknown, path: string, ports: readonly V1ContainerPort[] | undefined, report: Report): void {
  if (port === undefined || port === null || port === "") {
    report(path, "required");
    return;
  }
  if (typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port))) {
    if (resolvePort(port, ports) === undefined) report(path, "must be between 1 and 65535, inclusive");
    return;
  }
  if (typeof port !== "string" || port.length > 15 || !PORT_NAME.test(port)) {
    report(path, "must be a port number or an IANA service name (at most 15 lowercase letters, digits and '-', with a letter)");
    return;
  }
  if (resolvePort(port, ports) === undefined) {
    const declared = (ports ?? []).flatMap((candidate) => (candidate.name === undefined ? [] : [candidate.name]));
    report(path, `no container port named "${port}"${declared.length === 0 ? " (the container declares no named ports)" : `; declared: ${declared.join(", ")}`}`);
  }
}

function checkHandler(handler: Fields, path: string, allowed: readonly string[], ports: readonly V1ContainerPort[] | undefined, report: Report): void {
  const given = allowed.filter((name) => handler[name] !== undefined && handler[name] !== null);
  const others = Object.keys(handler).filter((name) => [...HANDLERS, ...HOOK_HANDLERS].includes(name as never) && !allowed.includes(name) && handler[name] !== undefined);
  for (const name of others) report(`${path}.${name}`, `not allowed here: use one of ${allowed.join(", ")}`);
  if (given.length === 0) {
    if (others.length === 0) report(path, `must specify a handler type: one of ${allowed.join(", ")}`);
    return;
  }
  if (given.length > 1) {
    report(`${path}.${given[1]}`, `may not specify more than 1 handler type (also ${given[0]})`);
    return;
  }
  const [type] = given;
  const value = handler[type as string];
  const handlerPath = `${path}.${type}`;
  if (!isFields(value)) {
    report(handlerPath, "must be a mapping");
    return;
  }
  switch (type) {
    case "exec": {
      const command = value.command;
      if (!Array.isArray(command) || command.length === 0) report(`${handlerPath}.command`, "required: the command and its arguments");
      else if (command.some((word) => typeof word !== "string" || word.includes("\0"))) report(`${handlerPath}.command`, "must be a list of strings without NUL");
      break;
    }
    case "httpGet": {
      checkPort(value.port, `${handlerPath}.port`, ports, report);
      if (value.scheme !== undefined && value.scheme !== "HTTP" && value.scheme !== "HTTPS") report(`${handlerPath}.scheme`, 'must be "HTTP" or "HTTPS"');
      if (value.path !== undefined && (typeof value.path !== "string" || (value.path !== "" && !value.path.startsWith("/")))) {
        report(`${handlerPath}.path`, "must be an absolute path (starting with /)");
      }
      if (value.host !== undefined && typeof value.host !== "string") report(`${handlerPath}.host`, "must be a string");
      const headers = value.httpHeaders;
      if (headers !== undefined) {
        if (!Array.isArray(headers)) report(`${handlerPath}.httpHeaders`, "must be a list of {name, value}");
        else
          headers.forEach((header: unknown, index) => {
            const headerPath = `${handlerPath}.httpHeaders[${index}]`;
            if (!isFields(header) || typeof header.name !== "string" || !HEADER_NAME.test(header.name)) report(`${headerPath}.name`, "must be a valid HTTP header name");
            else if (typeof header.value !== "string" || /[\r\n\0]/.test(header.value)) report(`${headerPath}.value`, "must be a string without CR, LF or NUL");
          });
      }
      break;
    }
    case "tcpSocket":
      checkPort(value.port, `${handlerPath}.port`, ports, report);
      if (value.host !== undefined && typeof value.host !== "string") report(`${handlerPath}.host`, "must be a string");
      break;
    case "grpc":
      // A gRPC port is a number only (Kubernetes' rule).
      if (typeof value.port !== "number" || resolvePort(value.port, ports) === undefined) report(`${handlerPath}.port`, "must be a port number between 1 and 65535");
      if (value.service !== undefined && value.service !== null && typeof value.service !== "string") report(`${handlerPath}.service`, "must be a string");
      break;
    case "sleep":
      if (typeof value.seconds !== "number" || !Number.isInteger(value.seconds) || value.seconds < 0) report(`${handlerPath}.seconds`, "must be an integer of 0 or more");
      break;
  }
}

function checkInteger(value: unknown, path: string, minimum: number, report: Report): void {
  if (value === undefined || value === null) return;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < minimum) {
    report(path, minimum === 0 ? "must be an integer of 0 or more" : `must be an integer of ${minimum} or more`);
  }
}

/** The API server's validation of one probe (`path` is e.g. spec.containers[0].livenessProbe). */
export function checkProbe(probe: unknown, path: string, kind: ProbeKind, container: Fields, report: Report): void {
  if (probe === undefined || probe === null) return;
  if (!isFields(probe)) {
    report(path, "must be a mapping");
    return;
  }
  const ports = Array.isArray(container.ports) ? (container.ports as V1ContainerPort[]) : undefined;
  checkHandler(probe, path, HANDLERS, ports, report);
  checkInteger(probe.initialDelaySeconds, `${path}.initialDelaySeconds`, 0, report);
  checkInteger(probe.periodSeconds, `${path}.periodSeconds`, 1, report);
  checkInteger(probe.timeoutSeconds, `${path}.timeoutSeconds`, 1, report);
  checkInteger(probe.successThreshold, `${path}.successThreshold`, 1, report);
  checkInteger(probe.failureThreshold, `${path}.failureThreshold`, 1, report);
  if ((kind === "liveness" || kind === "startup") && probe.successThreshold !== undefined && probe.successThreshold !== 1) {
    report(`${path}.successThreshold`, "must be 1 for liveness and startup probes");
  }
  if (probe.terminationGracePeriodSeconds !== undefined && probe.terminationGracePeriodSeconds !== null) {
    if (kind === "readiness") report(`${path}.terminationGracePeriodSeconds`, "must not be set for readiness probes");
    else checkInteger(probe.terminationGracePeriodSeconds, `${path}.terminationGracePeriodSeconds`, 1, report);
  }
}

/** The API server's validation of postStart/preStop (`path` is e.g. spec.containers[0].lifecycle). */
export function checkLifecycle(lifecycle: unknown, path: string, container: Fields, report: Report): void {
  if (lifecycle === undefined || lifecycle === null) return;
  if (!isFields(lifecycle)) {
    report(path, "must be a mapping");
    return;
  }
  const ports = Array.isArray(container.ports) ? (container.ports as V1ContainerPort[]) : undefined;
  for (const hook of ["postStart", "preStop"] as const) {
    const handler = lifecycle[hook];
    if (handler === undefined || handler === null) continue;
    if (!isFields(handler)) report(`${path}.${hook}`, "must be a mapping");
    // tcpSocket is accepted by the API for compatibility but the kubelet never runs it: refused here.
    else checkHandler(handler, `${path}.${hook}`, HOOK_HANDLERS, ports, report);
  }
  if (lifecycle.stopSignal !== undefined) report(`${path}.stopSignal`, "not supported: vks stops containers with SIGTERM");
}

/** The handler of a validated probe or hook, named ports resolved. */
export function handlerOf(handler: V1Probe, container: V1Container): ProbeHandler {
  if (handler.exec !== undefined) return { type: "exec", command: handler.exec.command ?? [] };
  if (handler.httpGet !== undefined) {
    const get = handler.httpGet;
    return {
      type: "httpGet",
      scheme: get.scheme === "HTTPS" ? "HTTPS" : "HTTP",
      ...(get.host === undefined || get.host === "" ? {} : { host: get.host }),
      port: resolvePort(get.port, container.ports) ?? 0,
      path: get.path === undefined || get.path === "" ? "/" : get.path,
      headers: (get.httpHeaders ?? []).map((header) => ({ name: header.name, value: header.value })),
    };
  }
  if (handler.tcpSocket !== undefined) {
    const socket = handler.tcpSocket;
    return { type: "tcpSocket", ...(socket.host === undefined || socket.host === "" ? {} : { host: socket.host }), port: resolvePort(socket.port, container.ports) ?? 0 };
  }
  if (handler.grpc !== undefined) return { type: "grpc", port: handler.grpc.port, service: handler.grpc.service ?? "" };
  const sleep = (handler as { sleep?: { seconds: number } }).sleep;
  if (sleep !== undefined) return { type: "sleep", seconds: sleep.seconds };
  throw new Error("handler without a type (validation lets none through)");
}

/** The container's probe of `kind` with the kubelet's defaults, or undefined when it has none. */
export function probeSpec(container: V1Container, kind: ProbeKind): ProbeSpec | undefined {
  const probe = container[PROBE_FIELDS[kind]];
  if (probe === undefined || probe === null) return undefined;
  return {
    kind,
    handler: handlerOf(probe, container),
    initialDelaySeconds: probe.initialDelaySeconds ?? PROBE_DEFAULTS.initialDelaySeconds,
    periodSeconds: probe.periodSeconds ?? PROBE_DEFAULTS.periodSeconds,
    timeoutSeconds: probe.timeoutSeconds ?? PROBE_DEFAULTS.timeoutSeconds,
    successThreshold: probe.successThreshold ?? PROBE_DEFAULTS.successThreshold,
    failureThreshold: probe.failureThreshold ?? PROBE_DEFAULTS.failureThreshold,
    ...(probe.terminationGracePeriodSeconds === undefined || probe.terminationGracePeriodSeconds === null
      ? {}
      : { terminationGracePeriodSeconds: probe.terminationGracePeriodSeconds }),
  };
}
