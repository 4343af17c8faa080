import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createWorker, type Worker } from "../../../services/worker/index.ts";
import type { Producer } from "../../../shared/broker/types.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { type DownlinkRecord, Header } from "../../../shared/records/index.ts";
import { ensureTables } from "../../../shared/registry/dynamodb/index.ts";
import { createRegistry } from "../../../shared/registry/index.ts";
import type { Registry } from "../../../shared/registry/types.ts";
import { Collector, sleep } from "./fixtures.ts";
import { type KafkaEnv, kafkaEnv } from "./kafka-fixtures.ts";

// Real Kafka and DynamoDB Local. The fake edge is what an edge is to the router: a consumer of
// its reply slot, a connection record naming it, and a live lease on the slot.
let env: KafkaEnv;
let registry: Registry;
let worker: Worker;
let producer: Producer;
let edge: Collector;
const EDGE_SLOT = 2;

before(async () => {
  env = await kafkaEnv();
  const logger = silentLogger();
  await ensureTables({ settings: env.config.dynamodb, names: env.config.names, logger });
  registry = await createRegistry(env.config, logger);
  worker = createWorker({ config: env.config, logger, broker: env.broker, registry });
  edge = await Collector.start(env.broker, env.config.names.repliesTopic, [EDGE_SLOT], "fake-edge");
  producer = env.broker.producer();
  await producer.connect();
  await worker.start();
  await registry.leases.acquire({ slot: EDGE_SLOT, edgeId: "edge-live", host: "test", leaseMs: 120_000 });
});

after(async () => {
  await worker?.close(5000);
  await Promise.all([edge?.close(), producer?.close()]);
  await registry?.close();
});

function push(record: Pick<DownlinkRecord, "deviceId" | "messageId"> & Partial<DownlinkRecord>) {
  return producer.send({
    topic: env.config.names.downlinkTopic,
    key: record.deviceId,
    value: JSON.stringify({
      type: "note",
      body: { text: "hi" },
      createdAt: Date.now(),
      expiresAt: Date.now() + 60_000,
      ...record,
    }),
  });
}

/** Waits until the router has handled `count` pushes in all (by its metric). */
async function routed(count: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const metric = await worker.metrics.pushes.get();
    if (metric.values.reduce((sum, value) => sum + value.value, 0) >= count) return;
    await sleep(50);
  }
  throw new Error(`router did not handle ${count} pushes in time`);
}

test("a push to an online device is produced to its edge's slot and kept in the outbox until acked", async () => {
  await registry.connections.claim({
    deviceId: "on-1",
    edgeId: "edge-live",
    slot: EDGE_SLOT,
    connId: "conn-on-1",
    connectedAt: Date.now(),
  });
  const expiresAt = Date.now() + 60_000;
  await push({ deviceId: "on-1", messageId: "m-on", expiresAt, body: { n: 1 } });
  const [delivered] = await edge.waitUntil((items) => items.some((item) => item.frame.id === "m-on"));
  assert.ok(delivered);
  assert.deepEqual(delivered.frame, { t: "push", id: "m-on", type: "note", body: { n: 1 } });
  assert.equal(delivered.message.partition, EDGE_SLOT);
  assert.equal(delivered.message.headers[Header.Kind], "push");
  assert.equal(delivered.message.headers[Header.Device], "on-1");
  assert.equal(delivered.message.headers[Header.MessageId], "m-on");
  assert.equal(delivered.message.headers[Header.ExpiresAt], String(expiresAt));
  const stored = await registry.outbox.list("on-1");
  assert.deepEqual(
    stored.map((entry) => [entry.messageId, entry.expiresAt]),
    [["m-on", expiresAt]],
  );
});

test("a push to an offline device waits in the outbox for the next connection", async () => {
  await push({ deviceId: "off-1", messageId: "m-off", body: { n: 2 } });
  await routed(2);
  const stored = await registry.outbox.list("off-1");
  assert.equal(stored.length, 1);
  assert.equal(stored[0]?.frame, JSON.stringify({ t: "push", id: "m-off", type: "note", body: { n: 2 } }));
  assert.equal(
    edge.items.filter((item) => item.message.key === "off-1").length,
    0,
    "nothing produced for an offline device",
  );
});

test("a push past its expiry is dropped", async () => {
  await registry.connections.claim({
    deviceId: "exp-1",
    edgeId: "edge-live",
    slot: EDGE_SLOT,
    connId: "conn-exp-1",
    connectedAt: Date.now(),
  });
  await push({ deviceId: "exp-1", messageId: "m-exp", expiresAt: Date.now() - 1000 });
  await routed(3);
  assert.deepEqual(await registry.outbox.list("exp-1"), []);
  await sleep(300);
  assert.equal(edge.items.filter((item) => item.message.key === "exp-1").length, 0);
});
