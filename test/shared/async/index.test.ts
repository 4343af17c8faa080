import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { backoff, Limiter, pollUntil, sleep, withTimeout } from "../../../shared/async/index.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";

/** A promise and the function that settles it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** The module itself, for the child processes that check what keeps a process alive. */
const moduleUrl = new URL("../../../shared/async/index.ts", import.meta.url).href;

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

describe("sleep", () => {
  test("resolves true once the time has passed", async () => {
    const started = performance.now();
    assert.equal(await sleep(20), true);
    assert.ok(performance.now() - started >= 15);
  });

  test("resolves false as soon as its signal aborts, without waiting out the time", async () => {
    const controller = new AbortController();
    const started = performance.now();
    const waiting = sleep(10_000, { signal: controller.signal });
    setTimeout(() => controller.abort(), 5);
    assert.equal(await waiting, false);
    assert.ok(performance.now() - started < 5000);
  });

  test("resolves false at once when its signal has already aborted", async () => {
    assert.equal(await sleep(10_000, { signal: AbortSignal.abort() }), false);
  });

  test("with ref false its timer does not keep the process alive", async () => {
    const script = [
      `import { sleep } from ${JSON.stringify(moduleUrl)};`,
      "void sleep(60_000, { ref: false }).then(() => process.exit(3));",
    ].join("\n");
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(run.status, 0, run.stderr);
  });
});

describe("withTimeout", () => {
  test("settles as the promise does when it is in time", async () => {
    assert.equal(await withTimeout(Promise.resolve(7), 1000, "answer"), 7);
    await assert.rejects(withTimeout(Promise.reject(new Error("own")), 1000, "answer"), /own/);
  });

  test("rejects with a retryable timeout naming what took too long", async () => {
    const never = new Promise<never>(() => {});
    await assert.rejects(
      withTimeout(never, 10, "final commit"),
      (error: unknown) =>
        hasErrorCode(error, "timeout") && error.retryable && /final commit took longer than 10 ms/.test(error.message),
    );
  });

  test("a late rejection of the promise after the timeout goes nowhere", async () => {
    let fail = (_: Error): void => {};
    const late = new Promise<never>((_, reject) => {
      fail = reject;
    });
    await assert.rejects(withTimeout(late, 5, "late"), (error: unknown) => hasErrorCode(error, "timeout"));
    fail(new Error("too late"));
    await tick();
  });

  test("clears its timer, so a settled race does not keep the process alive", async () => {
    const script = [
      `import { withTimeout } from ${JSON.stringify(moduleUrl)};`,
      'await withTimeout(Promise.resolve(1), 60_000, "quick");',
    ].join("\n");
    const started = performance.now();
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.ok(performance.now() - started < 20_000);
  });
});

describe("backoff", () => {
  const fixed = (value: number) => () => value;

  test("doubles from the base per attempt and stops at the maximum", () => {
    const delays = [1, 2, 3, 4, 5, 6].map((attempt) => backoff(attempt, { baseMs: 100, maxMs: 1000 }));
    assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
  });

  test("full jitter spreads a delay over 0 to the ceiling", () => {
    const options = { baseMs: 100, maxMs: 10_000, jitter: 1 };
    assert.equal(backoff(3, { ...options, random: fixed(0) }), 400);
    assert.equal(backoff(3, { ...options, random: fixed(0.5) }), 200);
    assert.equal(backoff(3, { ...options, random: fixed(0.999_999) }), 0);
  });

  test("a jitter of one half keeps a delay between 50 and 100% of the ceiling", () => {
    for (let i = 0; i < 200; i++) {
      const delay = backoff(2, { baseMs: 1000, maxMs: 60_000, jitter: 0.5 });
      assert.ok(delay >= 1000 && delay <= 2000, String(delay));
    }
  });

  test("rounds to whole milliseconds and never overflows on a long outage", () => {
    assert.equal(backoff(2, { baseMs: 150, maxMs: 10_000, jitter: 1, random: fixed(1 / 3) }), 200);
    assert.equal(backoff(5000, { baseMs: 100, maxMs: 30_000 }), 30_000);
    assert.equal(backoff(5000, { baseMs: 0, maxMs: 30_000 }), 0);
  });
});

describe("pollUntil", () => {
  test("resolves as soon as the condition holds, and at the deadline when it never does", async () => {
    let ready = false;
    setTimeout(() => {
      ready = true;
    }, 30);
    const started = Date.now();
    await pollUntil(() => ready, Date.now() + 5000);
    const tookMs = Date.now() - started;
    assert.ok(ready && tookMs < 1000, `took ${tookMs} ms`);
    const before = Date.now();
    await pollUntil(() => false, Date.now() + 60);
    assert.ok(Date.now() - before >= 55, "waited for the deadline");
  });
});
