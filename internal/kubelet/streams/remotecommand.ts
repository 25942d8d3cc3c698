/**
 * The remote command protocols of exec and attach, server side, as the kubelet speaks them
 * (k8s.io/kubelet cri/streaming/remotecommand): over SPDY/3.1 (`v4|v3|v2.channel.k8s.io`,
 * `channel.k8s.io`), one stream per standard stream named by its `streamType` header; over WebSocket
 * (`v5|v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, `channel.k8s.io`, `base64.channel.k8s.io`),
 * channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. It moves bytes and the final status only;
 * what runs is the caller's business.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex, Readable, Writable } from "node:stream";
import { VksError } from "../../errors.ts";
import type { TerminalSize } from "../../exec/exec.ts";
import { SpdySession, type SpdyStream } from "./spdy.ts";
import { isSpdyRequest, isWebSocketRequest, negotiateStreamProtocol, refuseNonUpgrade, spdyUpgradeResponse } from "./upgrade.ts";
import { acceptWebSocket, CloseCode, type WebSocketConnection } from "./websocket.ts";
import { ChannelMux } from "./ws-channels.ts";

export type { TerminalSize } from "../../exec/exec.ts";

export interface RemoteCommandOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
  /** How long SPDY clients get to open their streams; the kubelet's default is 30 s. */
  streamCreationTimeoutMs?: number;
}

export type RemoteCommandResult = { kind: "exited"; exitCode: number; command: string[] } | { kind: "error"; message: string };

export interface RemoteCommandSession {
  /** The negotiated subprotocol, e.g. "v5.channel.k8s.io" (WebSocket) or "v4.channel.k8s.io" (SPDY). */
  readonly protocol: string;
  /** Ends when the client closes stdin; undefined when stdin was not requested. */
  readonly stdin: AsyncIterable<Uint8Array> | undefined;
  /** Resolves when the transport accepted the data (backpressure); rejects once the client is gone. */
  writeStdout(data: Uint8Array): Promise<void>;
  writeStderr(data: Uint8Array): Promise<void>;
  /** Terminal size changes; the latest size sent before a listener was set is delivered to it. */
  onResize(listener: (size: TerminalSize) => void): void;
  /** Writes the status on the error stream exactly as the kubelet does, then closes the connection. */
  finish(result: RemoteCommandResult): Promise<void>;
  /** Aborted when the client went away or the connection broke. */
  readonly aborted: AbortSignal;
}

export const StreamProtocol = {
  v1: "channel.k8s.io",
  v2: "v2.channel.k8s.io",
  v3: "v3.channel.k8s.io",
  v4: "v4.channel.k8s.io",
  v5: "v5.channel.k8s.io",
  base64: "base64.channel.k8s.io",
  v4Base64: "v4.base64.channel.k8s.io",
} as const;

/** The kubelet's SPDY protocols, in its order (the client's order decides). */
export const SPDY_REMOTE_COMMAND_PROTOCOLS: readonly string[] = [StreamProtocol.v4, StreamProtocol.v3, StreamProtocol.v2, StreamProtocol.v1];
/** "" accepts a client that offers no subprotocol, as wsstream does. */
export const WEBSOCKET_REMOTE_COMMAND_PROTOCOLS: readonly string[] = [
  StreamProtocol.v5,
  StreamProtocol.v4,
  StreamProtocol.v4Base64,
  StreamProtocol.v1,
  StreamProtocol.base64,
  "",
];

const DEFAULT_STREAM_CREATION_TIMEOUT_MS = 30_000;

const Channel = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4 } as const;

/** metav1.Status for a result, field for field as the kubelet marshals it (TypeMeta empty, no code on Success). */
export function remoteCommandStatus(result: RemoteCommandResult): Record<string, unknown> {
  if (result.kind === "exited" && result.exitCode === 0) return { metadata: {}, status: "Success" };
  if (result.kind === "exited") {
    return {
      metadata: {},
      status: "Failure",
      message: `command terminated with non-zero exit code: error executing command [${result.command.join(" ")}], exit code ${result.exitCode}`,
      reason: "NonZeroExitCode",
      details: { causes: [{ reason: "ExitCode", message: String(result.exitCode) }] },
    };
  }
  return {
    metadata: {},
    status: "Failure",
    message: `Internal error occurred: ${result.message}`,
    reason: "InternalError",
    details: { causes: [{ message: result.message }] },
    code: 500,
  };
}

/**
 * What goes on the error stream: v4 and later write the Status as JSON; older protocols write the
 * failure's message as plain text and nothing on success.
 */
