import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from "prom-client";
import type { ClientStatistics, StatisticsListener } from "../broker/types.ts";
import type { RegistryCallObserver } from "../registry/types.ts";
import type { BuildInfo } from "./build.ts";

/** Which deployable a process is: the `service` label of its process metrics and build info. */
export type ServiceName = "edge" | "worker" | "admin" | "embedded";

export interface ProcessMetricsOptions {
  readonly service: ServiceName;
  readonly build: BuildInfo;
  /**
   * The process and runtime metrics (`process_*`, `nodejs_*`, unprefixed, as stock dashboards
   * expect them). One registry per process should have them; default true.
   */
  readonly defaults?: boolean;
}

/**
 * Adds what every service reports to `registry`, each series labelled with `service`:
 * `tether_build_info` and, unless told otherwise, the process and runtime metrics. The
 * service's own series keep the label sets they had (`tether_edge_*` names the service already).
 */
export function installProcessMetrics(registry: Registry, options: ProcessMetricsOptions): void {
  const { service } = options;
  if (options.defaults !== false) collectDefaultMetrics({ register: registry, labels: { service } });
  const { version, commit, node } = options.build;
  new Gauge({
    name: "tether_build_info",
    help: "Always 1; the labels say which build runs (version, git commit, Node.js version)",
    labelNames: ["service", "version", "commit", "node"],
    registers: [registry],
  }).set({ service, version, commit, node }, 1);
}

const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** DynamoDB call latency and failures by operation and table; see {@link RegistryCallObserver}. */
export class DynamoCallMetrics implements RegistryCallObserver {
  readonly duration: Histogram<"operation" | "table">;
  readonly errors: Counter<"operation" | "table" | "code">;

  constructor(registry: Registry) {
    this.duration = new Histogram({
      name: "tether_dynamodb_call_duration_seconds",
      help: "DynamoDB calls from first attempt to answer (retries included), by operation and table",
      labelNames: ["operation", "table"],
      buckets: CALL_BUCKETS,
      registers: [registry],
    });
    this.errors = new Counter({
      name: "tether_dynamodb_call_errors_total",
      help: "DynamoDB calls that failed, by operation, table and error code (conflict: a condition did not hold)",
      labelNames: ["operation", "table", "code"],
      registers: [registry],
    });
  }

  observe(call: { operation: string; table: string; seconds: number; errorCode?: string }): void {
    const labels = { operation: call.operation, table: call.table };
    this.duration.observe(labels, call.seconds);
    if (call.errorCode !== undefined) this.errors.inc({ ...labels, code: call.errorCode });
  }
}

/**
 * The Kafka clients' own statistics as gauges, each with a `client` label (`producer` or
 * `consumer`). Consumer lag is per topic and partition, for the partitions this process reads;
 * a partition the process stopped reading leaves the series at its next report.
 */
export class KafkaClientMetrics implements StatisticsListener {
  readonly intervalMs: number;
  readonly queueMessages: Gauge<"client">;
  readonly queueBytes: Gauge<"client">;
  readonly rttAvg: Gauge<"client" | "broker">;
  readonly rttP99: Gauge<"client" | "broker">;
  readonly internalLatencyAvg: Gauge<"client" | "broker">;
  readonly internalLatencyP99: Gauge<"client" | "broker">;
  readonly consumerLag: Gauge<"topic" | "partition">;
  /** When each consumer lag series was last reported, so that ones no longer read go away. */
  readonly #lagSeen = new Map<string, { labels: { topic: string; partition: string }; at: number }>();

  constructor(registry: Registry, intervalMs: number) {
    this.intervalMs = intervalMs;
    const registers = [registry];
    this.queueMessages = new Gauge({
      name: "tether_kafka_client_queue_messages",
      help: "Messages waiting inside a Kafka client (producer: not yet acknowledged by the broker)",
      labelNames: ["client"],
      registers,
    });
    this.queueBytes = new Gauge({
      name: "tether_kafka_client_queue_bytes",
      help: "Bytes of the messages waiting inside a Kafka client",
      labelNames: ["client"],
      registers,
    });
    this.rttAvg = new Gauge({
      name: "tether_kafka_broker_rtt_avg_seconds",
      help: "Mean request round trip to a broker over the last statistics interval",
      labelNames: ["client", "broker"],
      registers,
    });
    this.rttP99 = new Gauge({
      name: "tether_kafka_broker_rtt_p99_seconds",
      help: "99th percentile request round trip to a broker over the last statistics interval",
      labelNames: ["client", "broker"],
      registers,
    });
    this.internalLatencyAvg = new Gauge({
      name: "tether_kafka_producer_queue_latency_avg_seconds",
      help: "Mean time a produced message waited in the client before it was sent to the broker",
      labelNames: ["client", "broker"],
      registers,
    });
    this.internalLatencyP99 = new Gauge({
      name: "tether_kafka_producer_queue_latency_p99_seconds",
      help: "99th percentile time a produced message waited in the client before it was sent",
      labelNames: ["client", "broker"],
      registers,
    });
    this.consumerLag = new Gauge({
      name: "tether_kafka_consumer_lag",
      help: "Messages between this process's position and the end of a partition it reads",
      labelNames: ["topic", "partition"],
      registers,
    });
  }

  onStatistics(statistics: ClientStatistics): void {
    const client = statistics.role;
    this.queueMessages.set({ client }, statistics.queuedMessages);
    this.queueBytes.set({ client }, statistics.queuedBytes);
    for (const broker of statistics.brokers) {
      const labels = { client, broker: broker.broker };
      this.rttAvg.set(labels, broker.rttAvg);
      this.rttP99.set(labels, broker.rttP99);
      if (client === "producer") {
        this.internalLatencyAvg.set(labels, broker.internalLatencyAvg);
        this.internalLatencyP99.set(labels, broker.internalLatencyP99);
      }
    }
    if (client !== "consumer") return;
    // Each consumer of the process reports its own partitions only; a series no consumer
    // reported for three intervals belongs to a partition no longer read here.
    const now = performance.now();
    for (const { topic, partition, lag } of statistics.partitions) {
      if (lag < 0) continue;
      const labels = { topic, partition: String(partition) };
      this.consumerLag.set(labels, lag);
      this.#lagSeen.set(`${topic}\n${partition}`, { labels, at: now });
    }
    for (const [key, seen] of this.#lagSeen) {
      if (now - seen.at <= 3 * this.intervalMs) continue;
      this.consumerLag.remove(seen.labels);
      this.#lagSeen.delete(key);
    }
  }
}

/** The Kafka client metrics on `registry`, or undefined when statistics are off (interval 0). */
export function kafkaClientMetrics(registry: Registry, intervalMs: number | undefined): KafkaClientMetrics | undefined {
  const interval = intervalMs ?? 15_000;
  return interval > 0 ? new KafkaClientMetrics(registry, interval) : undefined;
}
