import assert from "node:assert/strict";
import { test } from "node:test";
import { DedupeWindow } from "../../../services/worker/dedupe.ts";

test("the window forgets the least recently used key when full", () => {
  const window = new DedupeWindow<string>({ maxEntries: 2, ttlMs: 1000, now: () => 0 });
  window.set("a", "A");
  window.set("b", "B");
  assert.equal(window.get("a"), "A");
  window.set("c", "C");
  assert.equal(window.get("b"), undefined);
  assert.equal(window.get("a"), "A");
  assert.equal(window.get("c"), "C");
  assert.equal(window.size, 2);
});

test("an answer older than the TTL is forgotten", () => {
  let now = 0;
  const window = new DedupeWindow<string>({ maxEntries: 10, ttlMs: 100, now: () => now });
  window.set("a", "A");
  now = 99;
  assert.equal(window.get("a"), "A");
  now = 100;
  assert.equal(window.get("a"), undefined);
  assert.equal(window.size, 0);
});

test("a window of size zero remembers nothing", () => {
  const window = new DedupeWindow<string>({ maxEntries: 0, ttlMs: 100 });
  window.set("a", "A");
  assert.equal(window.get("a"), undefined);
});
