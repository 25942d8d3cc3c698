/**
 * The server side of a SPDY/3.1 session over any byte duplex (a socket, or a WebSocket tunnel): the
 * client opens streams with SYN_STREAM, the server answers each with SYN_REPLY (or RST_STREAM), and
 * each stream is a node Duplex with half-close (DATA with FLAG_FIN) and reset.
 *
 * Flow control: every stream starts with a 64 KiB receive window, reopened with WINDOW_UPDATE as the
 * stream's reader consumes data. moby/spdystream, which kubectl and every client-go program use, neither
 * sends WINDOW_UPDATE nor honours one: it relies on TCP backpressure. So the peer's window is enforced on
 * our sends only once the peer has shown it keeps one (a WINDOW_UPDATE or SETTINGS_INITIAL_WINDOW_SIZE);
 * and a peer that overruns our window is slowed by pausing the transport, not reset.
 */
import { Duplex } from "node:stream";
import { errorMessage } from "../../errors.ts";
import {
  decodeSettings,
  encodeControlFrame,
  encodeDataFrame,
  encodeGoAway,
  encodePing,
  encodeRstStream,
  encodeWindowUpdate,
  FLAG_FIN,
  FLAG_UNIDIRECTIONAL,
  type Frame,
  FrameReader,
  FrameType,
  GoAwayStatus,
  HeaderCompressor,
  HeaderDecompressor,
  RstStatus,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SPDY_VERSION,
  type SpdyHeaders,
  SpdyProtocolError,
} from "./spdy-frames.ts";
import { TransportWriter } from "./transport.ts";

export { RstStatus, type SpdyHeaders } from "./spdy-frames.ts";

export const DEFAULT_WINDOW = 64 * 1024;
/** Largest DATA payload sent; small enough to interleave streams, large enough to keep frames cheap. */
const MAX_DATA_CHUNK = 32 * 1024;
/** Unread bytes a stream may hold before the transport is paused (the peer may ignore our window). */
const STREAM_BUFFER_LIMIT = 256 * 1024;
/** How long a closed session waits for the peer to hang up before the transport is destroyed. */
const LINGER_MS = 10_000;

/** A timer that does not keep the process alive on its own. */
function unrefTimer(timer: ReturnType<typeof setTimeout>): ReturnType<typeof setTimeout> {
  timer.unref();
  return timer;
}

export interface SpdySessionOptions {
  /** Bytes that arrived with the upgrade request, before the session took the transport. */
  initialBytes?: Uint8Array;
}

