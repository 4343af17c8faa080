import assert from "node:assert/strict";
import { test } from "node:test";
import { sleep } from "../../../shared/async/index.ts";
import { Dispatcher } from "../../../shared/broker/dispatch.ts";
import type { IncomingMessage } from "../../../shared/broker/types.ts";

function message(offset: number, key: string | null = null, partition = 0, topic = "t"): IncomingMessage {
  return { topic, partition, offset: String(offset), key, value: Buffer.from(`${offset}`), headers: {}, timestamp: 0 };
}

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail("condition not reached in time");
    await sleep(2);
  }
}

interface Gate {
  readonly promise: Promise<void>;
  release(): void;
  fail(error: Error): void;
}

function gate(): Gate {
  let release = (): void => {};
  let fail = (_error: Error): void => {};
  const promise = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  return { promise, release, fail };
}

test("messages with one key run one after another in offset order while other keys run alongside", async () => {
  const started: string[] = [];
  const gates = new Map<string, Gate>();
  const dispatcher = new Dispatcher({
    concurrency: 8,
    handler: async (m) => {
      started.push(`${m.key}@${m.offset}`);
      const g = gate();
      gates.set(m.offset, g);
      await g.promise;
    },
  });
  dispatcher.push(message(0, "a"));
  dispatcher.push(message(1, "a"));
  dispatcher.push(message(2, "b"));
  await until(() => started.length === 2);
  assert.deepEqual(started, ["a@0", "b@2"]);
  gates.get("2")!.release();
  await sleep(5);
  assert.deepEqual(started, ["a@0", "b@2"], "a@1 waits for a@0");
  gates.get("0")!.release();
  await until(() => started.length === 3);
  assert.equal(started[2], "a@1");
  gates.get("1")!.release();
  await until(() => dispatcher.pending() === 0);
  assert.equal(dispatcher.position("t", 0), 3);
});

test("no more handlers run at once than the concurrency bound", async () => {
  let running = 0;
  let peak = 0;
  let done = 0;
  const dispatcher = new Dispatcher({
    concurrency: 3,
    handler: async () => {
      running += 1;
      peak = Math.max(peak, running);
      await sleep(3);
      running -= 1;
      done += 1;
    },
  });
  for (let i = 0; i < 30; i += 1) dispatcher.push(message(i, `k${i}`));
  await until(() => done === 30);
  assert.equal(peak, 3);
});

test("partition ordering runs one message at a time per partition whatever the keys", async () => {
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  const dispatcher = new Dispatcher({
    concurrency: 8,
    orderBy: "partition",
    handler: async (m) => {
      running += 1;
      peak = Math.max(peak, running);
      await sleep(1);
      order.push(Number(m.offset));
      running -= 1;
    },
  });
  for (let i = 0; i < 10; i += 1) dispatcher.push(message(i, `k${i}`));
  await until(() => order.length === 10);
  assert.equal(peak, 1);
  assert.deepEqual(
    order,
    Array.from({ length: 10 }, (_, i) => i),
  );
});

test("the committable position stops at the first message not yet handled", async () => {
  const slow = gate();
  const handled: number[] = [];
  const dispatcher = new Dispatcher({
    concurrency: 4,
    handler: async (m) => {
      if (m.offset === "11") await slow.promise;
      handled.push(Number(m.offset));
    },
  });
  for (let i = 10; i < 15; i += 1) dispatcher.push(message(i, `k${i}`));
  await until(() => handled.length === 4);
  assert.equal(dispatcher.position("t", 0), 11);
  assert.deepEqual([...dispatcher.positions()], [["t:0", 11]]);
  slow.release();
  await until(() => handled.length === 5);
  assert.equal(dispatcher.position("t", 0), 15);
});

test("a partition with nothing handled has no position", async () => {
  const slow = gate();
  const dispatcher = new Dispatcher({ handler: () => slow.promise });
  dispatcher.push(message(7));
  assert.equal(dispatcher.position("t", 0), -1);
  assert.equal(dispatcher.position("t", 9), -1);
  assert.deepEqual([...dispatcher.positions()], []);
  slow.release();
  await until(() => dispatcher.position("t", 0) === 8);
});

