/**
 * The broker contract: behaviour every adapter of the broker port must show. `memory.test.ts`
 * runs it on the in-memory broker, `contract.int.test.ts` on Kafka, so the embedded mode
 * cannot drift from the fleet.
 */
import assert from "node:assert/strict";
import { after, before, describe, type TestContext, test } from "node:test";
import { sleep } from "../../../shared/async/index.ts";
import { partitionForKey } from "../../../shared/broker/memory/murmur2.ts";
import type { Broker, IncomingMessage, Producer, TopicSpec } from "../../../shared/broker/types.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";

export interface BrokerFixture {
  readonly broker: Broker;
  /** Prepended to every topic and group name the suite makes, so runs do not collide. */
  readonly prefix: string;
  /**
   * How long to wait before concluding that something (a commit, a message) did not happen.
   * Short in memory; seconds on a real broker, whose commits are periodic.
   */
  readonly settleMs: number;
  /** Bound for one awaited condition (a rebalance on a real broker takes seconds). */
  readonly waitMs: number;
  readonly cleanup?: () => Promise<void>;
}

/** Polls `condition` every 20 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Resolves when `release()` is called; for holding a handler open. */
function gate(): { promise: Promise<void>; release: () => void } {
  let release = (): void => {};
  const promise = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { promise, release };
}

function text(message: IncomingMessage): string {
  return message.value.toString("utf8");
}

export interface ContractOptions {
  /** Bound for each test. Default 60 s. */
  readonly testTimeoutMs?: number;
}