export class SpdySession {
  private readonly streams = new Map<number, SpdyStream>();
  private readonly reader = new FrameReader();
  private readonly writer: TransportWriter;
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor = new HeaderDecompressor();
  private readonly abortController = new AbortController();
  private readonly frameQueue: Frame[] = [];
  private draining = false;
  private headerSendChain: Promise<unknown> = Promise.resolve();
  private streamHandler: ((stream: SpdyStream) => void) | undefined;
  private lastPeerStreamId = 0;
  private goingAway = false;
  private readonly congested = new Set<SpdyStream>();
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set once the peer has shown that it keeps windows; until then only TCP backpressure applies. */
  peerKeepsWindows = false;
  peerInitialWindow = DEFAULT_WINDOW;
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    private readonly transport: Duplex,
    options: SpdySessionOptions = {},
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.writer = new TransportWriter(transport);
    transport.on("data", (chunk: Buffer) => this.receive(chunk));
    transport.once("end", () => this.teardown("the client closed the connection"));
    transport.once("close", () => {
      this.teardown("the connection closed");
      if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
    });
    transport.on("error", (err: Error) => this.teardown(errorMessage(err)));
    if (options.initialBytes !== undefined && options.initialBytes.byteLength > 0) {
      const initial = options.initialBytes;
      queueMicrotask(() => this.receive(initial));
    }
  }

  /** Aborted when the connection ends, for whatever reason. */
  get aborted(): AbortSignal {
    return this.abortController.signal;
  }

  /** Receives every stream the client opens; it must accept() or reset() each one. */
  onStream(handler: (stream: SpdyStream) => void): void {
    this.streamHandler = handler;
  }

  /** Ends the session: GOAWAY, then the transport is half-closed and dropped once the peer hangs up. */
  close(): void {
    if (this.aborted.aborted) return;
    if (!this.goingAway) {
      this.goingAway = true;
      void this.writer.write(encodeGoAway(this.lastPeerStreamId, GoAwayStatus.ok)).catch(() => undefined);
    }
    this.writer.end();
    this.lingerTimer ??= unrefTimer(setTimeout(() => this.transport.destroy(), LINGER_MS));
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.transport.destroy();
    this.teardown("the session was destroyed");
  }

  sendFrame(frame: Buffer): Promise<void> {
    return this.writer.write(frame);
  }

  /** Sends a frame that carries a header block; blocks leave in compression order, as the shared zlib context requires. */
  sendHeaderFrame(type: number, flags: number, streamId: number, headers: SpdyHeaders): Promise<void> {
    const sent = this.headerSendChain.then(async () => {
      const block = await this.compressor.compress(headers);
      const payload = Buffer.allocUnsafe(4 + block.length);
      payload.writeUInt32BE(streamId & 0x7fffffff, 0);
      block.copy(payload, 4);
      await this.writer.write(encodeControlFrame(type, flags, payload));
    });
    this.headerSendChain = sent.catch(() => undefined);
    return sent;
  }

  /** Called by a stream when its reader fell behind or caught up. */
  setCongested(stream: SpdyStream, congested: boolean): void {
    if (congested) this.congested.add(stream);
    else this.congested.delete(stream);
    if (this.congested.size > 0) this.transport.pause();
    else if (!this.aborted.aborted) this.transport.resume();
  }

  forget(stream: SpdyStream): void {
    this.streams.delete(stream.id);
    this.setCongested(stream, false);
  }

  private receive(chunk: Uint8Array): void {
    if (this.aborted.aborted) return;
    this.frameQueue.push(...this.reader.push(chunk));
    if (!this.draining) void this.drain();
  }

  /** Frames are handled strictly in arrival order; only header blocks need to wait (for zlib). */
  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.frameQueue.length > 0 && !this.aborted.aborted) {
        const frame = this.frameQueue.shift();
        if (frame === undefined) break;
        await this.handle(frame);
      }
    } catch (err) {
      this.protocolFailure(err);
    } finally {
      this.draining = false;
    }
  }

  private protocolFailure(err: unknown): void {
    const status = err instanceof SpdyProtocolError ? GoAwayStatus.protocolError : GoAwayStatus.internalError;
    void this.writer.write(encodeGoAway(this.lastPeerStreamId, status)).catch(() => undefined);
    this.goingAway = true;
    this.writer.end();
    this.teardown(`SPDY protocol error: ${errorMessage(err)}`);
    unrefTimer(setTimeout(() => this.transport.destroy(), 100));
  }

  private async handle(frame: Frame): Promise<void> {
    if (frame.kind === "data") {
      const stream = this.streams.get(frame.streamId);
      if (stream === undefined) {
        // Data for a stream that is not open: the draft answers INVALID_STREAM.
        if (!this.goingAway) void this.sendFrame(encodeRstStream(frame.streamId, RstStatus.invalidStream)).catch(() => undefined);
        return;
      }
      stream.receiveData(frame.data, (frame.flags & FLAG_FIN) !== 0);
      return;
    }
    if (frame.version !== SPDY_VERSION) throw new SpdyProtocolError(`unsupported SPDY version ${frame.version}`);
    const payload = frame.payload;
    const need = (length: number): void => {
      if (payload.length < length) throw new SpdyProtocolError(`control frame type ${frame.type} is too short`);
    };
    switch (frame.type) {
      case FrameType.synStream: {
        need(10);
        const streamId = payload.readUInt32BE(0) & 0x7fffffff;
        const headers = await this.decompressor.decompress(payload.subarray(10));
        this.openStream(streamId, headers, frame.flags);
        return;
      }
      case FrameType.headers: {
        need(4);
        const streamId = payload.readUInt32BE(0) & 0x7fffffff;
        const headers = await this.decompressor.decompress(payload.subarray(4));
        const stream = this.streams.get(streamId);
        if (stream === undefined) return;
        stream.receiveHeaders(headers);
        if (frame.flags & FLAG_FIN) stream.receiveData(Buffer.alloc(0), true);
        return;
      }
      case FrameType.synReply: {
        need(4);
        // Only the server opens streams that get replies, and this server opens none; the block is still
        // inflated to keep the shared zlib context in step.
        await this.decompressor.decompress(payload.subarray(4));
        return;
      }
      case FrameType.rstStream: {
        need(8);
        this.streams.get(payload.readUInt32BE(0) & 0x7fffffff)?.receiveReset(payload.readUInt32BE(4));
        return;
      }
      case FrameType.settings: {
        for (const { id, value } of decodeSettings(payload)) {
          if (id !== SETTINGS_INITIAL_WINDOW_SIZE) continue;
          const change = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          this.peerKeepsWindows = true;
          for (const stream of this.streams.values()) stream.growSendWindow(change);
        }
        return;
      }
      case FrameType.ping: {
        need(4);
        // Pings from the client carry odd ids; answering our own (even) ids would loop.
        const id = payload.readUInt32BE(0);
        if (id % 2 === 1) await this.sendFrame(encodePing(id)).catch(() => undefined);
        return;
      }
      case FrameType.goAway: {
        this.goingAway = true;
        return;
      }
      case FrameType.windowUpdate: {
        need(8);
        const streamId = payload.readUInt32BE(0) & 0x7fffffff;
        const delta = payload.readUInt32BE(4) & 0x7fffffff;
        this.peerKeepsWindows = true;
        // Stream 0 is SPDY/3.1's session window; streams' own windows already bound what is in flight.
        if (streamId !== 0) this.streams.get(streamId)?.growSendWindow(delta);
        return;
      }
      default:
        // The draft: unknown control frames are ignored.
        return;
    }
  }

  private openStream(streamId: number, headers: SpdyHeaders, flags: number): void {
    if (streamId === 0 || streamId % 2 === 0 || streamId <= this.lastPeerStreamId) {
      void this.sendFrame(encodeRstStream(streamId, RstStatus.protocolError)).catch(() => undefined);
      return;
    }
    this.lastPeerStreamId = streamId;
    if (this.goingAway) {
      void this.sendFrame(encodeRstStream(streamId, RstStatus.refusedStream)).catch(() => undefined);
      return;
    }
    const stream = new SpdyStream(this, streamId, headers, (flags & FLAG_UNIDIRECTIONAL) !== 0);
    this.streams.set(streamId, stream);
    if (flags & FLAG_FIN) stream.receiveData(Buffer.alloc(0), true);
    if (this.streamHandler === undefined) stream.reset(RstStatus.refusedStream);
    else this.streamHandler(stream);
  }

  private teardown(reason: string): void {
    if (this.aborted.aborted) return;
    this.abortController.abort(new Error(reason));
    for (const stream of [...this.streams.values()]) stream.connectionLost();
    this.streams.clear();
    this.congested.clear();
    this.compressor.close();
    this.decompressor.close();
    if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
    if (!this.transport.destroyed) {
      // What is already queued still leaves (the peer may only have half-closed); then the transport goes.
      this.writer.end();
      this.lingerTimer = unrefTimer(setTimeout(() => this.transport.destroy(), LINGER_MS));
    }
    this.resolveClosed();
  }
}

