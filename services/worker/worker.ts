import { setMaxListeners } from "node:events";
import { backoff, sleep, withTimeout } from "../../shared/async/index.ts";
import type {
  Broker,
  BrokerAdmin,
  GroupConsumer,
  IncomingMessage,
  OutgoingMessage,
  Pending,
  Producer,
} from "../../shared/broker/types.ts";
import { ErrorCode, TetherError } from "../../shared/errors/index.ts";
import { Shutdown } from "../../shared/lifecycle/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import { TYPE_PATTERN, WireErrorCode } from "../../shared/protocol/frames.ts";
import {
  answerRecord,
  deadLetterRecord,
  decodeRequest,
  type RequestRecord,
  readTraceParent,
} from "../../shared/records/index.ts";
import type { Registry } from "../../shared/registry/types.ts";
import { endFailed, SpanKind, type Tracing, traceIdOf, traceparentOf } from "../../shared/telemetry/index.ts";
import type { WorkerRuntimeConfig, WorkerSettings } from "./config.ts";
import { DedupeWindow, dedupeKey } from "./dedupe.ts";
import { isHandlerError } from "./handler-error.ts";
import { UNKNOWN_TYPE_LABEL, WorkerMetrics } from "./metrics.ts";
import { PushRouter } from "./router.ts";
import { HandlerRuns } from "./runs.ts";

/** What a handler gets for one request. */
export interface HandlerRequest {
  readonly deviceId: string;
  /** The request id the device chose. */
  readonly id: string;
  readonly type: string;
  /** The device's JSON, untouched. Validate it before use. */
  readonly body: unknown;
  /** Milliseconds since the epoch when the edge read the request off the socket. */
  readonly receivedAt: number;
  /**
   * `deviceId:id`. The same for every delivery of the request (retries, redeliveries, device
   * resends): pass it to backends so that running twice has the effect of running once.
   * A device may reuse an id, once it is answered, for a new request with another type or body;
   * that one runs the handler with the same key, so a backend that remembers keys should also
   * check the key came with the same input before treating the run as a replay.
   */
  readonly idempotencyKey: string;
  /** 1 for the first run, then 2, 3, ... when the worker retries after an unexpected error. */
  readonly attempt: number;
  /** A child logger bound to deviceId, request id and type. */
  readonly log: Logger;
  /** Aborts at the handler deadline (the answer is then `timeout`) or when shutdown runs out of time. */
  readonly signal: AbortSignal;
}

/**
 * Answers one request type. Returning (or resolving with) a value answers `res` with that value
 * as `body` (`undefined` becomes `null`); throwing a `HandlerError` answers `error` with its code;
 * throwing anything else is retried with backoff, then answered `internal` and dead-lettered.
 */
export type Handler = (request: HandlerRequest) => unknown;

export type WorkerStatus = "created" | "starting" | "running" | "closing" | "closed" | "failed";

export interface WorkerOptions {
  readonly config: WorkerRuntimeConfig;
  readonly logger: Logger;
  readonly broker: Broker;
  readonly registry: Registry;
  /** Clock for the dedupe window, push expiry and dead-letter timestamps. */
  readonly now?: () => number;
  /** Also run the push router (`downlink` to edges). Default true. */
  readonly routePushes?: boolean;
  /** The worker's metrics, when the process made them (with its own series); new ones otherwise. */
  readonly metrics?: WorkerMetrics;
  /**
   * A `handle` span per request, continuing the trace its record carries, whose context the
   * answer record carries on; none without it.
   */
  readonly tracing?: Tracing;
}

/** An answer made for a request, remembered in the dedupe window. */
interface Answer {
  /** The frame JSON the edge writes to the socket. */
  readonly frame: string;
  /**
   * False for `timeout`: the handler's outcome is unknown, so a device resending the request
   * runs it again. A redelivery of the very same Kafka record (the answer failed to produce)
   * still reuses it.
   */
  readonly final: boolean;
  /** `topic:partition:offset` of the record the answer was made for. */
  readonly source: string;
  /** A dead letter still to produce, before the answer. */
  deadLetter: OutgoingMessage | undefined;
}

