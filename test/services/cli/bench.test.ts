import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { build } from "hdr-histogram-js";
import { requestsDue, summarize } from "../../../services/cli/commands/bench.ts";

function histogramOf(valuesUs: readonly number[]) {
  const histogram = build({ numberOfSignificantValueDigits: 3, lowestDiscernibleValue: 1 });
  for (const value of valuesUs) histogram.recordValue(value);
  return histogram;
}

describe("bench latency summary", () => {
  it("never puts a percentile or the mean above the largest round trip recorded", () => {
    // 10,001 us falls in a bucket whose top is 10,007 us: the raw p99.9 is past the max.
    const histogram = histogramOf(new Array<number>(1000).fill(10_001));
    assert.ok(histogram.getValueAtPercentile(99.9) > histogram.maxValue, "the raw percentile overshoots");
    const summary = summarize(histogram);
    assert.deepEqual(summary, {
      count: 1000,
      min: 10.001,
      p50: 10.001,
      p90: 10.001,
      p99: 10.001,
      p999: 10.001,
      max: 10.001,
      mean: 10.001,
    });
  });

  it("keeps every figure between the smallest and the largest round trip", () => {
    const values = [9_001, 9_003, 12_345, 15_999, 16_001, 250_013];
    const summary = summarize(histogramOf(values));
    assert.equal(summary.min, 9.001);
    assert.equal(summary.max, 250.013);
    for (const figure of [summary.p50, summary.p90, summary.p99, summary.p999, summary.mean]) {
      assert.ok(figure >= summary.min && figure <= summary.max, `${figure} within [min, max]`);
    }
    assert.ok(summary.p50 <= summary.p90 && summary.p90 <= summary.p99 && summary.p99 <= summary.p999);
  });

  it("is all zeros when nothing was recorded", () => {
    assert.deepEqual(summarize(histogramOf([])), {
      count: 0,
      min: 0,
      p50: 0,
      p90: 0,
      p99: 0,
      p999: 0,
      max: 0,
      mean: 0,
    });
  });
});

describe("bench request count at a rate", () => {
  it("is rate x duration, the first request at the start of the window", () => {
    assert.equal(requestsDue(1000, 1), 1000);
    assert.equal(requestsDue(200, 1), 200);
    assert.equal(requestsDue(5000, 10), 50_000);
    assert.equal(requestsDue(0.1, 30), 3, "no extra request from floating point (0.1 x 30)");
  });

  it("rounds a fractional count up: every request due before the window ends goes out", () => {
    // Due at 0, 0.1 and 0.2 s: three within a quarter of a second.
    assert.equal(requestsDue(10, 0.25), 3);
    assert.equal(requestsDue(0.5, 1), 1);
  });
});
