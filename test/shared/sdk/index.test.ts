import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type DisconnectInfo,
  isTetherRequestError,
  TetherClient,
  type TetherClientOptions,
  TetherRequestError,
} from "../../../shared/sdk/index.ts";
import { defaultBehaviour, FakeEdge } from "./fake-edge.ts";

async function startEdge(t: TestContext, edge = new FakeEdge()): Promise<FakeEdge> {
  await edge.listen();
  t.after(() => edge.close());
  return edge;
}

function client(t: TestContext, edge: FakeEdge, options: Partial<TetherClientOptions> = {}): TetherClient {
  const c = new TetherClient({
    host: "127.0.0.1",
    port: edge.port,
    deviceId: "dev-1",
    requestTimeoutMs: 2000,
    reconnect: { initialMs: 20, maxMs: 200, jitter: 1 },
    ...options,
  });
  t.after(() => c.close());
  return c;
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(5);
  }
}

async function rejection(promise: Promise<unknown>): Promise<TetherRequestError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isTetherRequestError(error), `expected a TetherRequestError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the promise to reject");
}

describe("TetherClient", () => {
  it("says hello with its deviceId and token and resolves connect with the welcome", async (t) => {
    const edge = await startEdge(t);
    const c = client(t, edge, { token: "tok-1" });
    const info = await c.connect();
    assert.deepEqual(info, {
      connId: "c0",
      edgeId: "fake",
      heartbeatMs: 30000,
      maxFrameBytes: 65536,
      ackAnswers: false,
    });
    assert.deepEqual(edge.received("hello"), [{ t: "hello", v: 1, deviceId: "dev-1", token: "tok-1" }]);
    assert.equal(c.status, "open");
  });

  it("resolves a request with the res body and reports the ack", async (t) => {
    const edge = await startEdge(t);
    const c = client(t, edge);
    await c.connect();
    let acked = 0;
    const body = await c.request("echo", { a: [1, "two"] }, { onAck: () => acked++ });
    assert.deepEqual(body, { a: [1, "two"] });
    assert.equal(acked, 1);
    assert.equal(c.pendingCount, 0);
    const [req] = edge.received("req");
    assert.ok(req);
    assert.equal(req.type, "echo");
    assert.match(req.id, /^[A-Za-z0-9_-]+\.[0-9a-z]+$/);
  });

  it("sends requests made before the welcome once it arrives", async (t) => {
    const edge = await startEdge(t);
    const c = client(t, edge);
    const answer = c.request("echo", "early", { id: "e1" });
    void c.connect();
    assert.equal(await answer, "early");
    assert.equal(edge.connections[0]?.frames[0]?.t, "hello");
  });

  it("rejects with a typed error carrying the edge's code, message and retryable flag", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t === "req") {
        conn.send({ t: "error", id: frame.id, code: "invalid_input", message: "no", retryable: false });
        return;
      }
      defaultBehaviour()(conn, frame);
    };
    const c = client(t, edge);
    await c.connect();
    const error = await rejection(c.request("echo", 1, { id: "x1" }));
    assert.ok(error instanceof TetherRequestError);
    assert.equal(error.code, "invalid_input");
    assert.equal(error.message, "no");
    assert.equal(error.retryable, false);
    assert.equal(error.requestId, "x1");
  });

  it("marks unavailable as retryable and passes retryAfterMs of rate_limited", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t === "req" && frame.type === "a") conn.send({ t: "error", id: frame.id, code: "unavailable" });
      else if (frame.t === "req") conn.send({ t: "error", id: frame.id, code: "rate_limited", retryAfterMs: 250 });
      else defaultBehaviour()(conn, frame);
    };
    const c = client(t, edge);
    await c.connect();
    const unavailable = await rejection(c.request("a", null));
    assert.equal(unavailable.code, "unavailable");
    assert.equal(unavailable.retryable, true);
    const limited = await rejection(c.request("b", null));
    assert.equal(limited.code, "rate_limited");
    assert.equal(limited.retryAfterMs, 250);
  });

  it("times a request out and drops its late answer", async (t) => {
    const edge = await startEdge(t);
    const held: Array<() => void> = [];
    edge.onFrame = (conn, frame) => {
      if (frame.t === "req") held.push(() => conn.send({ t: "res", id: frame.id, body: "late" }));
      else defaultBehaviour()(conn, frame);
    };
    const c = client(t, edge);
    await c.connect();
    const error = await rejection(c.request("echo", null, { timeoutMs: 50 }));
    assert.equal(error.code, "timeout");
    assert.equal(error.retryable, true);
    for (const send of held) send();
    assert.equal(
      await c.request("ping-like", null, { timeoutMs: 50 }).catch((e: TetherRequestError) => e.code),
      "timeout",
    );
    assert.equal(c.pendingCount, 0);
  });

  it("refuses bad arguments locally: type, id, an id already open, an oversize frame", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t !== "req") defaultBehaviour()(conn, frame);
    };
    const c = client(t, edge);
    await c.connect();
    assert.equal((await rejection(c.request("bad type", null))).code, "invalid_request");
    assert.equal((await rejection(c.request("echo", null, { id: "" }))).code, "invalid_request");
    const open = rejection(c.request("echo", null, { id: "same", timeoutMs: 100 }));
    assert.equal((await rejection(c.request("echo", null, { id: "same" }))).code, "invalid_request");
    assert.equal((await open).code, "timeout");
    assert.equal((await rejection(c.request("echo", "é".repeat(40_000)))).code, "frame_too_large");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.equal((await rejection(c.request("echo", cyclic))).code, "invalid_request");
  });

  it("re-sends an open request with the same id after a reconnect and resolves with its answer", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t === "req" && conn.index === 0) {
        conn.send({ t: "ack", id: frame.id });
        conn.socket.destroy();
        return;
      }
      defaultBehaviour()(conn, frame);
    };
    const c = client(t, edge);
    const events: DisconnectInfo[] = [];
    c.on("disconnected", (info) => events.push(info));
    await c.connect();
    let acks = 0;
    const answer = await c.request("echo", { n: 7 }, { onAck: () => acks++ });
    assert.deepEqual(answer, { n: 7 });
    assert.equal(acks, 1);
    const reqs = edge.received("req");
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0]?.id, reqs[1]?.id);
    assert.equal(edge.connections.length, 2);
    assert.equal(events[0]?.willReconnect, true);
    assert.equal(events[0]?.wasOpen, true);
  });

  it("waits the reconnectMs of a bye draining before connecting again", async (t) => {
    const edge = await startEdge(t);
    const c = client(t, edge, { reconnect: { initialMs: 5000, maxMs: 5000, jitter: 0 } });
    const events: DisconnectInfo[] = [];
    c.on("disconnected", (info) => events.push(info));
    const first = await c.connect();
    const conn0 = await edge.nextConnection(0);
    const byeAt = Date.now();
    conn0.send({ t: "bye", reason: "draining", reconnectMs: 300 });
    conn0.close();
    const second = await edge.nextConnection(1);
    const waited = Date.now() - byeAt;
    assert.ok(second);
    assert.ok(waited >= 280 && waited < 4000, `waited ${waited} ms`);
    assert.equal(events[0]?.reason, "draining");
    assert.equal(events[0]?.retryInMs, 300);
    assert.notEqual((await c.connect()).connId, first.connId);
  });

  it("backs off exponentially with full jitter up to maxMs while the edge keeps failing", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn) => conn.socket.destroy();
    const c = client(t, edge, { reconnect: { initialMs: 40, maxMs: 200, jitter: 1 }, random: () => 0.5 });
    const delays: number[] = [];
    c.on("disconnected", (info) => {
      if (info.retryInMs !== undefined) delays.push(info.retryInMs);
    });
    void c.connect().catch(() => {});
    await until(() => delays.length >= 5);
    assert.deepEqual(delays.slice(0, 5), [20, 40, 80, 100, 100]);
    edge.onFrame = defaultBehaviour();
    const info = await c.connect();
    assert.equal(info.edgeId, "fake");
  });

  it("rejects connect with connect_failed when reconnecting is off and nothing listens", async (t) => {
    const probe = createServer();
    probe.listen(0, "127.0.0.1");
    await once(probe, "listening");
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const c = new TetherClient({ host: "127.0.0.1", port, deviceId: "d", reconnect: false });
    t.after(() => c.close());
    const error = await rejection(c.connect());
    assert.equal(error.code, "connect_failed");
    assert.equal(c.status, "closed");
  });

  it("stops on unauthorized without reconnecting", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t === "hello") {
        conn.send({ t: "error", code: "unauthorized", message: "invalid token" });
        conn.close();
      }
    };
    const c = client(t, edge, { token: "wrong" });
    const errors: Error[] = [];
    c.on("error", (e) => errors.push(e));
    const error = await rejection(c.connect());
    assert.equal(error.code, "unauthorized");
    assert.match(error.message, /invalid token/);
    await sleep(100);
    assert.equal(edge.connections.length, 1);
    assert.equal(c.status, "closed");
    assert.equal(errors.length, 1);
  });

  it("keeps reconnecting after an unauthorized marked retryable (the edge could not check the token)", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t === "hello" && conn.index === 0) {
        conn.send({ t: "error", code: "unauthorized", message: "key set unavailable", retryable: true });
        conn.close();
        return;
      }
      defaultBehaviour()(conn, frame);
    };
    const c = client(t, edge, { token: "jwt" });
    c.on("error", () => {});
    const info = await c.connect();
    assert.equal(info.connId, "c1");
    assert.equal(edge.connections.length, 2);
  });

  it("stops when replaced, rejecting open requests with replaced", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t === "req") {
        conn.send({ t: "bye", reason: "replaced" });
        conn.close();
        return;
      }
      defaultBehaviour()(conn, frame);
    };
    const c = client(t, edge);
    let replaced = 0;
    c.on("replaced", () => replaced++);
    await c.connect();
    const error = await rejection(c.request("echo", null));
    assert.equal(error.code, "replaced");
    assert.equal(replaced, 1);
    assert.equal(c.status, "closed");
    await sleep(100);
    assert.equal(edge.connections.length, 1);
  });

  /**
   * An edge that leaves attempt 0's hello unanswered (the client gives up on it) and answers the
   * first request on each of `replacedOn` with `bye replaced`; a client that counts `replaced`.
   */
  async function lateHelloSetup(t: TestContext, replacedOn: readonly number[]) {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (conn.index === 0) return;
      if (frame.t === "req" && replacedOn.includes(conn.index)) {
        conn.send({ t: "bye", reason: "replaced" });
        conn.close();
        return;
      }
      defaultBehaviour()(conn, frame);
    };
    const c = client(t, edge, { connectTimeoutMs: 150 });
    const seen = { replaced: 0 };
    c.on("replaced", () => seen.replaced++);
    await c.connect();
    return { edge, c, seen };
  }

  it("reconnects, once, when replaced right after an attempt of its own that got no welcome", async (t) => {
    // Attempt 1 gets in; then the edge completes attempt 0 late, which displaces it. Attempt 2
    // gets in too, and a real second instance of the device takes over later.
    const { edge, c, seen } = await lateHelloSetup(t, [1, 2]);
    const error = await rejection(c.request("echo", "once"));
    // The first `replaced` only cost a reconnect; the second one, with no abandoned hello
    // before it, is a real takeover and stops the client.
    assert.equal(edge.connections.length, 3);
    assert.equal(error.code, "replaced");
    assert.equal(seen.replaced, 1);
    assert.equal(c.status, "closed");
  });

  it("resends open requests after a replaced that followed its own abandoned hello", async (t) => {
    const { edge, c, seen } = await lateHelloSetup(t, [1]);
    assert.equal(await c.request("echo", "kept"), "kept");
    assert.equal(seen.replaced, 0);
    assert.equal(c.status, "open");
    assert.equal(edge.connections.length, 3);
  });

  it("hands a push to the handlers and acks it after the handler's promise resolves", async (t) => {
    const edge = await startEdge(t);
    const c = client(t, edge);
    const seen: unknown[] = [];
    let release: () => void = () => {};
    c.onPush(async (push) => {
      seen.push(push);
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    await c.connect();
    const conn = await edge.nextConnection(0);
    conn.send({ t: "push", id: "m1", type: "config", body: { x: 1 } });
    await until(() => seen.length === 1);
    await sleep(30);
    assert.equal(edge.received("ack").length, 0, "not acked before the handler finished");
    release();
    await until(() => edge.received("ack").length === 1);
    assert.deepEqual(seen, [{ id: "m1", type: "config", body: { x: 1 } }]);
    // A redelivery of the same push is acked again but not handled twice.
    conn.send({ t: "push", id: "m1", type: "config", body: { x: 1 } });
    await until(() => edge.received("ack").length === 2);
    assert.equal(seen.length, 1);
  });

  it("does not ack a push whose handler throws, and reports the error", async (t) => {
    const edge = await startEdge(t);
    const c = client(t, edge);
    const errors: Error[] = [];
    c.on("error", (e) => errors.push(e));
    c.onPush(() => {
      throw new Error("handler broke");
    });
    await c.connect();
    (await edge.nextConnection(0)).send({ t: "push", id: "m2", type: "t", body: null });
    await until(() => errors.length === 1);
    await sleep(30);
    assert.equal(edge.received("ack").length, 0);
    assert.match(errors[0]?.message ?? "", /handler broke/);
  });

  it("answers ping with the round trip time and pings by itself on the heartbeat", async (t) => {
    const edge = await startEdge(t, new FakeEdge({ heartbeatMs: 100 }));
    const c = client(t, edge);
    await c.connect();
    const rtt = await c.ping();
    assert.ok(rtt >= 0 && rtt < 1000);
    await until(() => edge.received("ping").length >= 3);
  });

  it("reconnects when the edge falls silent for two heartbeats", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t === "hello") defaultBehaviour(100)(conn, frame);
    };
    const c = client(t, edge);
    const reasons: string[] = [];
    c.on("disconnected", (info) => reasons.push(info.reason));
    await c.connect();
    await until(() => edge.connections.length >= 2);
    assert.equal(reasons[0], "heartbeat_timeout");
  });

  it("says bye on close, rejects open requests with closed, and is safe to close twice", async (t) => {
    const edge = await startEdge(t);
    edge.onFrame = (conn, frame) => {
      if (frame.t !== "req") defaultBehaviour()(conn, frame);
    };
    const c = client(t, edge);
    await c.connect();
    const open = rejection(c.request("echo", null));
    await until(() => edge.received("req").length === 1);
    await Promise.all([c.close(), c.close()]);
    assert.equal((await open).code, "closed");
    await until(() => edge.received("bye").length === 1);
    assert.equal(c.status, "closed");
    assert.equal((await rejection(c.request("echo", null))).code, "closed");
  });

  it("reports an error frame that belongs to no request as an error event", async (t) => {
    const edge = await startEdge(t);
    const c = client(t, edge);
    const errors: Error[] = [];
    c.on("error", (e) => errors.push(e));
    await c.connect();
    (await edge.nextConnection(0)).sendRaw('{"t":"error","code":"unknown_frame","message":"what"}\nnot json\n');
    await until(() => errors.length === 2);
    assert.equal((errors[0] as TetherRequestError).code, "unknown_frame");
    assert.equal((errors[1] as TetherRequestError).code, "bad_frame");
    assert.equal(c.status, "open");
  });

  it("connects over TLS, checking the certificate against the CA it is given", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tether-tls-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
        .concat(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .concat(["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")]),
      { stdio: "ignore" },
    );
    const key = readFileSync(join(dir, "key.pem"), "utf8");
    const cert = readFileSync(join(dir, "cert.pem"), "utf8");
    const edge = await startEdge(t, new FakeEdge({ tls: { key, cert } }));
    const trusted = client(t, edge, { host: "localhost", tls: { ca: cert } });
    await trusted.connect();
    assert.equal(await trusted.request("echo", "over tls"), "over tls");

    const untrusted = client(t, edge, { host: "localhost", tls: true, reconnect: false });
    const error = await rejection(untrusted.connect());
    assert.equal(error.code, "connect_failed");
    assert.match(error.message, /certificate/i);
  });
});
