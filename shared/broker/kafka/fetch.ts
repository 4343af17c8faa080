import type { Logger } from "../../log/index.ts";
import type { IncomingMessage, MessageHeaders } from "../types.ts";
import { kafkaError } from "./errors.ts";
import type { NativeConsumer, NativeMessage } from "./native.ts";

/** Converts a librdkafka message to the port's shape. */
export function toIncoming(message: NativeMessage): IncomingMessage {
  const headers: Record<string, string> = {};
  for (const header of message.headers ?? []) {
    for (const [name, value] of Object.entries(header)) {
      headers[name] = typeof value === "string" ? value : value.toString("utf8");
    }
  }
  const key = message.key;
  return {
    topic: message.topic,
    partition: message.partition,
    offset: String(message.offset),
    key: key === undefined || key === null ? null : typeof key === "string" ? key : key.toString("utf8"),
    value: message.value ?? Buffer.alloc(0),
    headers: headers as MessageHeaders,
    timestamp: message.timestamp ?? Date.now(),
  };
}

export interface FetchLoopOptions {
  readonly consumer: NativeConsumer;
  readonly logger: Logger;
  /** Called with each batch, in partition order. */
  readonly deliver: (messages: IncomingMessage[]) => void;
  /** Handled-but-not-finished count; above `maxPending` fetching pauses. */
  readonly pending: () => number;
  readonly maxPending: number;
  readonly batchSize?: number;
}

/**
 * Pulls messages from one consumer without parking a libuv thread: each `consume()` call takes
 * only what librdkafka already queued (timeout 0), and the loop sleeps until librdkafka says its
 * queue became non-empty (or a short safety timer fires, which also keeps rebalance events
 * served). While the handlers are behind, the assigned partitions are paused, so memory stays
 * bounded and the consumer still polls (no max.poll.interval eviction).
 */
export class FetchLoop {
  readonly #options: FetchLoopOptions;
  readonly #batchSize: number;
  #woken = false;
  #wakeUp: (() => void) | undefined;
  #stopped = false;
  #running: Promise<void> | undefined;
  #paused = false;

  constructor(options: FetchLoopOptions) {
    this.#options = options;
    this.#batchSize = options.batchSize ?? 500;
  }

  /** librdkafka's queue became non-empty. */
  wake(): void {
    this.#woken = true;
    const wakeUp = this.#wakeUp;
    this.#wakeUp = undefined;
    wakeUp?.();
  }

  start(): void {
    this.#options.consumer.setDefaultConsumeTimeout(0);
    this.#options.consumer.setDefaultIsTimeoutOnlyForFirstMessage(true);
    this.#running ??= this.#run();
  }

  /** Whether partitions are paused for backpressure (newly assigned ones must be paused too). */
  paused(): boolean {
    return this.#paused;
  }

  /** Stops after the call in progress; no batch is delivered once this resolves. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.wake();
    await this.#running;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      this.#applyBackpressure();
      this.#woken = false;
      let messages: IncomingMessage[];
      try {
        messages = await this.#consume();
        failures = 0;
      } catch (error) {
        failures += 1;
        if (failures === 1 || failures % 100 === 0) {
          this.#options.logger.warn({ err: kafkaError("consume", error) }, "Kafka consume failed");
        }
        await this.#sleep(Math.min(1000, 10 * failures));
        continue;
      }
      if (this.#stopped) return;
      if (messages.length > 0) this.#options.deliver(messages);
      if (messages.length >= this.#batchSize) continue;
      await this.#sleep(this.#paused ? 20 : 250);
    }
  }

  #applyBackpressure(): void {
    const { consumer, pending, maxPending } = this.#options;
    try {
      if (!this.#paused && pending() > maxPending) {
        consumer.pause(consumer.assignments());
        this.#paused = true;
      } else if (this.#paused && pending() <= maxPending / 2) {
        consumer.resume(consumer.assignments());
        this.#paused = false;
      }
    } catch (error) {
      this.#options.logger.debug({ err: kafkaError("pause", error) }, "Kafka pause/resume failed");
    }
  }

  #consume(): Promise<IncomingMessage[]> {
    return new Promise((resolve, reject) => {
      try {
        this.#options.consumer.consume(this.#batchSize, (error, messages) => {
          if (error) reject(error);
          else resolve((messages ?? []).map(toIncoming));
        });
      } catch (error) {
        reject(error);
      }
    });
  }

  #sleep(ms: number): Promise<void> {
    if (this.#woken || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wakeUp = undefined;
        resolve();
      }, ms);
      this.#wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
