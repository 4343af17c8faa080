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

    const attemptClaim = (deviceId: string, connId: string, attempt: number, edgeId = "edge-1"): ConnectionClaim => ({
      ...claimOf(deviceId, connId, edgeId),
      attempt,
    });

    it("hands out a device's hello attempts in increasing order, each device its own, without an owner", async () => {
      const deviceId = device("attempts");
      const other = device("attempts-other");
      const first = await registry.connections.beginAttempt(deviceId);
      const second = await registry.connections.beginAttempt(deviceId);
      assert.ok(first >= 1);
      assert.equal(second, first + 1);
      assert.equal(await registry.connections.beginAttempt(other), 1);
      assert.equal(await registry.connections.get(deviceId), null, "an attempt alone makes no owner");
      const page = await registry.connections.listByEdge("edge-1", { limit: 1000 });
      assert.ok(!page.items.some((record) => record.deviceId === deviceId));
    });

    it("gives 50 concurrent attempts of one device 50 distinct numbers", async () => {
      const deviceId = device("attempt-race");
      const numbers = await Promise.all(Array.from({ length: 50 }, () => registry.connections.beginAttempt(deviceId)));
      const sorted = [...numbers].sort((a, b) => a - b);
      assert.equal(new Set(numbers).size, 50);
      assert.deepEqual(
        sorted,
        Array.from({ length: 50 }, (_, i) => sorted[0]! + i),
      );
    });

    it("lets a claim with a higher attempt replace one with a lower attempt, and records it", async () => {
      const deviceId = device("ordered");
      const older = await registry.connections.beginAttempt(deviceId);
      const newer = await registry.connections.beginAttempt(deviceId);
      const first = await registry.connections.claim(attemptClaim(deviceId, "c-old", older));
      assert.equal(first.record.attempt, older);
      const second = await registry.connections.claim(attemptClaim(deviceId, "c-new", newer, "edge-2"));
      assert.equal(second.record.attempt, newer);
      assert.equal(second.record.epoch, first.record.epoch + 1);
      assert.deepEqual(second.previous, first.record);
      assert.deepEqual(await registry.connections.get(deviceId), second.record);
    });

    it("refuses a claim whose attempt is lower than or equal to one that claimed, and leaves the record", async () => {
      const deviceId = device("stale");
      const older = await registry.connections.beginAttempt(deviceId);
      const newer = await registry.connections.beginAttempt(deviceId);
      const won = await registry.connections.claim(attemptClaim(deviceId, "c-new", newer, "edge-2"));
      await assert.rejects(registry.connections.claim(attemptClaim(deviceId, "c-old", older)), isConflict);
      await assert.rejects(registry.connections.claim(attemptClaim(deviceId, "c-same", newer)), isConflict);
      assert.deepEqual(await registry.connections.get(deviceId), won.record);
      const later = await registry.connections.claim(attemptClaim(deviceId, "c-later", newer + 1));
      assert.equal(later.record.epoch, won.record.epoch + 1, "refused claims used no epoch");
    });

    it("refuses a stale attempt's claim after the owner released, and takes a fresh one's", async () => {
      const deviceId = device("released");
      const stale = await registry.connections.beginAttempt(deviceId);
      const live = await registry.connections.beginAttempt(deviceId);
      const claimed = await registry.connections.claim(attemptClaim(deviceId, "c-live", live));
      assert.equal(await registry.connections.release(deviceId, "c-live"), true);
      assert.equal(await registry.connections.get(deviceId), null);
      await assert.rejects(registry.connections.claim(attemptClaim(deviceId, "c-stale", stale)), isConflict);
      assert.equal(await registry.connections.get(deviceId), null, "the refused claim made no owner");
      const fresh = await registry.connections.beginAttempt(deviceId);
      assert.ok(fresh > live, "the counter survived the release");
      const again = await registry.connections.claim(attemptClaim(deviceId, "c-fresh", fresh));
      assert.equal(again.previous, null);
      assert.ok(again.record.epoch > claimed.record.epoch);
      assert.equal(again.record.attempt, fresh);
    });

    it("keeps an owner's record when a new attempt begins, and stops listing a released one", async () => {
      const edgeId = `${run}-edge-attempts`;
      const deviceId = device("kept");
      const attempt = await registry.connections.beginAttempt(deviceId);
      const claimed = await registry.connections.claim(attemptClaim(deviceId, "c1", attempt, edgeId));
      await registry.connections.beginAttempt(deviceId);
      assert.deepEqual(await registry.connections.get(deviceId), claimed.record);
      assert.deepEqual(
        (await registry.connections.listByEdge(edgeId)).items.map((record) => record.deviceId),
        [deviceId],
      );
      assert.equal(await registry.connections.release(deviceId, "c1"), true);
      assert.deepEqual((await registry.connections.listByEdge(edgeId)).items, []);
    });

    it("keeps the highest claimed attempt when a restore hands the record back", async () => {
      const deviceId = device("restore-attempt");
      const one = await registry.connections.beginAttempt(deviceId);
      const two = await registry.connections.beginAttempt(deviceId);
      await registry.connections.claim(attemptClaim(deviceId, "live", one));
      const abandoned = await registry.connections.claim(attemptClaim(deviceId, "abandoned", two));
      assert.equal(await registry.connections.restore("abandoned", abandoned.previous!), true);
      const restored = await registry.connections.get(deviceId);
      assert.equal(restored?.connId, "live");
      assert.equal(restored?.attempt, two);
      await assert.rejects(registry.connections.claim(attemptClaim(deviceId, "late", two)), isConflict);
      assert.equal((await registry.connections.get(deviceId))?.connId, "live");
    });

    it("lets a claim without an attempt win as before, keeping the claimed attempt for ordered claims", async () => {
      const deviceId = device("unordered");
      const attempt = await registry.connections.beginAttempt(deviceId);
      await registry.connections.claim(attemptClaim(deviceId, "ordered", attempt));
      const plain = await registry.connections.claim(claimOf(deviceId, "plain"));
      assert.equal(plain.previous?.connId, "ordered");
      assert.equal(plain.record.attempt, attempt);
      assert.deepEqual(await registry.connections.get(deviceId), plain.record);
      await assert.rejects(registry.connections.claim(attemptClaim(deviceId, "stale", attempt)), isConflict);
    });

    it("refuses an attempt number that is not a whole number of at least 1", async () => {
      const deviceId = device("bad-attempt");
      const invalid = (error: unknown): boolean => hasErrorCode(error, "invalid_argument");
      await assert.rejects(registry.connections.claim(attemptClaim(deviceId, "c", 0)), invalid);
      await assert.rejects(registry.connections.claim(attemptClaim(deviceId, "c", 1.5)), invalid);
      assert.equal(await registry.connections.get(deviceId), null);
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

    const request = (s: number, edgeId: string, leaseMs = 60_000) => ({
      slot: s,
      edgeId,
      host: `${edgeId}.host`,
      leaseMs,
    });

    it("gives a free slot to acquireFree with generation 1 and no committed offset", async () => {
      const s = slot();
      const lease = await registry.leases.acquireFree(request(s, "edge-a", 5_000));
      assert.equal(lease.slot, s);
      assert.equal(lease.edgeId, "edge-a");
      assert.equal(lease.host, "edge-a.host");
      assert.equal(lease.generation, 1);
      assert.equal(lease.leaseMs, 5_000);
      assert.equal(lease.committed, null);
      assert.equal(lease.released, false);
      assert.ok(lease.version.length > 0);
      assert.ok(lease.leaseUntil > fixture.now());
      assert.deepEqual(await registry.leases.get(s), lease);
    });

    it("refuses acquireFree on a held row that is not released, even once its lease ran out", async () => {
      const s = slot();
      const held = await registry.leases.acquireFree(request(s, "edge-a", 300));
      await assert.rejects(registry.leases.acquireFree(request(s, "edge-b")), isConflict);
      await assert.rejects(registry.leases.acquireFree(request(s, "edge-a")), isConflict, "not even to its holder");
      await fixture.pass(600);
      await assert.rejects(registry.leases.acquireFree(request(s, "edge-b")), isConflict, "expiry does not free it");
      assert.deepEqual(await registry.leases.get(s), held);
    });

    it("frees a slot with releaseHeld for the next acquireFree, which gets the next generation", async () => {
      const s = slot();
      const first = await registry.leases.acquireFree(request(s, "edge-a"));
      await registry.leases.releaseHeld(s, "edge-a", first.generation);
      const released = await registry.leases.get(s);
      assert.equal(released?.released, true);
      assert.equal(released?.generation, first.generation);
      assert.notEqual(released?.version, first.version);
      assert.ok(released!.leaseUntil <= fixture.now(), "a released lease is no longer live");
      await registry.leases.releaseHeld(s, "edge-a", first.generation);
      const second = await registry.leases.acquireFree(request(s, "edge-b"));
      assert.equal(second.generation, first.generation + 1);
      assert.equal(second.released, false);
      assert.equal(second.edgeId, "edge-b");
    });

    it("lets releaseHeld by anyone but the holder with its generation change nothing", async () => {
      const s = slot();
      const lease = await registry.leases.acquireFree(request(s, "edge-a"));
      await registry.leases.releaseHeld(s, "edge-b", lease.generation);
      await registry.leases.releaseHeld(s, "edge-a", lease.generation + 1);
      await registry.leases.releaseHeld(slot(), "edge-a", 1);
      assert.deepEqual(await registry.leases.get(s), lease);
    });

    it("hands a slot to takeOver only while the watched version is unchanged", async () => {
      const s = slot();
      const held = await registry.leases.acquireFree(request(s, "edge-a"));
      const renewed = await registry.leases.renewHeld(s, "edge-a", held.generation, 60_000);
      assert.notEqual(renewed.version, held.version);
      await assert.rejects(registry.leases.takeOver(request(s, "edge-b"), held.version), isConflict, "stale version");
      assert.equal((await registry.leases.get(s))?.edgeId, "edge-a");
      const taken = await registry.leases.takeOver(request(s, "edge-b", 7_000), renewed.version);
      assert.equal(taken.edgeId, "edge-b");
      assert.equal(taken.host, "edge-b.host");
      assert.equal(taken.generation, held.generation + 1);
      assert.equal(taken.leaseMs, 7_000);
      assert.equal(taken.released, false);
      assert.notEqual(taken.version, renewed.version);
      await assert.rejects(registry.leases.takeOver(request(s, "edge-c"), renewed.version), isConflict, "only once");
      await assert.rejects(registry.leases.takeOver(request(slot(), "edge-c"), renewed.version), isConflict, "no row");
    });

    it("fences the old generation off renewHeld and commitOffset after a takeOver", async () => {
      const s = slot();
      const old = await registry.leases.acquireFree(request(s, "edge-a"));
      await registry.leases.commitOffset(s, "edge-a", old.generation, 10);
      const watched = await registry.leases.get(s);
      const taken = await registry.leases.takeOver(request(s, "edge-b"), watched!.version);
      await assert.rejects(registry.leases.renewHeld(s, "edge-a", old.generation, 60_000), isConflict);
      await assert.rejects(registry.leases.commitOffset(s, "edge-a", old.generation, 99), isConflict);
      await assert.rejects(registry.leases.renewHeld(s, "edge-b", old.generation, 60_000), isConflict, "old number");
      await assert.rejects(registry.leases.commitOffset(s, "edge-b", old.generation, 99), isConflict, "old number");
      await registry.leases.releaseHeld(s, "edge-a", old.generation);
      const now = await registry.leases.get(s);
      assert.equal(now?.committed, 10, "the zombie did not move the offset");
      assert.equal(now?.edgeId, "edge-b");
      assert.equal(now?.released, false);
      assert.equal(now?.version, taken.version);
    });

    it("keeps the committed offset across a takeover and a release", async () => {
      const s = slot();
      const first = await registry.leases.acquireFree(request(s, "edge-a"));
      await registry.leases.commitOffset(s, "edge-a", first.generation, 41);
      const afterCommit = await registry.leases.get(s);
      assert.equal(afterCommit?.committed, 41);
      assert.notEqual(afterCommit?.version, first.version, "a commit writes a new version");
      const taken = await registry.leases.takeOver(request(s, "edge-b"), afterCommit!.version);
      assert.equal(taken.committed, 41);
      await registry.leases.commitOffset(s, "edge-b", taken.generation, 57);
      await registry.leases.releaseHeld(s, "edge-b", taken.generation);
      const again = await registry.leases.acquireFree(request(s, "edge-c"));
      assert.equal(again.committed, 57);
    });

    it("renews a held lease with a new version, the reported counts and committed offset", async () => {
      const s = slot();
      const held = await registry.leases.acquireFree(request(s, "edge-a", 10_000));
      await fixture.pass(20);
      const renewed = await registry.leases.renewHeld(s, "edge-a", held.generation, 30_000, {
        connections: 12,
        committed: 7,
      });
      assert.ok(renewed.leaseUntil > held.leaseUntil);
      assert.equal(renewed.leaseMs, 30_000);
      assert.equal(renewed.connections, 12);
      assert.equal(renewed.committed, 7);
      assert.equal(renewed.generation, held.generation);
      assert.notEqual(renewed.version, held.version);
      assert.deepEqual(await registry.leases.get(s), renewed);
      const plain = await registry.leases.renewHeld(s, "edge-a", held.generation, 30_000);
      assert.equal(plain.committed, 7, "a renewal without an offset keeps the one written");
      assert.equal(plain.connections, 12);
      assert.notEqual(plain.version, renewed.version);
      await assert.rejects(registry.leases.renewHeld(s, "edge-b", held.generation, 30_000), isConflict);
      await assert.rejects(registry.leases.renewHeld(slot(), "edge-a", 1, 30_000), isConflict);
      await registry.leases.releaseHeld(s, "edge-a", held.generation);
      await assert.rejects(registry.leases.renewHeld(s, "edge-a", held.generation, 30_000), isConflict, "released");
    });

    it("refuses a committed offset that is not a whole number of at least 0", async () => {
      const s = slot();
      const held = await registry.leases.acquireFree(request(s, "edge-a"));
      const invalid = (error: unknown): boolean => hasErrorCode(error, "invalid_argument");
      await assert.rejects(registry.leases.commitOffset(s, "edge-a", held.generation, -1), invalid);
      await assert.rejects(registry.leases.commitOffset(s, "edge-a", held.generation, 1.5), invalid);
      await assert.rejects(registry.leases.renewHeld(s, "edge-a", held.generation, 1_000, { committed: -2 }), invalid);
      assert.equal((await registry.leases.get(s))?.committed, null);
    });

    it("only ever raises the generation across acquireFree, takeOver and release cycles", async () => {
      const s = slot();
      const seen: number[] = [];
      let lease = await registry.leases.acquireFree(request(s, "edge-a"));
      seen.push(lease.generation);
      for (const edgeId of ["edge-b", "edge-a", "edge-c"]) {
        lease = await registry.leases.takeOver(request(s, edgeId), lease.version);
        seen.push(lease.generation);
        await registry.leases.releaseHeld(s, edgeId, lease.generation);
        lease = await registry.leases.acquireFree(request(s, edgeId));
        seen.push(lease.generation);
        lease = await registry.leases.renewHeld(s, edgeId, lease.generation, 60_000);
        seen.push(lease.generation);
      }
      assert.deepEqual(seen, [1, 2, 3, 3, 4, 5, 5, 6, 7, 7]);
    });

    it("gives acquire's new holders the next generation and a new version, and its holder the same generation", async () => {
      const s = slot();
      const first = await registry.leases.acquire({ slot: s, edgeId: "edge-a", host: "h", leaseMs: 300 });
      assert.equal(first.generation, 1);
      assert.equal(first.released, false);
      const again = await registry.leases.acquire({ slot: s, edgeId: "edge-a", host: "h", leaseMs: 300 });
      assert.equal(again.generation, 1, "the same holder");
      assert.notEqual(again.version, first.version);
      const renewed = await registry.leases.renew(s, "edge-a", 300, 3);
      assert.notEqual(renewed.version, again.version, "renew writes a new version too");
      assert.equal(renewed.generation, 1);
      await registry.leases.commitOffset(s, "edge-a", 1, 5);
      await fixture.pass(600);
      const taken = await registry.leases.acquire({ slot: s, edgeId: "edge-b", host: "h", leaseMs: 60_000 });
      assert.equal(taken.generation, 2);
      assert.equal(taken.committed, 5);
      await registry.leases.releaseHeld(s, "edge-b", 2);
      await assert.rejects(registry.leases.renew(s, "edge-b", 60_000), isConflict, "a released lease is not renewed");
      const back = await registry.leases.acquire({ slot: s, edgeId: "edge-b", host: "h", leaseMs: 60_000 });
      assert.equal(back.generation, 3, "taking a released slot back is a new holding");
      assert.equal(back.released, false);
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
