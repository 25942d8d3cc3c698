/** Probe handlers against real servers in this process: HTTP, TCP and gRPC health over HTTP/2. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createServer as createHttp2Server, type Http2Server } from "node:http2";
import { createServer, type Server } from "node:net";
import { healthCheckRequest, parseResponse, runHandler, servingStatus, type HandlerContext } from "../../../internal/pod/probes/handlers.ts";

const context = (overrides: Partial<HandlerContext> = {}): HandlerContext => ({
  podIP: "127.0.0.1",
  timeoutMs: 1000,
  exec: async () => ({ exitCode: 0, output: "", timedOut: false }),
  ...overrides,
});

let http: ReturnType<typeof Bun.serve>;
let seenHeaders: Headers | undefined;
let tcp: Server;
let tcpPort = 0;
let closedPort = 0;
let grpc: Http2Server;
let grpcPort = 0;
const serving: Record<string, number> = { "": 1, db: 2 };

beforeAll(async () => {
  http = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const url = new URL(request.url);
      seenHeaders = request.headers;
      switch (url.pathname) {
        case "/ok":
          return new Response("fine");
        case "/fail":
          return new Response("broken", { status: 500 });
        case "/here":
          return new Response(null, { status: 302, headers: { location: "/ok" } });
        case "/elsewhere":
          return new Response("moved", { status: 301, headers: { location: "http://192.0.2.1/ok" } });
        case "/loop":
          return new Response(null, { status: 302, headers: { location: "/loop" } });
        case "/slow":
          await Bun.sleep(3000);
          return new Response("late");
        default:
          return new Response("no", { status: 404 });
      }
    },
  });
  tcp = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
  tcpPort = (tcp.address() as { port: number }).port;
  // A port that was free a moment ago: nothing listens on it.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  grpc = createHttp2Server();
  grpc.on("stream", (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      const body = Buffer.concat(chunks);
      // HealthCheckRequest: field 1 (service), length-delimited.
      const service = body.length > 5 ? body.subarray(7, 7 + (body[6] ?? 0)).toString() : "";
      const status = serving[service];
      if (headers[":path"] !== "/grpc.health.v1.Health/Check" || status === undefined) {
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "5", "grpc-message": "unknown service" }));
        stream.end();
        return;
      }
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(Buffer.from([0, 0, 0, 0, 2, 0x08, status]));
    });
  });
  await new Promise<void>((resolve) => grpc.listen(0, "127.0.0.1", resolve));
  grpcPort = (grpc.address() as { port: number }).port;
});

afterAll(async () => {
  http.stop(true);
  await new Promise<void>((resolve) => tcp.close(() => resolve()));
  await new Promise<void>((resolve) => grpc.close(() => resolve()));
});

const get = (path: string, headers: { name: string; value: string }[] = []) =>
  runHandler({ type: "httpGet", scheme: "HTTP", port: http.port as number, path, headers }, context());

describe("httpGet", () => {
  test("200-399 passes with the body; other statuses fail with the kubelet's message", async () => {
    expect(await get("/ok")).toEqual({ outcome: "success", output: "fine" });
    expect(await get("/fail")).toEqual({ outcome: "failure", output: "HTTP probe failed with statuscode: 500" });
    expect(await get("/missing")).toEqual({ outcome: "failure", output: "HTTP probe failed with statuscode: 404" });
  });

  test("headers are sent, with the kubelet's User-Agent and Accept unless the probe sets them", async () => {
    await get("/ok", [{ name: "X-Probe", value: "yes" }]);
    expect(seenHeaders?.get("x-probe")).toBe("yes");
    expect(seenHeaders?.get("accept")).toBe("*/*");
    expect(seenHeaders?.get("user-agent")).toStartWith("kube-probe/");
    await get("/ok", [{ name: "User-Agent", value: "mine" }]);
    expect(seenHeaders?.get("user-agent")).toBe("mine");
  });

  test("redirects: followed on the same host; to another host the chain stops and passes with a warning; at most 10", async () => {
    expect(await get("/here")).toEqual({ outcome: "success", output: "fine" });
    expect(await get("/elsewhere")).toEqual({ outcome: "warning", output: "Probe terminated redirects, Response body: moved" });
    const loop = await get("/loop");
    expect(loop.outcome).toBe("failure");
    expect(loop.output).toContain("stopped after 10 redirects");
  });

  test("a server slower than timeoutSeconds fails; a closed port fails", async () => {
    const slow = await runHandler({ type: "httpGet", scheme: "HTTP", port: http.port as number, path: "/slow", headers: [] }, context({ timeoutMs: 200 }));
    expect(slow.outcome).toBe("failure");
    expect(slow.output).toContain("context deadline exceeded");
    const refused = await runHandler({ type: "httpGet", scheme: "HTTP", port: closedPort, path: "/", headers: [] }, context());
    expect(refused.outcome).toBe("failure");
    expect(refused.output).toStartWith(`Get "http://127.0.0.1:${closedPort}/": `);
  });
});

