import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import {
  createWorker,
  type DeadLetterRecord,
  HandlerError,
  type HandlerRequest,
} from "../../../services/worker/index.ts";
import { MemoryBroker } from "../../../shared/broker/memory/index.ts";
import { tetherTopics } from "../../../shared/broker/topics.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { Header, requestRecord } from "../../../shared/records/index.ts";
import { MemoryRegistry } from "../../../shared/registry/memory/index.ts";
import { Collector, requestMessage, sleep, type TestRequest, testConfig } from "./fixtures.ts";

const route = { slot: 2, edgeId: "edge-a", connId: "conn-1" };

async function setup(t: TestContext, overrides: Record<string, string> = {}) {
  const config = testConfig("u-", overrides);
  const broker = new MemoryBroker();
  const registry = new MemoryRegistry();
  const admin = broker.admin();
  await admin.ensureTopics(tetherTopics({ names: config.names, maxEdges: config.maxEdges, workPartitions: 4 }));
  const worker = createWorker({ config, logger: silentLogger(), broker, registry, routePushes: false });
  const producer = broker.producer();
  await producer.connect();
  const replies = await Collector.start(broker, config.names.repliesTopic, [0, 1, 2, 3], "test-edge");
  const dlq = await Collector.start(broker, config.names.dlqTopic, [0], "test-dlq");
  t.after(async () => {
    await worker.close(2000);
    await replies.close();
    await dlq.close();
    await producer.close();
    await admin.close();
    await registry.close();
  });
  const send = (request: TestRequest, to = route) => producer.send(requestMessage(config.names, request, to));
  return { config, broker, admin, worker, producer, replies, dlq, send };
}

test("a handler's return value answers res to the reply route's partition with the answer headers", async (t) => {
  const { worker, send, replies } = await setup(t);
  worker.handle("echo", (req) => req.body);
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "echo", body: { hello: ["world", 1] } });
  const [answer] = await replies.waitForCount(1);
  assert.ok(answer);
  assert.deepEqual(answer.frame, { t: "res", id: "r1", body: { hello: ["world", 1] } });
  assert.equal(answer.message.partition, 2);
  assert.equal(answer.message.key, "dev-1");
  assert.deepEqual(Object.keys(answer.message.headers).sort(), [Header.Conn, Header.ReceivedAt, Header.RequestId]);
  assert.equal(answer.message.headers[Header.Conn], "conn-1");
  assert.equal(answer.message.headers[Header.RequestId], "r1");
  assert.match(answer.message.headers[Header.ReceivedAt] ?? "", /^\d+$/);
});

test("the handler gets the request's fields, an idempotency key, a logger and a live signal", async (t) => {
  const { worker, send, replies } = await setup(t);
  let seen: HandlerRequest | undefined;
  worker.handle("inspect", (req) => {
    seen = req;
    return undefined;
  });
  await worker.start();
  await send({ deviceId: "dev-2", id: "q-9", type: "inspect", body: 42 });
  const [answer] = await replies.waitForCount(1);
  assert.deepEqual(answer?.frame, { t: "res", id: "q-9", body: null });
  assert.ok(seen);
  assert.equal(seen.deviceId, "dev-2");
  assert.equal(seen.id, "q-9");
  assert.equal(seen.type, "inspect");
  assert.equal(seen.body, 42);
  assert.equal(seen.idempotencyKey, "dev-2:q-9");
  assert.equal(seen.attempt, 1);
  assert.ok(Math.abs(seen.receivedAt - Date.now()) < 10_000);
  assert.equal(typeof seen.log.info, "function");
  assert.equal(seen.signal.aborted, false);
});

test("a HandlerError answers error with its code and is not retried", async (t) => {
  const { worker, send, replies, dlq } = await setup(t);
  let calls = 0;
  worker.handle("check", () => {
    calls += 1;
    throw new HandlerError("invalid_input", "name is required", { retryable: true });
  });
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "check" });
  const [answer] = await replies.waitForCount(1);
  assert.deepEqual(answer?.frame, {
    t: "error",
    id: "r1",
    code: "invalid_input",
    message: "name is required",
    retryable: true,
  });
  await sleep(100);
  assert.equal(calls, 1);
  assert.equal(dlq.items.length, 0);
});