export function encodeRemoteCommandStatus(protocol: string, result: RemoteCommandResult): Buffer {
  const status = remoteCommandStatus(result);
  if (protocol === StreamProtocol.v4 || protocol === StreamProtocol.v5 || protocol === StreamProtocol.v4Base64) return Buffer.from(JSON.stringify(status));
  if (status.status === "Success") return Buffer.alloc(0);
  return Buffer.from(String(status.message));
}

/** Splits a byte stream of concatenated JSON objects (client-go's json.Encoder output) into objects. */
export class JsonObjectSplitter {
  private text = "";
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;
  private scanned = 0;

  push(chunk: string): unknown[] {
    this.text += chunk;
    const objects: unknown[] = [];
    for (let index = this.scanned; index < this.text.length; index++) {
      const char = this.text[index];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (char === "\\") this.escaped = true;
        else if (char === '"') this.inString = false;
        continue;
      }
      if (char === '"') this.inString = true;
      else if (char === "{") {
        if (this.depth === 0) this.start = index;
        this.depth++;
      } else if (char === "}" && this.depth > 0) {
        this.depth--;
        if (this.depth === 0) {
          try {
            objects.push(JSON.parse(this.text.slice(this.start, index + 1)));
          } catch {
            // A malformed size is dropped, as the kubelet drops it.
          }
        }
      }
    }
    if (this.depth === 0) {
      this.text = "";
      this.scanned = 0;
    } else {
      this.text = this.text.slice(this.start);
      this.start = 0;
      this.scanned = this.text.length;
    }
    return objects;
  }
}

function terminalSizeOf(value: unknown): TerminalSize | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const width = (value as Record<string, unknown>).Width;
  const height = (value as Record<string, unknown>).Height;
  if (typeof width !== "number" || typeof height !== "number") return undefined;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0 || width > 65535 || height > 65535) return undefined;
  return { width, height };
}

