import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createBroker } from "../../../shared/broker/index.ts";
import { MemoryBroker, murmur2, partitionForKey, toPositive } from "../../../shared/broker/memory/index.ts";
import type { IncomingMessage } from "../../../shared/broker/types.ts";
import { ConfigReader, readCommonConfig } from "../../../shared/config/index.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";
import { createLogger, silentLogger } from "../../../shared/log/index.ts";
import { brokerContract, waitUntil } from "./contract.ts";

brokerContract("memory", async () => ({ broker: new MemoryBroker(), prefix: "", settleMs: 50, waitMs: 5_000 }), {
  testTimeoutMs: 10_000,
});

test("murmur2 matches the vectors of Kafka's own Utils.murmur2 test", () => {
  const vectors: Array<[string, number]> = [
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    ["abc", 479470107],
    ["", 275646681],
  ];
  for (const [input, expected] of vectors) assert.equal(murmur2(Buffer.from(input)), expected, input);
});

test("a key's partition is the positive murmur2 hash modulo the partition count", () => {
  assert.equal(toPositive(-790332482), 1357151166);
  assert.equal(partitionForKey("foobar", 50), 16);
  assert.equal(partitionForKey(Buffer.from("foobar"), 50), 16);
});

test("a send is acknowledged on a later turn, so it counts as queued until then", async () => {
  const broker = new MemoryBroker();
  await broker.admin().ensureTopics([{ name: "t", partitions: 1 }]);
  const producer = broker.producer();
  let settled = false;
  const sending = producer.send({ topic: "t", value: "x" }).then((report) => {
    settled = true;
    return report;
  });
  await Promise.resolve();
  assert.equal(settled, false);
  assert.equal(producer.queued(), 1);
  assert.deepEqual(await sending, { topic: "t", partition: 0, offset: "0" });
  assert.equal(producer.queued(), 0);
  await producer.close();
});

test("the failure hook makes sends and pings reject with unavailable until it is turned off", async () => {
  const broker = new MemoryBroker();
  const admin = broker.admin();
  await admin.ensureTopics([{ name: "t", partitions: 1 }]);
  const producer = broker.producer();
  broker.fail(true);
  await assert.rejects(producer.send({ topic: "t", value: "x" }), (error) => hasErrorCode(error, "unavailable"));
  await assert.rejects(admin.ping(), (error) => hasErrorCode(error, "unavailable"));
  broker.fail(false);
  assert.equal((await producer.send({ topic: "t", value: "x" })).offset, "0");
  await admin.ping();
  await producer.close();
});

test("a partition that does not exist is rejected with not_found", async () => {
  const broker = new MemoryBroker();
  await broker.admin().ensureTopics([{ name: "t", partitions: 2 }]);
  const producer = broker.producer();
  await assert.rejects(producer.send({ topic: "t", value: "x", partition: 2 }), (error) =>
    hasErrorCode(error, "not_found"),
  );
  const consumer = broker.partitionConsumer({ groupId: "g", topic: "t", partition: 5 });
  await assert.rejects(
    consumer.start(async () => {}),
    (error) => hasErrorCode(error, "not_found"),
  );
  await consumer.close();
  await producer.close();
});

test("a third member joining takes partitions from the others without losing messages", async (t) => {
  const broker = new MemoryBroker();
  await broker.admin().ensureTopics([{ name: "t", partitions: 6 }]);
  const producer = broker.producer();
  t.after(() => producer.close());
  const seen = new Set<string>();
  let handled = 0;
  const record = async (m: IncomingMessage): Promise<void> => {
    handled += 1;
    seen.add(m.value.toString());
  };
  const members = [0, 1, 2].map(() => broker.groupConsumer({ groupId: "g", topics: ["t"], concurrency: 3 }));
  for (const member of members) t.after(() => member.close());
  await members[0]!.start(record);
  await members[1]!.start(record);
  assert.deepEqual(
    members.map((m) => m.assignment().length),
    [3, 3, 0],
  );
  const sends = Array.from({ length: 300 }, (_, i) => producer.send({ topic: "t", key: `k${i}`, value: `v${i}` }));
  await members[2]!.start(record);
  assert.deepEqual(
    members.map((m) => m.assignment().length),
    [2, 2, 2],
  );
  const all = new Set(members.flatMap((m) => m.assignment()));
  assert.equal(all.size, 6);
  await Promise.all(sends);
  await waitUntil("every message", () => seen.size === 300, 5_000);
  assert.equal(handled, 300, "partitions move with their commits, so nothing is handled twice");
});

