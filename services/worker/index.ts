/**
 * The worker runtime: register a handler per request type, start, and the worker answers
 * devices through Kafka.
 *
 * ```ts
 * const worker = createWorker({ config, logger, broker, registry });
 * worker.handle("echo", async (req) => req.body);
 * await worker.start();
 * ```
 */

export type { DeadLetterRecord } from "../../shared/records/index.ts";
export type { WorkerConfig, WorkerRuntimeConfig, WorkerSettings } from "./config.ts";
export { readWorkerConfig } from "./config.ts";
export { DedupeWindow } from "./dedupe.ts";
export { HandlerError, type HandlerErrorOptions, isHandlerError } from "./handler-error.ts";
export { type HealthServer, startHealthServer } from "./http.ts";
export { WorkerMetrics } from "./metrics.ts";
export { type PushOutcome, PushRouter } from "./router.ts";
export {
  createWorker,
  type Handler,
  type HandlerRequest,
  Worker,
  type WorkerOptions,
  type WorkerStatus,
} from "./worker.ts";
