import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { createWorker } from "../../../services/worker/index.ts";
import { MemoryBroker } from "../../../shared/broker/memory/index.ts";
import { tetherTopics } from "../../../shared/broker/topics.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { type DownlinkRecord, Header } from "../../../shared/records/index.ts";
import { MemoryRegistry } from "../../../shared/registry/memory/index.ts";
import { Collector, sleep, testConfig } from "./fixtures.ts";

async function setup(t: TestContext) {
  const config = testConfig("p-");
  const broker = new MemoryBroker();
  const registry = new MemoryRegistry();
  const admin = broker.admin();
  await admin.ensureTopics(tetherTopics({ names: config.names, maxEdges: config.maxEdges, workPartitions: 4 }));
  const worker = createWorker({ config, logger: silentLogger(), broker, registry });
  await worker.start();
  const producer = broker.producer();
  await producer.connect();
  const replies = await Collector.start(broker, config.names.repliesTopic, [0, 1, 2, 3], "test-edge");
  t.after(async () => {
    await worker.close(2000);
    await replies.close();
    await producer.close();
    await admin.close();
    await registry.close();
  });
  const push = (record: Partial<DownlinkRecord> & { deviceId: string; messageId: string }) =>
    producer.send({
      topic: config.names.downlinkTopic,
      key: record.deviceId,
      value: JSON.stringify({
        type: "note",
        body: { text: "hi" },
        createdAt: Date.now(),
        expiresAt: Date.now() + 60_000,
        ...record,
      }),
    });
  const waitPushes = async (count: number) => {
    for (let i = 0; i < 200; i += 1) {
      const text = await worker.metrics.registry.getSingleMetricAsString("tether_worker_pushes_total");
      const total = [...text.matchAll(/^tether_worker_pushes_total\{[^}]*\} (\d+)$/gm)].reduce(
        (sum, match) => sum + Number(match[1]),
        0,
      );
      if (total >= count) return text;
      await sleep(10);
    }
    throw new Error("pushes not handled in time");
  };
  return { config, registry, replies, push, waitPushes };
}

async function connect(registry: MemoryRegistry, deviceId: string, slot: number, edgeId: string) {
  await registry.leases.acquire({ slot, edgeId, host: "test", leaseMs: 30_000 });
  await registry.connections.claim({ deviceId, edgeId, slot, connId: `conn-${deviceId}`, connectedAt: Date.now() });
}

test("a push to an online device goes to its edge's slot with push headers and stays in the outbox", async (t) => {
  const { registry, replies, push } = await setup(t);
  await connect(registry, "dev-on", 3, "edge-a");
  const expiresAt = Date.now() + 60_000;
  await push({ deviceId: "dev-on", messageId: "m1", expiresAt, body: { n: 1 } });
  const [delivered] = await replies.waitForCount(1);
  assert.deepEqual(delivered?.frame, { t: "push", id: "m1", type: "note", body: { n: 1 } });
  assert.equal(delivered?.message.partition, 3);
  assert.equal(delivered?.message.key, "dev-on");
  assert.equal(delivered?.message.headers[Header.Kind], "push");
  assert.equal(delivered?.message.headers[Header.Device], "dev-on");
  assert.equal(delivered?.message.headers[Header.MessageId], "m1");
  assert.equal(delivered?.message.headers[Header.ExpiresAt], String(expiresAt));
  const stored = await registry.outbox.list("dev-on");
  assert.equal(stored.length, 1);
  assert.equal(stored[0]?.frame, JSON.stringify({ t: "push", id: "m1", type: "note", body: { n: 1 } }));
  assert.equal(stored[0]?.expiresAt, expiresAt);
});

test("a push to an offline device waits in the outbox and is not produced", async (t) => {
  const { registry, replies, push, waitPushes } = await setup(t);
  await push({ deviceId: "dev-off", messageId: "m1" });
  const text = await waitPushes(1);
  assert.match(text, /outcome="stored"\} 1/);
  const stored = await registry.outbox.list("dev-off");
  assert.deepEqual(
    stored.map((entry) => entry.messageId),
    ["m1"],
  );
  assert.equal(replies.items.length, 0);
});

test("a push to a device whose edge lost its lease waits in the outbox", async (t) => {
  const { registry, replies, push, waitPushes } = await setup(t);
  await connect(registry, "dev-stale", 1, "edge-a");
  await registry.leases.release(1, "edge-a");
  await registry.leases.acquire({ slot: 1, edgeId: "edge-b", host: "test", leaseMs: 30_000 });
  await push({ deviceId: "dev-stale", messageId: "m1" });
  await waitPushes(1);
  assert.equal((await registry.outbox.list("dev-stale")).length, 1);
  assert.equal(replies.items.length, 0);
});

test("an expired push is dropped: neither produced nor stored", async (t) => {
  const { registry, replies, push, waitPushes } = await setup(t);
  await connect(registry, "dev-x", 0, "edge-a");
  await push({ deviceId: "dev-x", messageId: "old", expiresAt: Date.now() - 1 });
  const text = await waitPushes(1);
  assert.match(text, /outcome="expired"\} 1/);
  assert.equal((await registry.outbox.list("dev-x")).length, 0);
  assert.equal(replies.items.length, 0);
});