/**
 * One SPDY stream opened by the client. Readable: the client's DATA; writable: ours. end() half-closes
 * with FLAG_FIN; reset() (or destroy()) ends both directions with RST_STREAM.
 */
export class SpdyStream extends Duplex {
  private readonly received: Buffer[] = [];
  private receivedBytes = 0;
  private remoteFinished = false;
  private endPushed = false;
  private wantsData = false;
  private unacknowledged = 0;
  private sendWindow: number;
  private windowWaiters: Array<() => void> = [];
  private replied = false;
  /** Settles once SYN_REPLY is on its way (or the stream died); DATA must not overtake it. */
  private readonly replySent: Promise<void>;
  private settleReply!: () => void;
  private localFinished = false;
  private dead = false;
  private readonly extraHeaders: SpdyHeaders[] = [];

  constructor(
    private readonly session: SpdySession,
    readonly id: number,
    readonly headers: SpdyHeaders,
    unidirectional: boolean,
  ) {
    super({ allowHalfOpen: true, highWaterMark: 64 * 1024 });
    this.replySent = new Promise((resolve) => {
      this.settleReply = resolve;
    });
    this.sendWindow = session.peerInitialWindow;
    this.localFinished = unidirectional;
    // Resets and connection loss reach users through 'close' and the session's abort signal; an
    // unhandled 'error' event must not take the whole kubelet down.
    this.on("error", () => undefined);
  }

  /** The first value of a header (names are case-insensitive). */
  header(name: string): string | undefined {
    return this.headers.get(name.toLowerCase())?.[0];
  }

  /** Headers the client sent later in HEADERS frames. */
  get laterHeaders(): readonly SpdyHeaders[] {
    return this.extraHeaders;
  }

  /** Sends SYN_REPLY; data written before this waits for it, as clients drop DATA on unreplied streams. */
  accept(headers: SpdyHeaders = new Map()): Promise<void> {
    if (!this.replied) {
      this.replied = true;
      if (this.dead) this.settleReply();
      else this.session.sendHeaderFrame(FrameType.synReply, 0, this.id, headers).then(this.settleReply, this.settleReply);
    }
    return this.replySent;
  }

