import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createWorker, type DeadLetterRecord, HandlerError, type Worker } from "../../../services/worker/index.ts";
import type { Producer } from "../../../shared/broker/types.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { Header } from "../../../shared/records/index.ts";
import { MemoryRegistry } from "../../../shared/registry/memory/index.ts";
import { Collector, requestMessage, sleep, type TestRequest } from "./fixtures.ts";
import { type KafkaEnv, kafkaEnv } from "./kafka-fixtures.ts";

// One worker on real Kafka serves every test of this file (a group join costs seconds);
// tests keep apart by device id.
let env: KafkaEnv;
let worker: Worker;
let producer: Producer;
let replies: Collector;
let dlq: Collector;
const calls = new Map<string, number>();
const count = (key: string): number => {
  const next = (calls.get(key) ?? 0) + 1;
  calls.set(key, next);
  return next;
};
const route = (slot: number) => ({ slot, edgeId: "edge-test", connId: `conn-${slot}` });

before(async () => {
  env = await kafkaEnv({
    TETHER_REGISTRY: "memory",
    TETHER_WORKER_CONCURRENCY: "8",
    TETHER_HANDLER_RETRIES: "2",
    TETHER_HANDLER_TIMEOUT_MS: "300",
  });
  worker = createWorker({
    config: env.config,
    logger: silentLogger(),
    broker: env.broker,
    registry: new MemoryRegistry(),
    routePushes: false,
  });
  worker.handle("echo", (req) => req.body);
  worker.handle("refuse", () => {
    throw new HandlerError("invalid_input", "refused");
  });
  worker.handle("flaky", (req) => {
    count(req.idempotencyKey);
    if (req.attempt === 1) throw new Error("first run fails");
    return { attempt: req.attempt };
  });
  worker.handle("broken", (req) => {
    throw new RangeError(`broken run ${count(req.idempotencyKey)}`);
  });
  worker.handle("slow", async (req) => {
    await sleep(1000);
    return req.signal.aborted ? "aborted" : "finished";
  });
  worker.handle("counted", (req) => ({ runs: count(req.idempotencyKey) }));
  worker.handle("seq", async (req) => {
    await sleep(Math.floor(Math.random() * 3));
    return req.id;
  });
  replies = await Collector.start(env.broker, env.config.names.repliesTopic, [0, 1, 2, 3], "fake-edge");
  dlq = await Collector.start(env.broker, env.config.names.dlqTopic, [0], "dlq-reader");
  producer = env.broker.producer();
  await producer.connect();
  await worker.start();
});

after(async () => {
  await worker?.close(5000);
  await Promise.all([replies?.close(), dlq?.close(), producer?.close()]);
});

function send(request: TestRequest, slot = 0) {
  return producer.send(requestMessage(env.config.names, request, route(slot)));
}

async function answerTo(deviceId: string, id: string, timeoutMs = 30_000) {
  const items = await replies.waitUntil(
    (all) => all.some((item) => item.message.key === deviceId && item.frame.id === id),
    timeoutMs,
  );
  return items.find((item) => item.message.key === deviceId && item.frame.id === id)!;
}

test("a request is answered res on its reply slot with the answer headers", async () => {
  await send({ deviceId: "ok-1", id: "r1", type: "echo", body: { x: [1, 2] } }, 3);
  const answer = await answerTo("ok-1", "r1");
  assert.deepEqual(answer.frame, { t: "res", id: "r1", body: { x: [1, 2] } });
  assert.equal(answer.message.partition, 3);
  assert.equal(answer.message.key, "ok-1");
  assert.equal(answer.message.headers[Header.Kind], undefined, "an answer carries no kind header");
  assert.equal(answer.message.headers[Header.Conn], "conn-3");
  assert.equal(answer.message.headers[Header.RequestId], "r1");
});

test("a HandlerError is answered as an error frame with the handler's code", async () => {
  await send({ deviceId: "he-1", id: "r1", type: "refuse" });
  const answer = await answerTo("he-1", "r1");
  assert.deepEqual(answer.frame, { t: "error", id: "r1", code: "invalid_input", message: "refused", retryable: false });
});

