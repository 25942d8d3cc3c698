/**
 * Kubernetes' channel subprotocols over one WebSocket (apimachinery wsstream): every message starts with
 * the channel number (a byte for `channel.k8s.io` and its versions, an ASCII digit with a base64 body for
 * `base64.channel.k8s.io`); v5 adds channel 255, whose one-byte body names a channel the client closed.
 * Each channel is a node Duplex: readable = what the client sent on it, writable = messages to it.
 */
import { Duplex } from "node:stream";
import type { WebSocketConnection, WebSocketMessage } from "./websocket.ts";

/** Channel 255 (v5): "I will send nothing more on the channel in this message's one-byte body". */
export const CLOSE_CHANNEL = 255;
/** Unread bytes a channel may hold before the socket is paused. */
const CHANNEL_BUFFER_LIMIT = 256 * 1024;

export interface ChannelEncoding {
  /** Text messages with an ASCII channel digit and a base64 body (`*base64.channel.k8s.io`). */
  base64: boolean;
  /** The client may half-close a channel with channel 255 (`v5.channel.k8s.io`). */
  closeSignal: boolean;
}

export class ChannelMux {
  readonly channels: ChannelStream[];
  private readonly congested = new Set<ChannelStream>();

  constructor(
    readonly connection: WebSocketConnection,
    channelCount: number,
    readonly encoding: ChannelEncoding,
  ) {
    this.channels = Array.from({ length: channelCount }, (_, index) => new ChannelStream(this, index));
    connection.onMessage((message) => this.receive(message));
    connection.aborted.addEventListener("abort", () => {
      for (const channel of this.channels) channel.connectionLost();
    }, { once: true });
  }

  channel(index: number): ChannelStream {
    const channel = this.channels[index];
    if (channel === undefined) throw new RangeError(`no channel ${index}`);
    return channel;
  }

  /** One message on a channel; resolves when the socket took it. */
  send(index: number, data: Uint8Array): Promise<void> {
    if (this.encoding.base64) return this.connection.send(String.fromCharCode(48 + index) + Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64"));
    const message = Buffer.allocUnsafe(1 + data.byteLength);
    message[0] = index;
    message.set(data, 1);
    return this.connection.send(message);
  }

  setCongested(channel: ChannelStream, congested: boolean): void {
    if (congested) this.congested.add(channel);
    else this.congested.delete(channel);
    if (this.congested.size > 0) this.connection.pause();
    else this.connection.resume();
  }

  private receive(message: WebSocketMessage): void {
    if (message.data.length === 0) return;
    if (this.encoding.base64) {
      const index = (message.data[0] ?? 0) - 48;
      const body = Buffer.from(message.data.toString("latin1", 1), "base64");
      this.channels[index]?.receive(body);
      return;
    }
    const index = message.data[0] ?? 0;
    const body = message.data.subarray(1);
    if (index === CLOSE_CHANNEL && this.encoding.closeSignal) {
      if (body.length === 1) this.channels[body[0] ?? 0]?.receiveEnd();
      return;
    }
    // Messages for channels the session does not have are dropped, as wsstream drops them.
    this.channels[index]?.receive(body);
  }
}

export class ChannelStream extends Duplex {
  private readonly received: Buffer[] = [];
  private receivedBytes = 0;
  private wantsData = false;
  private inputEnded = false;
  private endPushed = false;

  constructor(
    private readonly mux: ChannelMux,
    readonly index: number,
  ) {
    super({ allowHalfOpen: true });
    // A dropped connection reaches users through 'close' and the session's abort signal.
    this.on("error", () => undefined);
  }

  receive(data: Buffer): void {
    if (this.inputEnded || data.length === 0) return;
    this.received.push(data);
    this.receivedBytes += data.length;
    if (this.receivedBytes > CHANNEL_BUFFER_LIMIT) this.mux.setCongested(this, true);
    if (this.wantsData) this.flush();
  }

  receiveEnd(): void {
    this.inputEnded = true;
    this.flush();
  }

  connectionLost(): void {
    this.inputEnded = true;
    this.flush();
    this.mux.setCongested(this, false);
    if (!this.writableFinished) this.destroy();
  }

  override _read(): void {
    this.wantsData = true;
    this.flush();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.mux.send(this.index, chunk).then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    // The channel protocols have no way for the server to half-close one channel; the session decides
    // when the whole connection closes.
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.mux.setCongested(this, false);
    callback(error);
  }

  private flush(): void {
    while (this.received.length > 0) {
      const chunk = this.received.shift();
      if (chunk === undefined) break;
      this.receivedBytes -= chunk.length;
      if (!this.push(chunk)) {
        this.wantsData = false;
        break;
      }
    }
    if (this.receivedBytes <= CHANNEL_BUFFER_LIMIT / 2) this.mux.setCongested(this, false);
    if (this.received.length === 0 && this.inputEnded && !this.endPushed) {
      this.endPushed = true;
      this.push(null);
    }
  }
}