test("a group member subscribed before its topic exists gets the partitions once it is created", async (t) => {
  const broker = new MemoryBroker();
  const consumer = broker.groupConsumer({ groupId: "g", topics: ["later"] });
  t.after(() => consumer.close());
  const values: string[] = [];
  await consumer.start(async (m) => void values.push(m.value.toString()));
  assert.deepEqual(consumer.assignment(), []);
  await broker.admin().ensureTopics([{ name: "later", partitions: 2 }]);
  await waitUntil("the assignment", () => consumer.assignment().length === 2, 5_000);
  const producer = broker.producer();
  t.after(() => producer.close());
  await producer.send({ topic: "later", value: "hi" });
  await waitUntil("the message", () => values.length === 1, 5_000);
});

test("ensureTopics grows a topic like Kafka: new partitions are assigned to the group, and asking for fewer removes none", async (t) => {
  const broker = new MemoryBroker();
  const admin = broker.admin();
  await admin.ensureTopics([{ name: "grows", partitions: 2 }]);
  const consumer = broker.groupConsumer({ groupId: "g", topics: ["grows"] });
  t.after(() => consumer.close());
  await consumer.start(async () => {});
  await waitUntil("the first assignment", () => consumer.assignment().length === 2, 5_000);
  await admin.ensureTopics([{ name: "grows", partitions: 5 }]);
  assert.equal(await admin.partitionCount("grows"), 5);
  await waitUntil("the grown assignment", () => consumer.assignment().length === 5, 5_000);
  await admin.ensureTopics([{ name: "grows", partitions: 3 }]);
  assert.equal(await admin.partitionCount("grows"), 5);
});

test("a new group that does not start from the beginning skips what was produced before it joined", async (t) => {
  const broker = new MemoryBroker();
  await broker.admin().ensureTopics([{ name: "t", partitions: 2 }]);
  const producer = broker.producer();
  t.after(() => producer.close());
  await producer.send({ topic: "t", key: "a", value: "old" });
  const values: string[] = [];
  const consumer = broker.groupConsumer({ groupId: "g", topics: ["t"], fromBeginning: false });
  t.after(() => consumer.close());
  await consumer.start(async (m) => void values.push(m.value.toString()));
  await producer.send({ topic: "t", key: "a", value: "new" });
  await waitUntil("the new message", () => values.length === 1, 5_000);
  assert.deepEqual(values, ["new"]);
});

test("a consumer with many queued messages stops fetching at its bound and resumes as handlers finish", async (t) => {
  const broker = new MemoryBroker({ maxPending: 10 });
  await broker.admin().ensureTopics([{ name: "t", partitions: 1 }]);
  const producer = broker.producer();
  t.after(() => producer.close());
  await Promise.all(Array.from({ length: 100 }, (_, i) => producer.send({ topic: "t", value: `v${i}` })));
  const values: string[] = [];
  const consumer = broker.partitionConsumer({ groupId: "g", topic: "t", partition: 0 });
  t.after(() => consumer.close());
  await consumer.start(async (m) => {
    await new Promise((resolve) => setImmediate(resolve));
    values.push(m.value.toString());
  });
  await waitUntil("every message", () => values.length === 100, 5_000);
  assert.deepEqual(
    values,
    Array.from({ length: 100 }, (_, i) => `v${i}`),
  );
});

test("a delivered message's value is a copy the handler may change without affecting other readers", async (t) => {
  const broker = new MemoryBroker();
  await broker.admin().ensureTopics([{ name: "t", partitions: 1 }]);
  const producer = broker.producer();
  t.after(() => producer.close());
  await producer.send({ topic: "t", value: "abc" });
  const values: string[] = [];
  for (const groupId of ["g1", "g2"]) {
    const consumer = broker.partitionConsumer({ groupId, topic: "t", partition: 0 });
    t.after(() => consumer.close());
    await consumer.start(async (m) => {
      values.push(m.value.toString());
      m.value.fill(0);
    });
    await waitUntil("the message", () => values.length === (groupId === "g1" ? 1 : 2), 5_000);
  }
  assert.deepEqual(values, ["abc", "abc"]);
});

