/**
 * exec, attach, port-forward and run: the kubelet API's streaming endpoints, joining the protocol side
 * (internal/kubelet/streams: SPDY or WebSocket) to the node side (an exec'd process, a container's
 * output, a TCP connection on the host network, which pods share).
 */
import type { V1Pod } from "@kubernetes/client-node";
import type { IncomingMessage } from "node:http";
import { connect } from "node:net";
import type { Duplex } from "node:stream";
import { errorMessage } from "../errors.ts";
import type { ExecProcess, TerminalSize } from "../exec/exec.ts";
import { streamContainerInstanceLog } from "./container-logs.ts";
import { Query, RequestError } from "./query.ts";
import type { KubeletRuntime } from "./runtime.ts";
import { acceptPortForward } from "./streams/portforward.ts";
import { acceptRemoteCommand, type RemoteCommandSession } from "./streams/remotecommand.ts";

export interface StreamingCounters {
  sessionOpened(kind: string): void;
  sessionClosed(kind: string): void;
}

export interface StreamingRoute {
  kind: string;
  namespace?: string;
  pod?: string;
  uid?: string;
  container?: string;
}

const EXEC_PARAMETERS = ["command", "input", "output", "error", "tty"] as const;
const ATTACH_PARAMETERS = ["input", "output", "error", "tty"] as const;
const PORT_FORWARD_PARAMETERS = ["port"] as const;

/**
 * The pod (and container) a request names, with the kubelet's 404 messages; streaming requests check it
 * before the upgrade so a miss is a plain 404.
 */
export async function findTarget(runtime: KubeletRuntime, route: StreamingRoute): Promise<V1Pod> {
  const name = route.pod ?? "";
  const pod = await runtime.getPod(route.namespace ?? "", name);
  if (pod === undefined || (route.uid !== undefined && pod.metadata?.uid !== route.uid)) throw new RequestError(404, `pod "${name}" does not exist`);
  if (route.container !== undefined) {
    const containers = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => c.name);
    if (!containers.includes(route.container)) throw new RequestError(404, `container "${route.container}" not found in pod "${name}"`);
  }
  return pod;
}

function portsOf(query: Query): number[] {
  return query.all("port").map((text) => {
    const port = Number(text);
    if (!/^\d+$/.test(text) || port < 1 || port > 65535) throw new RequestError(400, `query parameter "port": "${text}" is not a port (1-65535)`);
    return port;
  });
}