type Attempt =
  | { readonly kind: "ok"; readonly frame: string }
  | { readonly kind: "handler_error"; readonly code: string; readonly frame: string }
  | { readonly kind: "failed"; readonly error: unknown }
  | { readonly kind: "timeout" };

const TIMED_OUT: Attempt = { kind: "timeout" };

/**
 * Consumes `requests` in a consumer group, runs the handler registered for each request's type
 * and produces the answer to the `replies` partition named by the request's reply route. A
 * record's offset is committed only after its answer's delivery report: at least once. The
 * device's next request does not wait for that report, only for the answer to be queued, so
 * one busy device keeps the producer's pipeline full instead of one answer per round trip.
 */
export class Worker {
  readonly metrics: WorkerMetrics;
  readonly #tracing: Tracing | undefined;
  readonly #settings: WorkerSettings;
  readonly #config: WorkerRuntimeConfig;
  readonly #log: Logger;
  readonly #broker: Broker;
  readonly #now: () => number;
  readonly #handlers = new Map<string, Handler>();
  readonly #dedupe: DedupeWindow<Answer>;
  readonly #producer: Producer;
  readonly #admin: BrokerAdmin;
  readonly #router: PushRouter | undefined;
  /** Aborted once shutdown's grace period is over: handlers and retry waits stop. */
  readonly #shutdown = abortControllerWithoutListenerLimit();
  readonly #runs: HandlerRuns;
  #consumer: GroupConsumer | undefined;
  #status: WorkerStatus = "created";
  #closing: Promise<void> | undefined;
  #lagTimer: NodeJS.Timeout | undefined;
  #replyPartitions = 0;

