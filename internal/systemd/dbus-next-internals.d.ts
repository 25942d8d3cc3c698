/** The parts of dbus-next's own modules wire-reader.ts uses; untyped in the package. */
declare module "dbus-next/lib/message.js" {
  const messageModule: { unmarshalMessages: unknown; unmarshall(buffer: Buffer, options?: unknown): Record<string, unknown> };
  export default messageModule;
}

declare module "dbus-next/lib/dbus-buffer.js" {
  export default class DBusBuffer {
    constructor(buffer: Buffer, startPos: number, endian: number | undefined, fds: number[] | undefined, options: unknown);
    readArray(elementType: unknown, arrayBlobSize: number): unknown;
    align(power: number): void;
    read(signature: string): unknown;
  }
}
