import {
  type CommonConfig,
  ConfigReader,
  type Env,
  type ResourceNames,
  readCommonConfig,
} from "../../shared/config/index.ts";
import { readTelemetryConfig, type TelemetryConfig } from "../../shared/telemetry/index.ts";

/** What the worker runtime itself needs; part of {@link WorkerConfig}. */
export interface WorkerSettings {
  /** `/healthz`, `/readyz`, `/metrics`. */
  readonly httpPort: number;
  /** Consumer group of `requests`. */
  readonly groupId: string;
  /** Consumer group of `downlink` (the push router). */
  readonly routerGroupId: string;
  /** Handlers running at once (different devices); one device's requests run in order. */
  readonly concurrency: number;
  /** Pushes routed at once. */
  readonly routerConcurrency: number;
  /** Deadline of one handler run; past it the device gets `timeout`. */
  readonly handlerTimeoutMs: number;
  /** Extra runs after a handler throws something other than a HandlerError. */
  readonly retries: number;
  /** First retry delay; doubles (with jitter) up to `retryMaxMs`. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** Answers remembered for repeats, and for how long. */
  readonly dedupeSize: number;
  readonly dedupeTtlMs: number;
  /** How long SIGTERM waits for in-flight handlers before leaving the group. */
  readonly shutdownMs: number;
  /** How often consumer lag is sampled for `/metrics`. */
  readonly lagSampleMs: number;
  /** Table of the example key-value handlers; they use an in-memory store when unset. */
  readonly kvTable: string | undefined;
}

export interface WorkerConfig extends CommonConfig {
  readonly worker: WorkerSettings;
  /** Tracing (OTEL_* variables) and the build's commit. */
  readonly telemetry?: TelemetryConfig;
}

/** The part of the configuration `createWorker` reads. */
export interface WorkerRuntimeConfig {
  readonly names: ResourceNames;
  readonly worker: WorkerSettings;
}

/**
 * Reads and validates the worker's environment. Variables (defaults in brackets):
 * TETHER_WORKER_HTTP_PORT [9091], TETHER_WORKER_CONCURRENCY [64], TETHER_ROUTER_CONCURRENCY [8],
 * TETHER_HANDLER_TIMEOUT_MS [10000], TETHER_HANDLER_RETRIES [3], TETHER_HANDLER_RETRY_BASE_MS [100],
 * TETHER_HANDLER_RETRY_MAX_MS [5000], TETHER_DEDUPE_SIZE [100000], TETHER_DEDUPE_TTL_MS [600000],
 * TETHER_WORKER_SHUTDOWN_MS [25000], TETHER_LAG_SAMPLE_MS [5000], TETHER_KV_TABLE, and the common ones.
 * Throws one error naming every bad variable.
 */
export function readWorkerConfig(env: Env): WorkerConfig {
  const reader = new ConfigReader(env);
  // Answers for one edge all go to its reply partition, so a 1 ms linger batches them: measured
  // three times side by side at saturation, 25% more round trips/s at 18% less CPU each, for
  // about 1 ms more p50 at 1,000 round trips/s (BENCHMARKS.md, "Round trips next to Kafka's floor").
  const common = readCommonConfig(reader, "tether-worker", { lingerMs: 1 });
  const retryBaseMs = reader.integer("TETHER_HANDLER_RETRY_BASE_MS", 100, { min: 0, max: 60_000 });
  const retryMaxMs = reader.integer("TETHER_HANDLER_RETRY_MAX_MS", 5000, { min: 0, max: 300_000 });
  if (retryMaxMs < retryBaseMs) {
    reader.problem("TETHER_HANDLER_RETRY_MAX_MS", `must not be below TETHER_HANDLER_RETRY_BASE_MS (${retryBaseMs})`);
  }
  const worker: WorkerSettings = {
    httpPort: reader.port("TETHER_WORKER_HTTP_PORT", 9091),
    groupId: common.names.workersGroup,
    routerGroupId: common.names.routerGroup,
    concurrency: reader.integer("TETHER_WORKER_CONCURRENCY", 64, { min: 1, max: 1024 }),
    routerConcurrency: reader.integer("TETHER_ROUTER_CONCURRENCY", 8, { min: 1, max: 1024 }),
    handlerTimeoutMs: reader.integer("TETHER_HANDLER_TIMEOUT_MS", 10_000, { min: 1, max: 15 * 60_000 }),
    retries: reader.integer("TETHER_HANDLER_RETRIES", 3, { min: 0, max: 100 }),
    retryBaseMs,
    retryMaxMs,
    dedupeSize: reader.integer("TETHER_DEDUPE_SIZE", 100_000, { min: 0, max: 10_000_000 }),
    dedupeTtlMs: reader.integer("TETHER_DEDUPE_TTL_MS", 10 * 60_000, { min: 1, max: 7 * 24 * 3_600_000 }),
    shutdownMs: reader.integer("TETHER_WORKER_SHUTDOWN_MS", 25_000, { min: 0, max: 15 * 60_000 }),
    lagSampleMs: reader.integer("TETHER_LAG_SAMPLE_MS", 5000, { min: 100, max: 600_000 }),
    kvTable: reader.optionalString("TETHER_KV_TABLE"),
  };
  const telemetry = readTelemetryConfig(reader, "tether-worker");
  return reader.finish({ ...common, worker, telemetry });
}
