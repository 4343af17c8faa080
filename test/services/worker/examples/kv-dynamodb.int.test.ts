import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { KvStore } from "../../../../services/worker/examples/kv.ts";
import { createDynamoKvStore, ensureKvTable } from "../../../../services/worker/examples/kv-dynamodb.ts";
import { uniquePrefix, useLocalCluster } from "../../../harness/index.ts";

let store: KvStore;

before(async () => {
  const cluster = await useLocalCluster();
  const settings = { table: `${uniquePrefix()}kv`, endpoint: cluster.dynamodbEndpoint, region: "us-east-1" };
  await ensureKvTable(settings);
  await ensureKvTable(settings);
  store = createDynamoKvStore(settings);
});

after(async () => {
  await store?.close();
  await store?.close();
});

test("a put is read back with its version, and a missing key reads as null", async () => {
  assert.equal(await store.get("d1", "missing"), null);
  assert.deepEqual(await store.put({ deviceId: "d1", key: "a", value: { n: [1, 2] }, requestKey: "d1:1" }), {
    status: "written",
    version: 1,
  });
  assert.deepEqual(await store.get("d1", "a"), { value: { n: [1, 2] }, version: 1 });
  assert.equal(await store.get("d2", "a"), null, "keys are per device");
});

test("the same request put twice is applied once and answers like the first", async () => {
  await store.put({ deviceId: "d3", key: "k", value: "first", requestKey: "d3:1" });
  const replay = await store.put({ deviceId: "d3", key: "k", value: "first", requestKey: "d3:1" });
  assert.deepEqual(replay, { status: "replayed", version: 1 });
  const next = await store.put({ deviceId: "d3", key: "k", value: "second", requestKey: "d3:2" });
  assert.deepEqual(next, { status: "written", version: 2 });
  assert.deepEqual(await store.get("d3", "k"), { value: "second", version: 2 });
});

test("ifVersion guards a write: a stale version is refused with the current one", async () => {
  assert.deepEqual(await store.put({ deviceId: "d4", key: "k", value: 1, ifVersion: 0, requestKey: "d4:1" }), {
    status: "written",
    version: 1,
  });
  assert.deepEqual(await store.put({ deviceId: "d4", key: "k", value: 2, ifVersion: 0, requestKey: "d4:2" }), {
    status: "version_mismatch",
    version: 1,
  });
  assert.deepEqual(await store.put({ deviceId: "d4", key: "k", value: 2, ifVersion: 1, requestKey: "d4:3" }), {
    status: "written",
    version: 2,
  });
  assert.deepEqual(await store.get("d4", "k"), { value: 2, version: 2 });
});
