/**
 * A burst of pushes far past what the admin API runs at once, over real HTTP, against Kafka and
 * DynamoDB Local: DynamoDB calls queue in front of the socket pool instead of timing out, the API
 * sheds what is past its bound with 429, and nothing answers 5xx.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { Worker } from "node:worker_threads";
import { type AdminApp, buildApp } from "../../../services/admin/app.ts";
import type { BrokerAdmin, Producer } from "../../../shared/broker/types.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { createTestAdapters, type TestAdapters, uniquePrefix } from "../../harness/index.ts";

const TOKEN = "overload-admin-token";
const PUSHES = 1000;
const DEVICE = "overload-device";

let adapters: TestAdapters;
let admin: BrokerAdmin;
let producer: Producer;
let app: AdminApp;
let port: number;

before(async () => {
  adapters = await createTestAdapters(uniquePrefix(), { maxEdges: 4, workPartitions: 2 });
  admin = adapters.broker.admin();
  producer = adapters.broker.producer();
  await producer.connect();
  await adapters.registry.leases.acquire({ slot: 1, edgeId: "overload-edge", host: "127.0.0.1", leaseMs: 600_000 });
  await adapters.registry.connections.claim({
    deviceId: DEVICE,
    edgeId: "overload-edge",
    slot: 1,
    connId: "overload-conn",
    connectedAt: Date.now(),
  });
  app = await buildApp({
    registry: adapters.registry,
    producer,
    admin,
    names: adapters.names,
    maxEdges: adapters.maxEdges,
    adminToken: TOKEN,
    logger: silentLogger(),
    defaultMetrics: false,
    // Read the lease on every push: each one costs two DynamoDB reads, as a cold cache would.
    leaseCacheMs: 0,
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  port = (app.server.address() as AddressInfo).port;
});

after(async () => {
  await app?.close();
  await producer?.close();
  await admin?.close();
  await adapters?.close();
});

interface Answer {
  readonly status: number;
  readonly retryAfter: string | undefined;
  readonly body: string;
}

/**
 * The load generator, in a worker thread so that the client and the API have separate event
 * loops and the requests arrive as fast as sockets deliver them: `count` pushes at once, each on
 * its own connection.
 */
const loadScript = `
const { workerData, parentPort } = require("node:worker_threads");
const http = require("node:http");
const { port, token, device, count } = workerData;
const agent = new http.Agent({ keepAlive: false, maxSockets: count });
function push(i) {
  const payload = JSON.stringify({ type: "overload.test", body: { i } });
  return new Promise((resolve) => {
    const req = http.request({
      host: "127.0.0.1", port, method: "POST", path: "/v1/devices/" + device + "/messages", agent,
      headers: { authorization: "Bearer " + token, "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
    }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode, retryAfter: res.headers["retry-after"], body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", (error) => resolve({ status: 0, retryAfter: undefined, body: String(error) }));
    req.end(payload);
  });
}
Promise.all(Array.from({ length: count }, (_, i) => push(i))).then((answers) => {
  agent.destroy();
  parentPort.postMessage(answers);
});
`;

function pushAll(count: number): Promise<Answer[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(loadScript, { eval: true, workerData: { port, token: TOKEN, device: DEVICE, count } });
    worker.once("message", (answers: Answer[]) => {
      resolve(answers);
      void worker.terminate();
    });
    worker.once("error", reject);
  });
}

test(`${PUSHES} concurrent pushes to one online device are each 202 or 429, never 5xx`, {
  timeout: 120_000,
}, async (t) => {
  const answers = await pushAll(PUSHES);
  const counts = new Map<number, number>();
  for (const answer of answers) counts.set(answer.status, (counts.get(answer.status) ?? 0) + 1);
  t.diagnostic(`answers by status: ${JSON.stringify(Object.fromEntries(counts))}`);

  const other = answers.filter((answer) => answer.status !== 202 && answer.status !== 429);
  assert.deepEqual(other, [], "only 202 and 429");
  for (const answer of answers) {
    if (answer.status === 202) assert.equal((JSON.parse(answer.body) as { online: boolean }).online, true);
    if (answer.status === 429) {
      assert.equal((JSON.parse(answer.body) as { code: string }).code, "overloaded");
      assert.equal(answer.retryAfter, "1");
    }
  }
  assert.ok((counts.get(202) ?? 0) >= 1, "some pushes got through");

  // Once the burst is over, the API takes pushes again.
  const [calm] = await pushAll(1);
  assert.equal(calm?.status, 202, calm?.body);
});
