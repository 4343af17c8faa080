import assert from "node:assert/strict";
import { test } from "node:test";
import { LeaseCache, MemoryRegistry } from "../../../shared/registry/index.ts";
import type { LeaseStore } from "../../../shared/registry/types.ts";

function counting(leases: LeaseStore): { store: LeaseStore; reads: () => number } {
  let reads = 0;
  const store: LeaseStore = {
    acquire: (lease) => leases.acquire(lease),
    renew: (slot, edgeId, leaseMs, connections) => leases.renew(slot, edgeId, leaseMs, connections),
    release: (slot, edgeId) => leases.release(slot, edgeId),
    list: () => leases.list(),
    acquireFree: (lease) => leases.acquireFree(lease),
    takeOver: (lease, expectedVersion) => leases.takeOver(lease, expectedVersion),
    renewHeld: (slot, edgeId, generation, leaseMs, extra) => leases.renewHeld(slot, edgeId, generation, leaseMs, extra),
    commitOffset: (slot, edgeId, generation, offset) => leases.commitOffset(slot, edgeId, generation, offset),
    releaseHeld: (slot, edgeId, generation) => leases.releaseHeld(slot, edgeId, generation),
    get: (slot) => {
      reads += 1;
      return leases.get(slot);
    },
  };
  return { store, reads: () => reads };
}

function fixture(ttlMs = 1000) {
  const clock = { now: 1_000_000 };
  const registry = new MemoryRegistry({ now: () => clock.now });
  const { store, reads } = counting(registry.leases);
  const cache = new LeaseCache(store, ttlMs, () => clock.now);
  return { clock, registry, cache, reads };
}

test("a live lease is read once and reused within the cache time", async () => {
  const { registry, cache, reads, clock } = fixture();
  await registry.leases.acquire({ slot: 1, edgeId: "a", host: "h", leaseMs: 10_000 });
  assert.equal(await cache.heldBy(1, "a"), true);
  clock.now += 999;
  assert.equal(await cache.heldBy(1, "a"), true);
  assert.equal(reads(), 1);
  clock.now += 1;
  assert.equal(await cache.heldBy(1, "a"), true);
  assert.equal(reads(), 2);
});

test("concurrent lookups of one slot share one read", async () => {
  const { registry, cache, reads } = fixture();
  await registry.leases.acquire({ slot: 2, edgeId: "a", host: "h", leaseMs: 10_000 });
  const answers = await Promise.all(Array.from({ length: 20 }, () => cache.heldBy(2, "a")));
  assert.ok(answers.every((answer) => answer));
  assert.equal(reads(), 1);
});

test("a missing lease is not remembered: a lease taken just after is seen at once", async () => {
  const { registry, cache } = fixture();
  assert.equal(await cache.heldBy(3, "a"), false);
  await registry.leases.acquire({ slot: 3, edgeId: "a", host: "h", leaseMs: 10_000 });
  assert.equal(await cache.heldBy(3, "a"), true);
});

test("a lease held by another edge is read again, so the cache never makes a device look offline", async () => {
  const { registry, cache, clock } = fixture(60_000);
  await registry.leases.acquire({ slot: 4, edgeId: "old", host: "h", leaseMs: 1_000 });
  assert.equal(await cache.heldBy(4, "old"), true);
  clock.now += 2_000;
  await registry.leases.acquire({ slot: 4, edgeId: "new", host: "h", leaseMs: 10_000 });
  assert.equal(await cache.heldBy(4, "new"), true);
  assert.equal(await cache.heldBy(4, "old"), false);
});

test("a cached lease that has expired is read again and renewals are picked up", async () => {
  const { registry, cache, clock, reads } = fixture(60_000);
  await registry.leases.acquire({ slot: 5, edgeId: "a", host: "h", leaseMs: 1_000 });
  assert.equal(await cache.heldBy(5, "a"), true);
  await registry.leases.renew(5, "a", 5_000);
  clock.now += 1_500;
  assert.equal(await cache.heldBy(5, "a"), true);
  assert.equal(reads(), 2);
  clock.now += 10_000;
  assert.equal(await cache.heldBy(5, "a"), false);
});

test("with a cache time of zero every lookup reads the lease", async () => {
  const { registry, cache, reads } = fixture(0);
  await registry.leases.acquire({ slot: 6, edgeId: "a", host: "h", leaseMs: 10_000 });
  await cache.heldBy(6, "a");
  await cache.heldBy(6, "a");
  assert.equal(reads(), 2);
});

test("a failed read is passed on and not remembered", async () => {
  const { registry, cache } = fixture();
  await registry.leases.acquire({ slot: 7, edgeId: "a", host: "h", leaseMs: 10_000 });
  await registry.close();
  await assert.rejects(cache.heldBy(7, "a"), /closed/);
});
