import assert from "node:assert/strict";
import { test } from "node:test";
import { HandlerRuns } from "../../../services/worker/runs.ts";
import { ErrorCode, TetherError } from "../../../shared/errors/index.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("a run that ends in time gives its outcome, and its signal stays unaborted", async () => {
  const runs = new HandlerRuns(1000, new AbortController().signal);
  let seen: AbortSignal | undefined;
  const { outcome, late } = runs.start(async (signal) => {
    seen = signal();
    await sleep(5);
    return "done";
  }, "timed out");
  assert.equal(await outcome, "done");
  assert.equal(await late, "done");
  assert.equal(seen?.aborted, false);
  runs.close();
});

test("a run past its deadline gives the timed-out value, its signal aborted with a timeout, and its own outcome later", async () => {
  const runs = new HandlerRuns(40, new AbortController().signal);
  let early: AbortSignal | undefined;
  let asked: () => AbortSignal = () => {
    throw new Error("not started");
  };
  const started = performance.now();
  const { outcome, late } = runs.start(async (signal) => {
    early = signal();
    asked = signal;
    await sleep(150);
    return "late";
  }, "timed out");
  assert.equal(await outcome, "timed out");
  const took = performance.now() - started;
  assert.ok(took >= 35 && took < 140, `timed out after ${took} ms`);
  assert.equal(early?.aborted, true);
  assert.ok(early?.reason instanceof TetherError && early.reason.code === ErrorCode.Timeout);
  assert.equal(asked().aborted, true, "the same signal, still aborted");
  assert.equal(await late, "late");
  runs.close();
});

test("a signal first asked for after the deadline is made already aborted", async () => {
  const runs = new HandlerRuns(20, new AbortController().signal);
  let asked: (() => AbortSignal) | undefined;
  const { outcome } = runs.start(async (signal) => {
    asked = signal;
    await sleep(80);
    return "late";
  }, "timed out");
  assert.equal(await outcome, "timed out");
  assert.equal(asked?.().aborted, true);
  runs.close();
});

test("shutdown aborts the signals of the runs still going, and of runs started after it", async () => {
  const shutdown = new AbortController();
  const runs = new HandlerRuns(10_000, shutdown.signal);
  const signals: AbortSignal[] = [];
  const first = runs.start(async (signal) => {
    signals.push(signal());
    await sleep(30);
    return "first";
  }, "timed out");
  const reason = new TetherError(ErrorCode.Closed, "the worker is shutting down");
  shutdown.abort(reason);
  assert.equal(signals[0]?.aborted, true);
  assert.equal(signals[0]?.reason, reason);
  const second = runs.start(async (signal) => {
    signals.push(signal());
    return "second";
  }, "timed out");
  assert.equal(signals[1]?.aborted, true);
  assert.equal(await first.outcome, "first", "an aborted handler's own outcome still counts");
  assert.equal(await second.outcome, "second");
  runs.close();
});