test("a handler that fails then succeeds is retried and answers res", async (t) => {
  const { worker, send, replies, dlq } = await setup(t, { TETHER_HANDLER_RETRIES: "3" });
  const attempts: number[] = [];
  worker.handle("flaky", (req) => {
    attempts.push(req.attempt);
    if (req.attempt < 3) throw new Error("backend hiccup");
    return { ok: true };
  });
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "flaky" });
  const [answer] = await replies.waitForCount(1);
  assert.deepEqual(answer?.frame, { t: "res", id: "r1", body: { ok: true } });
  assert.deepEqual(attempts, [1, 2, 3]);
  assert.equal(dlq.items.length, 0);
  const metrics = await worker.metrics.registry.metrics();
  assert.match(metrics, /tether_worker_retried_total\{type="flaky"\} 2/);
});

test("a handler that keeps failing answers internal and dead-letters the request with its headers", async (t) => {
  const { worker, send, replies, dlq } = await setup(t, { TETHER_HANDLER_RETRIES: "2" });
  let calls = 0;
  worker.handle("broken", () => {
    calls += 1;
    throw new TypeError(`broken #${calls}`);
  });
  await worker.start();
  const sent = await send({ deviceId: "dev-7", id: "r1", type: "broken", body: { a: 1 } });
  const [answer] = await replies.waitForCount(1);
  assert.equal(calls, 3);
  assert.equal(answer?.frame.t, "error");
  assert.equal(answer?.frame.code, "internal");
  assert.equal(answer?.frame.retryable, false);
  const [letter] = await dlq.waitForCount(1);
  assert.ok(letter);
  const record = letter.frame as unknown as DeadLetterRecord;
  assert.equal(record.error.name, "TypeError");
  assert.equal(record.error.message, "broken #3");
  assert.match(record.error.stack ?? "", /TypeError: broken #3/);
  assert.equal(record.attempts, 3);
  assert.equal(record.request?.deviceId, "dev-7");
  assert.equal(record.request?.id, "r1");
  assert.equal(record.request?.type, "broken");
  assert.deepEqual(record.request?.body, { a: 1 });
  assert.equal(record.headers[Header.ReplySlot], "2");
  assert.equal(record.headers[Header.ReplyConn], "conn-1");
  assert.deepEqual(record.source, { topic: sent.topic, partition: sent.partition, offset: sent.offset });
  assert.equal(letter.message.key, "dev-7");
  assert.equal(letter.message.headers[Header.ReplyEdge], "edge-a");
  assert.equal(letter.message.headers[Header.ReplyConn], "conn-1");
});

test("a type without a handler answers unknown_type", async (t) => {
  const { worker, send, replies } = await setup(t);
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "nobody.home" });
  const [answer] = await replies.waitForCount(1);
  assert.equal(answer?.frame.code, "unknown_type");
  assert.equal(answer?.frame.retryable, false);
});

test("a handler past its deadline answers timeout, sees its signal abort, and its late result serves a resend", async (t) => {
  const { worker, send, replies } = await setup(t, { TETHER_HANDLER_TIMEOUT_MS: "100" });
  let aborted = false;
  let calls = 0;
  worker.handle("slow", async (req) => {
    calls += 1;
    req.signal.addEventListener("abort", () => {
      aborted = true;
    });
    await sleep(300);
    return "late";
  });
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "slow" });
  const [answer] = await replies.waitForCount(1);
  assert.equal(answer?.frame.code, "timeout");
  assert.equal(answer?.frame.retryable, true);
  assert.equal(aborted, true);
  await sleep(400);
  assert.equal(replies.items.length, 1, "the late result is not sent");
  await send({ deviceId: "dev-1", id: "r1", type: "slow" });
  const all = await replies.waitForCount(2);
  assert.deepEqual(all[1]?.frame, { t: "res", id: "r1", body: "late" });
  assert.equal(calls, 1);
});

test("a repeated request within the window gets the first answer, at its own route, without running again", async (t) => {
  const { worker, send, replies } = await setup(t);
  let calls = 0;
  worker.handle("count", () => {
    calls += 1;
    return { calls };
  });
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "count" });
  await replies.waitForCount(1);
  await send({ deviceId: "dev-1", id: "r1", type: "count" }, { slot: 0, edgeId: "edge-b", connId: "conn-2" });
  const all = await replies.waitForCount(2);
  assert.equal(calls, 1);
  assert.deepEqual(all[1]?.frame, { t: "res", id: "r1", body: { calls: 1 } });
  assert.equal(all[1]?.message.partition, 0);
  assert.equal(all[1]?.message.headers[Header.Conn], "conn-2");
  assert.match(await worker.metrics.registry.metrics(), /tether_worker_deduplicated_total 1/);
});

