/**
 * The real kubectl (v1.32) against acceptPortForward: `kubectl port-forward` through the WebSocket tunnel
 * (its default: SPDY inside WebSocket messages) and over plain SPDY/3.1
 * (KUBECTL_PORT_FORWARD_WEBSOCKETS=false), to a local TCP echo server, with 10 MiB each way.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { acceptPortForward } from "../../../internal/kubelet/streams/portforward.ts";
import { type FakeApiServer, KUBECTL, kubectlEnv, POD_NAME, startFakeApiServer } from "./fake-apiserver.ts";

let echo: Server;
let echoPort = 0;
/** A port nothing listens on: forwarding to it must fail with the error reported to kubectl. */
let closedPort = 0;
let server: FakeApiServer;
const sessionProtocols: string[] = [];

beforeAll(async () => {
  echo = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  echoPort = (echo.address() as AddressInfo).port;
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  server = await startFakeApiServer({
    portforward: async (request, socket, head, url) => {
      sessionProtocols.push(String(request.headers["sec-websocket-protocol"] ?? request.headers["x-stream-protocol-version"] ?? ""));
      const session = await acceptPortForward(request, socket, head, { ports: url.searchParams.getAll("port").map(Number) });
      session.onStream((stream) => {
        const target = connect(stream.port, "127.0.0.1");
        target.once("connect", () => {
          stream.data.pipe(target);
          target.pipe(stream.data);
        });
        target.once("error", (err) => stream.reportError(`error forwarding port ${stream.port} to pod ${POD_NAME}: ${err.message}`));
      });
    },
  });
});

afterAll(async () => {
  await server.close();
  echo.close();
});

interface PortForward {
  localPort: number;
  stop(): Promise<string>;
}

async function startPortForward(remotePort: number, env: Record<string, string>): Promise<PortForward> {
  const child = Bun.spawn([KUBECTL, "port-forward", `pod/${POD_NAME}`, `:${remotePort}`, "--address", "127.0.0.1"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: kubectlEnv(server, env),
  });
  const stderrText = new Response(child.stderr).text();
  const reader = child.stdout.getReader();
  let seen = "";
  const deadline = Date.now() + 20_000;
  for (;;) {
    const match = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(seen);
    if (match?.[1] !== undefined) {
      reader.releaseLock();
      return {
        localPort: Number(match[1]),
        async stop(): Promise<string> {
          child.kill();
          await child.exited;
          return await stderrText;
        },
      };
    }
    if (Date.now() > deadline) throw new Error(`kubectl port-forward did not start: ${seen}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`kubectl port-forward exited: ${seen} ${await stderrText}`);
    seen += new TextDecoder().decode(value);
  }
}

/** Sends `payload` through the forwarded port and returns what came back once the server half-closed. */
async function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  const socket: Socket = connect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  let received = 0;
  return await new Promise<Buffer>((resolve, reject) => {
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      // The echo answers everything; then our side closes.
      if (received >= payload.length) socket.end();
    });
    socket.once("close", () => resolve(Buffer.concat(chunks)));
    socket.once("error", reject);
    socket.write(payload);
  });
}

const sha = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

const MODES = [
  { name: "the websocket tunnel", env: {}, protocol: "SPDY/3.1+portforward.k8s.io" },
  { name: "spdy", env: { KUBECTL_PORT_FORWARD_WEBSOCKETS: "false" }, protocol: "portforward.k8s.io" },
] as const;

for (const mode of MODES) {
  describe(`kubectl port-forward over ${mode.name}`, () => {
    test("moves 10 MiB each way through a forwarded connection", async () => {
      sessionProtocols.length = 0;
      const forward = await startPortForward(echoPort, mode.env);
      try {
        const payload = Buffer.alloc(10 * 1024 * 1024);
        for (let index = 0; index < payload.length; index += 4) payload.writeUInt32LE((index * 2654435761) >>> 0, index);
        const echoed = await roundTrip(forward.localPort, payload);
        expect(echoed.length).toBe(payload.length);
        expect(sha(echoed)).toBe(sha(payload));
        expect(sessionProtocols[0]).toContain(mode.protocol);
      } finally {
        await forward.stop();
      }
    }, 60_000);

    test("serves several connections at once on one session", async () => {
      const forward = await startPortForward(echoPort, mode.env);
      try {
        const payloads = Array.from({ length: 5 }, (_, index) => Buffer.alloc(300_000 + index, 0x30 + index));
        const echoed = await Promise.all(payloads.map((payload) => roundTrip(forward.localPort, payload)));
        echoed.forEach((data, index) => expect(sha(data)).toBe(sha(payloads[index] ?? Buffer.alloc(0))));
      } finally {
        await forward.stop();
      }
    }, 60_000);

    test("a port nobody listens on is reported on the error stream", async () => {
      const forward = await startPortForward(closedPort, mode.env);
      const socket = connect(forward.localPort, "127.0.0.1");
      await new Promise<void>((resolve) => {
        socket.once("close", () => resolve());
        socket.once("error", () => resolve());
        socket.resume();
      });
      await Bun.sleep(200);
      const stderr = await forward.stop();
      expect(stderr).toContain(`error forwarding port ${closedPort} to pod ${POD_NAME}`);
    }, 30_000);
  });
}
