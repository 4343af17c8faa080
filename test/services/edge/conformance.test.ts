/**
 * Protocol conformance of the edge against the public spec, over real sockets, with the
 * in-memory broker and registry and a small echo worker.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { SignJWT } from "jose";
import { createAuthenticator, hmacToken, jwtHs256Key } from "../../../shared/auth/index.ts";
import type {
  Broker,
  BrokerAdmin,
  GroupConsumer,
  GroupConsumerOptions,
  PartitionConsumer,
  PartitionConsumerOptions,
  Producer,
} from "../../../shared/broker/types.ts";
import { Header, pushFrame, pushRecord, ReplyKind } from "../../../shared/records/index.ts";
import {
  Device,
  EchoWorker,
  type EdgeOverrides,
  eventually,
  memoryFleet,
  sleep,
  startEdge,
  type TestFleet,
} from "./helpers.ts";

interface Setup {
  fleet: TestFleet;
  worker: EchoWorker;
  port: number;
  edge: Awaited<ReturnType<typeof startEdge>>["edge"];
}

/**
 * A broker whose producers hold back the writes to one topic until `confirm()`: requests the
 * edge handed over wait for their delivery reports, as they do behind a slow broker.
 */
class SlowConfirmations implements Broker {
  readonly kind = "memory" as const;
  readonly #inner: Broker;
  readonly #topic: string;
  #release: (() => void) | undefined;
  #confirmed: Promise<void>;
  held = 0;

  constructor(inner: Broker, topic: string) {
    this.#inner = inner;
    this.#topic = topic;
    this.#confirmed = new Promise((resolve) => {
      this.#release = resolve;
    });
  }

  confirm(): void {
    this.#release?.();
  }

  producer(): Producer {
    const inner = this.#inner.producer();
    let waiting = 0;
    return {
      connect: () => inner.connect(),
      send: async (message, options) => {
        if (message.topic !== this.#topic) return inner.send(message, options);
        this.held += 1;
        waiting += 1;
        try {
          await this.#confirmed;
          return await inner.send(message, options);
        } finally {
          waiting -= 1;
        }
      },
      flush: (timeoutMs) => inner.flush(timeoutMs),
      queued: () => waiting + inner.queued(),
      close: () => inner.close(),
    };
  }

  groupConsumer(options: GroupConsumerOptions): GroupConsumer {
    return this.#inner.groupConsumer(options);
  }

  partitionConsumer(options: PartitionConsumerOptions): PartitionConsumer {
    return this.#inner.partitionConsumer(options);
  }

  admin(): BrokerAdmin {
    return this.#inner.admin();
  }
}

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function setup(overrides: EdgeOverrides = {}, extra: Parameters<typeof startEdge>[2] = {}): Promise<Setup> {
  const fleet = await memoryFleet();
  const worker = new EchoWorker(fleet.broker, fleet.common.names);
  await worker.start();
  const { edge, port } = await startEdge(fleet, overrides, extra);
  closers.push(async () => {
    await edge.close();
    await worker.close();
  });
  return { fleet, worker, port, edge };
}

const devices: Device[] = [];
after(() => {
  for (const device of devices) device.close();
});

async function device(port: number): Promise<Device> {
  const d = await Device.connect(port);
  devices.push(d);
  return d;
}

async function welcomed(port: number, deviceId: string): Promise<Device> {
  const d = await device(port);
  const welcome = await d.hello(deviceId);
  assert.equal(welcome.t, "welcome", JSON.stringify(welcome));
  return d;
}

