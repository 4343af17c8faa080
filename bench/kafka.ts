/**
 * Measures the Kafka adapter on the local cluster: produce -> consume round trip through a
 * partition consumer (sequential sends, p50/p99), produce throughput with many sends in flight,
 * and the broker's resident memory. Starts its own cluster unless TETHER_KAFKA_BROKERS is set.
 *
 *   npx tsx bench/kafka.ts [roundTrips=1000] [throughputMessages=20000] [lingerMs=0]
 */
import { execFileSync } from "node:child_process";
import { createKafkaBroker } from "../shared/broker/kafka/index.ts";
import { silentLogger } from "../shared/log/index.ts";
import { type LocalCluster, localKafkaSettings, startLocalCluster, uniquePrefix } from "../test/harness/index.ts";

const roundTrips = Number(process.argv[2] ?? 1000);
const throughputMessages = Number(process.argv[3] ?? 20_000);
const lingerMs = Number(process.argv[4] ?? 0);

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Resident memory of the broker JVM (the java process in the cluster's process group), in MiB. */
function brokerRssMiB(cluster: LocalCluster): number | undefined {
  if (cluster.kafkaPid === undefined) return undefined;
  const out = execFileSync("ps", ["-o", "rss=,comm=", "-g", String(cluster.kafkaPid)], { encoding: "utf8" });
  const java = out
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .find((parts) => parts[1] === "java");
  return java === undefined ? undefined : Math.round(Number(java[0]) / 1024);
}

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

let cluster: LocalCluster | undefined;
let brokers = process.env.TETHER_KAFKA_BROKERS;
if (!brokers) {
  cluster = await startLocalCluster({ log: say });
  brokers = cluster.kafkaBrokers;
  say(`Kafka start-up: ${cluster.kafkaStartMs} ms`);
}
const broker = createKafkaBroker({
  settings: {
    ...localKafkaSettings({ kafkaBrokers: brokers }, "tether-bench"),
    // TETHER_KAFKA_CONSUME=stream measures the stream loop, for a side-by-side run.
    consumeMode: process.env.TETHER_KAFKA_CONSUME === "stream" ? "stream" : "pull",
  },
  logger: silentLogger(),
  producer: { lingerMs },
});
const topic = `${uniquePrefix()}bench`;
const admin = broker.admin();
await admin.ensureTopics([{ name: topic, partitions: 4 }]);
await admin.close();

const producer = broker.producer();
await producer.connect();

// Round trip: one message at a time, timed from send() to the handler seeing it.
const sentAt = new Map<string, bigint>();
const latencies: number[] = [];
let waiting: (() => void) | undefined;
const consumer = broker.partitionConsumer({ groupId: `${topic}-rt`, topic, partition: 0, fallback: "latest" });
await consumer.start(async (message) => {
  const started = sentAt.get(message.value.toString());
  if (started === undefined) return;
  latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
  waiting?.();
});
// Warm up until the consumer is positioned and both sides have connections.
for (let i = 0; latencies.length === 0; i += 1) {
  const id = `warm-${i}`;
  sentAt.set(id, process.hrtime.bigint());
  await producer.send({ topic, partition: 0, value: id });
  await new Promise((resolve) => setTimeout(resolve, 50));
}
latencies.length = 0;
const acks: number[] = [];
for (let i = 0; i < roundTrips; i += 1) {
  const id = `rt-${i}`;
  const seen = new Promise<void>((resolve) => {
    waiting = resolve;
  });
  const started = process.hrtime.bigint();
  sentAt.set(id, started);
  await producer.send({ topic, partition: 0, value: id });
  acks.push(Number(process.hrtime.bigint() - started) / 1e6);
  await seen;
}
await consumer.close();
latencies.sort((a, b) => a - b);
acks.sort((a, b) => a - b);
say(
  `produce->consume round trip over ${latencies.length} sequential sends: ` +
    `p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, ` +
    `max ${latencies.at(-1)?.toFixed(2)} ms`,
);
say(
  `send() to delivery report (acks=all): p50 ${percentile(acks, 50).toFixed(2)} ms, ` +
    `p99 ${percentile(acks, 99).toFixed(2)} ms`,
);

// Throughput: keep up to 5000 sends in flight, 200-byte values, keys spread over partitions.
const value = Buffer.alloc(200, 120);
const window = 5000;
const started = Date.now();
let inFlight = 0;
let failed = 0;
let slotFreed: (() => void) | undefined;
const settle = (): void => {
  inFlight -= 1;
  slotFreed?.();
};
for (let next = 0; next < throughputMessages; next += 1) {
  while (inFlight >= window) {
    await new Promise<void>((resolve) => {
      slotFreed = resolve;
    });
  }
  inFlight += 1;
  producer.send({ topic, key: `device-${next % 1000}`, value }).then(settle, () => {
    failed += 1;
    settle();
  });
}
while (inFlight > 0) {
  await new Promise<void>((resolve) => {
    slotFreed = resolve;
  });
}
const seconds = (Date.now() - started) / 1000;
say(
  `produce throughput: ${throughputMessages} messages of 200 B in ${seconds.toFixed(2)} s = ` +
    `${Math.round(throughputMessages / seconds)} msg/s (acks=all, idempotent; ${failed} failed)`,
);
await producer.close();
if (cluster !== undefined) {
  say(`broker RSS after the run: ${brokerRssMiB(cluster)} MiB`);
  await cluster.stop();
}