test("a transient failure is retried and then answered res", async () => {
  await send({ deviceId: "tr-1", id: "r1", type: "flaky" });
  const answer = await answerTo("tr-1", "r1");
  assert.deepEqual(answer.frame, { t: "res", id: "r1", body: { attempt: 2 } });
  assert.equal(calls.get("tr-1:r1"), 2);
});

test("exhausted retries answer internal and put the request on the DLQ with error, attempts and headers", async () => {
  const sent = await send({ deviceId: "dl-1", id: "r1", type: "broken", body: { keep: "me" } }, 1);
  const answer = await answerTo("dl-1", "r1");
  assert.equal(answer.frame.code, "internal");
  assert.equal(answer.frame.retryable, false);
  assert.equal(answer.message.partition, 1);
  const [letter] = await dlq.waitUntil((items) => items.some((item) => item.message.key === "dl-1"));
  assert.ok(letter);
  const record = letter.frame as unknown as DeadLetterRecord;
  assert.equal(record.error.name, "RangeError");
  assert.equal(record.error.message, "broken run 3");
  assert.match(record.error.stack ?? "", /RangeError: broken run 3/);
  assert.equal(record.attempts, 3);
  assert.equal(record.request?.deviceId, "dl-1");
  assert.equal(record.request?.id, "r1");
  assert.equal(record.request?.type, "broken");
  assert.deepEqual(record.request?.body, { keep: "me" });
  assert.equal(typeof record.request?.receivedAt, "number");
  assert.equal(record.rawValue, undefined);
  assert.deepEqual(record.source, { topic: sent.topic, partition: sent.partition, offset: sent.offset });
  assert.ok(Math.abs(record.failedAt - Date.now()) < 60_000);
  assert.equal(record.headers[Header.ReplySlot], "1");
  assert.equal(record.headers[Header.ReplyEdge], "edge-test");
  assert.equal(record.headers[Header.ReplyConn], "conn-1");
  assert.equal(letter.message.key, "dl-1");
  assert.deepEqual(letter.message.headers, record.headers, "the DLQ record keeps the original headers");
});

test("a type without a handler is answered unknown_type", async () => {
  await send({ deviceId: "ut-1", id: "r1", type: "no.such.type" });
  const answer = await answerTo("ut-1", "r1");
  assert.equal(answer.frame.code, "unknown_type");
});

test("a handler past its deadline is answered timeout", async () => {
  await send({ deviceId: "to-1", id: "r1", type: "slow" });
  const answer = await answerTo("to-1", "r1");
  assert.equal(answer.frame.code, "timeout");
  assert.equal(answer.frame.retryable, true);
});

test("a request delivered twice runs its handler once and is answered twice alike", async () => {
  await send({ deviceId: "dd-1", id: "r1", type: "counted" });
  await send({ deviceId: "dd-1", id: "r1", type: "counted" });
  const items = await replies.waitUntil((all) => all.filter((item) => item.message.key === "dd-1").length >= 2);
  const answers = items.filter((item) => item.message.key === "dd-1");
  assert.equal(calls.get("dd-1:r1"), 1);
  assert.deepEqual(answers[0]?.frame, { t: "res", id: "r1", body: { runs: 1 } });
  assert.deepEqual(answers[1]?.frame, answers[0]?.frame);
});

test("10 devices x 100 requests with concurrency 8: every device's answers arrive in request order", async () => {
  const devices = Array.from({ length: 10 }, (_, i) => `seq-${i}`);
  const sends: Promise<unknown>[] = [];
  for (let n = 0; n < 100; n += 1) {
    for (const [i, deviceId] of devices.entries()) sends.push(send({ deviceId, id: `r${n}`, type: "seq" }, i % 4));
  }
  await Promise.all(sends);
  const expected = Array.from({ length: 100 }, (_, n) => `r${n}`);
  await replies.waitUntil(
    (all) => all.filter((item) => String(item.message.key).startsWith("seq-")).length >= 1000,
    60_000,
  );
  for (const deviceId of devices) {
    const ids = replies.items.filter((item) => item.message.key === deviceId).map((item) => item.frame.id);
    assert.deepEqual(ids, expected, `order of ${deviceId}`);
  }
});
