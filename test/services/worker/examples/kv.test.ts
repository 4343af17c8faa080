import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { registerEcho } from "../../../../services/worker/examples/echo.ts";
import { MemoryKvStore, registerKv } from "../../../../services/worker/examples/kv.ts";
import { createWorker } from "../../../../services/worker/index.ts";
import { MemoryBroker } from "../../../../shared/broker/memory/index.ts";
import { tetherTopics } from "../../../../shared/broker/topics.ts";
import { silentLogger } from "../../../../shared/log/index.ts";
import { MemoryRegistry } from "../../../../shared/registry/memory/index.ts";
import { Collector, requestMessage, type TestRequest, testConfig } from "../fixtures.ts";

async function setup(t: TestContext) {
  const config = testConfig("kv-");
  const broker = new MemoryBroker();
  await broker.admin().ensureTopics(tetherTopics({ names: config.names, maxEdges: 4, workPartitions: 2 }));
  const store = new MemoryKvStore();
  const worker = createWorker({ config, logger: silentLogger(), broker, registry: new MemoryRegistry() });
  registerKv(registerEcho(worker), store);
  await worker.start();
  const producer = broker.producer();
  const replies = await Collector.start(broker, config.names.repliesTopic, [0], "edge");
  t.after(async () => {
    await worker.close(1000);
    await Promise.all([producer.close(), replies.close(), store.close()]);
  });
  let sent = 0;
  const call = async (request: TestRequest) => {
    sent += 1;
    await producer.send(requestMessage(config.names, request, { slot: 0, edgeId: "e", connId: "c" }));
    const items = await replies.waitForCount(sent);
    return items[sent - 1]!.frame;
  };
  return { call, store };
}

test("echo answers the body unchanged", async (t) => {
  const { call } = await setup(t);
  const body = { nested: [1, "two", { three: null }], flag: true };
  assert.deepEqual(await call({ deviceId: "d1", id: "1", type: "echo", body }), { t: "res", id: "1", body });
});

test("kv.put then kv.get round-trips a value in the device's own key space", async (t) => {
  const { call } = await setup(t);
  const put = await call({ deviceId: "d1", id: "1", type: "kv.put", body: { key: "color", value: { c: "red" } } });
  assert.deepEqual(put, { t: "res", id: "1", body: { key: "color", version: 1 } });
  const got = await call({ deviceId: "d1", id: "2", type: "kv.get", body: { key: "color" } });
  assert.deepEqual(got, { t: "res", id: "2", body: { key: "color", value: { c: "red" }, version: 1 } });
  const other = await call({ deviceId: "d2", id: "1", type: "kv.get", body: { key: "color" } });
  assert.equal(other.code, "not_found");
});

test("kv.put with a stale ifVersion answers version_mismatch and bad input answers invalid_input", async (t) => {
  const { call } = await setup(t);
  await call({ deviceId: "d1", id: "1", type: "kv.put", body: { key: "k", value: 1 } });
  const stale = await call({ deviceId: "d1", id: "2", type: "kv.put", body: { key: "k", value: 2, ifVersion: 0 } });
  assert.equal(stale.code, "version_mismatch");
  const fresh = await call({ deviceId: "d1", id: "3", type: "kv.put", body: { key: "k", value: 2, ifVersion: 1 } });
  assert.deepEqual(fresh.body, { key: "k", version: 2 });
  const bad = await call({ deviceId: "d1", id: "4", type: "kv.put", body: { key: "no spaces allowed", value: 1 } });
  assert.equal(bad.code, "invalid_input");
});

test("the memory store applies one request once, whatever the repeats", async () => {
  const store = new MemoryKvStore();
  const first = await store.put({ deviceId: "d", key: "k", value: 1, requestKey: "d:1" });
  const again = await store.put({ deviceId: "d", key: "k", value: 1, requestKey: "d:1" });
  assert.deepEqual(first, { status: "written", version: 1 });
  assert.deepEqual(again, { status: "replayed", version: 1 });
  assert.equal((await store.get("d", "k"))?.version, 1);
});
