import assert from "node:assert/strict";
import { it } from "node:test";
import { EdgeHttp } from "../../../services/edge/http.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { Device, EchoWorker, memoryFleet, startEdge } from "./helpers.ts";

it("serves healthz, readyz and metrics, and readiness fails once draining starts", async (t) => {
  const fleet = await memoryFleet();
  const worker = new EchoWorker(fleet.broker, fleet.common.names);
  await worker.start();
  const { edge, port } = await startEdge(fleet, { drainMs: 200 });
  const http = new EdgeHttp({ edge, port: 0, host: "127.0.0.1", logger: silentLogger() });
  const { port: httpPort } = await http.listen();
  t.after(async () => {
    await http.close();
    await edge.close();
    await worker.close();
  });
  const base = `http://127.0.0.1:${httpPort}`;

  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(((await ready.json()) as { slot: number }).slot, edge.slot);

  const device = await Device.connect(port);
  t.after(() => device.close());
  await device.hello("metered");
  device.send({ t: "req", id: "1", type: "echo", body: 1 });
  await device.nextOfType("res");
  device.send("garbage\n");
  await device.nextOfType("error");

  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^tether_edge_connections 1$/m);
  assert.match(metrics, /^tether_edge_requests_total 1$/m);
  assert.match(metrics, /^tether_edge_acks_total 1$/m);
  assert.match(metrics, /^tether_edge_replies_total\{outcome="delivered"\} 1$/m);
  assert.match(metrics, /^tether_edge_errors_total\{code="bad_frame"\} 1$/m);
  assert.match(metrics, /^tether_edge_frames_in_total\{type="req"\} 1$/m);
  assert.match(metrics, /^tether_edge_ack_latency_seconds_count 1$/m);
  assert.match(metrics, /^tether_edge_reply_latency_seconds_count 1$/m);

  const drained = edge.drain();
  assert.equal((await fetch(`${base}/readyz`)).status, 503);
  await drained;
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/nope`)).status, 404);
});
