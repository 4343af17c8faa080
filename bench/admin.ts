/**
 * Requests per second of `GET /v1/devices/:deviceId` against DynamoDB Local.
 *
 *   tsx bench/admin.ts [--seconds 10] [--runs 3] [--concurrency 32] [--devices 1000] [--lease-cache-ms 1000]
 *
 * Uses TETHER_DYNAMODB_ENDPOINT when set, otherwise starts DynamoDB Local for the run. The admin
 * API listens on loopback in this process; the load comes from a worker thread with keep-alive
 * HTTP connections, so the client and the server have separate event loops. Prints every run
 * and the median, then, for scale, how many single DynamoDB reads per second DynamoDB Local
 * serves at the same concurrency with no HTTP in between.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { buildApp } from "../services/admin/app.ts";
import { MemoryBroker } from "../shared/broker/index.ts";
import { resourceNames } from "../shared/config/index.ts";
import { silentLogger } from "../shared/log/index.ts";
import { createDynamoRegistry, ensureTables } from "../shared/registry/dynamodb/index.ts";
import type { Registry } from "../shared/registry/types.ts";
import { startDynamo } from "../test/harness/dynamodb.ts";
import { removeTree } from "../test/harness/process.ts";
import { localDynamoDbSettings } from "../test/harness/settings.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    runs: { type: "string", default: "3" },
    concurrency: { type: "string", default: "32" },
    devices: { type: "string", default: "1000" },
    "lease-cache-ms": { type: "string", default: "1000" },
  },
});
const seconds = Number(values.seconds);
const runs = Number(values.runs);
const concurrency = Number(values.concurrency);
const deviceCount = Number(values.devices);
const leaseCacheMs = Number(values["lease-cache-ms"]);
const token = "bench-admin-token";

/** The load generator, run in a worker thread: plain JS, keep-alive agent, one loop per connection. */
const loadScript = `
const { workerData, parentPort } = require("node:worker_threads");
const http = require("node:http");
const { port, token, seconds, concurrency, devices } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const latencies = [];
let ok = 0, shed = 0, failed = 0;
const end = Date.now() + seconds * 1000;
function get(path) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const req = http.request({ host: "127.0.0.1", port, path, agent, headers: { authorization: "Bearer " + token } }, (res) => {
      res.resume();
      res.on("end", () => {
        latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
        if (res.statusCode === 200) ok++; else if (res.statusCode === 429) shed++; else failed++;
        resolve();
      });
    });
    req.on("error", () => { failed++; resolve(); });
    req.end();
  });
}
async function loop() {
  while (Date.now() < end) await get("/v1/devices/bench-" + Math.floor(Math.random() * devices));
}
const started = Date.now();
Promise.all(Array.from({ length: concurrency }, loop)).then(() => {
  const elapsed = (Date.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  agent.destroy();
  parentPort.postMessage({ ok, shed, failed, elapsed, p50: at(0.5), p99: at(0.99) });
});
`;

interface RunResult {
  readonly ok: number;
  /** 429s: requests past the API's bound on requests in flight (TETHER_ADMIN_MAX_CONCURRENCY). */
  readonly shed: number;
  readonly failed: number;
  readonly elapsed: number;
  readonly p50: number;
  readonly p99: number;
}

function runLoad(port: number, runSeconds: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(loadScript, {
      eval: true,
      workerData: { port, token, seconds: runSeconds, concurrency, devices: deviceCount },
    });
    worker.once("message", (result: RunResult) => resolve(result));
    worker.once("error", reject);
  });
}

/** Single connection-record reads per second straight from the registry, no HTTP. */
async function readRate(registry: Registry, runSeconds: number): Promise<number> {
  const end = Date.now() + runSeconds * 1000;
  let reads = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        await registry.connections.get(`bench-${Math.floor(Math.random() * deviceCount)}`);
        reads += 1;
      }
    }),
  );
  return reads / ((Date.now() - started) / 1000);
}

async function main(): Promise<void> {
  let stopDynamo: (() => Promise<void>) | undefined;
  let endpoint = process.env.TETHER_DYNAMODB_ENDPOINT?.trim();
  if (!endpoint) {
    const dir = mkdtempSync(join(tmpdir(), "tether-bench-"));
    const node = await startDynamo({ dir });
    endpoint = node.endpoint;
    stopDynamo = async () => {
      await node.process.stop(5000);
      removeTree(dir);
    };
    process.stderr.write(`# DynamoDB Local started in ${node.startMs} ms\n`);
  }
  const logger = silentLogger();
  const settings = localDynamoDbSettings({ dynamodbEndpoint: endpoint });
  const names = resourceNames(`bench${Date.now().toString(36)}-`);
  await ensureTables({ settings, names, logger });
  const registry = await createDynamoRegistry({ settings, names, logger });
  const broker = new MemoryBroker();
  const producer = broker.producer();
  const app = await buildApp({
    registry,
    producer,
    names,
    maxEdges: 4,
    adminToken: token,
    logger,
    defaultMetrics: false,
    leaseCacheMs,
  });
  try {
    await registry.leases.acquire({ slot: 0, edgeId: "bench-edge", host: "127.0.0.1", leaseMs: 3_600_000 });
    for (let start = 0; start < deviceCount; start += 25) {
      const batch = [];
      for (let i = start; i < Math.min(deviceCount, start + 25); i += 1) {
        batch.push(
          registry.connections.claim({
            deviceId: `bench-${i}`,
            edgeId: "bench-edge",
            slot: 0,
            connId: `conn-${i}`,
            connectedAt: Date.now(),
          }),
        );
      }
      await Promise.all(batch);
    }
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    await runLoad(port, 2); // warm-up: JIT, connection pools, DynamoDB Local's own warm-up
    const rates: number[] = [];
    for (let run = 1; run <= runs; run += 1) {
      const result = await runLoad(port, seconds);
      const rate = result.ok / result.elapsed;
      rates.push(rate);
      process.stdout.write(
        `run ${run}: ${rate.toFixed(0)} req/s (${result.ok} ok, ${result.shed} shed with 429, ${result.failed} failed, ` +
          `p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms)\n`,
      );
    }
    rates.sort((a, b) => a - b);
    const median = rates[Math.floor(rates.length / 2)] ?? 0;
    process.stdout.write(
      `GET /v1/devices/:deviceId against DynamoDB Local: median ${median.toFixed(0)} req/s ` +
        `over ${runs} runs of ${seconds} s, ${concurrency} concurrent connections, lease cache ${leaseCacheMs} ms\n`,
    );
    const reads = await readRate(registry, seconds);
    process.stdout.write(
      `for scale: DynamoDB Local alone serves ${reads.toFixed(0)} GetItem/s at ${concurrency} concurrent\n`,
    );
  } finally {
    await app.close();
    await producer.close();
    await registry.close();
    await stopDynamo?.();
  }
}

await main();
