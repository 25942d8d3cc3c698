/**
 * A WebSocket as a plain byte stream: binary messages in, binary messages out. kubectl >= 1.31 runs
 * port-forward's SPDY session inside the subprotocol `SPDY/3.1+portforward.k8s.io` this way (client-go
 * tunneling_connection.go: one message per write, messages read back to back).
 */
import { Duplex } from "node:stream";
import { CloseCode, type WebSocketConnection } from "./websocket.ts";

export class WebSocketByteStream extends Duplex {
  constructor(private readonly connection: WebSocketConnection) {
    super({ allowHalfOpen: false });
    connection.onMessage((message) => {
      if (!message.binary) {
        connection.close(CloseCode.unsupportedData, "the tunnel carries binary messages only");
        return;
      }
      if (!this.push(message.data)) connection.pause();
    });
    // What arrived before the close is still read out; then the stream ends and closes itself.
    connection.aborted.addEventListener("abort", () => this.push(null), { once: true });
  }

  override _read(): void {
    this.connection.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.connection.send(chunk).then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.connection.close(CloseCode.normal);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.connection.aborted.aborted) this.connection.destroy();
    callback(error);
  }
}
