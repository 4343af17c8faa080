import assert from "node:assert/strict";
import { test } from "node:test";
import { StreamLoop } from "../../../../shared/broker/kafka/fetch.ts";
import type { NativeConsumer, NativeMessage, NativeTopicPartition } from "../../../../shared/broker/kafka/native.ts";
import type { IncomingMessage } from "../../../../shared/broker/types.ts";
import type { TetherError } from "../../../../shared/errors/index.ts";
import { silentLogger } from "../../../../shared/log/index.ts";

/**
 * The loop's own logic (backpressure, the stall watchdog) against a stand-in for the client's
 * consume thread; the Kafka contract suite runs the same loop against a real broker.
 */
class ThreadStandIn {
  onMessage: ((error: Error | null, message?: NativeMessage) => void) | undefined;
  /** What a pull (`consume(count, callback)`) takes; the thread never sees these. */
  readonly queued: NativeMessage[] = [];
  pulls = 0;
  paused = 0;
  resumed = 0;
  position = 5;
  high = 5;
  readonly assigned: NativeTopicPartition[] = [{ topic: "t", partition: 0 }];

  consumer(): NativeConsumer {
    return {
      setDefaultConsumeTimeout: () => {},
      setDefaultConsumeLoopTimeoutDelay: () => {},
      setDefaultIsTimeoutOnlyForFirstMessage: () => {},
      consume: (
        first: number | ((error: Error | null, message?: NativeMessage) => void),
        pulled?: (error: null, messages: NativeMessage[]) => void,
      ) => {
        if (typeof first === "function") {
          this.onMessage = first;
          return;
        }
        this.pulls += 1;
        pulled?.(null, this.queued.splice(0, first));
      },
      assignments: () => this.assigned,
      pause: () => {
        this.paused += 1;
      },
      resume: () => {
        this.resumed += 1;
      },
      position: () => [{ topic: "t", partition: 0, offset: this.position }],
      queryWatermarkOffsets: (
        _topic: string,
        _partition: number,
        _timeout: number,
        callback: (error: null, offsets: { highOffset: number; lowOffset: number }) => void,
      ) => callback(null, { highOffset: this.high, lowOffset: 0 }),
    } as unknown as NativeConsumer;
  }

  send(offset: number): void {
    this.onMessage?.(null, message(offset));
  }
}

function message(offset: number): NativeMessage {
  return { topic: "t", partition: 0, offset, value: Buffer.from("{}"), size: 2 } as NativeMessage;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A started loop on `thread` with nothing pending, reporting stalls into `stalls` after 200 ms. */
function watched(thread: ThreadStandIn, stalls: TetherError[]): StreamLoop {
  const loop = new StreamLoop({
    consumer: thread.consumer(),
    logger: silentLogger(),
    deliver: () => {},
    pending: () => 0,
    maxPending: 10,
    stallMs: 200,
    onStall: (error) => stalls.push(error),
  });
  loop.start();
  return loop;
}

test("the stream delivers each message as it arrives, pauses a lasting backlog and resumes at half the bound", async () => {
  const thread = new ThreadStandIn();
  const delivered: IncomingMessage[] = [];
  let pending = 0;
  const loop = new StreamLoop({
    consumer: thread.consumer(),
    logger: silentLogger(),
    deliver: (message) => {
      delivered.push(message);
      pending += 1;
    },
    pending: () => pending,
    maxPending: 4,
    holdMs: 100,
  });
  loop.start();
  for (let offset = 0; offset < 6; offset++) thread.send(offset);
  assert.deepEqual(
    delivered.map((message) => message.offset),
    ["0", "1", "2", "3", "4", "5"],
  );
  assert.equal(loop.paused(), false, "a backlog past the bound first waits in the dispatcher");
  await sleep(150);
  thread.send(6);
  assert.equal(loop.paused(), true, "a backlog that lasted past holdMs pauses");
  assert.equal(thread.paused, 1);
  pending = 3;
  await sleep(30);
  assert.equal(thread.resumed, 0, "three pending is more than half the bound");
  pending = 2;
  await sleep(30);
  assert.equal(thread.resumed, 1);
  assert.equal(loop.paused(), false);
  for (let offset = 7; offset < 7 + 17; offset++) thread.send(offset);
  assert.equal(loop.paused(), true, "a backlog of four times the bound pauses at once");
  assert.equal(thread.paused, 2);
  await loop.stop();
  thread.send(99);
  assert.equal(delivered.length, 24, "nothing is delivered once stopped");
});

test("messages waiting on the broker with none arriving are reported once as a stall", async () => {
  const thread = new ThreadStandIn();
  const stalls: TetherError[] = [];
  const loop = watched(thread, stalls);
  thread.position = 5;
  thread.high = 9;
  await sleep(3500);
  await loop.stop();
  assert.equal(stalls.length, 1);
  assert.equal(stalls[0]?.code, "unavailable");
  assert.match(stalls[0]?.message ?? "", /stalled/);
});

test("an idle partition, or one that keeps delivering, is no stall", async () => {
  const idle = new ThreadStandIn();
  const stalls: TetherError[] = [];
  const quiet = watched(idle, stalls);
  idle.position = 7;
  idle.high = 7;

  const busy = new ThreadStandIn();
  const flowing = watched(busy, stalls);
  busy.position = 0;
  busy.high = 1_000_000;
  const ticker = setInterval(() => busy.send(busy.position++), 50);
  await sleep(3500);
  clearInterval(ticker);
  await quiet.stop();
  await flowing.stop();
  assert.deepEqual(stalls, []);
});

test("when the consume thread ends on an error, the loop goes on by pull on the same client", async () => {
  const thread = new ThreadStandIn();
  const delivered: string[] = [];
  const stalls: TetherError[] = [];
  const loop = new StreamLoop({
    consumer: thread.consumer(),
    logger: silentLogger(),
    deliver: (incoming) => delivered.push(incoming.offset),
    pending: () => 0,
    maxPending: 10,
    stallMs: 200,
    onStall: (error) => stalls.push(error),
  });
  loop.start();
  thread.send(0);
  assert.equal(thread.pulls, 0, "no pull while the thread delivers");
  thread.onMessage?.(new Error("Broker: Unknown topic id"));
  thread.queued.push(message(1), message(2));
  await sleep(50);
  assert.deepEqual(delivered, ["0", "1", "2"]);
  assert.ok(thread.pulls > 0);
  thread.queued.push(message(3));
  await sleep(50);
  assert.deepEqual(delivered, ["0", "1", "2", "3"], "the pull's safety poll finds what comes later too");
  thread.high = 99;
  await sleep(600);
  assert.deepEqual(stalls, [], "the stall watchdog stands down once pulling");
  await loop.stop();
  const pulls = thread.pulls;
  thread.queued.push(message(4));
  await sleep(50);
  assert.equal(thread.pulls, pulls, "no pull once stopped");
  assert.equal(delivered.length, 4);
});