  /** Ends the stream both ways with RST_STREAM. */
  reset(status: number = RstStatus.cancel): void {
    if (this.dead) return;
    this.dead = true;
    void this.session.sendFrame(encodeRstStream(this.id, status)).catch(() => undefined);
    this.finishReadable();
    this.session.forget(this);
    this.releaseWindowWaiters();
    this.destroy();
  }

  receiveData(data: Buffer, fin: boolean): void {
    if (this.remoteFinished) {
      if (data.length > 0) this.reset(RstStatus.streamAlreadyClosed);
      return;
    }
    if (data.length > 0) {
      this.received.push(data);
      this.receivedBytes += data.length;
    }
    if (fin) this.remoteFinished = true;
    if (this.receivedBytes > STREAM_BUFFER_LIMIT) this.session.setCongested(this, true);
    if (this.wantsData || fin) this.flushReceived();
  }

  receiveHeaders(headers: SpdyHeaders): void {
    this.extraHeaders.push(headers);
    this.emit("headers", headers);
  }

  receiveReset(status: number): void {
    if (this.dead) return;
    this.dead = true;
    this.finishReadable();
    this.session.forget(this);
    this.releaseWindowWaiters();
    this.destroy(status === RstStatus.cancel ? undefined : new Error(`the client reset the stream (status ${status})`));
  }

  connectionLost(): void {
    if (this.dead) return;
    this.dead = true;
    this.finishReadable();
    this.releaseWindowWaiters();
    this.destroy();
  }

  growSendWindow(delta: number): void {
    this.sendWindow += delta;
    if (this.sendWindow > 0) this.releaseWindowWaiters();
  }

  override _read(): void {
    this.wantsData = true;
    this.flushReceived();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.send(chunk).then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finishWritable().then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.dead) {
      this.dead = true;
      if (!(this.localFinished && this.remoteFinished)) void this.session.sendFrame(encodeRstStream(this.id, RstStatus.cancel)).catch(() => undefined);
      this.session.forget(this);
      this.releaseWindowWaiters();
    }
    callback(error);
  }

  private async send(data: Buffer): Promise<void> {
    await this.replySent;
    let offset = 0;
    while (offset < data.length) {
      if (this.dead) throw new Error("write on a closed stream");
      if (this.session.peerKeepsWindows && this.sendWindow <= 0) {
        await new Promise<void>((resolve) => this.windowWaiters.push(resolve));
        continue;
      }
      const room = this.session.peerKeepsWindows ? Math.min(MAX_DATA_CHUNK, this.sendWindow) : MAX_DATA_CHUNK;
      const piece = data.subarray(offset, offset + room);
      offset += piece.length;
      this.sendWindow -= piece.length;
      await this.session.sendFrame(encodeDataFrame(this.id, 0, piece));
    }
  }

  private async finishWritable(): Promise<void> {
    if (this.localFinished || this.dead) return;
    await this.replySent;
    if (this.dead) return;
    this.localFinished = true;
    await this.session.sendFrame(encodeDataFrame(this.id, FLAG_FIN, Buffer.alloc(0)));
    if (this.remoteFinished && this.endPushed) this.session.forget(this);
  }

  private flushReceived(): void {
    let consumed = 0;
    while (this.received.length > 0) {
      const chunk = this.received.shift();
      if (chunk === undefined) break;
      this.receivedBytes -= chunk.length;
      consumed += chunk.length;
      if (!this.push(chunk)) {
        this.wantsData = false;
        break;
      }
    }
    if (this.receivedBytes <= STREAM_BUFFER_LIMIT / 2) this.session.setCongested(this, false);
    if (consumed > 0 && !this.remoteFinished && !this.dead) {
      this.unacknowledged += consumed;
      // Batched, as the draft suggests: half a window at a time.
      if (this.unacknowledged >= DEFAULT_WINDOW / 2) {
        void this.session.sendFrame(encodeWindowUpdate(this.id, this.unacknowledged)).catch(() => undefined);
        this.unacknowledged = 0;
      }
    }
    if (this.received.length === 0 && this.remoteFinished) {
      this.finishReadable();
      if (this.localFinished) this.session.forget(this);
    }
  }

  private finishReadable(): void {
    if (this.endPushed) return;
    this.endPushed = true;
    this.received.length = 0;
    this.receivedBytes = 0;
    this.push(null);
  }

  private releaseWindowWaiters(): void {
    // A dead stream's writers must not wait for a reply that will never be sent.
    if (this.dead) this.settleReply();
    const waiters = this.windowWaiters;
    this.windowWaiters = [];
    for (const wake of waiters) wake();
  }
}