test("a request id reused after its answer with a different body runs the handler and gets its own answer", async (t) => {
  const { worker, send, replies } = await setup(t);
  const seen: unknown[] = [];
  worker.handle("count", (req) => {
    seen.push(req.body);
    return { calls: seen.length, body: req.body };
  });
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "count", body: { n: 1 } });
  await replies.waitForCount(1);
  await send({ deviceId: "dev-1", id: "r1", type: "count", body: { n: 2 } });
  const all = await replies.waitForCount(2);
  assert.deepEqual(seen, [{ n: 1 }, { n: 2 }]);
  assert.deepEqual(all[1]?.frame, { t: "res", id: "r1", body: { calls: 2, body: { n: 2 } } });
  assert.match(await worker.metrics.registry.metrics(), /tether_worker_deduplicated_total 0/);
});

test("a request id reused with a different type runs that type's handler", async (t) => {
  const { worker, send, replies } = await setup(t);
  worker.handle("first", () => "first ran");
  worker.handle("second", () => "second ran");
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "first", body: { same: true } });
  await replies.waitForCount(1);
  await send({ deviceId: "dev-1", id: "r1", type: "second", body: { same: true } });
  const all = await replies.waitForCount(2);
  assert.deepEqual(all[1]?.frame, { t: "res", id: "r1", body: "second ran" });
});

test("a resend with the same id, type and body, spaced differently, is answered from the window", async (t) => {
  const { worker, producer, config, replies } = await setup(t);
  let calls = 0;
  worker.handle("count", () => {
    calls += 1;
    return { calls };
  });
  await worker.start();
  const request = { deviceId: "dev-1", id: "r1", type: "count", receivedAt: Date.now() };
  await producer.send(requestRecord(config.names.requestsTopic, route, request, '{"a":[1,2],"b":"x"}'));
  await replies.waitForCount(1);
  await producer.send(requestRecord(config.names.requestsTopic, route, request, '{ "a" : [ 1, 2 ],\t"b": "x" }'));
  const all = await replies.waitForCount(2);
  assert.equal(calls, 1);
  assert.deepEqual(all[1]?.frame, { t: "res", id: "r1", body: { calls: 1 } });
  assert.match(await worker.metrics.registry.metrics(), /tether_worker_deduplicated_total 1/);
});

test("two devices whose deviceId and id join to the same text keep their own answers", async (t) => {
  const { worker, send, replies } = await setup(t);
  worker.handle("who", (req) => req.deviceId);
  await worker.start();
  await send({ deviceId: "dev:1", id: "r1", type: "who" });
  await replies.waitForCount(1);
  await send({ deviceId: "dev", id: "1:r1", type: "who" });
  const all = await replies.waitForCount(2);
  assert.deepEqual(all[1]?.frame, { t: "res", id: "1:r1", body: "dev" });
});

test("when the answer cannot be produced the request is retried, answered later, and the handler ran once", async (t) => {
  const { worker, send, replies, broker, admin, config } = await setup(t);
  let calls = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  worker.handle("gated", async () => {
    calls += 1;
    await gate;
    return "done";
  });
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "gated" });
  await sleep(50);
  broker.fail(true);
  release();
  await sleep(300);
  assert.equal(replies.items.length, 0);
  assert.equal(await admin.groupLag(config.worker.groupId, config.names.requestsTopic), 1, "not committed");
  broker.fail(false);
  const [answer] = await replies.waitForCount(1, 15_000);
  assert.deepEqual(answer?.frame, { t: "res", id: "r1", body: "done" });
  assert.equal(calls, 1);
});

