import { Deadlines } from "../../async/deadlines.ts";
import type { KafkaSettings } from "../../config/index.ts";
import { TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import type { DeliveryReport, OutgoingMessage, Producer, SendOptions, StatisticsListener } from "../types.ts";
import { baseConfig } from "./config.ts";
import { isAuthFailure, kafkaError, withAuthCause } from "./errors.ts";
import {
  type Config,
  codes,
  type NativeDeliveryReport,
  type NativeError,
  type NativeProducer,
  native,
} from "./native.ts";
import { statisticsConfig, watchStatistics } from "./stats.ts";

export interface ProducerTuning {
  /** Default bound of send(). Default 30 s. */
  readonly sendTimeoutMs?: number;
  /** Messages librdkafka may hold before send() fails fast with `unavailable`. Default 100 000. */
  readonly maxQueued?: number;
  /** Batching delay. Default 0: measured p50 send->ack 0.3 ms vs 1.4 ms at 1 ms, and the
   * throughput was the same (librdkafka still batches while requests are in flight). */
  readonly lingerMs?: number;
  /** Where the client's statistics go; none are collected without it. */
  readonly statistics?: StatisticsListener;
}

/** A send() of this turn, not yet handed to librdkafka. */
interface Queued {
  readonly message: OutgoingMessage;
  readonly value: Buffer;
  readonly headers: Array<Record<string, string>> | undefined;
  readonly pending: Pending;
}

/** One send() waiting for its delivery report. */
interface Pending {
  resolve: (report: DeliveryReport) => void;
  reject: (error: TetherError) => void;
  /** performance.now() past which the send fails. */
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly topic: string;
  settled: boolean;
}

type Status = "idle" | "connecting" | "ready" | "closing" | "closed";

/**
 * Idempotent, acks=all producer on librdkafka's callback API. The sends of one event-loop turn
 * reach librdkafka together at the end of the turn, in the order they were made. Delivery
 * reports are polled on librdkafka's background thread, so each send() resolves as soon as the
 * broker acknowledged it.
 */
export class KafkaProducer implements Producer {
  readonly #settings: KafkaSettings;
  readonly #logger: Logger;
  readonly #tuning: ProducerTuning;
  #status: Status = "idle";
  #producer: NativeProducer | undefined;
  #connecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #inFlight = 0;
  readonly #unsettled = new Set<Pending>();
  readonly #deadlines = new Deadlines<Pending>((pending) => {
    if (!this.#settle(pending)) return;
    pending.reject(
      new TetherError("unavailable", `no delivery report within ${pending.timeoutMs} ms`, {
        details: { topic: pending.topic },
      }),
    );
  });
  #drained: Array<() => void> = [];
  #authFailure: unknown;
  /** Sends of this event-loop turn, produced together once it ends (see #produceBatch). */
  #batch: Queued[] = [];
  #batchScheduled = false;

  constructor(settings: KafkaSettings, logger: Logger, tuning: ProducerTuning = {}) {
    this.#settings = settings;
    this.#logger = logger;
    this.#tuning = tuning;
  }

  connect(): Promise<void> {
    if (this.#status === "closing" || this.#status === "closed") {
      return Promise.reject(new TetherError("closed", "producer is closed"));
    }
    this.#connecting ??= this.#connect();
    return this.#connecting;
  }

  async #connect(): Promise<void> {
    this.#status = "connecting";
    const producer = new native.Producer(producerConfig(this.#settings, this.#logger, this.#tuning));
    this.#producer = producer;
    producer.on("delivery-report", (error, report) => this.#onDelivery(error, report));
    producer.on("event.error", (error) => {
      if (isAuthFailure(error)) this.#authFailure = error;
      this.#logger.warn({ err: kafkaError("producer", error) }, "Kafka error");
    });
    producer.on("error", (error) => this.#logger.warn({ err: error }, "Kafka client error"));
    watchStatistics(producer, this.#tuning.statistics, this.#logger);
    try {
      await new Promise<void>((resolve, reject) => {
        producer.connect({ timeout: 15_000, allTopics: false }, (error) =>
          error ? reject(withAuthCause(kafkaError("producer connect", error), this.#authFailure)) : resolve(),
        );
      });
    } catch (error) {
      this.#connecting = undefined;
      this.#status = "idle";
      throw error;
    }
    producer.setPollInBackground(true);
    if (this.#status === "connecting") this.#status = "ready";
  }

  send(message: OutgoingMessage, options: SendOptions = {}): Promise<DeliveryReport> {
    if (this.#status !== "ready") {
      if (this.#status === "closing" || this.#status === "closed") {
        return Promise.reject(new TetherError("closed", "producer is closed"));
      }
      return this.connect().then(() => this.send(message, options));
    }
    const timeoutMs = options.timeoutMs ?? this.#tuning.sendTimeoutMs ?? 30_000;
    return new Promise<DeliveryReport>((resolve, reject) => {
      const pending: Pending = {
        resolve,
        reject,
        deadline: performance.now() + timeoutMs,
        timeoutMs,
        topic: message.topic,
        settled: false,
      };
      const value = typeof message.value === "string" ? Buffer.from(message.value) : message.value;
      let headers: Array<Record<string, string>> | undefined;
      if (message.headers !== undefined) {
        headers = [];
        for (const name in message.headers) headers.push({ [name]: message.headers[name]! });
      }
      this.#inFlight += 1;
      this.#unsettled.add(pending);
      this.#deadlines.add(pending);
      this.#batch.push({ message, value, headers, pending });
      if (!this.#batchScheduled) {
        this.#batchScheduled = true;
        setImmediate(this.#produceBatch);
      }
    });
  }

  /**
   * Hands this turn's sends to librdkafka back to back. Produced one by one as they came, each
   * woke the client's broker thread, which sent it alone: a produce request per record, and a
   * thread switch per record on both sides. In one burst, a wake-up and a request carry many.
   */
  readonly #produceBatch = (): void => {
    this.#batchScheduled = false;
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    const producer = this.#producer!;
    for (const { message, value, headers, pending } of batch) {
      try {
        producer.produce(message.topic, message.partition ?? null, value, message.key ?? null, null, pending, headers);
      } catch (error) {
        this.#inFlight = Math.max(0, this.#inFlight - 1);
        if (!this.#settle(pending)) continue;
        if ((error as NativeError).code === codes.queueFull) {
          pending.reject(new TetherError("unavailable", "Kafka producer queue is full", { cause: error }));
        } else {
          pending.reject(kafkaError("send", error, { topic: message.topic }));
        }
      }
    }
    if (this.#inFlight === 0) for (const wake of this.#drained.splice(0)) wake();
  };

  #settle(pending: Pending): boolean {
    if (pending.settled) return false;
    pending.settled = true;
    this.#unsettled.delete(pending);
    return true;
  }

  #onDelivery(error: NativeError | null | undefined, report: NativeDeliveryReport): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    const pending = report.opaque as Pending | undefined;
    if (pending !== undefined && this.#settle(pending)) {
      if (error) {
        pending.reject(kafkaError("send", error, { topic: report.topic }));
      } else {
        pending.resolve({ topic: report.topic, partition: report.partition, offset: String(report.offset) });
      }
    }
    if (this.#inFlight === 0) for (const wake of this.#drained.splice(0)) wake();
  }

  async flush(timeoutMs: number): Promise<void> {
    const producer = this.#producer;
    if (producer === undefined || this.#status === "closed") return;
    this.#produceBatch();
    const deadline = Date.now() + timeoutMs;
    await new Promise<void>((resolve, reject) => {
      try {
        producer.flush(timeoutMs, (error) => (error ? reject(kafkaError("flush", error)) : resolve()));
      } catch (error) {
        reject(kafkaError("flush", error));
      }
    }).catch((error: TetherError) => {
      throw new TetherError("timeout", `producer flush did not finish in ${timeoutMs} ms`, { cause: error });
    });
    // Reports are handed to JavaScript asynchronously; wait for the last ones.
    if (this.#inFlight > 0) {
      const left = deadline - Date.now();
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        new Promise<boolean>((resolve) => this.#drained.push(() => resolve(true))),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), Math.max(0, left));
        }),
      ]);
      clearTimeout(timer);
      if (!drained) throw new TetherError("timeout", `producer flush did not finish in ${timeoutMs} ms`);
    }
  }

  queued(): number {
    return this.#unsettled.size;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const connecting = this.#connecting;
    this.#status = "closing";
    if (connecting !== undefined) await connecting.catch(() => {});
    const producer = this.#producer;
    if (producer !== undefined) {
      await this.flush(5000).catch((error: unknown) => this.#logger.warn({ err: error }, "producer flush on close"));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        try {
          producer.disconnect(0, () => {
            clearTimeout(timer);
            resolve();
          });
        } catch {
          clearTimeout(timer);
          resolve();
        }
      });
    }
    for (const pending of [...this.#unsettled]) {
      if (this.#settle(pending)) pending.reject(new TetherError("unavailable", "producer closed before delivery"));
    }
    this.#deadlines.close();
    this.#status = "closed";
  }
}

/** librdkafka settings of the producer: idempotent, acks=all, low latency. */
export function producerConfig(settings: KafkaSettings, logger: Logger, tuning: ProducerTuning): Config {
  return {
    ...baseConfig(settings, logger, "producer"),
    "enable.idempotence": true,
    acks: "all",
    "linger.ms": tuning.lingerMs ?? settings.lingerMs ?? 0,
    "queue.buffering.max.messages": tuning.maxQueued ?? 100_000,
    "compression.type": settings.compression ?? "none",
    // Java-compatible placement: a key lands where any Kafka client would put it.
    partitioner: "murmur2_random",
    // Longer than any send() bound, so a report always arrives (a timed-out send may still
    // land; callers retry with the same id and the worker dedupes). Not the send() bound itself:
    // when records time out inside the idempotent producer it drains and resets its sequence,
    // and under load everything queued behind them timed out too, for good (measured: at
    // 5,000 round trips/s with a 5 s bound no delivery report came in time again).
    "message.timeout.ms": Math.max(60_000, (tuning.sendTimeoutMs ?? 30_000) * 2),
    // A topic that does not exist fails the send after this long instead of five minutes.
    "topic.metadata.propagation.max.ms": 5000,
    dr_cb: true,
    ...statisticsConfig(tuning.statistics),
  };
}
