import { describe, expect, test } from "bun:test";
import { PassThrough } from "node:stream";
import { Message, Variant } from "dbus-next";
// dbus-next's own marshaller and conversion: the reference the direct decoder must match value for value.
// @ts-expect-error no typings for dbus-next's internals
import { marshallMessage, messageToJsFmt } from "dbus-next/lib/marshall-compat.js";
import messageCodec from "dbus-next/lib/message.js";
import { decodeMessage } from "../../internal/systemd/wire-decode.ts";
import { routeMessages } from "../../internal/systemd/wire-reader.ts";

const METHOD_RETURN = 2;
const ERROR = 3;
const SIGNAL = 4;

function encode(fields: Record<string, unknown>): Buffer {
  return (marshallMessage(new Message(fields as ConstructorParameters<typeof Message>[0])) as [Buffer, number[]])[0];
}

/** What dbus-next makes of the bytes: its parser, then its conversion into the body format it emits. */
function reference(bytes: Buffer): Record<string, unknown> {
  const raw = messageCodec.unmarshall(bytes);
  const message = messageToJsFmt(raw) as Record<string, unknown>;
  return { ...message };
}

const reply = (signature: string, body: unknown[], serial = 7): Buffer =>
  encode({ type: METHOD_RETURN, serial, replySerial: 41, destination: ":1.9", sender: ":1.1", signature, body });

const UNIT_PATH = "/org/freedesktop/systemd1/unit/vks_2edefault_2eweb_2ec_2e0b7e_2eservice";

describe("decodeMessage", () => {
  const bodies: [string, string, unknown[]][] = [
    ["a uint32 in a variant (MainPID)", "v", [new Variant("u", 4242)]],
    ["a uint64 in a variant (a timestamp), beyond 2^53", "v", [new Variant("t", 18_446_744_073_709_551_615n)]],
    ["a signed int64, negative", "v", [new Variant("x", -9_007_199_254_740_993n)]],
    ["a string, empty and non-ASCII", "vv", [new Variant("s", ""), new Variant("s", "ünï-çødé ✓")]],
    ["booleans, bytes, int16, uint16, int32, double", "bynqid", [true, 255, -32768, 65535, -2147483648, 3.25]],
    ["an object path and a signature", "og", [UNIT_PATH, "a(sasbttttuii)"]],
    ["a string array", "v", [new Variant("as", ["a", "", "ccc"])]],
    ["an empty array of 8-aligned structs still pads to 8", "ya(tt)u", [1, [], 9]],
    [
      "ExecStart: a(sasbttttuii)",
      "v",
      [new Variant("a(sasbttttuii)", [["/bin/sleep", ["/bin/sleep", "infinity"], false, 1n, 2n, 3n, 4n, 4242, 1, 0]])],
    ],
    ["bytes (ay) come out as a Buffer", "ay", [Buffer.from([0, 1, 2, 254])]],
    ["a variant inside a variant", "v", [new Variant("v", new Variant("u", 3))]],
    ["a dict of variants (a{sv})", "a{sv}", [{ MainPID: new Variant("u", 1), NRestarts: new Variant("u", 0), Id: new Variant("s", "x.service") }]],
    ["a dict of strings", "a{ss}", [{ one: "1", twenty: "20" }]],
    [
      "ListUnitsByPatterns' rows: a(ssssssouso)",
      "a(ssssssouso)",
      [[["vks.a.b.c.d.service", "desc", "loaded", "active", "running", "", UNIT_PATH, 0, "", "/"]]],
    ],
    ["nested arrays and structs", "a(sa(ia{st}))", [[["x", [[1, { k: 5n }], [2, {}]]]]]],
  ];

  for (const [label, signature, body] of bodies) {
    test(`${label}: the same values as dbus-next`, () => {
      for (const serial of [1, 65_537]) {
        const bytes = reply(signature, body, serial);
        const decoded = decodeMessage(bytes);
        expect(decoded).toBeDefined();
        const expected = reference(bytes);
        expect(decoded).toMatchObject({ type: METHOD_RETURN, serial, replySerial: 41, destination: ":1.9", sender: ":1.1", signature });
        expect(decoded?.body).toEqual(expected["body"] as unknown[]);
      }
    });
  }

  test("a PropertiesChanged signal", () => {
    const bytes = encode({
      type: SIGNAL,
      serial: 99,
      sender: ":1.1",
      path: UNIT_PATH,
      interface: "org.freedesktop.DBus.Properties",
      member: "PropertiesChanged",
      signature: "sa{sv}as",
      body: ["org.freedesktop.systemd1.Service", { MainPID: new Variant("u", 77), ExecMainStartTimestamp: new Variant("t", 1_700_000_000_000_000n) }, ["ExecMainStatus"]],
    });
    const decoded = decodeMessage(bytes);
    expect(decoded).toMatchObject({ type: SIGNAL, serial: 99, path: UNIT_PATH, interface: "org.freedesktop.DBus.Properties", member: "PropertiesChanged" });
    expect(decoded?.body).toEqual(reference(bytes)["body"] as unknown[]);
  });

  test("an error reply, and a reply without a body", () => {
    const error = encode({ type: ERROR, serial: 3, replySerial: 2, errorName: "org.freedesktop.systemd1.NoSuchUnit", signature: "s", body: ["Unit x.service not loaded."] });
    expect(decodeMessage(error)).toMatchObject({ type: ERROR, replySerial: 2, errorName: "org.freedesktop.systemd1.NoSuchUnit", body: ["Unit x.service not loaded."] });
    const empty = encode({ type: METHOD_RETURN, serial: 4, replySerial: 3, signature: "", body: [] });
    expect(decodeMessage(empty)).toMatchObject({ type: METHOD_RETURN, replySerial: 3, body: [] });
  });

  test("what it does not take is left to dbus-next: big-endian, truncated, wrong lengths, file descriptors", () => {
    const bytes = reply("v", [new Variant("u", 1)]);
    const bigEndian = Buffer.from(bytes);
    bigEndian[0] = 0x42;
    expect(decodeMessage(bigEndian)).toBeUndefined();
    expect(decodeMessage(bytes.subarray(0, bytes.length - 1))).toBeUndefined();
    expect(decodeMessage(Buffer.concat([bytes, Buffer.alloc(8)]))).toBeUndefined();
    const lying = Buffer.from(bytes);
    // A body whose variant claims a type 'h' (a file descriptor), which vks never negotiates.
    const signatureAt = lying.indexOf(Buffer.from([1, 0x75, 0])); // variant signature "u"
    expect(signatureAt).toBeGreaterThan(0);
    lying[signatureAt + 1] = 0x68;
    expect(decodeMessage(lying)).toBeUndefined();
    expect(decodeMessage(Buffer.alloc(4))).toBeUndefined();
  });

  test("never throws on random bytes, and agrees with dbus-next whenever it decodes them", () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) >>> 0) / 2 ** 32);
    const samples = bodies.map(([, signature, body]) => reply(signature, body));
    for (let i = 0; i < 3000; i++) {
      const bytes = Buffer.from(samples[i % samples.length] as Buffer);
      // Flip a few bytes past the fixed header, where lengths, signatures and values are.
      for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--) bytes[16 + Math.floor(random() * (bytes.length - 16))] = Math.floor(random() * 256);
      const decoded = decodeMessage(bytes);
      if (decoded === undefined) continue;
      let expected: Record<string, unknown> | undefined;
      try {
        expected = reference(bytes);
      } catch {
        // dbus-next refuses what vks decoded: only acceptable for header fields dbus-next validates more.
        continue;
      }
      if (expected["signature"] === decoded.signature) expect(decoded.body).toEqual(((expected["body"] as unknown[] | undefined) ?? []));
    }
  });
});