test("one device's requests are handled in order while devices run concurrently", async (t) => {
  const { worker, send, replies } = await setup(t, { TETHER_WORKER_CONCURRENCY: "8" });
  let running = 0;
  let peak = 0;
  const order = new Map<string, string[]>();
  worker.handle("work", async (req) => {
    running += 1;
    peak = Math.max(peak, running);
    const list = order.get(req.deviceId) ?? [];
    list.push(req.id);
    order.set(req.deviceId, list);
    await sleep(Math.floor(Math.random() * 5));
    running -= 1;
    return req.id;
  });
  await worker.start();
  const devices = Array.from({ length: 6 }, (_, i) => `dev-${i}`);
  const sends: Promise<unknown>[] = [];
  for (let n = 0; n < 20; n += 1) {
    for (const deviceId of devices) sends.push(send({ deviceId, id: `r${n}`, type: "work" }));
  }
  await Promise.all(sends);
  await replies.waitForCount(120);
  const expected = Array.from({ length: 20 }, (_, n) => `r${n}`);
  for (const deviceId of devices) {
    assert.deepEqual(order.get(deviceId), expected);
    const answered = replies.items.filter((item) => item.message.key === deviceId).map((item) => item.frame.id);
    assert.deepEqual(answered, expected);
  }
  assert.ok(peak > 1, `handlers ran concurrently (peak ${peak})`);
  assert.ok(peak <= 8);
});

test("a request without a reply route is dead-lettered unanswered", async (t) => {
  const { worker, producer, config, replies, dlq } = await setup(t);
  worker.handle("echo", (req) => req.body);
  await worker.start();
  await producer.send({
    topic: config.names.requestsTopic,
    key: "dev-1",
    value: JSON.stringify({ deviceId: "dev-1", id: "r1", type: "echo", body: 1, receivedAt: 1 }),
  });
  await producer.send({ topic: config.names.requestsTopic, key: "dev-1", value: "not json" });
  const letters = await dlq.waitForCount(2);
  assert.equal(letters[0]?.frame.attempts, 0);
  assert.equal((letters[0]!.frame.request as { id: string }).id, "r1");
  assert.equal(letters[1]?.frame.request, null);
  assert.equal(letters[1]?.frame.rawValue, "not json");
  assert.equal(replies.items.length, 0);
});

test("close lets an in-flight handler finish and commits its answer", async (t) => {
  const { worker, send, replies, admin, config } = await setup(t);
  let started!: () => void;
  const running = new Promise<void>((resolve) => {
    started = resolve;
  });
  worker.handle("slowish", async () => {
    started();
    await sleep(200);
    return "finished";
  });
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "slowish" });
  await running;
  await worker.close(5000);
  assert.equal(worker.status, "closed");
  assert.deepEqual(replies.items[0]?.frame, { t: "res", id: "r1", body: "finished" });
  assert.equal(await admin.groupLag(config.worker.groupId, config.names.requestsTopic), 0);
  await worker.close();
});

test("registering an invalid or duplicate type throws", async (t) => {
  const { worker } = await setup(t);
  worker.handle("a.b", () => 1);
  assert.throws(() => worker.handle("a.b", () => 2), /already registered/);
  assert.throws(() => worker.handle("has space", () => 2), /not a valid type/);
});

test("a request still failing when shutdown's grace runs out is neither answered nor committed", async (t) => {
  const { worker, send, replies, dlq, admin, config } = await setup(t, {
    TETHER_HANDLER_RETRIES: "5",
    TETHER_HANDLER_RETRY_BASE_MS: "400",
    TETHER_HANDLER_RETRY_MAX_MS: "400",
  });
  let calls = 0;
  worker.handle("down", () => {
    calls += 1;
    throw new Error("backend down");
  });
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "down" });
  while (calls === 0) await sleep(5);
  await worker.close(100);
  assert.equal(replies.items.length, 0);
  assert.equal(dlq.items.length, 0);
  assert.equal(await admin.groupLag(config.worker.groupId, config.names.requestsTopic), 1);
});

test("a request naming a reply slot that does not exist is dead-lettered, not retried forever", async (t) => {
  const { worker, send, replies, dlq } = await setup(t);
  worker.handle("echo", (req) => req.body);
  await worker.start();
  await send({ deviceId: "dev-1", id: "r1", type: "echo" }, { slot: 99, edgeId: "edge-z", connId: "c" });
  await send({ deviceId: "dev-1", id: "r2", type: "echo" });
  const [letter] = await dlq.waitForCount(1);
  assert.ok(letter);
  assert.match((letter.frame.error as { message: string }).message, /reply slot 99/);
  const [answer] = await replies.waitForCount(1);
  assert.equal(answer?.frame.id, "r2", "later requests of the device go on");
});
