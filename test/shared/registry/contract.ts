/**
 * The registry contract: behaviour every adapter of the registry port must show.
 * `memory.test.ts` runs it on the in-memory registry, `contract.int.test.ts` on DynamoDB.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, type TestContext, test } from "node:test";
import { hasErrorCode } from "../../../shared/errors/index.ts";
import type { ConnectionClaim, ConnectionRecord, OutboxEntry, Registry } from "../../../shared/registry/types.ts";

export interface RegistryFixture {
  readonly registry: Registry;
  /** The clock the registry judges expiry by. */
  readonly now: () => number;
  /** Lets `ms` pass on that clock: a fake clock advances, a real one is slept on. */
  readonly pass: (ms: number) => Promise<void>;
  readonly cleanup?: () => Promise<void>;
}

export interface RegistryContractOptions {
  /** Bound for each test. Default 30 s. */
  readonly testTimeoutMs?: number;
}

function isConflict(error: unknown): boolean {
  return hasErrorCode(error, "conflict");
}

export function registryContract(
  name: string,
  makeRegistry: () => Promise<RegistryFixture>,
  options: RegistryContractOptions = {},
): void {
  const testTimeoutMs = options.testTimeoutMs ?? 30_000;

  describe(`registry contract: ${name}`, () => {
    let fixture: RegistryFixture;
    let registry: Registry;
    // Tests share one store; each takes its own devices, edges and slots.
    const run = randomUUID().slice(0, 8);
    let nextSlot = 1000;
    const device = (label: string): string => `${run}-${label}-${randomUUID().slice(0, 8)}`;
    const slot = (): number => {
      nextSlot += 1;
      return nextSlot;
    };

    before(async () => {
      fixture = await makeRegistry();
      registry = fixture.registry;
    });

    after(async () => {
      await registry?.close();
      await fixture?.cleanup?.();
    });

    const it = (title: string, body: (t: TestContext) => Promise<void>): void => {
      test(title, { timeout: testTimeoutMs }, body);
    };

    const claimOf = (deviceId: string, connId: string, edgeId = "edge-1", slotNumber = 1): ConnectionClaim => ({
      deviceId,
      edgeId,
      slot: slotNumber,
      connId,
      connectedAt: fixture.now(),
    });

    it("answers a ping", async () => {
      await registry.ping();
    });

    it("gives a device's first claim no previous owner and every later claim a higher epoch", async () => {
      const deviceId = device("claim");
      const first = await registry.connections.claim(claimOf(deviceId, "c1", "edge-1", 3));
      assert.equal(first.previous, null);
      assert.ok(first.record.epoch >= 1);
      assert.equal(first.record.deviceId, deviceId);
      assert.equal(first.record.edgeId, "edge-1");
      assert.equal(first.record.slot, 3);
      assert.equal(first.record.connId, "c1");
      const second = await registry.connections.claim(claimOf(deviceId, "c2", "edge-2", 4));
      assert.equal(second.record.epoch, first.record.epoch + 1);
      assert.deepEqual(second.previous, first.record);
      assert.deepEqual(await registry.connections.get(deviceId), second.record);
    });

    it("returns null for a device nobody claimed", async () => {
      assert.equal(await registry.connections.get(device("nobody")), null);
    });

    it("gives concurrent claims of one device distinct epochs, each replacing exactly one other", async () => {
      const deviceId = device("race");
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => registry.connections.claim(claimOf(deviceId, `c${i}`))),
      );
      const epochs = results.map((result) => result.record.epoch).sort((a, b) => a - b);
      const lowest = epochs[0]!;
      assert.deepEqual(
        epochs,
        Array.from({ length: 8 }, (_, i) => lowest + i),
      );
      assert.equal(results.filter((result) => result.previous === null).length, 1);
      // Each claim replaced the one with the epoch just below its own.
      for (const result of results) {
        if (result.previous !== null) assert.equal(result.previous.epoch, result.record.epoch - 1);
      }
      const final = await registry.connections.get(deviceId);
      assert.equal(final?.epoch, lowest + 7);
    });

    it("releases a connection only when it still names the caller's connId", async () => {
      const deviceId = device("release");
      await registry.connections.claim(claimOf(deviceId, "old"));
      await registry.connections.claim(claimOf(deviceId, "new"));
      assert.equal(await registry.connections.release(deviceId, "old"), false);
      assert.equal((await registry.connections.get(deviceId))?.connId, "new");
      assert.equal(await registry.connections.release(deviceId, "new"), true);
      assert.equal(await registry.connections.get(deviceId), null);
      assert.equal(await registry.connections.release(deviceId, "new"), false);
    });

    it("restores the owner a claim replaced only while the record still names that claim", async () => {
      const deviceId = device("restore");
      const first = await registry.connections.claim(claimOf(deviceId, "live"));
      const second = await registry.connections.claim(claimOf(deviceId, "abandoned"));
      assert.equal(second.previous?.connId, "live");
      assert.equal(await registry.connections.restore("live", second.previous!), false, "not the current holder");
      assert.equal(await registry.connections.restore("abandoned", second.previous!), true);
      const restored = await registry.connections.get(deviceId);
      assert.equal(restored?.connId, "live");
      assert.equal(restored?.edgeId, first.record.edgeId);
      assert.ok(restored!.epoch > second.record.epoch, "the epoch still only goes up");
      assert.equal(await registry.connections.restore("abandoned", second.previous!), false, "only once");
      const third = await registry.connections.claim(claimOf(deviceId, "newest"));
      assert.ok(third.record.epoch > restored!.epoch);
      assert.equal(third.previous?.connId, "live");
    });

    it("gives a claim after a release an epoch higher than any before it", async () => {
      const deviceId = device("again");
      const first = await registry.connections.claim(claimOf(deviceId, "c1"));
      assert.equal(await registry.connections.release(deviceId, "c1"), true);
      const second = await registry.connections.claim(claimOf(deviceId, "c2"));
      assert.ok(second.record.epoch > first.record.epoch, `${second.record.epoch} > ${first.record.epoch}`);
      assert.equal(second.previous, null);
    });

    it("lists one edge's devices page by page, each exactly once", async () => {
      const edgeId = `${run}-edge-list`;
      const otherEdge = `${run}-edge-other`;
      const mine = Array.from({ length: 23 }, (_, i) => device(`list${i}`));
      await Promise.all(mine.map((deviceId, i) => registry.connections.claim(claimOf(deviceId, `c${i}`, edgeId))));
      await Promise.all(
        [0, 1, 2].map((i) => registry.connections.claim(claimOf(device(`other${i}`), `c${i}`, otherEdge))),
      );
      const seen: ConnectionRecord[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await registry.connections.listByEdge(edgeId, { limit: 10, ...(cursor ? { cursor } : {}) });
        assert.ok(page.items.length <= 10);
        seen.push(...page.items);
        cursor = page.cursor;
        pages += 1;
        assert.ok(pages <= 5, "paging ends");
      } while (cursor !== undefined);
      assert.ok(pages >= 3);
      assert.deepEqual(seen.map((record) => record.deviceId).sort(), [...mine].sort());
      assert.ok(seen.every((record) => record.edgeId === edgeId));
      const empty = await registry.connections.listByEdge(`${run}-edge-empty`);
      assert.deepEqual(empty.items, []);
      assert.equal(empty.cursor, undefined);
    });

    it("hands out records that callers cannot use to change the store", async () => {
      const deviceId = device("copy");
      const claimed = await registry.connections.claim(claimOf(deviceId, "c1"));
      try {
        (claimed.record as { connId: string }).connId = "tampered";
      } catch {
        // A frozen record is fine too.
      }
      const read = await registry.connections.get(deviceId);
      assert.equal(read?.connId, "c1");
      try {
        (read as { epoch: number }).epoch = 999;
      } catch {
        // A frozen record is fine too.
      }
      assert.equal((await registry.connections.get(deviceId))?.epoch, claimed.record.epoch);
    });

    it("grants a free slot's lease and refuses it to another edge while it is live", async () => {
      const s = slot();
      const lease = await registry.leases.acquire({ slot: s, edgeId: "edge-a", host: "10.0.0.1", leaseMs: 60_000 });
      assert.equal(lease.slot, s);
      assert.equal(lease.edgeId, "edge-a");
      assert.equal(lease.host, "10.0.0.1");
      assert.ok(lease.leaseUntil > fixture.now());
      await assert.rejects(
        registry.leases.acquire({ slot: s, edgeId: "edge-b", host: "10.0.0.2", leaseMs: 60_000 }),
        isConflict,
      );
      const again = await registry.leases.acquire({ slot: s, edgeId: "edge-a", host: "10.0.0.1", leaseMs: 60_000 });
      assert.equal(again.edgeId, "edge-a");
      assert.equal((await registry.leases.get(s))?.edgeId, "edge-a");
    });

    it("renews a lease for its holder only, and records the connection count reported", async () => {
      const s = slot();
      const lease = await registry.leases.acquire({ slot: s, edgeId: "edge-a", host: "h", leaseMs: 10_000 });
      await fixture.pass(20);
      const renewed = await registry.leases.renew(s, "edge-a", 60_000, 42);
      assert.ok(renewed.leaseUntil > lease.leaseUntil);
      assert.equal(renewed.edgeId, "edge-a");
      assert.equal(renewed.connections, 42);
      assert.equal((await registry.leases.get(s))?.connections, 42);
      await assert.rejects(registry.leases.renew(s, "edge-b", 60_000), isConflict);
      await assert.rejects(registry.leases.renew(slot(), "edge-a", 60_000), isConflict);
    });

    it("lets another edge take an expired lease, after which the old holder cannot renew", async () => {
      const s = slot();
      await registry.leases.acquire({ slot: s, edgeId: "edge-a", host: "h", leaseMs: 300 });
      await fixture.pass(600);
      const taken = await registry.leases.acquire({ slot: s, edgeId: "edge-b", host: "h2", leaseMs: 60_000 });
      assert.equal(taken.edgeId, "edge-b");
      await assert.rejects(registry.leases.renew(s, "edge-a", 60_000), isConflict);
      assert.equal((await registry.leases.get(s))?.edgeId, "edge-b");
    });

    it("releases a lease only for its holder and lists every lease row", async () => {
      const s1 = slot();
      const s2 = slot();
      await registry.leases.acquire({ slot: s1, edgeId: "edge-a", host: "h", leaseMs: 60_000 });
      await registry.leases.acquire({ slot: s2, edgeId: "edge-b", host: "h", leaseMs: 300 });
      await fixture.pass(600);
      const listed = await registry.leases.list();
      const mine = listed.filter((lease) => lease.slot === s1 || lease.slot === s2);
      assert.deepEqual(mine.map((lease) => lease.slot).sort(), [s1, s2].sort());
      assert.ok(mine.find((lease) => lease.slot === s2)!.leaseUntil <= fixture.now(), "expired rows are listed");
      await registry.leases.release(s1, "edge-b");
      assert.equal((await registry.leases.get(s1))?.edgeId, "edge-a");
      await registry.leases.release(s1, "edge-a");
      assert.equal(await registry.leases.get(s1), null);
      await registry.leases.release(s1, "edge-a");
      const freed = await registry.leases.acquire({ slot: s1, edgeId: "edge-c", host: "h", leaseMs: 60_000 });
      assert.equal(freed.edgeId, "edge-c");
    });

    it("lists a device's outbox oldest first, overwrites by message id, and deletes", async () => {
      const deviceId = device("outbox");
      const now = fixture.now();
      const entry = (messageId: string, createdAt: number, frame = `{"id":"${messageId}"}`): OutboxEntry => ({
        deviceId,
        messageId,
        frame,
        createdAt,
        expiresAt: now + 3_600_000,
      });
      await registry.outbox.put(entry("m2", now + 2));
      await registry.outbox.put(entry("m1", now + 1));
      await registry.outbox.put(entry("m3", now + 3));
      assert.deepEqual(
        (await registry.outbox.list(deviceId)).map((e) => e.messageId),
        ["m1", "m2", "m3"],
      );
      assert.deepEqual(
        (await registry.outbox.list(deviceId, 2)).map((e) => e.messageId),
        ["m1", "m2"],
      );
      await registry.outbox.put(entry("m2", now + 2, '{"id":"m2","v":2}'));
      const listed = await registry.outbox.list(deviceId);
      assert.equal(listed.length, 3);
      assert.deepEqual(listed[1], entry("m2", now + 2, '{"id":"m2","v":2}'));
      await registry.outbox.delete(deviceId, "m1");
      await registry.outbox.delete(deviceId, "missing");
      assert.deepEqual(
        (await registry.outbox.list(deviceId)).map((e) => e.messageId),
        ["m2", "m3"],
      );
      assert.deepEqual(await registry.outbox.list(device("empty")), []);
    });

    it("never returns an outbox entry past its expiry", async () => {
      const deviceId = device("ttl");
      const now = fixture.now();
      await registry.outbox.put({ deviceId, messageId: "gone", frame: "{}", createdAt: now - 10, expiresAt: now - 1 });
      await registry.outbox.put({ deviceId, messageId: "soon", frame: "{}", createdAt: now, expiresAt: now + 400 });
      await registry.outbox.put({
        deviceId,
        messageId: "kept",
        frame: "{}",
        createdAt: now + 1,
        expiresAt: now + 3_600_000,
      });
      assert.deepEqual(
        (await registry.outbox.list(deviceId)).map((e) => e.messageId),
        ["soon", "kept"],
      );
      await fixture.pass(800);
      assert.deepEqual(
        (await registry.outbox.list(deviceId)).map((e) => e.messageId),
        ["kept"],
      );
    });
  });
}
