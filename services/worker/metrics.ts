import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Label used for request types that have no handler, so devices cannot grow label sets. */
export const UNKNOWN_TYPE_LABEL = "_unknown";

/** The worker's Prometheus metrics, on a registry of its own (several workers may share a process). */
export class WorkerMetrics {
  readonly registry = new Registry();
  /** Requests answered with `res`, by type. */
  readonly handled: Counter<"type">;
  /** Requests answered with `error`, by type and code. */
  readonly failed: Counter<"type" | "code">;
  /** Handler runs retried after a thrown error, by type. */
  readonly retried: Counter<"type">;
  /** Requests sent to the dead-letter topic, by type. */
  readonly deadLettered: Counter<"type">;
  /** Repeats answered from the dedupe window without running the handler. */
  readonly deduplicated: Counter<string>;
  readonly handlerDuration: Histogram<"type" | "outcome">;
  /** Messages not yet consumed by the worker's groups, by topic (sampled). */
  readonly lag: Gauge<"topic">;
  /** Pushes by outcome: `routed` (sent to the owner's slot), `stored` (offline), `expired`. */
  readonly pushes: Counter<"outcome">;

  constructor() {
    const registers = [this.registry];
    this.handled = new Counter({
      name: "tether_worker_handled_total",
      help: "Requests answered with a result",
      labelNames: ["type"],
      registers,
    });
    this.failed = new Counter({
      name: "tether_worker_failed_total",
      help: "Requests answered with an error",
      labelNames: ["type", "code"],
      registers,
    });
    this.retried = new Counter({
      name: "tether_worker_retried_total",
      help: "Handler runs retried after an unexpected error",
      labelNames: ["type"],
      registers,
    });
    this.deadLettered = new Counter({
      name: "tether_worker_dead_lettered_total",
      help: "Requests sent to the dead-letter topic",
      labelNames: ["type"],
      registers,
    });
    this.deduplicated = new Counter({
      name: "tether_worker_deduplicated_total",
      help: "Repeated requests answered from the dedupe window",
      registers,
    });
    this.handlerDuration = new Histogram({
      name: "tether_worker_handler_duration_seconds",
      help: "Time from a request's first handler run to its answer being ready",
      labelNames: ["type", "outcome"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.lag = new Gauge({
      name: "tether_worker_consumer_lag",
      help: "Messages not yet consumed by the worker's consumer groups",
      labelNames: ["topic"],
      registers,
    });
    this.pushes = new Counter({
      name: "tether_worker_pushes_total",
      help: "Pushes handled by the router, by outcome",
      labelNames: ["outcome"],
      registers,
    });
  }
}
