import { TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import type { IncomingMessage, MessageHeaders } from "../types.ts";
import { kafkaError } from "./errors.ts";
import type { NativeConsumer, NativeError, NativeMessage } from "./native.ts";

/** Longest the loop sleeps between two polls when librdkafka signals nothing. */
const SAFETY_POLL_MS = 20;
/** A pull that returned at least this many messages lets the next one gather (see FetchLoop). */
const GATHER_AFTER = 4;

/** Converts a librdkafka message to the port's shape. */
export function toIncoming(message: NativeMessage): IncomingMessage {
  const headers: Record<string, string> = {};
  const list = message.headers;
  if (list !== undefined) {
    for (const header of list) {
      for (const name in header) {
        const value = header[name]!;
        headers[name] = typeof value === "string" ? value : value.toString("utf8");
      }
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

/** What feeds a consumer's dispatcher from librdkafka. */
export interface MessageLoop {
  start(): void;
  /** Stops delivering; no message is delivered once this resolves. */
  stop(): Promise<void>;
  /** Whether partitions are paused for backpressure (newly assigned ones must be paused too). */
  paused(): boolean;
}

/** What both loops are given: the client, and the dispatcher they feed. */
export interface LoopFeed {
  readonly consumer: NativeConsumer;
  readonly logger: Logger;
  /** Called with each message, in partition order. */
  readonly deliver: (message: IncomingMessage) => void;
  /** Handled-but-not-finished count, which backpressure holds under `maxPending`. */
  readonly pending: () => number;
  readonly maxPending: number;
}

export interface FetchLoopOptions extends LoopFeed {
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
export class FetchLoop implements MessageLoop {
  readonly #options: FetchLoopOptions;
  readonly #batchSize: number;
  #woken = false;
  #wakeUp: (() => void) | undefined;
  #stopped = false;
  #running: Promise<void> | undefined;
  #paused = false;
  /** When the loop started holding back because the handlers were behind; 0 when not. */
  #holdingSince = 0;
  /** Whether the next call may wait for more messages (see #consume). */
  #gather = false;

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
    this.#options.consumer.setDefaultIsTimeoutOnlyForFirstMessage(false);
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
      for (const message of messages) this.#options.deliver(message);
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

  /**
   * With the client's "timeout only for the first message" on, a consume call with timeout 0
   * goes on taking messages until none came for 1 ms. That millisecond is a hop's latency when
   * messages come one at a time, but under load it fills the batch: fewer calls on the libuv
   * pool and fewer event-loop turns per message (measured at saturation: 0.20 to 0.24 against
   * 0.26 to 0.29 ms of CPU per round trip). So a call gathers only after a batch that was full
   * enough to say the load is there.
   */
  #consume(): Promise<IncomingMessage[]> {
    const { consumer } = this.#options;
    consumer.setDefaultIsTimeoutOnlyForFirstMessage(this.#gather);
    return new Promise((resolve, reject) => {
      try {
        consumer.consume(this.#batchSize, (error, messages) => {
          if (error) {
            reject(error);
            return;
          }
          const batch = messages ?? [];
          this.#gather = batch.length >= GATHER_AFTER;
          resolve(batch.map(toIncoming));
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

export interface StreamLoopOptions extends LoopFeed {
  /** How long a backlog over `maxPending` may last before the partitions are paused. Default 2000 ms. */
  readonly holdMs?: number;
  /**
   * Called once when messages wait on the broker but none has arrived for `stallMs`: the
   * client's consume thread has stopped (it ends on a fetch error it does not know), and only a
   * new client recovers from that.
   */
  readonly onStall?: (error: TetherError) => void;
  /** Default 30 s. */
  readonly stallMs?: number;
}

/**
 * Event-driven consumption: the Kafka client's own consume thread blocks in librdkafka's poll
 * and hands each message to the event loop the moment it arrives, so no timer and no libuv pool
 * thread sits on the latency path (one hop measured p50 0.4-0.5 ms this way, against 1.8-2.0 ms
 * for a pull on the libuv pool after librdkafka's queue signal).
 *
 * Backpressure pauses the assigned partitions once the handlers stay more than `maxPending`
 * behind for `holdMs` (or fall four times that behind) and resumes them at half the bound; the
 * thread keeps polling meanwhile, so rebalances are served and the group keeps the member.
 *
 * That thread ends for good on any consumer error other than a timeout, a partition's end, an
 * unknown topic or a refused authorization, and a client cannot start it again. The loop then
 * goes on by pull on the same client (a `FetchLoop` on its safety poll: a stream client has no
 * queue signal, which would wake the event loop for every message), so consumption continues,
 * up to 20 ms later per message. A thread that stops without saying so is
 * caught by a watchdog, which compares the broker's high watermarks with the positions while
 * nothing arrives and reports a stall through `onStall`.
 */
export class StreamLoop implements MessageLoop {
  readonly #options: StreamLoopOptions;
  readonly #stallMs: number;
  #stopped = false;
  #started = false;
  #paused = false;
  #resumeTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #lastArrival = Date.now();
  /** Set when the last watchdog round saw messages waiting; a second such round is a stall. */
  #suspect = false;
  #stalled = false;
  /** When the handlers fell more than `maxPending` behind; 0 when they are not. */
  #holdingSince = 0;
  readonly #holdMs: number;
  /** Set once the consume thread ended with an error: pull consumption on the same client. */
  #fallback: FetchLoop | undefined;

  constructor(options: StreamLoopOptions) {
    this.#options = options;
    this.#stallMs = options.stallMs ?? 30_000;
    this.#holdMs = options.holdMs ?? 2000;
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    const { consumer } = this.#options;
    // The thread's poll returns as soon as a message is there; the timeout only bounds how long
    // a disconnect waits for the thread, and no pause follows an empty poll.
    consumer.setDefaultConsumeTimeout(500);
    consumer.setDefaultConsumeLoopTimeoutDelay(0);
    this.#lastArrival = Date.now();
    consumer.consume((error, message) => this.#onMessage(error, message));
    this.#watchdog = setInterval(() => void this.#watch(), Math.max(1000, Math.floor(this.#stallMs / 2)));
    this.#watchdog.unref();
  }

  paused(): boolean {
    return this.#fallback?.paused() ?? this.#paused;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#watchdog);
    clearTimeout(this.#resumeTimer);
    await this.#fallback?.stop();
  }

  #onMessage(error: NativeError | null | undefined, message: NativeMessage | undefined): void {
    if (this.#stopped) return;
    if (error) {
      this.#pullInstead(error);
      return;
    }
    if (message === undefined) return;
    this.#lastArrival = Date.now();
    this.#suspect = false;
    this.#options.deliver(toIncoming(message));
    if (this.#paused) return;
    // Pausing makes librdkafka drop its prefetch and fetch it again, which at a steady high rate
    // costs most of the throughput (measured: 2,000 against 6,000 round trips/s). So a backlog
    // first waits in the dispatcher; only one that lasts `holdMs`, or grows to four times the
    // bound (a stuck downstream), pauses the partitions.
    const behind = this.#options.pending();
    const { maxPending } = this.#options;
    if (behind <= maxPending) {
      if (behind <= maxPending / 2) this.#holdingSince = 0;
      return;
    }
    const now = Date.now();
    if (this.#holdingSince === 0) this.#holdingSince = now;
    if (behind > 4 * maxPending || now - this.#holdingSince > this.#holdMs) this.#pause();
  }

  /** The consume thread ended: the same client goes on by pull, from where the thread stopped. */
  #pullInstead(error: NativeError): void {
    if (this.#fallback !== undefined) return;
    this.#options.logger.warn(
      { err: kafkaError("consume", error) },
      "Kafka consume thread stopped; consuming by pull on the same client",
    );
    clearInterval(this.#watchdog);
    clearTimeout(this.#resumeTimer);
    const { consumer, logger } = this.#options;
    if (this.#paused) {
      try {
        consumer.resume(consumer.assignments());
      } catch (failure) {
        logger.debug({ err: kafkaError("resume", failure) }, "Kafka resume failed");
      }
      this.#paused = false;
    }
    this.#fallback = new FetchLoop(this.#options);
    this.#fallback.start();
  }

  #pause(): void {
    const { consumer, logger } = this.#options;
    try {
      consumer.pause(consumer.assignments());
      this.#paused = true;
    } catch (error) {
      logger.debug({ err: kafkaError("pause", error) }, "Kafka pause failed");
      return;
    }
    const check = (): void => {
      if (this.#stopped) return;
      if (this.#options.pending() > this.#options.maxPending / 2) {
        this.#resumeTimer = setTimeout(check, 5);
        return;
      }
      try {
        consumer.resume(consumer.assignments());
        this.#paused = false;
        this.#holdingSince = 0;
        this.#lastArrival = Date.now();
      } catch (error) {
        logger.debug({ err: kafkaError("resume", error) }, "Kafka resume failed");
        this.#resumeTimer = setTimeout(check, 100);
      }
    };
    this.#resumeTimer = setTimeout(check, 5);
  }

  async #watch(): Promise<void> {
    if (this.#stopped || this.#paused || this.#stalled) return;
    if (Date.now() - this.#lastArrival < this.#stallMs) {
      this.#suspect = false;
      return;
    }
    const { consumer } = this.#options;
    let waiting = false;
    try {
      for (const entry of consumer.position(consumer.assignments())) {
        if (typeof entry.offset !== "number" || entry.offset < 0) continue;
        const high = await new Promise<number>((resolve, reject) =>
          consumer.queryWatermarkOffsets(entry.topic, entry.partition, 5000, (error, offsets) =>
            error ? reject(error) : resolve(offsets.highOffset),
          ),
        );
        if (high > entry.offset) waiting = true;
      }
    } catch {
      // The broker does not answer: nothing can be judged, and a stall needs a known backlog.
      return;
    }
    if (this.#stopped || this.#paused || Date.now() - this.#lastArrival < this.#stallMs) return;
    if (!waiting) {
      this.#suspect = false;
      return;
    }
    if (!this.#suspect) {
      this.#suspect = true;
      return;
    }
    this.#stalled = true;
    const stall = new TetherError(
      "unavailable",
      `Kafka consumer stalled: messages wait on the broker and none arrived for ${this.#stallMs} ms`,
    );
    this.#options.logger.error({ err: stall }, "Kafka consumer stalled");
    this.#options.onStall?.(stall);
  }
}
