import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigReader, readCommonConfig } from "../../../shared/config/index.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { createRegistry } from "../../../shared/registry/index.ts";
import { MemoryRegistry } from "../../../shared/registry/memory/index.ts";
import { registryContract } from "./contract.ts";

registryContract("memory", async () => {
  let offset = 0;
  const start = Date.now();
  const now = (): number => start + offset;
  return {
    registry: new MemoryRegistry({ now }),
    now,
    pass: async (ms) => {
      offset += ms;
    },
  };
});

test("lease liveness follows the injected clock, not the wall clock", async () => {
  let now = 1_000;
  const registry = new MemoryRegistry({ now: () => now });
  const lease = await registry.leases.acquire({ slot: 1, edgeId: "a", host: "h", leaseMs: 100 });
  assert.equal(lease.startedAt, 1_000);
  assert.equal(lease.leaseUntil, 1_100);
  now = 1_099;
  await assert.rejects(registry.leases.acquire({ slot: 1, edgeId: "b", host: "h", leaseMs: 100 }), (error) =>
    hasErrorCode(error, "conflict"),
  );
  now = 1_100;
  assert.equal((await registry.leases.acquire({ slot: 1, edgeId: "b", host: "h", leaseMs: 100 })).edgeId, "b");
  await registry.close();
});

test("an expired lease may still be renewed by its holder while nobody has taken it", async () => {
  let now = 0;
  const registry = new MemoryRegistry({ now: () => now });
  await registry.leases.acquire({ slot: 1, edgeId: "a", host: "h", leaseMs: 100 });
  now = 500;
  assert.equal((await registry.leases.renew(1, "a", 100)).leaseUntil, 600);
  await registry.close();
});

test("a malformed page cursor is rejected as an invalid argument", async () => {
  const registry = new MemoryRegistry();
  await assert.rejects(registry.connections.listByEdge("e", { cursor: "%%%" }), (error) =>
    hasErrorCode(error, "invalid_argument"),
  );
  await registry.close();
});

test("a closed registry rejects calls with closed and closes twice safely", async () => {
  const registry = new MemoryRegistry();
  await registry.close();
  await registry.close();
  await assert.rejects(registry.ping(), (error) => hasErrorCode(error, "closed"));
  await assert.rejects(registry.connections.get("d"), (error) => hasErrorCode(error, "closed"));
});

test("outbox entries handed out are copies the caller cannot use to change the store", async () => {
  const registry = new MemoryRegistry();
  const entry = { deviceId: "d", messageId: "m", frame: "{}", createdAt: 1, expiresAt: Date.now() + 60_000 };
  await registry.outbox.put(entry);
  entry.frame = "changed after put";
  const [listed] = await registry.outbox.list("d");
  assert.equal(listed?.frame, "{}");
  (listed as { frame: string }).frame = "changed after list";
  assert.equal((await registry.outbox.list("d"))[0]?.frame, "{}");
  await registry.close();
});

test("the registry factory picks the adapter the configuration names", async () => {
  const memory = readCommonConfig(new ConfigReader({}), "test");
  const registry = await createRegistry(memory, silentLogger());
  assert.equal(registry.kind, "memory");
  await registry.close();
  const dynamodb = readCommonConfig(
    new ConfigReader({ TETHER_REGISTRY: "dynamodb", TETHER_DYNAMODB_ENDPOINT: "http://127.0.0.1:1" }),
    "test",
  );
  const remote = await createRegistry(dynamodb, silentLogger());
  assert.equal(remote.kind, "dynamodb");
  await remote.close();
});