  constructor(options: WorkerOptions) {
    this.metrics = options.metrics ?? new WorkerMetrics();
    this.#tracing = options.tracing;
    this.#config = options.config;
    this.#settings = options.config.worker;
    this.#log = options.logger;
    this.#broker = options.broker;
    this.#now = options.now ?? Date.now;
    this.#dedupe = new DedupeWindow<Answer>({
      maxEntries: this.#settings.dedupeSize,
      ttlMs: this.#settings.dedupeTtlMs,
      now: this.#now,
    });
    this.#runs = new HandlerRuns(this.#settings.handlerTimeoutMs, this.#shutdown.signal);
    this.#producer = options.broker.producer();
    this.#admin = options.broker.admin();
    this.#router =
      options.routePushes === false
        ? undefined
        : new PushRouter({
            broker: options.broker,
            producer: this.#producer,
            registry: options.registry,
            names: options.config.names,
            groupId: this.#settings.routerGroupId,
            concurrency: this.#settings.routerConcurrency,
            logger: options.logger.child({ component: "router" }),
            metrics: this.metrics,
            now: this.#now,
          });
  }

  get status(): WorkerStatus {
    return this.#status;
  }

  /** Registers the handler of `type`. Handlers may be added before or after `start()`. */
  handle(type: string, handler: Handler): this {
    if (!TYPE_PATTERN.test(type)) {
      throw new TetherError(ErrorCode.InvalidArgument, `handler type ${JSON.stringify(type)} is not a valid type`);
    }
    if (this.#handlers.has(type)) {
      throw new TetherError(ErrorCode.InvalidArgument, `a handler for ${JSON.stringify(type)} is already registered`);
    }
    this.#handlers.set(type, handler);
    return this;
  }

  /** Types that have a handler. */
  types(): string[] {
    return [...this.#handlers.keys()];
  }

  /** Connects, joins the groups and starts answering. Rejects (and cleans up) when it cannot. */
  async start(): Promise<void> {
    if (this.#status !== "created")
      throw new TetherError(ErrorCode.Internal, `worker cannot start when ${this.#status}`);
    this.#status = "starting";
    try {
      await this.#producer.connect();
      this.#replyPartitions = await this.#admin.partitionCount(this.#config.names.repliesTopic);
      this.#consumer = this.#broker.groupConsumer({
        groupId: this.#settings.groupId,
        topics: [this.#config.names.requestsTopic],
        concurrency: this.#settings.concurrency,
        orderBy: "key",
      });
      await this.#consumer.start((message) => this.#onRequest(message));
      await this.#router?.start();
    } catch (error) {
      this.#status = "failed";
      await this.#closeParts(0).catch((closeError: unknown) => {
        this.#log.warn({ err: closeError }, "cleanup after a failed start failed");
      });
      throw error;
    }
    this.#lagTimer = setInterval(() => void this.#sampleLag(), this.#settings.lagSampleMs);
    this.#lagTimer.unref();
    void this.#sampleLag();
    this.#status = "running";
    this.#log.info(
      { groupId: this.#settings.groupId, concurrency: this.#settings.concurrency, types: this.types() },
      "worker started",
    );
  }

  /** True while running and the broker answers. */
  async ready(): Promise<boolean> {
    if (this.#status !== "running") return false;
    try {
      await withTimeout(this.#admin.ping(), 2000, "broker ping");
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stops fetching, lets in-flight handlers finish (up to `timeoutMs`), commits, leaves the
   * groups, then flushes and closes the producer. Safe to call twice; rejects when a step
   * failed (every step runs regardless).
   */
  close(timeoutMs = this.#settings.shutdownMs): Promise<void> {
    this.#closing ??= this.#closeParts(timeoutMs);
    return this.#closing;
  }

  async #closeParts(timeoutMs: number): Promise<void> {
    const failed = this.#status === "failed";
    this.#status = "closing";
    clearInterval(this.#lagTimer);
    const shutdown = new Shutdown({
      logger: this.#log,
      what: "worker shutdown",
      message: "worker shutdown step failed",
    })
      // Both groups drain at once, sharing the grace period.
      .addConcurrent([
        { name: "requests consumer", run: () => this.#consumer?.close(timeoutMs) },
        { name: "router", run: () => this.#router?.close(timeoutMs) },
      ])
      .add("handler abort", () =>
        this.#shutdown.abort(new TetherError(ErrorCode.Closed, "the worker is shutting down")),
      )
      .add("producer", () => this.#producer.close())
      .add("admin", () => this.#admin.close());
    try {
      await shutdown.run();
    } finally {
      this.#dedupe.clear();
      this.#runs.close();
      this.#status = failed ? "failed" : "closed";
    }
    this.#log.info("worker closed");
  }

  async #sampleLag(): Promise<void> {
    // Through the consumers' own clients: a client made and dropped per sample stalled this
    // event loop for tens of milliseconds at every sample.
    const names = this.#config.names;
    const samples: Array<[string, { lag(): Promise<number> } | undefined]> = [[names.requestsTopic, this.#consumer]];
    if (this.#router !== undefined) samples.push([names.downlinkTopic, this.#router]);
    for (const [topic, consumer] of samples) {
      if (consumer === undefined) continue;
      try {
        this.metrics.lag.set({ topic }, await consumer.lag());
      } catch (error) {
        this.#log.debug({ err: error, topic }, "consumer lag sample failed");
      }
    }
  }

  async #onRequest(message: IncomingMessage): Promise<Pending | undefined> {
    const source = `${message.topic}:${message.partition}:${message.offset}`;
    const parsed = decodeRequest(message);
    if (!parsed.ok || !(await this.#slotExists(parsed.value.route.slot))) {
      const reason = parsed.ok ? `reply slot ${parsed.value.route.slot} does not exist` : parsed.reason;
      await this.#deadLetterMalformed(message, parsed.ok ? parsed.value.request : parsed.request, reason);
      return undefined;
    }
    const { request, route } = parsed.value;
    const span = this.#tracing?.span("tether.handle", SpanKind.CONSUMER, readTraceParent(message.headers), {
      "tether.device_id": request.deviceId,
      "tether.request_id": request.id,
      "tether.request_type": request.type,
      "messaging.system": "kafka",
      "messaging.destination.name": message.topic,
    });
    // Same id, type and body: a repeat. A reused id with another type or body misses and runs.
    const key = dedupeKey(request);
    let answer = this.#dedupe.get(key);
    if (answer !== undefined && (answer.final || answer.source === source)) {
      if (answer.source !== source) this.metrics.deduplicated.inc();
      span?.setAttribute("tether.deduplicated", true);
    } else {
      answer = await this.#run(request, key, source, message, span === undefined ? undefined : traceIdOf(span));
      this.#dedupe.set(key, answer);
    }
    if (answer.deadLetter !== undefined) {
      await this.#producer.send(answer.deadLetter);
      answer.deadLetter = undefined;
    }
    // Queued now (answers of one device keep their order in the partition); durable later.
    const traceparent = span === undefined ? undefined : traceparentOf(span);
    const record = answerRecord(this.#config.names.repliesTopic, route, request, answer.frame, traceparent);
    const delivered = this.#producer.send(record);
    if (span !== undefined) {
      void delivered.then(
        () => span.end(),
        (error: unknown) => endFailed(span, error),
      );
    }
    return { durable: delivered.then(() => undefined) };
  }

  async #slotExists(slot: number): Promise<boolean> {
    if (slot < this.#replyPartitions) return true;
    // Partitions may have been added since start; look again before giving up on the request.
    this.#replyPartitions = await this.#admin.partitionCount(this.#config.names.repliesTopic);
    return slot < this.#replyPartitions;
  }

  async #deadLetterMalformed(message: IncomingMessage, request: RequestRecord | null, reason: string): Promise<void> {
    this.#log.warn(
      { topic: message.topic, partition: message.partition, offset: message.offset, reason },
      "unanswerable request dead-lettered",
    );
    const letter = deadLetterRecord(this.#config.names.dlqTopic, {
      message,
      request,
      error: new TetherError(ErrorCode.InvalidArgument, reason),
      attempts: 0,
      failedAt: this.#now(),
    });
    await this.#producer.send(letter);
    const type = request !== null && this.#handlers.has(request.type) ? request.type : UNKNOWN_TYPE_LABEL;
    this.metrics.deadLettered.inc({ type });
  }

  /**
   * Runs the handler (with retries) and turns its outcome into the answer. `key` is the
   * request's dedupe window key, where a late outcome past the deadline is remembered.
   */
  async #run(
    request: RequestRecord,
    key: string,
    source: string,
    message: IncomingMessage,
    traceId: string | undefined,
  ): Promise<Answer> {
    const handler = this.#handlers.get(request.type);
    if (handler === undefined) {
      this.metrics.failed.inc({ type: UNKNOWN_TYPE_LABEL, code: WireErrorCode.UnknownType });
      return {
        frame: errorFrame(request.id, WireErrorCode.UnknownType, `no handler for type ${request.type}`, false),
        final: true,
        source,
        deadLetter: undefined,
      };
    }
    const type = request.type;
    // Made on first use: most requests never log, and a child logger per request costs.
    let child: Logger | undefined;
    const log = (): Logger => {
      child ??= this.#log.child(
        traceId === undefined
          ? { deviceId: request.deviceId, requestId: request.id, type }
          : { deviceId: request.deviceId, requestId: request.id, type, traceId },
      );
      return child;
    };

    const startedAt = performance.now();
    const seconds = (): number => (performance.now() - startedAt) / 1000;
    for (let attempt = 1; ; attempt += 1) {
      const result = await this.#attempt(handler, request, key, source, attempt, log);
      switch (result.kind) {
        case "ok":
          this.metrics.handled.inc({ type });
          this.metrics.handlerDuration.observe({ type, outcome: "res" }, seconds());
          this.#handled(log, "res", seconds);
          return { frame: result.frame, final: true, source, deadLetter: undefined };
        case "handler_error":
          this.metrics.failed.inc({ type, code: result.code });
          this.metrics.handlerDuration.observe({ type, outcome: "error" }, seconds());
          this.#handled(log, result.code, seconds);
          return { frame: result.frame, final: true, source, deadLetter: undefined };
        case "timeout": {
          this.metrics.failed.inc({ type, code: WireErrorCode.Timeout });
          this.metrics.handlerDuration.observe({ type, outcome: "timeout" }, seconds());
          log().warn({ attempt, timeoutMs: this.#settings.handlerTimeoutMs }, "handler deadline passed");
          const message = `the handler did not answer within ${this.#settings.handlerTimeoutMs} ms`;
          return {
            frame: errorFrame(request.id, WireErrorCode.Timeout, message, true),
            final: false,
            source,
            deadLetter: undefined,
          };
        }
        case "failed":
          break;
      }
      if (this.#shutdown.signal.aborted) {
        // Not answered and not committed: the group's next owner of the partition runs it again.
        throw new TetherError(ErrorCode.Closed, "worker shut down while the request was failing", {
          cause: result.error,
        });
      }
      if (attempt <= this.#settings.retries) {
        this.metrics.retried.inc({ type });
        const delayMs = backoff(attempt, {
          baseMs: this.#settings.retryBaseMs,
          maxMs: this.#settings.retryMaxMs,
          jitter: 0.5,
        });
        log().warn({ err: result.error, attempt, delayMs }, "handler failed; retrying");
        const waited = await sleep(delayMs, { signal: this.#shutdown.signal });
        if (!waited) {
          throw new TetherError(ErrorCode.Closed, "worker shut down while the request was failing", {
            cause: result.error,
          });
        }
        continue;
      }
      log().error({ err: result.error, attempts: attempt }, "handler kept failing; request dead-lettered");
      this.metrics.failed.inc({ type, code: WireErrorCode.Internal });
      this.metrics.deadLettered.inc({ type });
      this.metrics.handlerDuration.observe({ type, outcome: "internal" }, seconds());
      return {
        // Not retryable: the worker already retried with backoff and an operator has the
        // request in the dead-letter topic; a resend of the same request gets this same answer.
        frame: errorFrame(request.id, WireErrorCode.Internal, "the request failed and was set aside", false),
        final: true,
        source,
        deadLetter: deadLetterRecord(this.#config.names.dlqTopic, {
          message,
          request,
          error: result.error,
          attempts: attempt,
          failedAt: this.#now(),
        }),
      };
    }
  }

  /** The line of a handled request: debug level (one a request), with the trace id when traced. */
  #handled(log: () => Logger, outcome: string, seconds: () => number): void {
    if (this.#log.isLevelEnabled("debug")) log().debug({ outcome, durationMs: seconds() * 1000 }, "request handled");
  }

  /** One handler run under its deadline. Never rejects. */
  async #attempt(
    handler: Handler,
    request: RequestRecord,
    key: string,
    source: string,
    attempt: number,
    log: () => Logger,
  ): Promise<Attempt> {
    const idempotencyKey = `${request.deviceId}:${request.id}`;
    const { outcome, late } = this.#runs.start(
      (signal) =>
        invoke(handler, {
          deviceId: request.deviceId,
          id: request.id,
          type: request.type,
          body: request.body,
          receivedAt: request.receivedAt,
          idempotencyKey,
          attempt,
          get log() {
            return log();
          },
          // Aborted at the deadline or when shutdown runs out of time; made only when asked for.
          get signal() {
            return signal();
          },
        }),
      TIMED_OUT,
    );
    const result = await outcome;
    if (result === TIMED_OUT) {
      // The device already got `timeout`; a definitive late outcome is remembered so that a
      // resend of the request gets it instead of running the handler again.
      void late.then((outcomeLate) => {
        if (outcomeLate.kind !== "ok" && outcomeLate.kind !== "handler_error") return;
        const current = this.#dedupe.get(key);
        if (current !== undefined && current.source === source && !current.final) {
          this.#dedupe.set(key, { frame: outcomeLate.frame, final: true, source, deadLetter: undefined });
        }
      });
    }
    return result;
  }
}

/** Every retry wait listens on it; the default limit of 10 would warn for nothing. */
function abortControllerWithoutListenerLimit(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

/** Creates a worker; register handlers with `handle()`, then `start()`. */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}

async function invoke(handler: Handler, request: HandlerRequest): Promise<Attempt> {
  try {
    const value = await handler(request);
    return {
      kind: "ok",
      frame: JSON.stringify({ t: "res", id: request.id, body: value === undefined ? null : value }),
    };
  } catch (error) {
    if (isHandlerError(error)) {
      return {
        kind: "handler_error",
        code: error.code,
        frame: errorFrame(request.id, error.code, error.message, error.retryable),
      };
    }
    return { kind: "failed", error };
  }
}

function errorFrame(id: string, code: string, message: string, retryable: boolean): string {
  return JSON.stringify({ t: "error", id, code, message, retryable });
}
