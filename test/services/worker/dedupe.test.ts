import assert from "node:assert/strict";
import { test } from "node:test";
import { DedupeWindow, dedupeKey } from "../../../services/worker/dedupe.ts";

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

test("the dedupe key is the same for the same id, type and body, and differs when any of them changes", () => {
  const base = { deviceId: "dev-1", id: "r1", type: "orders.create", body: { sku: "a", qty: 1 } };
  assert.equal(dedupeKey(base), dedupeKey({ ...base, body: { sku: "a", qty: 1 } }));
  assert.notEqual(dedupeKey(base), dedupeKey({ ...base, body: { sku: "a", qty: 2 } }));
  assert.notEqual(dedupeKey(base), dedupeKey({ ...base, type: "orders.cancel" }));
  assert.notEqual(dedupeKey(base), dedupeKey({ ...base, id: "r2" }));
  assert.notEqual(dedupeKey(base), dedupeKey({ ...base, deviceId: "dev-2" }));
});

test("the dedupe key keeps deviceId and id apart even when both contain ':'", () => {
  const body = null;
  assert.notEqual(
    dedupeKey({ deviceId: "a:b", id: "c", type: "t", body }),
    dedupeKey({ deviceId: "a", id: "b:c", type: "t", body }),
  );
});

test("the dedupe key does not let the type run into the body", () => {
  assert.notEqual(
    dedupeKey({ deviceId: "d", id: "r", type: "a", body: "bc" }),
    dedupeKey({ deviceId: "d", id: "r", type: "ab", body: "c" }),
  );
});