function writeTo(stream: Writable | undefined, data: Uint8Array): Promise<void> {
  if (stream === undefined || data.byteLength === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    stream.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

/** Ends a writable and waits until everything written before has gone out (or the stream died). */
function endWritable(stream: Writable | undefined): Promise<void> {
  if (stream === undefined || stream.writableFinished || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off("finish", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("finish", done);
    stream.once("close", done);
    stream.end();
  });
}

interface RemoteCommandStreams {
  protocol: string;
  stdin: Duplex | undefined;
  stdout: Duplex | undefined;
  stderr: Duplex | undefined;
  error: Duplex | undefined;
  resize: Readable | undefined;
  aborted: AbortSignal;
  /** Sends the encoded status and closes the connection, once the output streams have been flushed. */
  close(status: Buffer): Promise<void>;
}

class Session implements RemoteCommandSession {
  private resizeListener: ((size: TerminalSize) => void) | undefined;
  private pendingSize: TerminalSize | undefined;
  private finished = false;

  constructor(private readonly streams: RemoteCommandStreams) {
    const resize = streams.resize;
    if (resize !== undefined) {
      const splitter = new JsonObjectSplitter();
      resize.on("data", (chunk: Buffer) => {
        for (const object of splitter.push(chunk.toString("utf8"))) {
          const size = terminalSizeOf(object);
          if (size === undefined) continue;
          if (this.resizeListener === undefined) this.pendingSize = size;
          else this.resizeListener(size);
        }
      });
    }
  }

  get protocol(): string {
    return this.streams.protocol;
  }

  get stdin(): AsyncIterable<Uint8Array> | undefined {
    const stdin = this.streams.stdin;
    // Reading stdin to its end must not destroy the stream: that would reset it instead of closing it
    // with the rest of the session.
    return stdin === undefined ? undefined : { [Symbol.asyncIterator]: () => stdin.iterator({ destroyOnReturn: false }) };
  }

  get aborted(): AbortSignal {
    return this.streams.aborted;
  }

  writeStdout(data: Uint8Array): Promise<void> {
    return writeTo(this.streams.stdout, data);
  }

  writeStderr(data: Uint8Array): Promise<void> {
    return writeTo(this.streams.stderr, data);
  }

  onResize(listener: (size: TerminalSize) => void): void {
    this.resizeListener = listener;
    const pending = this.pendingSize;
    this.pendingSize = undefined;
    if (pending !== undefined) listener(pending);
  }

  async finish(result: RemoteCommandResult): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await Promise.all([endWritable(this.streams.stdout), endWritable(this.streams.stderr)]);
    await this.streams.close(encodeRemoteCommandStatus(this.streams.protocol, result));
  }
}

/**
 * Accepts an exec or attach upgrade (SPDY/3.1 or WebSocket) on the socket the HTTP server handed over,
 * writes the 101 and, for SPDY, waits for the client's streams as the kubelet does. A request that is no
 * acceptable upgrade is answered with an HTTP error, and UpgradeRefused is thrown.
 */
export async function acceptRemoteCommand(request: IncomingMessage, socket: Duplex, head: Buffer, options: RemoteCommandOptions): Promise<RemoteCommandSession> {
  if (isWebSocketRequest(request)) return new Session(acceptWebSocketStreams(request, socket, head, options));
  if (isSpdyRequest(request)) return new Session(await acceptSpdyStreams(request, socket, head, options));
  refuseNonUpgrade(request, socket);
}

function acceptWebSocketStreams(request: IncomingMessage, socket: Duplex, head: Buffer, options: RemoteCommandOptions): RemoteCommandStreams {
  const connection: WebSocketConnection = acceptWebSocket(request, socket, head, WEBSOCKET_REMOTE_COMMAND_PROTOCOLS);
  const protocol = connection.protocol;
  const mux = new ChannelMux(connection, 5, {
    base64: protocol === StreamProtocol.base64 || protocol === StreamProtocol.v4Base64,
    closeSignal: protocol === StreamProtocol.v5,
  });
  const stdout = options.stdout ? mux.channel(Channel.stdout) : undefined;
  const stderr = options.stderr ? mux.channel(Channel.stderr) : undefined;
  const error = mux.channel(Channel.error);
  // As the kubelet: an empty message on the lowest writable channel tells the client the session is up.
  void mux.send(options.stdout ? Channel.stdout : options.stderr ? Channel.stderr : Channel.error, new Uint8Array(0)).catch(() => undefined);
  return {
    protocol,
    stdin: options.stdin ? mux.channel(Channel.stdin) : undefined,
    stdout,
    stderr,
    error,
    resize: mux.channel(Channel.resize),
    aborted: connection.aborted,
    async close(status: Buffer): Promise<void> {
      if (status.length > 0) await writeTo(error, status).catch(() => undefined);
      connection.close(CloseCode.normal);
    },
  };
}

const STREAM_TYPES = ["error", "stdin", "stdout", "stderr", "resize"] as const;
type StreamType = (typeof STREAM_TYPES)[number];

function isStreamType(value: string | undefined): value is StreamType {
  return (STREAM_TYPES as readonly string[]).includes(value ?? "");
}

async function acceptSpdyStreams(request: IncomingMessage, socket: Duplex, head: Buffer, options: RemoteCommandOptions): Promise<RemoteCommandStreams> {
  const protocol = negotiateStreamProtocol(request, socket, SPDY_REMOTE_COMMAND_PROTOCOLS);
  socket.write(spdyUpgradeResponse(protocol));
  const session = new SpdySession(socket, { initialBytes: head });
  const supportsResize = protocol === StreamProtocol.v3 || protocol === StreamProtocol.v4;
  const expected = 1 + Number(options.stdin) + Number(options.stdout) + Number(options.stderr) + Number(options.tty && supportsResize);
  const byType = new Map<StreamType, SpdyStream>();
  const all: SpdyStream[] = [];

  await new Promise<void>((resolve, reject) => {
    let replied = 0;
    const timer = setTimeout(() => {
      reject(new VksError("timed out waiting for client to create streams", { hint: "the client upgraded to SPDY but did not open the streams it asked for" }));
      session.destroy();
    }, options.streamCreationTimeoutMs ?? DEFAULT_STREAM_CREATION_TIMEOUT_MS);
    session.aborted.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new VksError("the client closed the connection before opening its streams"));
    }, { once: true });
    session.onStream((stream) => {
      all.push(stream);
      const type = stream.header("streamtype");
      // Every stream is answered, as the kubelet's connection answers them; only known types count.
      const reply = stream.accept();
      if (!isStreamType(type)) return;
      byType.set(type, stream);
      void reply.then(() => {
        replied++;
        if (replied === expected) {
          clearTimeout(timer);
          resolve();
        }
      }, () => undefined);
    });
  });

  return {
    protocol,
    stdin: options.stdin ? byType.get("stdin") : undefined,
    stdout: byType.get("stdout"),
    stderr: byType.get("stderr"),
    error: byType.get("error"),
    resize: byType.get("resize"),
    aborted: session.aborted,
    async close(status: Buffer): Promise<void> {
      const error = byType.get("error");
      if (status.length > 0) await writeTo(error, status).catch(() => undefined);
      // Half-close every stream (stdin too: client-go waits for that before it lets go of stdin).
      await Promise.all(all.map((stream) => endWritable(stream)));
      session.close();
    },
  };
}