describe("the stream reader put in dbus-next's place", () => {
  for (const [how, cut] of [
    ["fed byte by byte", (bytes: Buffer) => [...bytes].map((byte) => Buffer.from([byte]))],
    ["all in one chunk", (bytes: Buffer) => [bytes]],
    ["in chunks of 37 bytes", (bytes: Buffer) => Array.from({ length: Math.ceil(bytes.length / 37) }, (_, i) => bytes.subarray(i * 37, i * 37 + 37))],
  ] as const)
  test(`cuts a stream ${how} into messages, in order; method calls and refused ones go to dbus-next`, () => {
    const stream = new PassThrough();
    const taken: number[] = [];
    const toDbusNext: number[] = [];
    routeMessages(stream, (message) => {
      if (message.serial === 12) return false;
      taken.push(message.serial);
      return true;
    });
    (messageCodec.unmarshalMessages as (stream: PassThrough, onMessage: (raw: Record<string, unknown>) => void, options: unknown) => void)(
      stream,
      (raw) => toDbusNext.push(Number(raw["serial"])),
      {},
    );
    const call = encode({ type: 1, serial: 11, path: "/org/example", interface: "org.freedesktop.DBus.Peer", member: "Ping", destination: ":1.9" });
    const messages = [reply("v", [new Variant("u", 1)], 10), call, reply("s", ["x"], 12), reply("a{sv}", [{ A: new Variant("b", true) }], 13)];
    for (const chunk of cut(Buffer.concat(messages))) stream.write(chunk);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(taken).toEqual([10, 13]);
        expect(toDbusNext).toEqual([11, 12]);
        resolve();
      }),
    );
  });
});
