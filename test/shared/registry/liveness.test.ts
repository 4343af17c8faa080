import assert from "node:assert/strict";
import { test } from "node:test";
import {
  LeaseCache,
  type LeaseReader,
  leaseHeldBy,
  leaseLive,
  MemoryRegistry,
  ownerLive,
} from "../../../shared/registry/index.ts";
import type { SlotLease } from "../../../shared/registry/types.ts";

function clocked() {
  const clock = { now: 5_000_000 };
  const registry = new MemoryRegistry({ now: () => clock.now });
  return { clock, registry, now: () => clock.now };
}

const owner = { slot: 2, edgeId: "edge-a" };
/** The fencing fields of a lease, for leases built by hand. */
const fencing = { generation: 1, version: "v1", leaseMs: 1_000, committed: null, released: false } as const;

test("an owner is live while its edge holds an unexpired lease on the record's slot", async () => {
  const { registry, clock, now } = clocked();
  await registry.leases.acquire({ slot: 2, edgeId: "edge-a", host: "h", leaseMs: 1_000 });
  assert.equal(await ownerLive(registry.leases, owner, now), true);
  clock.now += 999;
  assert.equal(await ownerLive(registry.leases, owner, now), true);
  clock.now += 1;
  assert.equal(await ownerLive(registry.leases, owner, now), false, "a lease is dead at its leaseUntil");
});

test("an owner is not live without a lease row for its slot", async () => {
  const { registry, now } = clocked();
  assert.equal(await ownerLive(registry.leases, owner, now), false);
});

test("an owner is not live when another edge holds the slot", async () => {
  const { registry, now } = clocked();
  await registry.leases.acquire({ slot: 2, edgeId: "edge-b", host: "h", leaseMs: 10_000 });
  assert.equal(await ownerLive(registry.leases, owner, now), false);
  assert.equal(await ownerLive(registry.leases, { slot: 2, edgeId: "edge-b" }, now), true);
});

test("an owner is not live when its edge holds a lease on a different slot only", async () => {
  const { registry, now } = clocked();
  await registry.leases.acquire({ slot: 3, edgeId: "edge-a", host: "h", leaseMs: 10_000 });
  assert.equal(await ownerLive(registry.leases, owner, now), false);
});

test("the clock is read after the lease, so a lease that runs out during the read does not count", async () => {
  const clock = { now: 1_000 };
  const lease: SlotLease = { slot: 2, edgeId: "edge-a", host: "h", startedAt: 0, leaseUntil: 1_500, ...fencing };
  const slow: LeaseReader = {
    get: async () => {
      clock.now = 2_000;
      return lease;
    },
  };
  assert.equal(await ownerLive(slow, owner, () => clock.now), false);
  clock.now = 1_000;
  assert.equal(await ownerLive(slow, owner, () => 1_000), true, "a fixed time judges at that time");
});

test("with a slot count, a record outside it is not live and no lease is read", async () => {
  let reads = 0;
  const reader: LeaseReader = {
    get: async (slot) => {
      reads += 1;
      return { slot, edgeId: "edge-a", host: "h", startedAt: 0, leaseUntil: Number.MAX_SAFE_INTEGER, ...fencing };
    },
  };
  const now = () => 1;
  for (const slot of [-1, 4, 2.5, Number.NaN]) {
    assert.equal(await ownerLive(reader, { slot, edgeId: "edge-a" }, now, { slots: 4 }), false, `slot ${slot}`);
  }
  assert.equal(reads, 0);
  assert.equal(await ownerLive(reader, { slot: 3, edgeId: "edge-a" }, now, { slots: 4 }), true);
  assert.equal(await ownerLive(reader, { slot: 4, edgeId: "edge-a" }, now), true, "unchecked without a slot count");
  assert.equal(reads, 2);
});

test("the lease reader is told which edge is expected to hold the slot", async () => {
  const asked: Array<[number, string | undefined]> = [];
  const reader: LeaseReader = {
    get: async (slot, holder) => {
      asked.push([slot, holder]);
      return null;
    },
  };
  await ownerLive(reader, owner, () => 0);
  assert.deepEqual(asked, [[2, "edge-a"]]);
});

test("through a lease cache the same owner is answered the same way, reading the store once", async () => {
  const { registry, clock, now } = clocked();
  let reads = 0;
  const cache = new LeaseCache(
    {
      get: (slot) => {
        reads += 1;
        return registry.leases.get(slot);
      },
    },
    1_000,
    now,
  );
  await registry.leases.acquire({ slot: 2, edgeId: "edge-a", host: "h", leaseMs: 500 });
  assert.equal(await ownerLive(cache, owner, now), true);
  assert.equal(await ownerLive(cache, owner, now), true);
  assert.equal(reads, 1);
  assert.equal(await ownerLive(cache, { slot: 2, edgeId: "edge-b" }, now), false);
  assert.equal(reads, 2, "a lease that does not show the expected holder is read again");
  clock.now += 500;
  assert.equal(await ownerLive(cache, owner, now), false, "an expired lease is not served from memory");
  assert.equal(await ownerLive(registry.leases, owner, now), false);
});

test("a lease is live strictly before its leaseUntil, and held only by the edge it names", () => {
  const lease: SlotLease = { slot: 0, edgeId: "edge-a", host: "h", startedAt: 0, leaseUntil: 100, ...fencing };
  assert.equal(leaseLive(lease, 99), true);
  assert.equal(leaseLive(lease, 100), false);
  assert.equal(leaseHeldBy(lease, "edge-a", 99), true);
  assert.equal(leaseHeldBy(lease, "edge-b", 99), false);
  assert.equal(leaseHeldBy(null, "edge-a", 0), false);
});
