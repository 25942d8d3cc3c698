import { describe, expect, test } from "bun:test";
import { Message } from "dbus-next";
// dbus-next's own marshaller and parser, the reference the direct encoder must match byte for byte.
// @ts-expect-error no typings for dbus-next's internals
import { marshallMessage } from "dbus-next/lib/marshall-compat.js";
import messageCodec from "dbus-next/lib/message.js";
import { encodeStringMethodCall, type MethodCall } from "../../internal/systemd/wire.ts";

const SYSTEMD = { destination: "org.freedesktop.systemd1", path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager" };
const NO_AUTO_START = 2;

function reference(call: MethodCall, serial: number): Buffer {
  const message = new Message({ serial, flags: NO_AUTO_START, ...call, signature: call.signature ?? "", body: call.body ?? [] });
  return (marshallMessage(message) as [Buffer, number[]])[0];
}

describe("encodeStringMethodCall", () => {
  const calls: [string, MethodCall][] = [
    ["no arguments", { ...SYSTEMD, member: "Subscribe" }],
    ["one argument", { ...SYSTEMD, member: "GetUnit", signature: "s", body: ["vks.default.web.c.0b7e.service"] }],
    [
      "a property Get on a unit path",
      {
        destination: "org.freedesktop.systemd1",
        path: "/org/freedesktop/systemd1/unit/vks_2edefault_2eweb_2ec_2e0b7e_2eservice",
        interface: "org.freedesktop.DBus.Properties",
        member: "Get",
        signature: "ss",
        body: ["org.freedesktop.systemd1.Service", "ExecMainStartTimestamp"],
      },
    ],
    ["a match rule with quotes and commas", { destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "AddMatch", signature: "s", body: ["type='signal',sender='org.freedesktop.systemd1',path_namespace='/org/freedesktop/systemd1/unit'"] }],
    ["non-ASCII and empty strings", { ...SYSTEMD, member: "Three", signature: "sss", body: ["ünï-çødé ✓", "", "x".repeat(300)] }],
    ["the root path and a unique bus name", { destination: ":1.42", path: "/", interface: "org.example.Foo", member: "Bar", signature: "s", body: ["1234567"] }],
  ];

  for (const [label, call] of calls) {
    test(`${label}: the same bytes as dbus-next, and parsed back to the same call`, () => {
      for (const serial of [1, 7, 65_537, 0xffff_fffe]) {
        const encoded = encodeStringMethodCall(call, serial, NO_AUTO_START);
        expect(encoded).toBeDefined();
        expect(Buffer.compare(encoded as Buffer, reference(call, serial))).toBe(0);
        // dbus-next's whole-message parser cannot read a message without a body signature.
        if (!call.signature) continue;
        const parsed = messageCodec.unmarshall(encoded as Buffer);
        expect(parsed).toMatchObject({ type: 1, flags: NO_AUTO_START, serial, path: call.path, interface: call.interface, member: call.member, destination: call.destination });
        expect(parsed["body"]).toEqual(call.body ?? []);
      }
    });
  }

  test("calls it cannot encode are left to dbus-next", () => {
    const get = calls[2]?.[1] as MethodCall;
    expect(encodeStringMethodCall({ ...SYSTEMD, member: "KillUnit", signature: "ssi", body: ["u", "all", 9] }, 1, 0)).toBeUndefined();
    expect(encodeStringMethodCall({ ...get, body: ["a\0b", "MainPID"] }, 1, 0)).toBeUndefined();
    expect(encodeStringMethodCall({ ...get, signature: "s" }, 1, 0)).toBeUndefined();
    expect(encodeStringMethodCall({ ...get, path: "/org/free-desktop" }, 1, 0)).toBeUndefined();
    expect(encodeStringMethodCall({ ...get, path: "/trailing/" }, 1, 0)).toBeUndefined();
    expect(encodeStringMethodCall({ ...get, interface: "NoDot" }, 1, 0)).toBeUndefined();
    expect(encodeStringMethodCall({ ...get, member: "Get.Property" }, 1, 0)).toBeUndefined();
    expect(encodeStringMethodCall({ ...get, destination: "not a name" }, 1, 0)).toBeUndefined();
  });
});
