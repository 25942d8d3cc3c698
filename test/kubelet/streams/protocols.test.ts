/**
 * The protocol variants kubectl does not exercise, driven byte for byte: older and base64 WebSocket
 * subprotocols, v5's CLOSE signal, resize messages, old SPDY protocol versions, refused negotiations, the
 * stream creation timeout, and port-forward's WebSocket channels and SPDY stream pairing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { IncomingMessage } from "node:http";
import { type AddressInfo, connect, createServer, type Server } from "node:net";
import type { Duplex } from "node:stream";
import { acceptPortForward } from "../../../internal/kubelet/streams/portforward.ts";
import { acceptRemoteCommand, type RemoteCommandOptions, type RemoteCommandSession } from "../../../internal/kubelet/streams/remotecommand.ts";
import { FLAG_FIN, FrameType, RstStatus } from "../../../internal/kubelet/streams/spdy-frames.ts";
import { UpgradeRefused } from "../../../internal/kubelet/streams/upgrade.ts";
import { isControl, isData, TestSpdyClient } from "./spdy-client.ts";
import { type HttpServerForTest, openWebSocket, type RawResponse, rawRequest, readBody, startUpgradeServer, TestWebSocket } from "./ws-client.ts";

/** The fake command: echoes stdin (or reports sizes), then exits with the code in the path. */
async function echoCommand(session: RemoteCommandSession, exitCode: number): Promise<void> {
  session.onResize((size) => void session.writeStdout(Buffer.from(`size ${size.width}x${size.height}`)));
  for await (const chunk of session.stdin ?? []) await session.writeStdout(chunk);
  await session.finish({ kind: "exited", exitCode, command: ["sh", "-c", `exit ${exitCode}`] });
}

let server: HttpServerForTest;
const outcomes: Array<{ path: string; error?: unknown }> = [];

beforeAll(async () => {
  server = await startUpgradeServer((request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    const options: RemoteCommandOptions = {
      stdin: url.searchParams.get("stdin") !== "false",
      stdout: true,
      stderr: url.searchParams.get("stderr") === "true",
      tty: url.searchParams.get("tty") === "true",
      streamCreationTimeoutMs: 300,
    };
    const run = async (): Promise<void> => {
      if (url.pathname === "/portforward") {
        const session = await acceptPortForward(request, socket, head, { ports: url.searchParams.getAll("port").map(Number), streamCreationTimeoutMs: 300 });
        session.onStream((stream) => {
          const target = connect(stream.port, "127.0.0.1");
          target.once("connect", () => {
            stream.data.pipe(target);
            target.pipe(stream.data);
          });
          target.once("error", (err) => stream.reportError(`error forwarding port ${stream.port}: ${err.message}`));
        });
        return;
      }
      const session = await acceptRemoteCommand(request, socket, head, options);
      await echoCommand(session, Number(url.searchParams.get("exit") ?? 0));
    };
    run().then(
      () => outcomes.push({ path: url.pathname }),
      (error: unknown) => outcomes.push({ path: url.pathname, error }),
    );
  });
});

afterAll(() => server.close());

function mustBeWebSocket(opened: TestWebSocket | RawResponse): TestWebSocket {
  if (!(opened instanceof TestWebSocket)) throw new Error(`upgrade refused: ${opened.head}`);
  return opened;
}

