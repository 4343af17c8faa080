/**
 * Measures the worker on real Kafka: handler throughput of one worker with a no-op handler,
 * and the latency the worker hop adds (request produced -> answer consumed, p50/p99).
 *
 *   node --import tsx bench/worker-hop.ts
 *
 * Uses TETHER_KAFKA_BROKERS / TETHER_DYNAMODB_ENDPOINT when set, otherwise starts a local
 * cluster. BENCH_REQUESTS, BENCH_DEVICES, BENCH_CONCURRENCY, BENCH_RATE tune it.
 * BENCH_MODE=process runs the worker as its own process (services/worker/main.ts, handler
 * `echo`) instead of inside the benchmark's process, so the load generator does not share its
 * event loop.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { createWorker } from "../services/worker/index.ts";
import { silentLogger } from "../shared/log/index.ts";
import { MemoryRegistry } from "../shared/registry/memory/index.ts";
import { repoRoot } from "../test/harness/kafka.ts";
import { ManagedProcess, removeTree } from "../test/harness/process.ts";
import { Collector, requestMessage, sleep } from "../test/services/worker/fixtures.ts";
import { kafkaEnv } from "../test/services/worker/kafka-fixtures.ts";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);
const DEVICES = Number(process.env.BENCH_DEVICES ?? 200);
const CONCURRENCY = process.env.BENCH_CONCURRENCY ?? "16";
const RATE = Number(process.env.BENCH_RATE ?? 500);
const LATENCY_SAMPLES = Number(process.env.BENCH_LATENCY_SAMPLES ?? 3000);
const MODE = process.env.BENCH_MODE === "process" ? "process" : "in-process";

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const { config, broker, processEnv } = await kafkaEnv(
    { TETHER_REGISTRY: "memory", TETHER_WORKER_CONCURRENCY: CONCURRENCY },
    12,
  );
  const type = MODE === "process" ? "echo" : "noop";
  const slots = [0, 1, 2, 3];
  const replies = await Collector.start(broker, config.names.repliesTopic, slots, "bench-edge");
  const producer = broker.producer();
  await producer.connect();
  const route = (d: number) => ({ slot: d % slots.length, edgeId: "bench", connId: `c${d}` });

  // Throughput: a backlog of requests, then one worker drains it.
  const sends: Promise<unknown>[] = [];
  const produceStarted = performance.now();
  for (let n = 0; n < REQUESTS; n += 1) {
    const d = n % DEVICES;
    sends.push(producer.send(requestMessage(config.names, { deviceId: `d${d}`, id: `t${n}`, type }, route(d))));
  }
  await Promise.all(sends);
  const produceRate = REQUESTS / ((performance.now() - produceStarted) / 1000);
  let stopWorker: () => Promise<void>;
  if (MODE === "process") {
    const logDir = mkdtempSync(join(tmpdir(), "tether-bench-"));
    const child = new ManagedProcess({
      name: "bench-worker",
      command: process.execPath,
      args: ["--import", "tsx", "services/worker/main.ts"],
      cwd: repoRoot,
      logFile: join(logDir, "worker.log"),
      env: { ...process.env, ...processEnv, TETHER_WORKER_HTTP_PORT: "0", TETHER_LOG_LEVEL: "warn" },
    });
    stopWorker = async () => {
      await child.stop(10_000);
      removeTree(logDir);
    };
  } else {
    const worker = createWorker({
      config,
      logger: silentLogger(),
      broker,
      registry: new MemoryRegistry(),
      routePushes: false,
    });
    worker.handle("noop", () => null);
    await worker.start();
    stopWorker = () => worker.close(5000);
  }
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
    pending.push(producer.send(requestMessage(config.names, { deviceId: `d${d}`, id, type }, route(d))));
  }
  await Promise.all(pending);
  await replies.waitForCount(base + LATENCY_SAMPLES, 120_000);
  for (const item of replies.items.slice(base)) {
    const sent = sentAt.get(String(item.frame.id));
    if (sent !== undefined) latencies.push(item.at - sent);
  }
  latencies.sort((a, b) => a - b);

  await stopWorker();
  await Promise.all([replies.close(), producer.close()]);
  const lines = [
    `reference: the backlog was produced (acks=all, all sends in flight at once) at ${produceRate.toFixed(0)} messages/s`,
    `worker throughput (${MODE}, no-op handler, concurrency ${CONCURRENCY}, ${DEVICES} devices, ${REQUESTS} requests): ${throughput.toFixed(0)} requests/s`,
    `worker hop latency at ${RATE} req/s (${latencies.length} samples): p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${(latencies.at(-1) ?? Number.NaN).toFixed(1)} ms`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  process.exit(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
