/**
 * librdkafka's statistics (its `statistics.interval.ms` JSON) read into the broker port's
 * {@link ClientStatistics}: the few figures the services export, nothing of the library's shape
 * leaves this file.
 */
import type { Logger } from "../../log/index.ts";
import type { BrokerStatistics, ClientStatistics, PartitionStatistics, StatisticsListener } from "../types.ts";
import type { Config } from "./native.ts";

/** What the client emits; the library's typings do not list the event. */
interface StatsEmitter {
  on(event: "event.stats", listener: (event: { message?: unknown }) => void): void;
}

/** The settings that make a client report, when someone listens. */
export function statisticsConfig(listener: StatisticsListener | undefined): Config {
  if (listener === undefined || listener.intervalMs <= 0) return {};
  return { "statistics.interval.ms": listener.intervalMs };
}

/** Hands every report of `client` to `listener`; a report that does not parse is skipped. */
export function watchStatistics(client: object, listener: StatisticsListener | undefined, logger: Logger): void {
  if (listener === undefined || listener.intervalMs <= 0) return;
  (client as StatsEmitter).on("event.stats", (event) => {
    const statistics = typeof event?.message === "string" ? parseStatistics(event.message) : null;
    if (statistics === null) return;
    try {
      listener.onStatistics(statistics);
    } catch (error) {
      logger.debug({ err: error }, "Kafka statistics listener failed");
    }
  });
}

type Json = Record<string, unknown>;

/**
 * How far behind the partition's end this client reads: from the next message it will hand
 * over (`app_offset`) to the end (`hi_offset`). A consumer that commits nothing to Kafka (the
 * edge's reply slot keeps its offset in DynamoDB) has no committed offset, so librdkafka's own
 * `consumer_lag` is only the fallback, before a first message was handed over.
 */
function lagOf(partition: Json): number {
  const end = partition.hi_offset;
  const position = partition.app_offset;
  if (typeof end === "number" && typeof position === "number" && end >= 0 && position >= 0) {
    return Math.max(0, end - position);
  }
  const lag = partition.consumer_lag;
  return typeof lag === "number" && lag >= 0 ? lag : -1;
}

function object(value: unknown): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}

function count(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

/** librdkafka reports latencies in microseconds. */
function seconds(window: unknown, field: "avg" | "p99"): number {
  return count(object(window)?.[field]) / 1_000_000;
}

/**
 * One statistics report, or null when it is not one. Brokers are the real connections (not the
 * bootstrap placeholders); partitions are those this client fetches (`-1`, librdkafka's queue
 * of messages not yet given a partition, is left out).
 */
export function parseStatistics(text: string): ClientStatistics | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  const root = object(parsed);
  if (root === undefined) return null;
  const role = root.type === "producer" ? "producer" : root.type === "consumer" ? "consumer" : null;
  if (role === null) return null;
  const brokers: BrokerStatistics[] = [];
  for (const [name, value] of Object.entries(object(root.brokers) ?? {})) {
    const broker = object(value);
    if (broker === undefined || count(broker.nodeid) < 0 || name.includes("bootstrap")) continue;
    brokers.push({
      broker: name,
      rttAvg: seconds(broker.rtt, "avg"),
      rttP99: seconds(broker.rtt, "p99"),
      internalLatencyAvg: seconds(broker.int_latency, "avg"),
      internalLatencyP99: seconds(broker.int_latency, "p99"),
    });
  }
  const partitions: PartitionStatistics[] = [];
  for (const [topic, value] of Object.entries(object(root.topics) ?? {})) {
    for (const [id, entry] of Object.entries(object(object(value)?.partitions) ?? {})) {
      const partition = object(entry);
      const number = Number(id);
      if (partition === undefined || !Number.isInteger(number) || number < 0) continue;
      if (partition.fetch_state === undefined || partition.fetch_state === "none") continue;
      partitions.push({ topic, partition: number, lag: lagOf(partition) });
    }
  }
  return {
    role,
    queuedMessages: count(root.msg_cnt),
    queuedBytes: count(root.msg_size),
    brokers,
    partitions,
  };
}