test("a rejected message is retried with backoff and reported, holding its key until it succeeds", async () => {
  const attempts: number[] = [];
  const errors: number[] = [];
  const order: string[] = [];
  const dispatcher = new Dispatcher({
    concurrency: 4,
    retryDelayMs: 5,
    maxRetryDelayMs: 10,
    onError: (_error, m, attempt) => {
      errors.push(attempt);
      assert.equal(m.offset, "0");
    },
    handler: async (m) => {
      if (m.offset === "0") {
        attempts.push(attempts.length + 1);
        if (attempts.length < 3) throw new Error("transient");
      }
      order.push(m.offset);
    },
  });
  dispatcher.push(message(0, "a"));
  dispatcher.push(message(1, "a"));
  await until(() => order.length === 2);
  assert.deepEqual(order, ["0", "1"]);
  assert.deepEqual(errors, [1, 2]);
  assert.equal(dispatcher.position("t", 0), 2);
});

test("a throwing error listener does not stop the retries", async () => {
  let attempts = 0;
  const dispatcher = new Dispatcher({
    retryDelayMs: 1,
    onError: () => {
      throw new Error("listener bug");
    },
    handler: async () => {
      attempts += 1;
      if (attempts < 2) throw new Error("transient");
    },
  });
  dispatcher.push(message(0));
  await until(() => dispatcher.position("t", 0) === 1);
  assert.equal(attempts, 2);
});

test("revoking a partition drops its queued messages, waits for running ones and returns the final position", async () => {
  const slow = gate();
  const handled: string[] = [];
  const dispatcher = new Dispatcher({
    concurrency: 2,
    orderBy: "partition",
    handler: async (m) => {
      if (m.partition === 0 && m.offset === "1") await slow.promise;
      handled.push(`${m.partition}@${m.offset}`);
    },
  });
  for (let i = 0; i < 4; i += 1) dispatcher.push(message(i, null, 0));
  dispatcher.push(message(0, null, 1));
  await until(() => handled.includes("0@0") && handled.includes("1@0"));
  let revoked = false;
  const revoking = dispatcher.revoke("t", 0).then((position) => {
    revoked = true;
    return position;
  });
  await sleep(5);
  assert.equal(revoked, false, "waits for the running handler");
  slow.release();
  assert.equal(await revoking, 2);
  await sleep(5);
  assert.deepEqual(
    handled.filter((h) => h.startsWith("0@")),
    ["0@0", "0@1"],
  );
  assert.equal(dispatcher.position("t", 0), -1);
  assert.deepEqual([...dispatcher.positions()], [["t:1", 1]]);
  assert.equal(dispatcher.pending(), 0);
  assert.equal(await dispatcher.revoke("t", 5), -1);
});

test("a partition revoked and assigned again runs its new messages, even behind an old running one", async () => {
  const slow = gate();
  const handled: string[] = [];
  const dispatcher = new Dispatcher({
    concurrency: 4,
    handler: async (m) => {
      if (m.offset === "0") await slow.promise;
      handled.push(m.offset);
    },
  });
  dispatcher.push(message(0, "a"));
  await sleep(1);
  const first = dispatcher.revoke("t", 0);
  // Assigned again while the old handler still runs, then revoked and assigned once more.
  dispatcher.push(message(0, "a"));
  dispatcher.push(message(1, "a"));
  const second = dispatcher.revoke("t", 0);
  dispatcher.push(message(1, "a"));
  dispatcher.push(message(2, "a"));
  assert.equal(await second, -1);
  slow.release();
  assert.equal(await first, 1);
  await until(() => handled.length >= 3);
  assert.deepEqual(handled, ["0", "1", "2"]);
  assert.equal(dispatcher.position("t", 0), 3);
  assert.equal(dispatcher.pending(), 0);
});