test("old records beyond the per-partition cap are dropped and a consumer behind them skips ahead", async (t) => {
  const broker = new MemoryBroker({ maxRecordsPerPartition: 5 });
  const admin = broker.admin();
  await admin.ensureTopics([{ name: "t", partitions: 1 }]);
  const producer = broker.producer();
  t.after(() => producer.close());
  const reports = await Promise.all(
    Array.from({ length: 10 }, (_, i) => producer.send({ topic: "t", value: `v${i}` })),
  );
  assert.equal(reports.at(-1)?.offset, "9");
  assert.equal(await admin.groupLag("fresh", "t"), 5);
  const offsets: string[] = [];
  const consumer = broker.partitionConsumer({ groupId: "g", topic: "t", partition: 0 });
  t.after(() => consumer.close());
  await consumer.start(async (m) => void offsets.push(m.offset));
  await waitUntil("the retained records", () => offsets.length === 5, 5_000);
  assert.deepEqual(offsets, ["5", "6", "7", "8", "9"]);
});

test("records older than the topic's retention.ms are dropped", async (t) => {
  const broker = new MemoryBroker();
  await broker.admin().ensureTopics([{ name: "t", partitions: 1, config: { "retention.ms": "30" } }]);
  const producer = broker.producer();
  t.after(() => producer.close());
  for (let i = 0; i < 3; i += 1) await producer.send({ topic: "t", value: `old${i}` });
  await new Promise((resolve) => setTimeout(resolve, 60));
  await producer.send({ topic: "t", value: "new" });
  const values: string[] = [];
  const consumer = broker.partitionConsumer({ groupId: "g", topic: "t", partition: 0 });
  t.after(() => consumer.close());
  await consumer.start(async (m) => void values.push(`${m.offset}:${m.value.toString()}`));
  await waitUntil("the retained record", () => values.length === 1, 5_000);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(values, ["3:new"]);
});

test("a member stuck in a handler does not hold a rebalance past its timeout", async (t) => {
  const broker = new MemoryBroker({ rebalanceTimeoutMs: 50 });
  await broker.admin().ensureTopics([{ name: "t", partitions: 2 }]);
  const producer = broker.producer();
  t.after(() => producer.close());
  let release = (): void => {};
  const stuck = new Promise<void>((resolve) => {
    release = resolve;
  });
  t.after(() => release());
  const first = broker.groupConsumer({ groupId: "g", topics: ["t"] });
  t.after(() => first.close(10));
  await first.start(() => stuck);
  await producer.send({ topic: "t", value: "x", partition: 0 });
  await producer.send({ topic: "t", value: "y", partition: 1 });
  await new Promise((resolve) => setTimeout(resolve, 10));
  const second = broker.groupConsumer({ groupId: "g", topics: ["t"] });
  t.after(() => second.close());
  const values: string[] = [];
  await second.start(async (m) => void values.push(m.value.toString()));
  assert.equal(second.assignment().length, 1);
  await waitUntil("the moved partition's message", () => values.length === 1, 5_000);
});

test("the broker factory picks the adapter the configuration names", async () => {
  const memory = readCommonConfig(new ConfigReader({}), "test");
  assert.equal((await createBroker(memory, silentLogger())).kind, "memory");
  const kafka = readCommonConfig(
    new ConfigReader({ TETHER_BROKER: "kafka", TETHER_KAFKA_BROKERS: "127.0.0.1:1" }),
    "test",
  );
  // Making the Kafka broker connects nothing, so no broker needs to listen here.
  assert.equal((await createBroker(kafka, silentLogger())).kind, "kafka");
});

test("a partition consumer logs a rejected offset save with its error and keeps its messages coming", async (t) => {
  const lines: Array<{ level: number; msg: string; err?: { message: string } }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line !== "") lines.push(JSON.parse(line));
      done();
    },
  });
  const broker = new MemoryBroker({ logger: createLogger({ name: "test", level: "debug", destination: sink }) });
  await broker.admin().ensureTopics([{ name: "t", partitions: 1 }]);
  const producer = broker.producer();
  t.after(() => producer.close());
  const values: string[] = [];
  const consumer = broker.partitionConsumer({
    groupId: "g",
    topic: "t",
    partition: 0,
    offsets: {
      load: async () => null,
      save: async () => {
        throw new Error("stale generation");
      },
    },
  });
  t.after(() => consumer.close());
  await consumer.start(async (m) => void values.push(m.value.toString()));
  await producer.send({ topic: "t", value: "a", partition: 0 });
  await waitUntil(
    "a failed save to be logged",
    () => lines.some((line) => line.err?.message === "stale generation"),
    5_000,
  );
  await producer.send({ topic: "t", value: "b", partition: 0 });
  await waitUntil("the next message", () => values.length === 2, 5_000);
  assert.equal(lines.find((line) => line.err?.message === "stale generation")?.level, 40);
});