describe("tcpSocket", () => {
  test("a connection passes; a refused one fails as the kubelet says it", async () => {
    expect(await runHandler({ type: "tcpSocket", port: tcpPort }, context())).toEqual({ outcome: "success", output: "" });
    expect(await runHandler({ type: "tcpSocket", port: closedPort }, context())).toEqual({
      outcome: "failure",
      output: `dial tcp 127.0.0.1:${closedPort}: connect: connection refused`,
    });
  });
});

describe("grpc (grpc.health.v1 over node:http2 under Bun)", () => {
  test("SERVING passes; NOT_SERVING fails; an unknown service is the server's error", async () => {
    expect(await runHandler({ type: "grpc", port: grpcPort, service: "" }, context())).toEqual({ outcome: "success", output: "" });
    expect(await runHandler({ type: "grpc", port: grpcPort, service: "db" }, context())).toEqual({
      outcome: "failure",
      output: 'service unhealthy (responded with "NOT_SERVING")',
    });
    expect(await runHandler({ type: "grpc", port: grpcPort, service: "nope" }, context())).toEqual({
      outcome: "failure",
      output: "rpc error: code = NotFound desc = unknown service",
    });
    const refused = await runHandler({ type: "grpc", port: closedPort, service: "" }, context());
    expect(refused.outcome).toBe("failure");
  });

  test("request and response encoding", () => {
    expect([...healthCheckRequest("")]).toEqual([0, 0, 0, 0, 0]);
    expect([...healthCheckRequest("db")]).toEqual([0, 0, 0, 0, 4, 0x0a, 2, 0x64, 0x62]);
    expect(servingStatus(Buffer.from([0x08, 1]))).toBe(1);
    expect(servingStatus(Buffer.alloc(0))).toBe(0);
  });
});

describe("exec", () => {
  test("exit 0 passes; another exit fails with the output; a timeout fails", async () => {
    const run = (exitCode: number, output: string, timedOut = false) => runHandler({ type: "exec", command: ["check"] }, context({ exec: async () => ({ exitCode, output, timedOut }) }));
    expect(await run(0, "ok\n")).toEqual({ outcome: "success", output: "ok\n" });
    expect(await run(1, "bad\n")).toEqual({ outcome: "failure", output: "bad\n" });
    expect(await run(137, "", true)).toEqual({ outcome: "failure", output: 'command "check" timed out' });
  });
});

describe("parseResponse (the prober's HTTP/1.1 reader)", () => {
  test("status, Location, a chunked body; not HTTP is undefined", () => {
    const chunked = Buffer.from("HTTP/1.1 302 Found\r\nLocation: /next\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    expect(parseResponse(chunked)).toEqual({ status: 302, location: "/next", body: "hello world" });
    expect(parseResponse(Buffer.from("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"))).toEqual({ status: 200, body: "ok" });
    expect(parseResponse(Buffer.from("SSH-2.0-OpenSSH\r\n"))).toBeUndefined();
  });
});
