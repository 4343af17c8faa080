/** The fault proxy on plain loopback sockets: pass, delay, blackhole, refuse, switching, close. */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { after, before, describe, it } from "node:test";
import { delay } from "./process.ts";
import { TcpProxy } from "./tcp-proxy.ts";

/** An upstream that answers every chunk with `<chunk>` sent back as is. */
let echo: Server;
let echoPort = 0;
const proxies: TcpProxy[] = [];
const sockets: Socket[] = [];

before(async () => {
  echo = createServer((socket) => {
    socket.on("error", () => {});
    socket.on("data", (chunk) => socket.write(chunk));
  });
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  const address = echo.address();
  echoPort = typeof address === "object" && address !== null ? address.port : 0;
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(proxies.map((proxy) => proxy.close()));
  await new Promise<void>((resolve) => echo.close(() => resolve()));
});

async function proxy(): Promise<TcpProxy> {
  const started = await TcpProxy.start({ targetHost: "127.0.0.1", targetPort: echoPort });
  proxies.push(started);
  return started;
}

interface Client {
  readonly socket: Socket;
  /** Everything received, with performance.now() of each chunk. */
  readonly received: Array<{ at: number; text: string }>;
  readonly closed: Promise<void>;
  text(): string;
}

async function client(port: number): Promise<Client> {
  const socket = tcpConnect({ host: "127.0.0.1", port, noDelay: true });
  sockets.push(socket);
  socket.on("error", () => {});
  const received: Array<{ at: number; text: string }> = [];
  socket.on("data", (chunk: Buffer) => received.push({ at: performance.now(), text: chunk.toString("utf8") }));
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { socket, received, closed, text: () => received.map((r) => r.text).join("") };
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) assert.fail(`${what} not within ${ms} ms`);
    await delay(5);
  }
}

describe("TcpProxy", () => {
  it("passes bytes both ways", async () => {
    const p = await proxy();
    const c = await client(p.port);
    c.socket.write("hello\n");
    await until(() => c.text() === "hello\n", 2000, "echo");
    assert.equal(p.counts().accepted, 1);
    assert.equal(p.counts().open, 1);
  });

  it("delays every chunk in both directions and keeps their order", async () => {
    const p = await proxy();
    const c = await client(p.port);
    p.delay(150);
    const sentAt = performance.now();
    for (let i = 0; i < 20; i++) {
      c.socket.write(`${i},`);
      await delay(2);
    }
    await until(() => c.text().split(",").length === 21, 3000, "all 20 chunks");
    const expected = Array.from({ length: 20 }, (_, i) => `${i},`).join("");
    assert.equal(c.text(), expected);
    // Delayed on the way up and again on the way back.
    const first = c.received[0]?.at ?? 0;
    assert.ok(first - sentAt >= 290, `first chunk back after ${Math.round(first - sentAt)} ms`);
    p.pass();
    const before = performance.now();
    c.socket.write("fast");
    await until(() => c.text().endsWith("fast"), 2000, "pass after delay");
    assert.ok(performance.now() - before < 100);
  });

  it("blackhole keeps the sockets open, forwards nothing, and lets the held bytes through after", async () => {
    const p = await proxy();
    const c = await client(p.port);
    c.socket.write("a");
    await until(() => c.text() === "a", 2000, "first echo");
    p.blackhole();
    c.socket.write("b");
    c.socket.write("c");
    await delay(300);
    assert.equal(c.text(), "a");
    assert.equal(c.socket.destroyed, false);
    assert.equal(p.counts().open, 1);
    assert.ok(p.counts().held >= 1);
    // A new connection is accepted but silent too.
    const d = await client(p.port);
    d.socket.write("d");
    await delay(200);
    assert.equal(d.text(), "");
    p.pass();
    await until(() => c.text() === "abc" && d.text() === "d", 2000, "held bytes after the heal");
  });

  it("refuse closes open connections and every new one", async () => {
    const p = await proxy();
    const c = await client(p.port);
    c.socket.write("x");
    await until(() => c.text() === "x", 2000, "echo");
    p.refuse();
    await c.closed;
    const d = await client(p.port);
    await d.closed;
    assert.equal(d.text(), "");
    assert.equal(p.counts().refused, 1);
    assert.equal(p.counts().open, 0);
    p.pass();
    const e = await client(p.port);
    e.socket.write("back");
    await until(() => e.text() === "back", 2000, "echo after refuse");
  });

  it("passes a half-close on and closes everything on close()", async () => {
    const p = await proxy();
    const c = await client(p.port);
    c.socket.write("bye");
    c.socket.end();
    await until(() => c.text() === "bye", 2000, "echo before the half-close");
    const e = await client(p.port);
    await p.close();
    await e.closed;
    await assert.rejects(client(p.port));
  });

  it("forEndpoint reads host and port from an http URL", async () => {
    const p = await TcpProxy.forEndpoint(`http://127.0.0.1:${echoPort}`);
    proxies.push(p);
    assert.equal(p.endpoint, `http://127.0.0.1:${p.port}`);
    const c = await client(p.port);
    c.socket.write("url");
    await until(() => c.text() === "url", 2000, "echo through forEndpoint");
  });
});