describe("edge protocol conformance (memory adapters)", () => {
  let base: Setup;
  before(async () => {
    base = await setup();
  });

  it("answers hello with welcome carrying connId, edgeId, heartbeatMs and maxFrameBytes", async () => {
    const d = await device(base.port);
    const welcome = await d.hello("dev-welcome");
    assert.equal(welcome.t, "welcome");
    assert.equal(typeof welcome.connId, "string");
    assert.equal(welcome.edgeId, base.edge.edgeId);
    assert.equal(welcome.heartbeatMs, 30000);
    assert.equal(welcome.maxFrameBytes, 65536);
    const record = await base.fleet.registry.connections.get("dev-welcome");
    assert.equal(record?.connId, welcome.connId);
    assert.equal(record?.slot, base.edge.slot);
  });

  it("acks a request and delivers its answer with the same id and body", async () => {
    const d = await welcomed(base.port, "dev-echo");
    d.send({ t: "req", id: "r1", type: "echo", body: { hello: ["wörld", 1, null] } });
    const ack = await d.nextOfType("ack");
    assert.deepEqual(ack, { t: "ack", id: "r1" });
    const res = await d.nextOfType("res");
    assert.deepEqual(res, { t: "res", id: "r1", body: { hello: ["wörld", 1, null] } });
  });

  it("passes a handler's error answer through, and a request without body gets body null", async () => {
    const d = await welcomed(base.port, "dev-unknown-type");
    d.send({ t: "req", id: "x", type: "no.such/handler" });
    const error = await d.nextOfType("error");
    assert.equal(error.code, "unknown_type");
    assert.equal(error.id, "x");
    d.send({ t: "req", id: "y", type: "echo" });
    assert.deepEqual(await d.nextOfType("res"), { t: "res", id: "y", body: null });
  });

  it("reads frames split into one byte per segment, with \\r\\n endings", async () => {
    const d = await device(base.port);
    const text = `${JSON.stringify({ t: "hello", v: 1, deviceId: "dev-split" })}\r\n${JSON.stringify({ t: "ping" })}\r\n`;
    const bytes = Buffer.from(text);
    for (let i = 0; i < bytes.length; i++) {
      d.socket.write(bytes.subarray(i, i + 1));
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal((await d.next()).t, "welcome");
    assert.deepEqual(await d.next(), { t: "pong" });
    const req = Buffer.from(`${JSON.stringify({ t: "req", id: "s", type: "echo", body: "ß" })}\n`);
    for (let i = 0; i < req.length; i++) {
      d.socket.write(req.subarray(i, i + 1));
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.deepEqual(await d.nextOfType("res"), { t: "res", id: "s", body: "ß" });
  });

  it("reads 1,000 frames merged into one segment", async () => {
    const s = await setup({ limits: { rateLimit: 100_000, maxInflight: 5000 } });
    const d = await welcomed(s.port, "dev-merged");
    let batch = "";
    for (let i = 0; i < 1000; i++) batch += `{"t":"ping"}\n`;
    d.send(batch);
    await eventually(() => d.frames.filter((f) => f.t === "pong").length === 1000, 5000, "1000 pongs");
    d.frames.length = 0;
    batch = "";
    for (let i = 0; i < 1000; i++) batch += `${JSON.stringify({ t: "req", id: `m${i}`, type: "echo", body: i })}\n`;
    d.send(batch);
    await eventually(() => d.frames.filter((f) => f.t === "res").length === 1000, 10_000, "1000 answers");
    const acks = d.frames.filter((f) => f.t === "ack").length;
    assert.equal(acks, 1000);
    const bodies = new Set(d.frames.filter((f) => f.t === "res").map((f) => f.body));
    assert.equal(bodies.size, 1000);
  });

  it("serves frames sent right behind hello in the same segment, after welcome and in order", async () => {
    const d = await device(base.port);
    const lines = [
      { t: "hello", v: 1, deviceId: "dev-pipelined" },
      { t: "req", id: "p1", type: "echo", body: "first" },
      { t: "ping" },
      { t: "req", id: "p2", type: "echo", body: "second" },
    ];
    d.send(`${lines.map((line) => JSON.stringify(line)).join("\n")}\n`);
    assert.equal((await d.next()).t, "welcome");
    assert.deepEqual(await d.nextOfType("res"), { t: "res", id: "p1", body: "first" });
    assert.deepEqual(await d.nextOfType("res"), { t: "res", id: "p2", body: "second" });
    assert.equal(d.frames.filter((f) => f.t === "pong").length, 1);
    assert.ok(!d.frames.some((f) => f.t === "error"), "no error frame for pipelined frames");
  });

  it("refuses frames pipelined behind a hello whose token is wrong, answering only unauthorized", async () => {
    const s = await setup({}, { authenticator: createAuthenticator({ mode: "hmac", secret: "pipeline-secret" }) });
    const d = await device(s.port);
    d.send(
      `${JSON.stringify({ t: "hello", v: 1, deviceId: "dev-bad-pipe", token: "nope" })}\n${JSON.stringify({ t: "req", id: "q", type: "echo", body: 1 })}\n`,
    );
    const error = await d.nextOfType("error");
    assert.equal(error.code, "unauthorized");
    await d.waitClosed();
    assert.ok(!d.frames.some((f) => f.t === "ack" || f.t === "res"), "nothing served after a failed hello");
  });

  it("sends frame_too_large and closes for a line longer than maxFrameBytes", async () => {
    const s = await setup({ limits: { maxFrameBytes: 1024 } });
    const d = await welcomed(s.port, "dev-big");
    d.send(`${JSON.stringify({ t: "req", id: "big", type: "echo", body: "x".repeat(2000) })}\n`);
    const error = await d.nextOfType("error");
    assert.equal(error.code, "frame_too_large");
    await d.waitClosed();
  });

  it("cuts an endless line at the limit without waiting for its end", async () => {
    const s = await setup({ limits: { maxFrameBytes: 1024 } });
    const d = await welcomed(s.port, "dev-endless");
    for (let i = 0; i < 20; i++) d.send("a".repeat(500));
    const error = await d.nextOfType("error");
    assert.equal(error.code, "frame_too_large");
    await d.waitClosed();
  });

  it("answers garbage bytes with bad_frame and keeps the connection open", async () => {
    const d = await welcomed(base.port, "dev-garbage");
    d.socket.write(Buffer.concat([randomBytes(200).filter((b) => b !== 10), Buffer.from("\n")]));
    d.send("[1,2,3]\n");
    d.send('{"t":"req","id":"g1"}\n');
    d.send('{"no":"type"}\n');
    const errors = [await d.nextOfType("error"), await d.nextOfType("error"), await d.nextOfType("error")];
    const fourth = await d.nextOfType("error");
    for (const error of [...errors, fourth]) assert.equal(error.code, "bad_frame");
    assert.equal(errors[2]!.id, "g1");
    d.send({ t: "ping" });
    assert.deepEqual(await d.nextOfType("pong"), { t: "pong" });
  });

  it("closes the connection after 10 bad frames in a row", async () => {
    const d = await welcomed(base.port, "dev-bad10");
    for (let i = 0; i < 9; i++) d.send("nope\n");
    d.send({ t: "ping" });
    await d.nextOfType("pong");
    for (let i = 0; i < 10; i++) d.send("nope\n");
    await d.waitClosed();
    assert.equal(d.frames.filter((f) => f.t === "error" && f.code === "bad_frame").length, 19);
  });

  it("answers an unknown frame type with unknown_frame and stays open", async () => {
    const d = await welcomed(base.port, "dev-unknown");
    d.send({ t: "teleport", where: "mars" });
    const error = await d.nextOfType("error");
    assert.equal(error.code, "unknown_frame");
    d.send({ t: "ping", extra: "ignored" });
    assert.deepEqual(await d.nextOfType("pong"), { t: "pong" });
  });

  it("sends hello_timeout and closes when no hello comes in time", async () => {
    const s = await setup({ limits: { helloTimeoutMs: 100 } });
    const d = await device(s.port);
    const error = await d.nextOfType("error", 2000);
    assert.equal(error.code, "hello_timeout");
    await d.waitClosed();
  });

  it("sends not_authenticated and closes for any other frame before welcome", async () => {
    for (const frame of [{ t: "ping" }, { t: "req", id: "1", type: "echo", body: 1 }, { t: "ack", id: "1" }]) {
      const d = await device(base.port);
      d.send(frame);
      const error = await d.nextOfType("error");
      assert.equal(error.code, "not_authenticated");
      await d.waitClosed();
    }
  });

  it("refuses a wrong hmac token with unauthorized and accepts the right one", async () => {
    const secret = "s3cret";
    const s = await setup({}, { authenticator: createAuthenticator({ mode: "hmac", secret }) });
    const bad = await device(s.port);
    const refusal = await bad.hello("dev-hmac", hmacToken("other", "dev-hmac"));
    assert.equal(refusal.t, "error");
    assert.equal(refusal.code, "unauthorized");
    await bad.waitClosed();
    const missing = await device(s.port);
    assert.equal((await missing.hello("dev-hmac")).code, "unauthorized");
    await missing.waitClosed();
    const good = await device(s.port);
    assert.equal((await good.hello("dev-hmac", hmacToken(secret, "dev-hmac"))).t, "welcome");
  });

  it("checks jwt tokens: subject, signature and expiry", async () => {
    const secret = "jwt-secret";
    const key = jwtHs256Key(secret);
    const s = await setup({}, { authenticator: createAuthenticator({ mode: "jwt", secret }) });
    const nowSec = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>, k = key) =>
      new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(k);
    const cases: Array<[string, string]> = [
      [await sign({ sub: "someone-else", exp: nowSec + 60 }), "error"],
      [await sign({ sub: "dev-jwt", exp: nowSec - 600 }), "error"],
      [await sign({ sub: "dev-jwt", exp: nowSec + 60 }, new TextEncoder().encode("wrong")), "error"],
      [await sign({ sub: "dev-jwt", exp: nowSec + 60 }), "welcome"],
    ];
    for (const [token, expected] of cases) {
      const d = await device(s.port);
      const answer = await d.hello("dev-jwt", token);
      assert.equal(answer.t, expected, JSON.stringify(answer));
      if (expected === "error") {
        assert.equal(answer.code, "unauthorized");
        await d.waitClosed();
      }
    }
  });

  it("answers a second open request with the same id with duplicate_id", async () => {
    const s = await setup();
    let release!: () => void;
    s.worker.gate = new Promise((resolve) => {
      release = resolve;
    });
    const d = await welcomed(s.port, "dev-dup");
    d.send({ t: "req", id: "same", type: "echo", body: 1 });
    await d.nextOfType("ack");
    d.send({ t: "req", id: "same", type: "echo", body: 2 });
    const error = await d.nextOfType("error");
    assert.deepEqual({ id: error.id, code: error.code }, { id: "same", code: "duplicate_id" });
    release();
    assert.deepEqual(await d.nextOfType("res"), { t: "res", id: "same", body: 1 });
    // Once answered, the id is free again.
    d.send({ t: "req", id: "same", type: "echo", body: 3 });
    assert.deepEqual(await d.nextOfType("res"), { t: "res", id: "same", body: 3 });
  });

  it("answers requests over the rate limit with rate_limited and retryAfterMs", async () => {
    const s = await setup({ limits: { rateLimit: 3 } });
    const d = await welcomed(s.port, "dev-rate");
    for (let i = 0; i < 6; i++) d.send({ t: "req", id: `q${i}`, type: "echo", body: i });
    const limited = await d.next((f) => f.t === "error" && f.code === "rate_limited");
    assert.equal(typeof limited.id, "string");
    assert.ok(typeof limited.retryAfterMs === "number" && limited.retryAfterMs > 0 && limited.retryAfterMs <= 1000);
    await eventually(() => d.frames.filter((f) => f.t === "res").length === 3, 3000, "3 answers");
    assert.equal(d.frames.filter((f) => f.t === "error" && f.code === "rate_limited").length, 2);
  });

  it("stops reading a socket while too many requests are open, and resumes", async () => {
    const s = await setup({ limits: { maxInflight: 2 } });
    let release!: () => void;
    s.worker.gate = new Promise((resolve) => {
      release = resolve;
    });
    const d = await welcomed(s.port, "dev-inflight");
    for (let i = 0; i < 5; i++) {
      d.send({ t: "req", id: `i${i}`, type: "echo", body: i });
      await sleep(20);
    }
    await sleep(100);
    assert.equal(s.edge.awaitingAnswers, 2);
    release();
    await eventually(() => d.frames.filter((f) => f.t === "res").length === 5, 3000, "5 answers");
  });

  it("stops reading devices while too many requests await the broker's confirmation, and resumes", async () => {
    const fleet = await memoryFleet();
    const worker = new EchoWorker(fleet.broker, fleet.common.names);
    await worker.start();
    const slow = new SlowConfirmations(fleet.broker, fleet.common.names.requestsTopic);
    const { edge, port } = await startEdge({ ...fleet, broker: slow }, { limits: { maxProducerQueue: 3 } });
    closers.push(async () => {
      slow.confirm();
      await edge.close();
      await worker.close();
    });
    const d = await welcomed(port, "dev-backlog");
    for (let i = 0; i < 8; i++) {
      d.send({ t: "req", id: `b${i}`, type: "echo", body: i });
      await sleep(20);
    }
    await sleep(100);
    // The fourth request crossed the bound; nothing after it was read.
    assert.equal(slow.held, 4);
    assert.equal(d.frames.filter((f) => f.t === "ack").length, 0);
    slow.confirm();
    await eventually(() => d.frames.filter((f) => f.t === "res").length === 8, 3000, "8 answers");
    assert.equal(d.frames.filter((f) => f.t === "ack").length, 8);
    assert.deepEqual(
      d.frames.filter((f) => f.t === "error"),
      [],
    );
  });

  it("sends unavailable (retryable) when the broker does not take a request", async () => {
    const s = await setup();
    const d = await welcomed(s.port, "dev-unavail");
    s.fleet.broker.fail(true);
    d.send({ t: "req", id: "u1", type: "echo", body: 1 });
    const error = await d.nextOfType("error");
    assert.deepEqual(
      { id: error.id, code: error.code, retryable: error.retryable },
      {
        id: "u1",
        code: "unavailable",
        retryable: true,
      },
    );
    s.fleet.broker.fail(false);
    d.send({ t: "req", id: "u1", type: "echo", body: 2 });
    assert.deepEqual(await d.nextOfType("res"), { t: "res", id: "u1", body: 2 });
  });

  it("answers ping with pong", async () => {
    const d = await welcomed(base.port, "dev-ping");
    d.send('{"t":"ping"}\n');
    assert.deepEqual(await d.next(), { t: "pong" });
  });

  it("closes an idle connection with bye idle_timeout after twice heartbeatMs", async () => {
    const s = await setup({ limits: { heartbeatMs: 100 } });
    const d = await device(s.port);
    const welcome = await d.hello("dev-idle");
    assert.equal(welcome.heartbeatMs, 100);
    const started = Date.now();
    const bye = await d.nextOfType("bye", 2000);
    assert.equal(bye.reason, "idle_timeout");
    assert.ok(Date.now() - started >= 180, "not before 2 x heartbeatMs");
    await d.waitClosed();
  });

  it("keeps a connection that sends any frame alive", async () => {
    // Idle limit 1 s; a frame every 100 ms for 1.5 s. Wide margins: CI machines stall.
    const s = await setup({ limits: { heartbeatMs: 500 } });
    const d = await welcomed(s.port, "dev-alive");
    for (let i = 0; i < 15; i++) {
      await sleep(100);
      d.send({ t: "ack", id: "nothing" });
    }
    assert.equal(d.closed, false);
    assert.equal(d.frames.filter((f) => f.t === "bye").length, 0);
  });

  it("closes cleanly on the client's bye and releases the ownership record", async () => {
    const d = await welcomed(base.port, "dev-bye");
    d.send({ t: "bye" });
    await d.waitClosed();
    assert.equal(d.frames.length, 0);
    await eventually(async () => (await base.fleet.registry.connections.get("dev-bye")) === null);
  });

  it("sends bye replaced to the older connection when the device connects again", async () => {
    const first = await welcomed(base.port, "dev-takeover");
    const second = await device(base.port);
    const welcome = await second.hello("dev-takeover");
    assert.equal(welcome.t, "welcome");
    const bye = await first.nextOfType("bye");
    assert.equal(bye.reason, "replaced");
    await first.waitClosed();
    second.send({ t: "req", id: "after", type: "echo", body: "new" });
    assert.deepEqual(await second.nextOfType("res"), { t: "res", id: "after", body: "new" });
    const record = await base.fleet.registry.connections.get("dev-takeover");
    assert.equal(record?.connId, welcome.connId);
  });

  it("delivers a push, keeps it until acked and deletes it from the outbox on ack", async () => {
    const s = await setup();
    const d = await welcomed(s.port, "dev-push");
    await pushTo(s, "dev-push", "m1", { n: 1 });
    const push = await d.nextOfType("push");
    assert.deepEqual(push, { t: "push", id: "m1", type: "note", body: { n: 1 } });
    assert.equal((await s.fleet.registry.outbox.list("dev-push")).length, 1);
    d.send({ t: "ack", id: "m1" });
    await eventually(async () => (await s.fleet.registry.outbox.list("dev-push")).length === 0);
  });

  it("delivers an unacked push again on the next connection", async () => {
    const s = await setup();
    const d = await welcomed(s.port, "dev-push2");
    await pushTo(s, "dev-push2", "m2", "hi");
    await d.nextOfType("push");
    d.close();
    await sleep(50);
    const again = await welcomed(s.port, "dev-push2");
    const push = await again.nextOfType("push");
    assert.equal(push.id, "m2");
    again.send({ t: "ack", id: "m2" });
    await eventually(async () => (await s.fleet.registry.outbox.list("dev-push2")).length === 0);
  });

  it("parks an answer whose device went away and delivers it on the next connection", async () => {
    const s = await setup();
    let release!: () => void;
    s.worker.gate = new Promise((resolve) => {
      release = resolve;
    });
    const d = await welcomed(s.port, "dev-park");
    d.send({ t: "req", id: "p1", type: "echo", body: "parked" });
    await d.nextOfType("ack");
    d.close();
    await eventually(async () => (await s.fleet.registry.connections.get("dev-park")) === null);
    release();
    await eventually(async () => (await s.fleet.registry.outbox.list("dev-park")).length === 1, 3000, "parked");
    const again = await welcomed(s.port, "dev-park");
    assert.deepEqual(await again.nextOfType("res"), { t: "res", id: "p1", body: "parked" });
    await eventually(async () => (await s.fleet.registry.outbox.list("dev-park")).length === 0);
  });

  it("closes a connection on a kick order with bye kicked", async () => {
    const s = await setup();
    const d = await device(s.port);
    const welcome = await d.hello("dev-kick");
    const producer = s.fleet.broker.producer();
    await producer.send({
      topic: s.fleet.common.names.repliesTopic,
      partition: s.edge.slot,
      key: "dev-kick",
      value: JSON.stringify({ op: "close", deviceId: "dev-kick", connId: welcome.connId, reason: "kicked" }),
      headers: { [Header.Kind]: ReplyKind.Control, [Header.Device]: "dev-kick" },
    });
    await producer.close();
    assert.equal((await d.nextOfType("bye")).reason, "kicked");
    await d.waitClosed();
  });

  it("writes a pretty-printed reply value as one line", async () => {
    const s = await setup();
    const d = await device(s.port);
    const welcome = await d.hello("dev-pretty");
    const producer = s.fleet.broker.producer();
    await producer.send({
      topic: s.fleet.common.names.repliesTopic,
      partition: s.edge.slot,
      key: "dev-pretty",
      value: JSON.stringify({ t: "res", id: "p", body: { a: [1, 2], s: "x\ny" } }, null, 2),
      headers: {
        [Header.Kind]: ReplyKind.Answer,
        [Header.Device]: "dev-pretty",
        [Header.Conn]: String(welcome.connId),
        [Header.RequestId]: "p",
      },
    });
    await producer.close();
    assert.deepEqual(await d.nextOfType("res"), { t: "res", id: "p", body: { a: [1, 2], s: "x\ny" } });
    assert.deepEqual(d.invalid, []);
  });

  it("refuses connections past maxConnections with an error and closes them", async () => {
    const s = await setup({ limits: { maxConnections: 1 } });
    await welcomed(s.port, "dev-full-1");
    const extra = await device(s.port);
    const error = await extra.nextOfType("error");
    assert.equal(error.code, "unavailable");
    assert.equal(error.retryable, true);
    await extra.waitClosed();
  });

  it("cuts a connection whose socket does not keep up with its replies", async () => {
    const s = await setup({ limits: { maxQueuedBytes: 64 * 1024, rateLimit: 100_000, maxInflight: 10_000 } });
    const d = await welcomed(s.port, "dev-slow");
    d.socket.pause();
    const body = "z".repeat(60_000);
    for (let i = 0; i < 300 && !d.closed; i++) {
      d.socket.write(`${JSON.stringify({ t: "req", id: `z${i}`, type: "echo", body })}\n`);
      if (i % 20 === 19) await sleep(5);
    }
    await eventually(() => s.edge.connectionCount === 0, 10_000, "slow connection cut");
  });

  it("says bye draining with reconnectMs inside the drain window when it shuts down", async () => {
    const s = await setup({ drainMs: 500 });
    const a = await welcomed(s.port, "dev-drain-a");
    const b = await welcomed(s.port, "dev-drain-b");
    const drained = s.edge.drain();
    for (const d of [a, b]) {
      const bye = await d.nextOfType("bye");
      assert.equal(bye.reason, "draining");
      assert.ok(typeof bye.reconnectMs === "number" && bye.reconnectMs >= 0 && bye.reconnectMs < 500);
      await d.waitClosed();
    }
    await drained;
    assert.equal(s.edge.status, "closed");
    assert.equal(
      await s.fleet.registry.leases.get(s.edge.slot).then((l) => l === null || l.leaseUntil <= Date.now()),
      true,
    );
  });

  it("writes only valid frames: every line the edge sent in these tests parsed as a frame", () => {
    for (const d of devices) assert.deepEqual(d.invalid, []);
  });
});

async function pushTo(s: Setup, deviceId: string, messageId: string, body: unknown): Promise<void> {
  const frame = pushFrame({ messageId, type: "note", body });
  const now = Date.now();
  const expiresAt = now + 60_000;
  await s.fleet.registry.outbox.put({ deviceId, messageId, frame, createdAt: now, expiresAt });
  const producer = s.fleet.broker.producer();
  await producer.send(
    pushRecord(s.fleet.common.names.repliesTopic, s.edge.slot, { deviceId, messageId, expiresAt }, frame),
  );
  await producer.close();
}