interface StreamFlags {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

function streamFlags(query: Query): StreamFlags {
  const flags = { stdin: query.bool("input"), stdout: query.bool("output"), stderr: query.bool("error"), tty: query.bool("tty") };
  if (!flags.stdin && !flags.stdout && !flags.stderr) throw new RequestError(400, "you must specify at least 1 of stdin, stdout, stderr");
  // As the kubelet: a terminal merges stderr into stdout.
  if (flags.tty && flags.stderr) flags.stderr = false;
  return flags;
}

export async function handleStreamingUpgrade(
  runtime: KubeletRuntime,
  route: StreamingRoute,
  params: URLSearchParams,
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  counters: StreamingCounters | undefined,
): Promise<void> {
  switch (route.kind) {
    case "exec": {
      const query = new Query(params, EXEC_PARAMETERS);
      const command = query.all("command");
      if (command.length === 0) throw new RequestError(400, "you must specify at least one command for the container");
      const flags = streamFlags(query);
      await findTarget(runtime, route);
      const session = await acceptRemoteCommand(request, socket, head, flags);
      counters?.sessionOpened("exec");
      void runExecSession(runtime, route, command, flags, session).finally(() => counters?.sessionClosed("exec"));
      return;
    }
    case "attach": {
      const flags = streamFlags(new Query(params, ATTACH_PARAMETERS));
      const pod = await findTarget(runtime, route);
      const session = await acceptRemoteCommand(request, socket, head, flags);
      counters?.sessionOpened("attach");
      void runAttachSession(runtime, route, pod, session).finally(() => counters?.sessionClosed("attach"));
      return;
    }
    case "portForward": {
      const ports = portsOf(new Query(params, PORT_FORWARD_PARAMETERS));
      await findTarget(runtime, route);
      const session = await acceptPortForward(request, socket, head, { ports });
      counters?.sessionOpened("portForward");
      session.aborted.addEventListener("abort", () => counters?.sessionClosed("portForward"), { once: true });
      session.onStream((stream) => forwardPort(stream.port, stream.data, (message) => stream.reportError(message)));
      return;
    }
    default:
      throw new RequestError(404, "404 page not found");
  }
}

/**
 * Writes a process's output as it comes. A few writes may wait on the connection at once, so the next
 * read from the process overlaps with the last write's trip to the kernel; beyond that the reader waits,
 * which holds the process back through its pipe (bounded memory).
 */
const WRITES_IN_FLIGHT = 8;

async function pump(source: AsyncIterable<Uint8Array> | undefined, write: (data: Uint8Array) => Promise<void>): Promise<void> {
  if (source === undefined) return;
  const pending: Promise<void>[] = [];
  for await (const chunk of source) {
    pending.push(write(chunk));
    if (pending.length >= WRITES_IN_FLIGHT) await pending.shift();
  }
  await Promise.all(pending);
}

/** How long a tty exec waits for the client's terminal size before it starts with the default one. */
const FIRST_SIZE_WAIT_MS = 1_000;

/**
 * The client's terminal size, which kubectl sends on the resize channel as the session opens. Starting
 * the command before it arrived would show it 80x24 for its first moments (a `stty size` or a full-screen
 * program drawn at the wrong size: seen under load). `latest` keeps sizes that arrive after the first.
 */
function firstTerminalSize(session: RemoteCommandSession): { first: Promise<TerminalSize | undefined>; latest: () => TerminalSize | undefined } {
  let latest: TerminalSize | undefined;
  const first = new Promise<TerminalSize | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), FIRST_SIZE_WAIT_MS);
    const give = (): void => {
      clearTimeout(timer);
      resolve(latest);
    };
    session.aborted.addEventListener("abort", give, { once: true });
    session.onResize((size) => {
      latest = size;
      give();
    });
  });
  return { first, latest: () => latest };
}

async function runExecSession(runtime: KubeletRuntime, route: StreamingRoute, command: string[], flags: StreamFlags, session: RemoteCommandSession): Promise<void> {
  let process: ExecProcess;
  const sizes = flags.tty ? firstTerminalSize(session) : undefined;
  const terminalSize = await sizes?.first;
  try {
    process = await runtime.exec(route.namespace ?? "", route.pod ?? "", route.container ?? "", {
      command,
      stdin: flags.stdin,
      tty: flags.tty,
      ...(terminalSize === undefined ? {} : { terminalSize }),
    });
  } catch (err) {
    await session.finish({ kind: "error", message: errorMessage(err) }).catch(() => {});
    return;
  }
  // A broken stream ends the exec'd command and everything it started, as the kubelet's runtime does.
  const onAbort = (): void => process.kill();
  session.aborted.addEventListener("abort", onAbort, { once: true });
  const resizedMeanwhile = sizes?.latest();
  if (resizedMeanwhile !== undefined && resizedMeanwhile !== terminalSize) process.resize(resizedMeanwhile);
  session.onResize((size) => process.resize(size));
  void (async () => {
    if (session.stdin === undefined) return;
    for await (const chunk of session.stdin) process.writeStdin(chunk);
    process.closeStdin();
  })().catch(() => process.closeStdin());
  const output = Promise.all([
    pump(process.stdout, (data) => (flags.stdout ? session.writeStdout(data) : Promise.resolve())),
    pump(process.stderr, (data) => (flags.stderr ? session.writeStderr(data) : Promise.resolve())),
  ]).catch(() => process.kill());
  const { exitCode } = await process.exited;
  await output;
  session.aborted.removeEventListener("abort", onAbort);
  if (!session.aborted.aborted) await session.finish({ kind: "exited", exitCode, command }).catch(() => {});
}

