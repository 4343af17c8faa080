/** Smoke test of the Kafka adapter against the real local Kafka 4 broker. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { IncomingMessage } from "../../../shared/broker/types.ts";
import { slotGroup } from "../../../shared/config/index.ts";
import { createTestAdapters, type TestAdapters, uniquePrefix } from "../../harness/index.ts";

async function waitFor(what: string, condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("Kafka adapter on a real broker", () => {
  let adapters: TestAdapters;

  before(async () => {
    adapters = await createTestAdapters(uniquePrefix());
  });

  after(async () => {
    await adapters?.close();
  });

  test("creates the design's topics with their partition counts", async () => {
    const admin = adapters.broker.admin();
    try {
      assert.equal(await admin.partitionCount(adapters.names.repliesTopic), adapters.maxEdges);
      assert.equal(await admin.partitionCount(adapters.names.dlqTopic), 1);
      await admin.ping();
    } finally {
      await admin.close();
    }
  });

  test("delivers a request produced with acks=all to a group consumer, key and headers intact", async (t) => {
    const producer = adapters.broker.producer();
    t.after(() => producer.close());
    await producer.connect();
    const received: IncomingMessage[] = [];
    const consumer = adapters.broker.groupConsumer({
      groupId: adapters.names.workersGroup,
      topics: [adapters.names.requestsTopic],
    });
    t.after(() => consumer.close());
    await consumer.start(async (message) => {
      received.push(message);
    });
    const report = await producer.send({
      topic: adapters.names.requestsTopic,
      key: "device-42",
      value: JSON.stringify({ type: "echo", body: "hi" }),
      headers: { "tether-reply-slot": "3" },
    });
    assert.equal(producer.queued(), 0);
    await waitFor("the request", () => received.length === 1);
    const message = received[0]!;
    assert.equal(message.key, "device-42");
    assert.equal(message.offset, report.offset);
    assert.equal(message.partition, report.partition);
    assert.equal(message.headers["tether-reply-slot"], "3");
    assert.deepEqual(JSON.parse(message.value.toString("utf8")), { type: "echo", body: "hi" });
  });

  test("resumes a reply slot's partition consumer after the offset its predecessor committed", async (t) => {
    const producer = adapters.broker.producer();
    t.after(() => producer.close());
    const topic = adapters.names.repliesTopic;
    const slot = 5;
    const groupId = slotGroup(adapters.names, slot);
    for (let i = 0; i < 3; i += 1) await producer.send({ topic, partition: slot, value: `a${i}` });

    const first: string[] = [];
    const one = adapters.broker.partitionConsumer({ groupId, topic, partition: slot });
    t.after(() => one.close());
    await one.start(async (message) => {
      first.push(message.value.toString());
    });
    await waitFor("the first three replies", () => first.length === 3);
    await one.commit();
    await one.close();
    assert.deepEqual(first, ["a0", "a1", "a2"]);

    for (let i = 0; i < 2; i += 1) await producer.send({ topic, partition: slot, value: `b${i}` });
    const second: IncomingMessage[] = [];
    const two = adapters.broker.partitionConsumer({ groupId, topic, partition: slot, fallback: "latest" });
    t.after(() => two.close());
    await two.start(async (message) => {
      second.push(message);
    });
    await waitFor("the next two replies", () => second.length === 2);
    assert.deepEqual(
      second.map((message) => message.value.toString()),
      ["b0", "b1"],
    );
    assert.equal(second[0]!.offset, "3");
    assert.ok(second.every((message) => message.partition === slot));
  });
});