test("after close no handler starts and drain waits for the running ones", async () => {
  const slow = gate();
  const started: string[] = [];
  const dispatcher = new Dispatcher({
    concurrency: 1,
    handler: async (m) => {
      started.push(m.offset);
      if (m.offset === "0") await slow.promise;
    },
  });
  dispatcher.push(message(0, "a"));
  dispatcher.push(message(1, "b"));
  await until(() => started.length === 1);
  dispatcher.close();
  dispatcher.push(message(2, "c"));
  assert.equal(await dispatcher.drain(10), false);
  slow.release();
  assert.equal(await dispatcher.drain(1_000), true);
  await sleep(5);
  assert.deepEqual(started, ["0"]);
  assert.equal(dispatcher.pending(), 0);
  assert.equal(dispatcher.position("t", 0), 1);
});

test("a handler that keeps failing stops retrying once the dispatcher closes", async () => {
  let attempts = 0;
  const dispatcher = new Dispatcher({
    retryDelayMs: 5,
    handler: async () => {
      attempts += 1;
      throw new Error("always");
    },
  });
  dispatcher.push(message(0));
  await until(() => attempts >= 2);
  dispatcher.close();
  assert.equal(await dispatcher.drain(1_000), true);
  const atClose = attempts;
  await sleep(30);
  assert.equal(attempts, atClose);
  assert.equal(dispatcher.position("t", 0), -1);
});

test("a handler that returns a pending result frees its key at once and commits only once durable", async () => {
  const started: string[] = [];
  const durable = new Map<string, Gate>();
  const dispatcher = new Dispatcher({
    concurrency: 1,
    handler: async (m) => {
      started.push(m.offset);
      const g = gate();
      durable.set(m.offset, g);
      return { durable: g.promise };
    },
  });
  dispatcher.push(message(0, "a"));
  dispatcher.push(message(1, "a"));
  dispatcher.push(message(2, "a"));
  await until(() => started.length === 3);
  assert.deepEqual(started, ["0", "1", "2"], "the key's next message starts while the earlier one is in flight");
  assert.equal(dispatcher.position("t", 0), -1, "nothing is committable before the first is durable");
  assert.equal(dispatcher.pending(), 3, "in-flight messages still count for backpressure");
  durable.get("1")!.release();
  await sleep(5);
  assert.equal(dispatcher.position("t", 0), -1, "offset 1 durable does not skip offset 0");
  durable.get("0")!.release();
  await until(() => dispatcher.position("t", 0) === 2);
  durable.get("2")!.release();
  await until(() => dispatcher.position("t", 0) === 3);
  assert.equal(dispatcher.pending(), 0);
});

test("a pending result that fails is handled again, reported, and committed once it holds", async () => {
  const runs: string[] = [];
  const errors: number[] = [];
  let first = true;
  const dispatcher = new Dispatcher({
    concurrency: 4,
    retryDelayMs: 1,
    onError: (_error, _m, attempt) => errors.push(attempt),
    handler: async (m) => {
      runs.push(m.offset);
      if (m.offset === "0" && first) {
        first = false;
        return { durable: Promise.reject(new Error("delivery failed")) };
      }
      return { durable: Promise.resolve() };
    },
  });
  dispatcher.push(message(0, "a"));
  dispatcher.push(message(1, "a"));
  await until(() => dispatcher.position("t", 0) === 2);
  assert.deepEqual(errors, [1]);
  assert.deepEqual(runs.filter((offset) => offset === "0").length, 2, "offset 0 ran again after its failure");
  assert.ok(runs.includes("1"));
});

test("drain and revoke wait for pending results to become durable", async () => {
  const durable = gate();
  const dispatcher = new Dispatcher({ handler: async () => ({ durable: durable.promise }) });
  dispatcher.push(message(0, "a"));
  await until(() => dispatcher.pending() === 1);
  assert.equal(await dispatcher.drain(20), false, "not idle while an effect is in flight");
  let revoked: number | undefined;
  const revoking = dispatcher.revoke("t", 0).then((position) => {
    revoked = position;
  });
  await sleep(10);
  assert.equal(revoked, undefined, "revoke waits for the in-flight effect");
  durable.release();
  await revoking;
  assert.equal(revoked, 1, "the final position includes the durable message");
  assert.equal(await dispatcher.drain(20), true);
});
