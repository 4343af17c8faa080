/**
 * Measures the worker on real Kafka: handler throughput of one worker with a no-op handler,
 * and the latency the worker hop adds (request produced -> answer consumed, p50/p99).
 *
 *   node --import tsx test/services/worker/worker-hop.bench.ts
 *
 * Uses TETHER_KAFKA_BROKERS / TETHER_DYNAMODB_ENDPOINT when set, otherwise starts a local
 * cluster. BENCH_REQUESTS, BENCH_DEVICES, BENCH_CONCURRENCY, BENCH_RATE tune it.
 */
import { performance } from "node:perf_hooks";
import { createWorker } from "../../../services/worker/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { MemoryRegistry } from "../../../shared/registry/memory/index.ts";
import { Collector, requestMessage, sleep } from "./fixtures.ts";
import { kafkaEnv } from "./kafka-fixtures.ts";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);
const DEVICES = Number(process.env.BENCH_DEVICES ?? 200);
const CONCURRENCY = process.env.BENCH_CONCURRENCY ?? "16";
const RATE = Number(process.env.BENCH_RATE ?? 500);
const LATENCY_SAMPLES = Number(process.env.BENCH_LATENCY_SAMPLES ?? 3000);

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const { config, broker } = await kafkaEnv({ TETHER_REGISTRY: "memory", TETHER_WORKER_CONCURRENCY: CONCURRENCY }, 12);
  const slots = [0, 1, 2, 3];
  const replies = await Collector.start(broker, config.names.repliesTopic, slots, "bench-edge");
  const producer = broker.producer();
  await producer.connect();
  const route = (d: number) => ({ slot: d % slots.length, edgeId: "bench", connId: `c${d}` });

  // Throughput: a backlog of requests, then one worker drains it.
  const sends: Promise<unknown>[] = [];
  for (let n = 0; n < REQUESTS; n += 1) {
    const d = n % DEVICES;
    sends.push(producer.send(requestMessage(config.names, { deviceId: `d${d}`, id: `t${n}`, type: "noop" }, route(d))));
  }
  await Promise.all(sends);
  const worker = createWorker({
    config,
    logger: silentLogger(),
    broker,
    registry: new MemoryRegistry(),
    routePushes: false,
  });
  worker.handle("noop", () => null);
  await worker.start();
  await replies.waitForCount(1, 60_000);
  const firstAt = performance.now();
  const firstCount = replies.items.length;
  await replies.waitForCount(REQUESTS, 300_000);
  const seconds = (performance.now() - firstAt) / 1000;
  const throughput = (REQUESTS - firstCount) / seconds;

  // Latency: a paced stream with the worker warm; each request is timed from just before its
  // produce call to the moment the fake edge consumed its answer.
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const base = replies.items.length;
  const pending: Promise<unknown>[] = [];
  const intervalMs = 1000 / RATE;
  const started = performance.now();
  for (let n = 0; n < LATENCY_SAMPLES; n += 1) {
    const due = started + n * intervalMs;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const d = n % DEVICES;
    const id = `l${n}`;
    sentAt.set(id, performance.now());
    pending.push(producer.send(requestMessage(config.names, { deviceId: `d${d}`, id, type: "noop" }, route(d))));
  }
  await Promise.all(pending);
  await replies.waitForCount(base + LATENCY_SAMPLES, 120_000);
  for (const item of replies.items.slice(base)) {
    const sent = sentAt.get(String(item.frame.id));
    if (sent !== undefined) latencies.push(item.at - sent);
  }
  latencies.sort((a, b) => a - b);

  await worker.close(5000);
  await Promise.all([replies.close(), producer.close()]);
  const lines = [
    `worker throughput (no-op handler, concurrency ${CONCURRENCY}, ${DEVICES} devices, ${REQUESTS} requests): ${throughput.toFixed(0)} requests/s`,
    `worker hop latency at ${RATE} req/s (${latencies.length} samples): p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${(latencies.at(-1) ?? Number.NaN).toFixed(1)} ms`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  process.exit(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
