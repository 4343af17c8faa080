/** Smoke test of the DynamoDB adapter's conditional writes against DynamoDB Local. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { hasErrorCode, isTetherError } from "../../../shared/errors/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { createDynamoClient, ensureTables } from "../../../shared/registry/dynamodb/index.ts";
import { createTestAdapters, type TestAdapters, uniquePrefix } from "../../harness/index.ts";

describe("DynamoDB adapter on DynamoDB Local", () => {
  let adapters: TestAdapters;

  before(async () => {
    adapters = await createTestAdapters(uniquePrefix());
  });

  after(async () => {
    await adapters?.close();
  });

  test("creating the tables again changes nothing and succeeds", async () => {
    await ensureTables({ settings: adapters.dynamodb, names: adapters.names, logger: silentLogger() });
    await adapters.registry.ping();
  });

  test("refuses a second edge the live lease of a slot with TetherError conflict", async () => {
    const { leases } = adapters.registry;
    const held = await leases.acquire({ slot: 7, edgeId: "edge-a", host: "10.0.0.1", leaseMs: 30_000 });
    assert.equal(held.edgeId, "edge-a");
    const error = await leases.acquire({ slot: 7, edgeId: "edge-b", host: "10.0.0.2", leaseMs: 30_000 }).then(
      () => assert.fail("the second edge got the lease"),
      (failure: unknown) => failure,
    );
    assert.ok(isTetherError(error), "a TetherError, not an SDK error");
    assert.equal(error.code, "conflict");
    assert.equal((await leases.get(7))?.edgeId, "edge-a");
    await assert.rejects(leases.renew(7, "edge-b", 30_000), (failure) => hasErrorCode(failure, "conflict"));
  });

  test("reads a lease row written before fencing as generation 0, a derived version and no offset", async () => {
    const client = createDynamoClient(adapters.dynamodb);
    const legacyRow = (slot: number, edgeId: string) =>
      client.send(
        new PutItemCommand({
          TableName: adapters.names.edgesTable,
          Item: {
            slot: { N: String(slot) },
            edgeId: { S: edgeId },
            host: { S: "h" },
            startedAt: { N: "1000" },
            leaseUntil: { N: "4000" },
          },
        }),
      );
    try {
      await legacyRow(21, "edge-old");
      await legacyRow(22, "edge-old");
    } finally {
      client.destroy();
    }
    const { leases } = adapters.registry;
    const old = await leases.get(21);
    assert.equal(old?.generation, 0);
    assert.equal(old?.committed, null);
    assert.equal(old?.released, false);
    assert.equal(old?.leaseMs, 3000);
    assert.ok(old !== null && old.version.length > 0);
    await assert.rejects(
      leases.takeOver({ slot: 21, edgeId: "edge-new", host: "h", leaseMs: 1000 }, "legacy-1000-3999"),
      (failure) => hasErrorCode(failure, "conflict"),
    );
    const taken = await leases.takeOver({ slot: 21, edgeId: "edge-new", host: "h", leaseMs: 1000 }, old.version);
    assert.equal(taken.generation, 1);
    assert.equal(taken.edgeId, "edge-new");
    const renewed = await leases.renewHeld(22, "edge-old", 0, 1000, { committed: 3 });
    assert.equal(renewed.generation, 0);
    assert.equal(renewed.committed, 3);
    await leases.commitOffset(22, "edge-old", 0, 4);
    await assert.rejects(leases.commitOffset(22, "edge-old", 1, 5), (failure) => hasErrorCode(failure, "conflict"));
    assert.equal((await leases.get(22))?.committed, 4);
  });

  test("bumps a device's epoch on every claim and hands back the replaced owner", async () => {
    const { connections } = adapters.registry;
    const claim = { deviceId: "dev-1", edgeId: "edge-a", slot: 1, connectedAt: Date.now() };
    const first = await connections.claim({ ...claim, connId: "c1" });
    const second = await connections.claim({ ...claim, edgeId: "edge-b", slot: 2, connId: "c2" });
    assert.equal(first.previous, null);
    assert.equal(second.record.epoch, first.record.epoch + 1);
    assert.deepEqual(second.previous, first.record);
  });

  test("keeps a released device's counters with a day's expiry, which a claim removes", async () => {
    const { connections } = adapters.registry;
    const client = createDynamoClient(adapters.dynamodb);
    const item = async () =>
      (
        await client.send(
          new GetItemCommand({
            TableName: adapters.names.connectionsTable,
            Key: { deviceId: { S: "dev-ttl" } },
            ConsistentRead: true,
          }),
        )
      ).Item ?? {};
    try {
      const dayAhead = Math.ceil(Date.now() / 1000) + 24 * 60 * 60;
      const first = await connections.beginAttempt("dev-ttl");
      const fresh = await item();
      assert.equal(fresh.attempts?.N, String(first));
      assert.ok(Math.abs(Number(fresh.expiresAt?.N) - dayAhead) <= 5, "an item without an owner expires");
      const claim = { deviceId: "dev-ttl", edgeId: "edge-a", slot: 1, connectedAt: Date.now() };
      await connections.claim({ ...claim, connId: "c1", attempt: first });
      const owned = await item();
      assert.equal(owned.expiresAt, undefined, "an owned item never expires");
      assert.equal(owned.claimedAttempt?.N, String(first));
      await connections.beginAttempt("dev-ttl");
      assert.equal((await item()).expiresAt, undefined, "a new attempt on an owned item sets no expiry");
      assert.equal(await connections.release("dev-ttl", "c1"), true);
      const released = await item();
      assert.deepEqual(Object.keys(released).sort(), ["attempts", "claimedAttempt", "deviceId", "epoch", "expiresAt"]);
      assert.ok(Math.abs(Number(released.expiresAt?.N) - dayAhead) <= 5);
    } finally {
      client.destroy();
    }
  });

  test("releases a connection only while it still names the caller's connId", async () => {
    const { connections } = adapters.registry;
    const claim = { deviceId: "dev-2", edgeId: "edge-a", slot: 1, connectedAt: Date.now() };
    await connections.claim({ ...claim, connId: "old" });
    await connections.claim({ ...claim, connId: "new" });
    assert.equal(await connections.release("dev-2", "old"), false);
    assert.equal((await connections.get("dev-2"))?.connId, "new");
    assert.equal(await connections.release("dev-2", "new"), true);
    assert.equal(await connections.get("dev-2"), null);
  });
});
