import assert from "node:assert/strict";
import { test } from "node:test";
import { createWorker, startHealthServer } from "../../../services/worker/index.ts";
import { MemoryBroker } from "../../../shared/broker/memory/index.ts";
import { tetherTopics } from "../../../shared/broker/topics.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { MemoryRegistry } from "../../../shared/registry/memory/index.ts";
import { Collector, requestMessage, testConfig } from "./fixtures.ts";

test("the health server reports liveness, readiness that follows the broker, and metrics", async (t) => {
  const config = testConfig("h-", { TETHER_LAG_SAMPLE_MS: "100" });
  const broker = new MemoryBroker();
  const registry = new MemoryRegistry();
  await broker.admin().ensureTopics(tetherTopics({ names: config.names, maxEdges: 4, workPartitions: 2 }));
  const worker = createWorker({ config, logger: silentLogger(), broker, registry });
  worker.handle("echo", (req) => req.body);
  const server = await startHealthServer({ worker, port: 0, host: "127.0.0.1", logger: silentLogger() });
  t.after(async () => {
    await server.close();
    await worker.close(1000);
  });
  const base = `http://127.0.0.1:${server.port}`;

  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 503, "not ready before start");
  await worker.start();
  assert.equal((await fetch(`${base}/readyz`)).status, 200);

  const producer = broker.producer();
  const replies = await Collector.start(broker, config.names.repliesTopic, [1], "edge");
  t.after(() => Promise.all([producer.close(), replies.close()]));
  await producer.send(
    requestMessage(config.names, { deviceId: "d", id: "1", type: "echo" }, { slot: 1, edgeId: "e", connId: "c" }),
  );
  await replies.waitForCount(1);
  const metrics = await fetch(`${base}/metrics`);
  assert.equal(metrics.status, 200);
  const text = await metrics.text();
  assert.match(text, /tether_worker_handled_total\{type="echo"\} 1/);
  assert.match(text, /tether_worker_handler_duration_seconds_count\{type="echo",outcome="res"\} 1/);
  assert.match(text, /tether_worker_consumer_lag\{topic="h-requests"\} \d+/);

  broker.fail(true);
  assert.equal((await fetch(`${base}/readyz`)).status, 503, "not ready while the broker is down");
  broker.fail(false);
  assert.equal((await fetch(`${base}/nope`)).status, 404);
});