export function brokerContract(
  name: string,
  makeBroker: () => Promise<BrokerFixture>,
  options: ContractOptions = {},
): void {
  const testTimeoutMs = options.testTimeoutMs ?? 60_000;
  describe(`broker contract: ${name}`, () => {
    let fixture: BrokerFixture;
    let producer: Producer;
    let counter = 0;

    before(async () => {
      fixture = await makeBroker();
      producer = fixture.broker.producer();
      await producer.connect();
    });

    after(async () => {
      await producer?.close();
      await fixture?.cleanup?.();
    });

    const unique = (label: string): string => {
      counter += 1;
      return `${fixture.prefix}${label}-${counter}`;
    };

    async function makeTopic(label: string, partitions: number): Promise<string> {
      const topic = unique(label);
      await withAdmin((admin) => admin.ensureTopics([{ name: topic, partitions }]));
      return topic;
    }

    /** Reads `topic` from its start in a new group until `count` messages came. */
    async function receive(t: TestContext, topic: string, count: number): Promise<IncomingMessage[]> {
      const received: IncomingMessage[] = [];
      const consumer = fixture.broker.groupConsumer({ groupId: unique("g"), topics: [topic] });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        received.push(message);
      });
      await waitUntil(
        count === 1 ? "the message" : `${count} messages`,
        () => received.length >= count,
        fixture.waitMs,
      );
      return received;
    }

    async function withAdmin<T>(use: (admin: ReturnType<Broker["admin"]>) => Promise<T>): Promise<T> {
      const admin = fixture.broker.admin();
      try {
        return await use(admin);
      } finally {
        await admin.close();
      }
    }

    const it = (title: string, body: (t: TestContext) => Promise<void>): void => {
      test(title, { timeout: testTimeoutMs }, body);
    };

    it("delivers a produced message to a group consumer with its key, value, headers and timestamp", async (t) => {
      const topic = await makeTopic("roundtrip", 3);
      const before = Date.now();
      const report = await producer.send({
        topic,
        key: "device-1",
        value: "hello",
        headers: { "x-kind": "greeting", "x-empty": "", "x-text": "ünïcödé ✓" },
      });
      assert.equal(report.topic, topic);
      assert.match(report.offset, /^\d+$/);
      const received = await receive(t, topic, 1);
      const message = received[0]!;
      assert.equal(message.topic, topic);
      assert.equal(message.partition, report.partition);
      assert.equal(message.offset, report.offset);
      assert.equal(message.key, "device-1");
      assert.ok(Buffer.isBuffer(message.value));
      assert.equal(text(message), "hello");
      assert.equal(message.headers["x-kind"], "greeting");
      assert.equal(message.headers["x-empty"], "");
      assert.equal(message.headers["x-text"], "ünïcödé ✓");
      assert.ok(message.timestamp >= before - 1000 && message.timestamp <= Date.now() + 1000);
    });

    it("delivers the sends of one turn in order, and a close made in that turn still delivers them", async (t) => {
      const topic = await makeTopic("turn", 1);
      const own = fixture.broker.producer();
      await own.connect();
      const sends = Array.from({ length: 50 }, (_, i) => own.send({ topic, key: "k", value: `m${i}` }));
      const closed = own.close();
      const reports = await Promise.all(sends);
      await closed;
      const offsets = reports.map((report) => BigInt(report.offset));
      for (let i = 1; i < offsets.length; i++) assert.equal(offsets[i], offsets[i - 1]! + 1n, "offsets in send order");
      const received = await receive(t, topic, 50);
      assert.deepEqual(
        received.map(text),
        sends.map((_, i) => `m${i}`),
      );
    });

    it("delivers a message without key or headers with a null key and empty headers", async (t) => {
      const topic = await makeTopic("nokey", 2);
      await producer.send({ topic, value: Buffer.from([0, 1, 2, 255]) });
      const received = await receive(t, topic, 1);
      assert.equal(received[0]!.key, null);
      assert.deepEqual([...received[0]!.value], [0, 1, 2, 255]);
      assert.deepEqual({ ...received[0]!.headers }, {});
    });

    it("places a key on the partition Kafka's murmur2 partitioner picks, in send order", async (t) => {
      const partitions = 6;
      const topic = await makeTopic("keys", partitions);
      const keys = ["device-a", "device-b", "device-c", "21", "foobar", "ünïcödé-key"];
      const sends = [];
      for (let i = 0; i < 60; i += 1) {
        const key = keys[i % keys.length]!;
        sends.push(producer.send({ topic, key, value: `${key}#${i}` }));
      }
      const reports = await Promise.all(sends);
      for (let i = 0; i < reports.length; i += 1) {
        const key = keys[i % keys.length]!;
        assert.equal(reports[i]!.partition, partitionForKey(key, partitions), `partition of ${key}`);
      }
      // Offsets of one key grow in send order.
      for (const key of keys) {
        const offsets = reports.filter((_, i) => keys[i % keys.length] === key).map((r) => BigInt(r.offset));
        for (let i = 1; i < offsets.length; i += 1) assert.ok(offsets[i]! > offsets[i - 1]!, `offsets of ${key}`);
      }
      const received: IncomingMessage[] = [];
      const consumer = fixture.broker.groupConsumer({ groupId: unique("g"), topics: [topic], concurrency: 4 });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        received.push(message);
      });
      await waitUntil("60 messages", () => received.length >= 60, fixture.waitMs);
      for (const key of keys) {
        const values = received.filter((m) => m.key === key).map(text);
        const expected = Array.from({ length: 10 }, (_, n) => `${key}#${keys.indexOf(key) + n * keys.length}`);
        assert.deepEqual(values.slice(0, 10), expected, `order of ${key}`);
      }
    });

    it("writes a message to an explicitly named partition regardless of its key", async (t) => {
      const topic = await makeTopic("explicit", 4);
      const key = "device-a";
      const target = (partitionForKey(key, 4) + 1) % 4;
      const report = await producer.send({ topic, key, value: "x", partition: target });
      assert.equal(report.partition, target);
      const received: IncomingMessage[] = [];
      const consumer = fixture.broker.partitionConsumer({ groupId: unique("g"), topic, partition: target });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        received.push(message);
      });
      await waitUntil("the message", () => received.length >= 1, fixture.waitMs);
      assert.equal(received[0]!.partition, target);
      assert.equal(received[0]!.offset, report.offset);
    });

    it("resumes a partition consumer from the offset its group committed before closing", async (t) => {
      const topic = await makeTopic("resume", 2);
      const groupId = unique("g");
      for (let i = 0; i < 5; i += 1) await producer.send({ topic, value: `first-${i}`, partition: 1 });
      const first: IncomingMessage[] = [];
      const one = fixture.broker.partitionConsumer({ groupId, topic, partition: 1 });
      t.after(() => one.close());
      await one.start(async (message) => {
        first.push(message);
      });
      await waitUntil("the first five", () => first.length >= 5, fixture.waitMs);
      assert.deepEqual(first.map(text), ["first-0", "first-1", "first-2", "first-3", "first-4"]);
      await one.close();
      await one.close();
      const countAtClose = first.length;
      for (let i = 0; i < 3; i += 1) await producer.send({ topic, value: `second-${i}`, partition: 1 });
      await sleep(fixture.settleMs);
      assert.equal(first.length, countAtClose, "a closed consumer calls no handler");
      const second: IncomingMessage[] = [];
      const two = fixture.broker.partitionConsumer({ groupId, topic, partition: 1, fallback: "latest" });
      t.after(() => two.close());
      await two.start(async (message) => {
        second.push(message);
      });
      await waitUntil("the next three", () => second.length >= 3, fixture.waitMs);
      assert.deepEqual(second.map(text), ["second-0", "second-1", "second-2"]);
      assert.equal(second[0]!.offset, "5");
    });

    it("starts a partition consumer without committed offsets at the end when its fallback is latest", async (t) => {
      const topic = await makeTopic("latest", 1);
      for (let i = 0; i < 3; i += 1) await producer.send({ topic, value: `old-${i}`, partition: 0 });
      const received: IncomingMessage[] = [];
      const consumer = fixture.broker.partitionConsumer({
        groupId: unique("g"),
        topic,
        partition: 0,
        fallback: "latest",
      });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        received.push(message);
      });
      // When "latest" is resolved is the adapter's business; keep sending until one arrives.
      let sent = 0;
      await waitUntil(
        "a new message",
        async () => {
          if (received.length > 0) return true;
          await producer.send({ topic, value: `new-${sent}`, partition: 0 });
          sent += 1;
          await sleep(Math.min(200, fixture.settleMs));
          return received.length > 0;
        },
        fixture.waitMs,
      );
      assert.ok(
        received.every((message) => text(message).startsWith("new-")),
        "nothing from before the start",
      );
      assert.ok(Number(received[0]!.offset) >= 3);
    });

    it("starts a partition consumer without committed offsets at the beginning by default", async (t) => {
      const topic = await makeTopic("earliest", 1);
      for (let i = 0; i < 3; i += 1) await producer.send({ topic, value: `old-${i}`, partition: 0 });
      const received: IncomingMessage[] = [];
      const consumer = fixture.broker.partitionConsumer({ groupId: unique("g"), topic, partition: 0 });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        received.push(message);
      });
      await waitUntil("three messages", () => received.length >= 3, fixture.waitMs);
      assert.deepEqual(received.map(text), ["old-0", "old-1", "old-2"]);
      assert.equal(received[0]!.offset, "0");
    });

    it("splits partitions between two group members and hands them all to the survivor when one leaves", async (t) => {
      const partitions = 4;
      const topic = await makeTopic("group", partitions);
      const groupId = unique("g");
      const seenBy = { a: new Set<string>(), b: new Set<string>() };
      const seen = new Map<string, number>();
      const record = (member: "a" | "b") => async (message: IncomingMessage) => {
        seenBy[member].add(text(message));
        seen.set(text(message), (seen.get(text(message)) ?? 0) + 1);
      };
      const a = fixture.broker.groupConsumer({ groupId, topics: [topic], concurrency: 2 });
      t.after(() => a.close());
      await a.start(record("a"));
      await waitUntil("a to own every partition", () => a.assignment().length === partitions, fixture.waitMs);
      const b = fixture.broker.groupConsumer({ groupId, topics: [topic], concurrency: 2 });
      t.after(() => b.close());
      await b.start(record("b"));
      await waitUntil(
        "the partitions to be split",
        () =>
          a.assignment().length > 0 &&
          b.assignment().length > 0 &&
          a.assignment().length + b.assignment().length === partitions,
        fixture.waitMs,
      );
      const owned = [...a.assignment(), ...b.assignment()].sort();
      assert.deepEqual(owned, Array.from({ length: partitions }, (_, i) => `${topic}:${i}`).sort());

      const firstBatch = Array.from({ length: 40 }, (_, i) => `one-${i}`);
      await Promise.all(firstBatch.map((value, i) => producer.send({ topic, key: `k${i}`, value })));
      await waitUntil("the first batch", () => firstBatch.every((value) => seen.has(value)), fixture.waitMs);
      assert.ok(seenBy.a.size > 0 && seenBy.b.size > 0, "both members handled messages");

      const countsAtClose = new Map(seen);
      await b.close();
      await b.close();
      await waitUntil("a to own every partition again", () => a.assignment().length === partitions, fixture.waitMs);
      assert.deepEqual(b.assignment(), []);
      const secondBatch = Array.from({ length: 40 }, (_, i) => `two-${i}`);
      await Promise.all(secondBatch.map((value, i) => producer.send({ topic, key: `k${i}`, value })));
      await waitUntil("the second batch", () => secondBatch.every((value) => seen.has(value)), fixture.waitMs);
      assert.ok(
        secondBatch.every((value) => seenBy.a.has(value)),
        "the survivor handled the second batch",
      );
      // A member that closes cleanly commits what it handled, so its successor does not
      // handle any of it again.
      const redelivered = firstBatch.filter((value) => seen.get(value) !== countsAtClose.get(value));
      assert.deepEqual(redelivered, [], "nothing handled before a clean close is handled again");
    });

    it("starts a new group that does not start from the beginning at the end of its partitions", async (t) => {
      const topic = await makeTopic("group-latest", 2);
      for (let i = 0; i < 4; i += 1) await producer.send({ topic, key: `k${i}`, value: `old-${i}` });
      const received: IncomingMessage[] = [];
      const consumer = fixture.broker.groupConsumer({ groupId: unique("g"), topics: [topic], fromBeginning: false });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        received.push(message);
      });
      await waitUntil("the assignment", () => consumer.assignment().length === 2, fixture.waitMs);
      let sent = 0;
      await waitUntil(
        "a new message",
        async () => {
          if (received.length > 0) return true;
          await producer.send({ topic, key: `n${sent}`, value: `new-${sent}` });
          sent += 1;
          await sleep(Math.min(200, fixture.settleMs));
          return received.length > 0;
        },
        fixture.waitMs,
      );
      assert.ok(
        received.every((message) => text(message).startsWith("new-")),
        "nothing from before the group joined",
      );
    });

    it("keeps per-key order while running different keys concurrently up to the bound", async (t) => {
      const topic = await makeTopic("concurrency", 2);
      const keys = Array.from({ length: 16 }, (_, i) => `key-${i}`);
      const perKey = 8;
      const sends = [];
      for (let n = 0; n < perKey; n += 1) {
        for (const key of keys) sends.push(producer.send({ topic, key, value: `${key}#${n}` }));
      }
      await Promise.all(sends);
      let running = 0;
      let peak = 0;
      const order = new Map<string, number[]>();
      const consumer = fixture.broker.groupConsumer({ groupId: unique("g"), topics: [topic], concurrency: 8 });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        running += 1;
        peak = Math.max(peak, running);
        await sleep(2 + (Number(message.offset) % 3) * 3);
        const [key, n] = text(message).split("#") as [string, string];
        const list = order.get(key) ?? [];
        list.push(Number(n));
        order.set(key, list);
        running -= 1;
      });
      await waitUntil(
        "every message",
        () => [...order.values()].reduce((sum, list) => sum + list.length, 0) >= keys.length * perKey,
        fixture.waitMs,
      );
      assert.ok(peak > 1, `handlers ran concurrently (peak ${peak})`);
      assert.ok(peak <= 8, `at most 8 handlers at once (peak ${peak})`);
      for (const key of keys) {
        assert.deepEqual(
          order.get(key)!.slice(0, perKey),
          Array.from({ length: perKey }, (_, n) => n),
          `order of ${key}`,
        );
      }
    });

    it("commits only up to a slow message while later messages of its partition finish", async (t) => {
      const topic = await makeTopic("contiguous", 1);
      const groupId = unique("g");
      const slow = gate();
      const handled = new Set<string>();
      const consumer = fixture.broker.groupConsumer({ groupId, topics: [topic], concurrency: 4 });
      t.after(() => consumer.close());
      t.after(() => slow.release());
      await consumer.start(async (message) => {
        if (text(message) === "slow") await slow.promise;
        handled.add(text(message));
      });
      await producer.send({ topic, key: "warm", value: "warm" });
      await withAdmin(async (admin) => {
        await waitUntil(
          "the warm-up to be committed",
          async () => (await admin.groupLag(groupId, topic)) === 0,
          fixture.waitMs,
        );
        await producer.send({ topic, key: "a", value: "slow" });
        for (let i = 0; i < 4; i += 1) await producer.send({ topic, key: `b${i}`, value: `fast-${i}` });
        await waitUntil("the fast messages", () => [0, 1, 2, 3].every((i) => handled.has(`fast-${i}`)), fixture.waitMs);
        await sleep(fixture.settleMs);
        assert.equal(handled.has("slow"), false);
        assert.equal(await admin.groupLag(groupId, topic), 5, "the slow message holds the commit");
        slow.release();
        await waitUntil(
          "everything to be committed",
          async () => (await admin.groupLag(groupId, topic)) === 0,
          fixture.waitMs,
        );
      });
    });

    it("runs a key's next message while the previous one's pending result is not durable, committing only after", async (t) => {
      const topic = await makeTopic("pending", 1);
      const groupId = unique("g");
      const durable = gate();
      const handled: string[] = [];
      const consumer = fixture.broker.groupConsumer({ groupId, topics: [topic], concurrency: 1 });
      t.after(() => consumer.close());
      t.after(() => durable.release());
      await consumer.start(async (message) => {
        handled.push(text(message));
        if (text(message) === "first") return { durable: durable.promise };
        return undefined;
      });
      await withAdmin(async (admin) => {
        await producer.send({ topic, key: "k", value: "first" });
        await producer.send({ topic, key: "k", value: "second" });
        await waitUntil("both messages to be handled", () => handled.length === 2, fixture.waitMs);
        assert.deepEqual(handled, ["first", "second"]);
        await sleep(fixture.settleMs);
        assert.equal(await admin.groupLag(groupId, topic), 2, "nothing is committed before the first is durable");
        durable.release();
        await waitUntil(
          "both to be committed",
          async () => (await admin.groupLag(groupId, topic)) === 0,
          fixture.waitMs,
        );
      });
    });

    it("creates topics idempotently, grows them when asked for more partitions and never shrinks them", async () => {
      const name = unique("ensure");
      const specs: TopicSpec[] = [{ name, partitions: 3, config: { "retention.ms": "3600000" } }];
      await withAdmin(async (admin) => {
        await admin.ensureTopics(specs);
        await admin.ensureTopics(specs);
        assert.equal(await admin.partitionCount(name), 3);
        await admin.ensureTopics([{ name, partitions: 5 }]);
        assert.equal(await admin.partitionCount(name), 5);
        await admin.ensureTopics([{ name, partitions: 2 }]);
        assert.equal(await admin.partitionCount(name), 5);
        await admin.ping();
      });
    });

    it("rejects with not_found for a topic that does not exist", async () => {
      const missing = unique("missing");
      await withAdmin(async (admin) => {
        await assert.rejects(admin.partitionCount(missing), (error) => hasErrorCode(error, "not_found"));
      });
      await assert.rejects(producer.send({ topic: missing, value: "x" }, { timeoutMs: 10_000 }), (error) =>
        hasErrorCode(error, "not_found"),
      );
    });

    it("reports a group's lag as the messages it has not consumed yet", async (t) => {
      const topic = await makeTopic("lag", 2);
      const groupId = unique("g");
      for (let i = 0; i < 10; i += 1) await producer.send({ topic, key: `k${i}`, value: `v${i}` });
      let count = 0;
      const consumer = fixture.broker.groupConsumer({ groupId, topics: [topic] });
      t.after(() => consumer.close());
      await consumer.start(async () => {
        count += 1;
      });
      await withAdmin(async (admin) => {
        await waitUntil(
          "the group to catch up",
          async () => (await admin.groupLag(groupId, topic)) === 0,
          fixture.waitMs,
        );
        assert.ok(count >= 10);
        await consumer.close();
        for (let i = 0; i < 3; i += 1) await producer.send({ topic, key: `k${i}`, value: `late${i}` });
        assert.equal(await admin.groupLag(groupId, topic), 3);
      });
    });

    it("tells a group member its whole group's lag, over every partition, through its own client", async (t) => {
      const topic = await makeTopic("member-lag", 3);
      const groupId = unique("g");
      for (let i = 0; i < 9; i += 1) await producer.send({ topic, key: `k${i}`, value: `v${i}` });
      const held = gate();
      let handled = 0;
      const consumer = fixture.broker.groupConsumer({ groupId, topics: [topic], concurrency: 1 });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        if (text(message) === "v-hold") await held.promise;
        handled += 1;
      });
      await waitUntil("the member to catch up", async () => (await consumer.lag()) === 0, fixture.waitMs);
      assert.ok(handled >= 9);
      await producer.send({ topic, key: "k0", value: "v-hold" });
      for (let i = 0; i < 4; i += 1) await producer.send({ topic, key: "k0", value: `after${i}` });
      await waitUntil("the held message to arrive", () => handled >= 9, fixture.waitMs);
      await sleep(fixture.settleMs);
      assert.equal(await consumer.lag(), 5, "the held message and the four behind it on its partition");
      held.release();
      await waitUntil("the member to catch up again", async () => (await consumer.lag()) === 0, fixture.waitMs);
      await consumer.close();
      await assert.rejects(consumer.lag(), (error: unknown) => hasErrorCode(error, "closed"));
    });

    it("flushes queued messages and closes producers and consumers safely twice", async (t) => {
      const topic = await makeTopic("flush", 2);
      const own = fixture.broker.producer();
      await own.connect();
      const pending = Array.from({ length: 20 }, (_, i) => own.send({ topic, key: `k${i}`, value: `v${i}` }));
      await own.flush(fixture.waitMs);
      assert.equal(own.queued(), 0);
      const reports = await Promise.all(pending);
      assert.equal(reports.length, 20);
      await own.close();
      await own.close();
      await assert.rejects(own.send({ topic, value: "after close" }));

      let calls = 0;
      const consumer = fixture.broker.groupConsumer({ groupId: unique("g"), topics: [topic] });
      t.after(() => consumer.close());
      await consumer.start(async () => {
        calls += 1;
      });
      await waitUntil("twenty messages", () => calls >= 20, fixture.waitMs);
      await consumer.close();
      await consumer.close();
      const atClose = calls;
      await producer.send({ topic, value: "after close" });
      await sleep(fixture.settleMs);
      assert.equal(calls, atClose, "a closed consumer calls no handler");
    });

    it("retries a message whose handler rejects and commits it only once handled", async (t) => {
      const topic = await makeTopic("retry", 1);
      const groupId = unique("g");
      let attempts = 0;
      const consumer = fixture.broker.partitionConsumer({ groupId, topic, partition: 0 });
      t.after(() => consumer.close());
      await consumer.start(async () => {
        attempts += 1;
        if (attempts < 3) throw new Error("not yet");
      });
      await producer.send({ topic, value: "x", partition: 0 });
      await waitUntil("the third attempt", () => attempts >= 3, fixture.waitMs);
      await consumer.commit();
      await withAdmin(async (admin) => {
        await waitUntil("the commit", async () => (await admin.groupLag(groupId, topic)) === 0, fixture.waitMs);
      });
      assert.equal(attempts, 3);
    });

    it("starts a partition consumer with offsets at the offset they load", async (t) => {
      const topic = await makeTopic("offsets-load", 1);
      for (let i = 0; i < 5; i += 1) await producer.send({ topic, value: `v-${i}`, partition: 0 });
      let loads = 0;
      const received: IncomingMessage[] = [];
      const consumer = fixture.broker.partitionConsumer({
        groupId: unique("g"),
        topic,
        partition: 0,
        offsets: {
          load: async () => {
            loads += 1;
            return 3;
          },
          save: async () => {},
        },
      });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        received.push(message);
      });
      await waitUntil("the two messages from offset 3", () => received.length >= 2, fixture.waitMs);
      await sleep(fixture.settleMs);
      assert.deepEqual(received.map(text), ["v-3", "v-4"]);
      assert.equal(received[0]!.offset, "3");
      assert.equal(loads, 1);
    });

    it("saves growing watermarks of handled, durable messages to offsets and commits nothing to the group", async (t) => {
      const topic = await makeTopic("offsets-save", 1);
      const groupId = unique("g");
      const durable = gate();
      t.after(() => durable.release());
      const saves: number[] = [];
      const handled: string[] = [];
      const consumer = fixture.broker.partitionConsumer({
        groupId,
        topic,
        partition: 0,
        offsets: {
          load: async () => null,
          save: async (next) => {
            saves.push(next);
          },
        },
      });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        handled.push(text(message));
        if (text(message) === "v-1") return { durable: durable.promise };
        return undefined;
      });
      for (let i = 0; i < 4; i += 1) await producer.send({ topic, key: "k", value: `v-${i}`, partition: 0 });
      await waitUntil("four handled messages", () => handled.length >= 4, fixture.waitMs);
      await consumer.commit();
      await sleep(fixture.settleMs);
      assert.ok(
        saves.every((next) => next <= 1),
        `nothing past the message not yet durable is saved (${saves.join(",")})`,
      );
      durable.release();
      await waitUntil(
        "the watermark past all four",
        async () => {
          await consumer.commit();
          return saves.at(-1) === 4;
        },
        fixture.waitMs,
      );
      for (let i = 1; i < saves.length; i += 1) assert.ok(saves[i]! > saves[i - 1]!, `saves grow: ${saves.join(",")}`);
      await consumer.close();
      assert.equal(saves.at(-1), 4, "closing saves nothing new");
      await withAdmin(async (admin) => {
        assert.equal(await admin.groupLag(groupId, topic), 4, "nothing was committed under the group");
      });
      // A consumer of the same group without offsets finds no committed offset either.
      const again: IncomingMessage[] = [];
      const second = fixture.broker.partitionConsumer({ groupId, topic, partition: 0 });
      t.after(() => second.close());
      await second.start(async (message) => {
        again.push(message);
      });
      await waitUntil("the four messages again", () => again.length >= 4, fixture.waitMs);
      assert.equal(again[0]!.offset, "0");
    });

    it("keeps consuming when saving the offset rejects, and offers the watermark again at the next commit", async (t) => {
      const topic = await makeTopic("offsets-reject", 1);
      let failing = true;
      const attempts: number[] = [];
      let saved = -1;
      const received: IncomingMessage[] = [];
      const consumer = fixture.broker.partitionConsumer({
        groupId: unique("g"),
        topic,
        partition: 0,
        offsets: {
          load: async () => null,
          save: async (next) => {
            attempts.push(next);
            if (failing) throw new Error("lease lost");
            saved = next;
          },
        },
      });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        received.push(message);
      });
      await producer.send({ topic, value: "a", partition: 0 });
      await producer.send({ topic, value: "b", partition: 0 });
      await waitUntil("two messages", () => received.length >= 2, fixture.waitMs);
      await assert.rejects(consumer.commit(), /lease lost/);
      await producer.send({ topic, value: "c", partition: 0 });
      await waitUntil("the message after the failed save", () => received.length >= 3, fixture.waitMs);
      await assert.rejects(consumer.commit(), /lease lost/);
      await assert.rejects(consumer.commit(), /lease lost/);
      assert.ok(attempts.filter((next) => next === 3).length >= 2, `the watermark is offered again (${attempts})`);
      failing = false;
      await consumer.commit();
      assert.equal(saved, 3);
      assert.deepEqual(received.map(text), ["a", "b", "c"]);
    });

    it("reads beacons from the end without committing when offsets load nothing and the fallback is latest", async (t) => {
      const topic = await makeTopic("beacons", 1);
      const groupId = unique("g");
      for (let i = 0; i < 3; i += 1) await producer.send({ topic, value: `old-${i}`, partition: 0 });
      const received: IncomingMessage[] = [];
      const consumer = fixture.broker.partitionConsumer({
        groupId,
        topic,
        partition: 0,
        fallback: "latest",
        offsets: { load: async () => null, save: async () => {} },
      });
      t.after(() => consumer.close());
      await consumer.start(async (message) => {
        received.push(message);
      });
      for (let i = 0; i < 3; i += 1) await producer.send({ topic, value: `new-${i}`, partition: 0 });
      await waitUntil("the three new messages", () => received.length >= 3, fixture.waitMs);
      await sleep(fixture.settleMs);
      assert.deepEqual(received.map(text), ["new-0", "new-1", "new-2"]);
      assert.equal(received[0]!.offset, "3");
      await consumer.close();
      await withAdmin(async (admin) => {
        assert.equal(await admin.groupLag(groupId, topic), 6, "nothing was committed under the group");
      });
    });

    it("reports each partition's end offset, the offset its next message gets", async () => {
      const topic = await makeTopic("ends", 3);
      await withAdmin(async (admin) => {
        assert.deepEqual([...(await admin.endOffsets(topic))], [0, 0, 0]);
        for (let i = 0; i < 4; i += 1) await producer.send({ topic, value: `one-${i}`, partition: 1 });
        for (let i = 0; i < 2; i += 1) await producer.send({ topic, value: `two-${i}`, partition: 2 });
        assert.deepEqual([...(await admin.endOffsets(topic))], [0, 4, 2]);
        await assert.rejects(admin.endOffsets(unique("missing")), (error) => hasErrorCode(error, "not_found"));
      });
    });
  });
}