const ATTACH_POLL_MS = 1000;

/**
 * vks runs containers without a stdin, and their output goes to the journal or a file: attaching follows
 * that output from now on until the container stops, which is what `kubectl attach` shows a user.
 */
async function runAttachSession(runtime: KubeletRuntime, route: StreamingRoute, pod: V1Pod, session: RemoteCommandSession): Promise<void> {
  const namespace = route.namespace ?? "";
  const name = route.pod ?? "";
  const container = route.container ?? "";
  const source = runtime.logSource(namespace, name);
  if (source === undefined) {
    await session.finish({ kind: "error", message: `pod "${name}" does not exist` }).catch(() => {});
    return;
  }
  const stop = new AbortController();
  session.aborted.addEventListener("abort", () => stop.abort(), { once: true });
  // Attaching to a container that ended has nothing to stream; the kubelet says so.
  const running = (current: V1Pod | undefined): boolean =>
    [...(current?.status?.containerStatuses ?? []), ...(current?.status?.initContainerStatuses ?? [])].some((s) => s.name === container && s.state?.running !== undefined);
  if (!running(pod)) {
    await session.finish({ kind: "error", message: `container ${container} is not running` }).catch(() => {});
    return;
  }
  const watcher = (async () => {
    while (!stop.signal.aborted) {
      await Bun.sleep(ATTACH_POLL_MS);
      if (!running(await runtime.getPod(namespace, name))) stop.abort();
    }
  })();
  try {
    await streamContainerInstanceLog(
      { pod, ...source },
      container,
      { follow: true, timestamps: false, previous: false, tailLines: 0 },
      runtime.scope,
      (chunk) => session.writeStdout(Buffer.from(chunk)).catch(() => stop.abort()),
      stop.signal,
    );
  } catch (err) {
    if (!session.aborted.aborted) await session.finish({ kind: "error", message: errorMessage(err) }).catch(() => {});
    stop.abort();
    return;
  }
  stop.abort();
  await watcher;
  if (!session.aborted.aborted) await session.finish({ kind: "exited", exitCode: 0, command: [] }).catch(() => {});
}

/** Pods share the host's network, so the pod's port is the host's loopback port. */
function forwardPort(port: number, data: Duplex, reportError: (message: string) => void): void {
  const upstream = connect({ host: "127.0.0.1", port });
  upstream.on("error", (err) => {
    reportError(`an error occurred forwarding ${port} -> ${port}: ${err.message}`);
    data.destroy();
  });
  data.on("error", () => upstream.destroy());
  upstream.once("connect", () => {
    data.pipe(upstream);
    upstream.pipe(data);
  });
}

/** `/run/{ns}/{pod}/{container}?cmd=…`: runs a command and answers with its combined output. */
export async function runCommand(runtime: KubeletRuntime, route: StreamingRoute, params: URLSearchParams): Promise<{ output: string; exitCode: number }> {
  const query = new Query(params, ["cmd"]);
  const cmd = query.all("cmd").join(" ").trim();
  if (cmd === "") throw new RequestError(400, "you must specify a command: cmd=...");
  await findTarget(runtime, route);
  const process = await runtime.exec(route.namespace ?? "", route.pod ?? "", route.container ?? "", { command: cmd.split(/\s+/), stdin: false, tty: false });
  const chunks: Uint8Array[] = [];
  const collect = async (source: AsyncIterable<Uint8Array> | undefined): Promise<void> => {
    if (source !== undefined) for await (const chunk of source) chunks.push(chunk);
  };
  await Promise.all([collect(process.stdout), collect(process.stderr)]);
  const { exitCode } = await process.exited;
  return { output: Buffer.concat(chunks).toString("utf8"), exitCode };
}