describe("remote command over WebSocket", () => {
  test("v4.channel.k8s.io: empty hello on stdout, stdin echoed, JSON status on channel 3, close 1000", async () => {
    const ws = mustBeWebSocket(await openWebSocket(server.port, "/exec?exit=0", ["v4.channel.k8s.io"]));
    expect(ws.protocol).toBe("v4.channel.k8s.io");
    expect(Buffer.from((await ws.next()).payload)).toEqual(Buffer.from([1]));
    ws.send(0x2, Buffer.from([0, ...Buffer.from("ping")]));
    expect((await ws.next()).payload.toString("latin1")).toBe("\x01ping");
    // v4 has no stdin half-close: the client closes the connection, or the command ends by itself.
    ws.send(0x8, Buffer.from([0x03, 0xe8]));
    const { closeCode } = await ws.untilClose();
    expect(closeCode).toBe(1000);
  });

  test("v5.channel.k8s.io: CLOSE on channel 255 ends stdin; status and close follow", async () => {
    const ws = mustBeWebSocket(await openWebSocket(server.port, "/exec?exit=0", ["v5.channel.k8s.io", "v4.channel.k8s.io"]));
    expect(ws.protocol).toBe("v5.channel.k8s.io");
    await ws.next();
    ws.send(0x2, Buffer.from([0, ...Buffer.from("abc")]));
    ws.send(0x2, Buffer.from([255, 0]));
    const { messages, closeCode } = await ws.untilClose();
    expect(messages.map((message) => message.payload.toString("latin1"))).toEqual(["\x01abc", '\x03{"metadata":{},"status":"Success"}']);
    expect(closeCode).toBe(1000);
  });

  test("v5: a non-zero exit is the kubelet's NonZeroExitCode status, field for field", async () => {
    const ws = mustBeWebSocket(await openWebSocket(server.port, "/exec?exit=7", ["v5.channel.k8s.io"]));
    await ws.next();
    ws.send(0x2, Buffer.from([255, 0]));
    const { messages } = await ws.untilClose();
    expect(messages.at(-1)?.payload.toString("latin1")).toBe(
      '\x03{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 7], exit code 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}',
    );
  });

  test("base64.channel.k8s.io: text frames with a channel digit", async () => {
    const ws = mustBeWebSocket(await openWebSocket(server.port, "/exec?exit=2", ["base64.channel.k8s.io"]));
    expect(ws.protocol).toBe("base64.channel.k8s.io");
    const hello = await ws.next();
    expect(hello.opcode).toBe(0x1);
    expect(hello.payload.toString()).toBe("1");
    ws.send(0x1, "0" + Buffer.from("héllo").toString("base64"));
    const echoed = await ws.next();
    expect(echoed.opcode).toBe(0x1);
    expect(echoed.payload.toString()[0]).toBe("1");
    expect(Buffer.from(echoed.payload.toString().slice(1), "base64").toString()).toBe("héllo");
    ws.response.socket.destroy();
  });

  test("pre-v4 protocols write the failure as plain text, and nothing on success", async () => {
    const failed = mustBeWebSocket(await openWebSocket(server.port, "/exec?exit=2&stdin=false", ["base64.channel.k8s.io"]));
    const { messages } = await failed.untilClose();
    expect(messages.map((message) => message.payload.toString())).toEqual([
      "1",
      "3" + Buffer.from("command terminated with non-zero exit code: error executing command [sh -c exit 2], exit code 2").toString("base64"),
    ]);
    const succeeded = mustBeWebSocket(await openWebSocket(server.port, "/exec?exit=0&stdin=false", ["channel.k8s.io"]));
    const { messages: quiet } = await succeeded.untilClose();
    expect(quiet.map((message) => message.payload.toString("latin1"))).toEqual(["\x01"]);
  });

  test("resize messages on channel 4 reach onResize", async () => {
    const ws = mustBeWebSocket(await openWebSocket(server.port, "/exec?tty=true", ["v5.channel.k8s.io"]));
    await ws.next();
    ws.send(0x2, Buffer.from([4, ...Buffer.from('{"Width":120,"Height":40}')]));
    expect((await ws.next()).payload.toString("latin1")).toBe("\x01size 120x40");
    ws.send(0x2, Buffer.from([255, 0]));
    await ws.untilClose();
  });

  test("a client that offers no subprotocol gets the legacy binary channels", async () => {
    const ws = mustBeWebSocket(await openWebSocket(server.port, "/exec?exit=4", []));
    expect(ws.protocol).toBe("");
    await ws.next();
    ws.response.socket.end(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
    await Bun.sleep(50);
  });

  test("an unknown subprotocol is refused with 403 and a Status", async () => {
    const opened = await openWebSocket(server.port, "/exec", ["v9.channel.k8s.io"]);
    if (opened instanceof TestWebSocket) throw new Error("should have been refused");
    expect(opened.status).toBe(403);
    const body = JSON.parse(await readBody(opened)) as { kind: string; reason: string; message: string };
    expect(body.kind).toBe("Status");
    expect(body.reason).toBe("Forbidden");
    expect(body.message).toContain("requested protocol(s) are not supported: [v9.channel.k8s.io]");
    await Bun.sleep(20);
    expect(outcomes.at(-1)?.error).toBeInstanceOf(UpgradeRefused);
  });
});

function spdyUpgrade(path: string, protocols: string[]): string {
  return [
    `POST ${path} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Connection: Upgrade",
    "Upgrade: SPDY/3.1",
    ...protocols.map((protocol) => `X-Stream-Protocol-Version: ${protocol}`),
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

/** A scripted SPDY client on a real upgraded socket. */
function spdyClient(response: RawResponse): TestSpdyClient {
  const client = new TestSpdyClient((frame) => response.socket.write(frame));
  if (response.rest.length > 0) client.fromServer(response.rest);
  response.socket.on("data", (chunk: Buffer) => client.fromServer(chunk));
  response.socket.resume();
  return client;
}

describe("remote command over SPDY", () => {
  test("no X-Stream-Protocol-Version is a 400; an unknown one a 403 that lists the accepted ones", async () => {
    const none = await rawRequest(server.port, spdyUpgrade("/exec", []));
    expect(none.status).toBe(400);
    expect(await readBody(none)).toContain("X-Stream-Protocol-Version is required");
    const unknown = await rawRequest(server.port, spdyUpgrade("/exec", ["v9.channel.k8s.io"]));
    expect(unknown.status).toBe(403);
    expect(unknown.head).toContain("X-Accepted-Stream-Protocol-Versions: v4.channel.k8s.io");
    expect(await readBody(unknown)).toContain("unable to negotiate protocol: client supports [v9.channel.k8s.io]");
  });

  test("a request that upgrades to nothing known is a 400", async () => {
    const response = await rawRequest(server.port, "GET /exec HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
    expect(response.status).toBe(400);
    expect(await readBody(response)).toContain("unable to upgrade");
  });

  test("a client that never opens its streams times out and is dropped", async () => {
    const response = await rawRequest(server.port, spdyUpgrade("/exec", ["v4.channel.k8s.io"]));
    expect(response.status).toBe(101);
    expect(response.head).toContain("X-Stream-Protocol-Version: v4.channel.k8s.io");
    await new Promise((resolve) => {
      response.socket.once("close", resolve);
      response.socket.resume();
    });
    const outcome = outcomes.at(-1);
    expect(String(outcome?.error)).toContain("timed out waiting for client to create streams");
  });
});

describe("remote command over old SPDY protocols", () => {
  test("v2.channel.k8s.io: no resize stream is waited for, and the error stream carries plain text", async () => {
    const response = await rawRequest(server.port, spdyUpgrade("/exec?exit=5&tty=true", ["v2.channel.k8s.io"]));
    expect(response.head).toContain("X-Stream-Protocol-Version: v2.channel.k8s.io");
    const client = spdyClient(response);
    await client.synStream(1, { streamtype: "error" });
    await client.synStream(3, { streamtype: "stdin" });
    await client.synStream(5, { streamtype: "stdout" });
    for (const id of [1, 3, 5]) await client.next(isControl(FrameType.synReply, id));
    client.data(3, "typed", true);
    expect((await client.next(isData(5))).data.toString()).toBe("typed");
    expect((await client.next(isData(1))).data.toString()).toBe("command terminated with non-zero exit code: error executing command [sh -c exit 5], exit code 5");
    // Every stream is half-closed, then GOAWAY.
    for (const id of [1, 3, 5]) expect((await client.next(isData(id))).flags & FLAG_FIN).toBe(FLAG_FIN);
    await client.next(isControl(FrameType.goAway));
    response.socket.destroy();
  });

  test("v4.channel.k8s.io: resize JSON lines on the resize stream; success is a JSON Status", async () => {
    const response = await rawRequest(server.port, spdyUpgrade("/exec?tty=true", ["v4.channel.k8s.io"]));
    const client = spdyClient(response);
    await client.synStream(1, { streamtype: "error" });
    await client.synStream(3, { streamtype: "resize" });
    await client.synStream(5, { streamtype: "stdin" });
    await client.synStream(7, { streamtype: "stdout" });
    for (const id of [1, 3, 5, 7]) await client.next(isControl(FrameType.synReply, id));
    client.data(3, '{"Width":100,"Height":30}\n{"Width":');
    client.data(3, '101,"Height":31}\n');
    expect((await client.next(isData(7))).data.toString()).toBe("size 100x30");
    expect((await client.next(isData(7))).data.toString()).toBe("size 101x31");
    client.data(5, "", true);
    expect((await client.next(isData(1))).data.toString()).toBe('{"metadata":{},"status":"Success"}');
    response.socket.destroy();
  });
});

describe("port-forward over WebSocket channels", () => {
  let echo: Server;
  let echoPort = 0;
  beforeAll(async () => {
    echo = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    echoPort = (echo.address() as AddressInfo).port;
  });
  afterAll(() => echo.close());

  test("each port gets a data and an error channel, both opened with the port in little-endian", async () => {
    const ws = mustBeWebSocket(await openWebSocket(server.port, `/portforward?port=${echoPort}&port=1`, ["v4.channel.k8s.io"]));
    const port = (value: number): string => String.fromCharCode(value & 0xff, value >> 8);
    const seen = new Map<number, string>();
    const record = (payload: Buffer): void => {
      const channel = payload[0] ?? -1;
      seen.set(channel, (seen.get(channel) ?? "") + payload.subarray(1).toString("latin1"));
    };
    for (let index = 0; index < 4; index++) record((await ws.next()).payload);
    expect(seen.get(0)).toBe(port(echoPort));
    expect(seen.get(1)).toBe(port(echoPort));
    expect(seen.get(2)).toBe(port(1));
    ws.send(0x2, Buffer.from([0, ...Buffer.from("through the tunnel")]));
    // Port 1 refuses: its error channel says so; the echo answers on channel 0.
    while (!(seen.get(3) ?? "").includes("error forwarding port 1") || !(seen.get(0) ?? "").includes("through the tunnel")) record((await ws.next()).payload);
    expect(seen.get(0)).toBe(port(echoPort) + "through the tunnel");
    ws.send(0x8, Buffer.from([0x03, 0xe8]));
    expect((await ws.untilClose()).closeCode).toBe(1000);
  });

  test("without a port in the query the upgrade is refused with 400", async () => {
    const opened = await openWebSocket(server.port, "/portforward", ["v4.channel.k8s.io"]);
    if (opened instanceof TestWebSocket) throw new Error("should have been refused");
    expect(opened.status).toBe(400);
    expect(await readBody(opened)).toContain('query parameter \\"port\\" is required');
  });
});

describe("port-forward over SPDY", () => {
  let echo: Server;
  let echoPort = 0;
  beforeAll(async () => {
    echo = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    echoPort = (echo.address() as AddressInfo).port;
  });
  afterAll(() => echo.close());

  async function open(): Promise<{ client: TestSpdyClient; response: RawResponse }> {
    const response = await rawRequest(server.port, spdyUpgrade("/portforward", ["portforward.k8s.io"]));
    expect(response.status).toBe(101);
    expect(response.head).toContain("X-Stream-Protocol-Version: portforward.k8s.io");
    return { client: spdyClient(response), response };
  }

  test("streams without a valid port or stream type are reset", async () => {
    const { client, response } = await open();
    await client.synStream(1, { streamtype: "data", requestid: "0" });
    expect((await client.next(isControl(FrameType.rstStream, 1))).value).toBe(RstStatus.protocolError);
    await client.synStream(3, { streamtype: "data", port: "70000", requestid: "0" });
    expect((await client.next(isControl(FrameType.rstStream, 3))).value).toBe(RstStatus.protocolError);
    await client.synStream(5, { streamtype: "stdin", port: "80", requestid: "0" });
    expect((await client.next(isControl(FrameType.rstStream, 5))).value).toBe(RstStatus.protocolError);
    response.socket.destroy();
  });

  test("an old client without requestID is paired by stream ids", async () => {
    const { client, response } = await open();
    await client.synStream(1, { streamtype: "error", port: String(echoPort) });
    await client.synStream(3, { streamtype: "data", port: String(echoPort) });
    await client.next(isControl(FrameType.synReply, 3));
    client.data(3, "paired");
    expect((await client.next(isData(3))).data.toString()).toBe("paired");
    // The client is done sending: the echo closes, so the data and error streams are half-closed.
    client.data(3, "", true);
    expect((await client.next(isData(3))).flags & FLAG_FIN).toBe(FLAG_FIN);
    expect((await client.next(isData(1))).flags & FLAG_FIN).toBe(FLAG_FIN);
    response.socket.destroy();
  });

  test("half a pair times out with a message on its error stream", async () => {
    const { client, response } = await open();
    await client.synStream(1, { streamtype: "error", port: String(echoPort), requestid: "7" });
    await client.next(isControl(FrameType.synReply, 1));
    const message = await client.next(isData(1), 3000);
    expect(message.data.toString()).toBe("timed out waiting for streams of request 7");
    response.socket.destroy();
  });
});
