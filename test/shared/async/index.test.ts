import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Limiter } from "../../../shared/async/index.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";

/** A promise and the function that settles it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("Limiter", () => {
  test("never runs more calls at once than its concurrency, and runs every call", async () => {
    const limiter = new Limiter({ concurrency: 3 });
    let running = 0;
    let most = 0;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        limiter.run(async () => {
          running += 1;
          most = Math.max(most, running);
          await tick();
          running -= 1;
          return i;
        }),
      ),
    );
    assert.equal(most, 3);
    assert.deepEqual(
      results,
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.equal(limiter.active, 0);
    assert.equal(limiter.queued, 0);
  });

  test("starts waiting calls in the order they came", async () => {
    const limiter = new Limiter({ concurrency: 1 });
    const first = gate();
    const order: number[] = [];
    const held = limiter.run(() => first.promise);
    const waiting = [1, 2, 3].map((n) =>
      limiter.run(async () => {
        order.push(n);
      }),
    );
    assert.equal(limiter.queued, 3);
    first.open();
    await Promise.all([held, ...waiting]);
    assert.deepEqual(order, [1, 2, 3]);
  });

  test("a call that fails, even synchronously, gives its turn back and passes its error on", async () => {
    const limiter = new Limiter({ concurrency: 1 });
    await assert.rejects(
      limiter.run(async () => {
        throw new Error("boom");
      }),
      /boom/,
    );
    await assert.rejects(
      limiter.run(() => {
        throw new Error("sync boom");
      }),
      /sync boom/,
    );
    assert.equal(await limiter.run(async () => "next"), "next");
    assert.equal(limiter.active, 0);
  });

  test("past its queue bound it rejects with a retryable unavailable without calling the function", async () => {
    const limiter = new Limiter({ concurrency: 1, maxQueued: 1 });
    const hold = gate();
    const held = limiter.run(() => hold.promise);
    const queued = limiter.run(async () => "queued");
    let called = false;
    const refused = limiter.run(async () => {
      called = true;
    });
    await assert.rejects(refused, (error: unknown) => hasErrorCode(error, "unavailable") && error.retryable);
    assert.equal(called, false);
    hold.open();
    await held;
    assert.equal(await queued, "queued");
  });

  test("tryAcquire takes a free turn, refuses when none is free, and a release counts once", async () => {
    const limiter = new Limiter({ concurrency: 2, maxQueued: 0 });
    const a = limiter.tryAcquire();
    const b = limiter.tryAcquire();
    assert.ok(a !== null && b !== null);
    assert.equal(limiter.tryAcquire(), null);
    a();
    a();
    assert.equal(limiter.active, 1);
    const c = limiter.tryAcquire();
    assert.ok(c !== null);
    assert.equal(limiter.tryAcquire(), null);
    b();
    c();
    assert.equal(limiter.active, 0);
  });

  test("a released turn goes to a queued call before a new tryAcquire", async () => {
    const limiter = new Limiter({ concurrency: 1 });
    const release = limiter.tryAcquire();
    assert.ok(release !== null);
    const hold = gate();
    const queued = limiter.run(() => hold.promise);
    assert.equal(limiter.tryAcquire(), null, "the queue is not jumped");
    release();
    assert.equal(limiter.active, 1);
    assert.equal(limiter.tryAcquire(), null);
    hold.open();
    await queued;
    assert.equal(limiter.active, 0);
  });

  test("refuses a concurrency that is not a positive whole number", () => {
    for (const concurrency of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new Limiter({ concurrency }), /concurrency/);
    }
    assert.throws(() => new Limiter({ concurrency: 1, maxQueued: -1 }), /queue/);
  });
});
