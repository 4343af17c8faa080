import assert from "node:assert/strict";
import { test } from "node:test";
import { Deadlines } from "../../../shared/async/deadlines.ts";

interface Item {
  readonly name: string;
  readonly deadline: number;
  readonly timeoutMs: number;
  settled: boolean;
}

function item(name: string, timeoutMs: number): Item {
  return { name, deadline: performance.now() + timeoutMs, timeoutMs, settled: false };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("items expire at their own bound, in order, and a settled one never expires", async () => {
  const expired: string[] = [];
  const deadlines = new Deadlines<Item>((entry) => expired.push(entry.name), 10);
  const short = item("short", 50);
  const settled = item("settled", 50);
  const long = item("long", 300);
  const second = item("second short", 60);
  deadlines.add(long);
  deadlines.add(short);
  deadlines.add(settled);
  deadlines.add(second);
  settled.settled = true;
  await sleep(150);
  assert.deepEqual(expired, ["short", "second short"], "the 50 and 60 ms bounds ran out, the 300 ms one did not");
  await sleep(250);
  assert.deepEqual(expired, ["short", "second short", "long"]);
  deadlines.close();
});

test("many settled items are let go of and the sweep stops when nothing is left", async () => {
  const expired: string[] = [];
  const deadlines = new Deadlines<Item>((entry) => expired.push(entry.name), 5);
  const items = Array.from({ length: 5000 }, (_, index) => item(`n${index}`, 20));
  for (const entry of items) deadlines.add(entry);
  for (const entry of items.slice(0, 4999)) entry.settled = true;
  await sleep(80);
  assert.deepEqual(expired, ["n4999"]);
  deadlines.close();
});
