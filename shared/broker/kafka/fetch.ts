import type { Logger } from "../../log/index.ts";
import type { IncomingMessage, MessageHeaders } from "../types.ts";
import { kafkaError } from "./errors.ts";
import type { NativeConsumer, NativeMessage } from "./native.ts";

/** Longest the loop sleeps between two polls when librdkafka signals nothing. */
const SAFETY_POLL_MS = 20;

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
  /** How long the loop may stop taking messages before it pauses the partitions. Default 2000 ms. */
  readonly holdMs?: number;
}

/**
 * Pulls messages from one consumer without parking a libuv thread: each `consume()` call takes
 * only what librdkafka already queued (timeout 0), and the loop sleeps until librdkafka says its
 * queue became non-empty (or a short safety timer fires, which also keeps rebalance events
 * served).
 *
 * Backpressure has two stages. While the handlers are behind, the loop first just stops taking
 * messages: librdkafka's own queue (bounded by `queued.max.messages.kbytes`) holds what it
 * prefetched, and the loop resumes as soon as the handlers catch up. Pausing the partitions
 * instead would make librdkafka drop that prefetch and fetch it all again, which at a steady
 * high rate costs most of the throughput. Only when the handlers stay behind longer than
 * `holdMs` (a stuck downstream) are the partitions paused, so that the consumer keeps polling
 * (no max.poll.interval eviction, rebalances served) while nothing is fetched.
 */
export class FetchLoop {
  readonly #options: FetchLoopOptions;
  readonly #batchSize: number;
  #woken = false;
  #wakeUp: (() => void) | undefined;
  #stopped = false;
  #running: Promise<void> | undefined;
  #paused = false;
  /** When the loop started holding back because the handlers were behind; 0 when not. */
  #holdingSince = 0;

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
      if (this.#holding()) {
        this.#woken = false;
        await this.#sleep(5);
        continue;
      }
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
      // librdkafka's non-empty signal wakes the loop at once; the timer only bounds a missed
      // signal, and a missed one showed up as ~250 ms tails at the old bound.
      await this.#sleep(this.#paused ? 20 : SAFETY_POLL_MS);
    }
  }

  /** True while the loop holds back (handlers behind, partitions not paused yet). */
  #holding(): boolean {
    return this.#holdingSince !== 0 && !this.#paused;
  }

  #applyBackpressure(): void {
    const { consumer, pending, maxPending } = this.#options;
    const behind = pending();
    if (behind <= maxPending / 2) {
      this.#holdingSince = 0;
    } else if (behind > maxPending && this.#holdingSince === 0) {
      this.#holdingSince = Date.now();
    }
    try {
      if (
        !this.#paused &&
        this.#holdingSince !== 0 &&
        Date.now() - this.#holdingSince > (this.#options.holdMs ?? 2000)
      ) {
        consumer.pause(consumer.assignments());
        this.#paused = true;
      } else if (this.#paused && behind <= maxPending / 2) {
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
