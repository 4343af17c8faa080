import { sleep, withTimeout } from "../../async/index.ts";
import type { KafkaSettings } from "../../config/index.ts";
import { TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import { Dispatcher, type DispatcherOptions } from "../dispatch.ts";
import { OffsetSaver } from "../offsets.ts";
import type {
  GroupConsumer,
  GroupConsumerOptions,
  IncomingMessage,
  MessageHandler,
  PartitionConsumer,
  PartitionConsumerOptions,
  StatisticsListener,
} from "../types.ts";
import { baseConfig } from "./config.ts";
import { call, kafkaError } from "./errors.ts";
import { FetchLoop, type MessageLoop, StreamLoop } from "./fetch.ts";
import {
  type Config,
  codes,
  type NativeConsumer,
  type NativeError,
  type NativeMetadata,
  type NativeTopicPartition,
  native,
} from "./native.ts";
import { statisticsConfig, watchStatistics } from "./stats.ts";

/** Tuning shared by both consumer kinds. */
export interface ConsumerTuning {
  /** How often handled positions are committed. Default 500 ms. */
  readonly commitIntervalMs?: number;
  /** Messages accepted but not handled above which fetching pauses. Default 1000. */
  readonly maxPending?: number;
  /** Where the clients' statistics go; none are collected without it. */
  readonly statistics?: StatisticsListener;
  /**
   * A consumer whose client stopped taking messages while messages wait (see `StreamLoop`):
   * the service cannot recover it in place and should stop with a failure, so that it is
   * replaced. Logged only, without it.
   */
  readonly onStall?: (error: TetherError) => void;
}

/** librdkafka settings of every consumer: manual commits, low latency, a small prefetch. */
export function consumerConfig(settings: KafkaSettings, logger: Logger, groupId: string, role: string): Config {
  return {
    ...baseConfig(settings, logger, role),
    "group.id": groupId,
    "enable.auto.commit": false,
    "enable.auto.offset.store": false,
    "enable.partition.eof": false,
    // The broker answers a fetch as soon as one byte is there (fetch.min.bytes), so this bounds
    // only how long a fetch waits on an idle partition: at 10 ms every idle consumer sent 100
    // fetches a second (p99 at 1,000 round trips/s measured 120 ms then, 52 ms at 100). librdkafka
    // keeps one fetch in flight per broker, so a partition assigned meanwhile waits for it: up
    // to this long.
    "fetch.wait.max.ms": 100,
    "fetch.min.bytes": 1,
    // Keep the prefetch small; the dispatcher's own bound does the rest.
    "queued.min.messages": 1000,
    "queued.max.messages.kbytes": 16384,
    // With the prefetch bound this low, a backlog crosses it; librdkafka then postpones the
    // partition's next fetch by this much (default 1 s), which at a deep backlog put a 1 s step
    // into every round trip.
    "fetch.queue.backoff.ms": 10,
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1000,
  };
}

/**
 * Reads the committed offsets of one group through a consumer that joins nothing. The admin
 * API's ListConsumerGroupOffsets would be the natural call, but librdkafka 2.15 crashes the
 * process (NULL consumer-group handle) when that request meets NOT_COORDINATOR, which happens
 * whenever the group coordinator moves or restarts; a consumer's own offset fetch goes through
 * its group handle and retries instead.
 */
export class CommittedOffsetReader {
  readonly #consumer: NativeConsumer;
  readonly #groupId: string;
  #connected: Promise<void> | undefined;

  constructor(settings: KafkaSettings, logger: Logger, groupId: string) {
    this.#groupId = groupId;
    this.#consumer = new native.KafkaConsumer(consumerConfig(settings, logger, groupId, "lag"));
    this.#consumer.on("event.error", (error) =>
      logger.debug({ err: kafkaError("lag", error) }, "Kafka lag reader error"),
    );
    this.#consumer.on("error", (error) => logger.debug({ err: error }, "Kafka lag reader error"));
  }

  /** The committed offset of each partition (-1 where none). */
  async read(partitions: readonly NativeTopicPartition[], timeoutMs: number): Promise<Map<number, number>> {
    this.#connected ??= connect(this.#consumer, timeoutMs);
    try {
      await this.#connected;
    } catch (error) {
      this.#connected = undefined;
      throw error;
    }
    const groupId = this.#groupId;
    const entries = await new Promise<NativeTopicPartition[]>((resolve, reject) => {
      this.#consumer.committed([...partitions], timeoutMs, (error, result) => {
        if (error) reject(kafkaError(`committed offsets of group ${groupId}`, error));
        else resolve(result ?? []);
      });
    });
    const offsets = new Map<number, number>();
    for (const entry of entries) {
      if (entry.error !== undefined && entry.error !== null && entry.error.code !== 0) {
        throw kafkaError(`committed offsets of group ${groupId}`, entry.error);
      }
      offsets.set(entry.partition, typeof entry.offset === "number" && entry.offset >= 0 ? entry.offset : -1);
    }
    return offsets;
  }

  close(timeoutMs: number): Promise<void> {
    return withTimeout(disconnect(this.#consumer), timeoutMs, "lag reader disconnect").catch(() => {});
  }
}

/** Bound of each call a lag sample makes. */
const lagTimeoutMs = 5000;

/**
 * A partition's backlog for a group: from its committed offset (or, with none, its earliest
 * message) to its end.
 */
export function partitionLag(end: number, committed: number | undefined, earliest: number): number {
  const from = committed !== undefined && committed >= 0 ? committed : earliest;
  return Math.max(0, end - from);
}

function connect(consumer: NativeConsumer, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      consumer.connect({ timeout: timeoutMs, allTopics: false }, (error) => {
        if (error) reject(kafkaError("consumer connect", error));
        else resolve();
      });
    } catch (error) {
      reject(kafkaError("consumer connect", error));
    }
  });
}

function disconnect(consumer: NativeConsumer): Promise<void> {
  return new Promise((resolve) => {
    try {
      consumer.disconnect(() => resolve());
    } catch {
      resolve();
    }
  });
}

/**
 * Commits dispatcher positions: one commit in flight at a time, and only partitions whose
 * position moved since the last successful commit.
 */
class Committer {
  readonly #consumer: NativeConsumer;
  readonly #logger: Logger;
  readonly #committed = new Map<string, number>();
  #chain: Promise<void> = Promise.resolve();

  constructor(consumer: NativeConsumer, logger: Logger) {
    this.#consumer = consumer;
    this.#logger = logger;
  }

  /** Commits `positions` (`topic:partition` -> next offset); rejects when the broker refused. */
  commit(positions: ReadonlyMap<string, number>): Promise<void> {
    const run = this.#chain.then(() => this.#commitNow(positions));
    this.#chain = run.catch(() => {});
    return run;
  }

  forget(id: string): void {
    this.#committed.delete(id);
  }

  async #commitNow(positions: ReadonlyMap<string, number>): Promise<void> {
    const list: NativeTopicPartition[] = [];
    for (const [id, offset] of positions) {
      if (offset < 0 || this.#committed.get(id) === offset) continue;
      const split = id.lastIndexOf(":");
      list.push({ topic: id.slice(0, split), partition: Number(id.slice(split + 1)), offset });
    }
    if (list.length === 0) return;
    await new Promise<void>((resolve, reject) => {
      try {
        this.#consumer.commitCb(list, (error) => (error ? reject(kafkaError("commit", error)) : resolve()));
      } catch (error) {
        reject(kafkaError("commit", error));
      }
    });
    for (const entry of list) this.#committed.set(`${entry.topic}:${entry.partition}`, entry.offset!);
    this.#logger.trace({ partitions: list.length }, "Kafka offsets committed");
  }
}

/** What a started consumer runs. */
interface Run {
  readonly consumer: NativeConsumer;
  readonly dispatcher: Dispatcher;
  readonly committer: Committer;
  readonly loop: MessageLoop;
}

/**
 * Makes the dispatcher, the native consumer (with its error listeners) and its committer, and
 * the loop feeding the one from the other. Nothing connects yet.
 */
function makeRun(
  settings: KafkaSettings,
  config: Config,
  logger: Logger,
  tuning: ConsumerTuning,
  dispatch: DispatcherOptions,
): Run {
  const dispatcher = new Dispatcher(dispatch);
  const pull = settings.consumeMode !== "stream";
  let fetchLoop: FetchLoop | undefined;
  const consumer = new native.KafkaConsumer({
    ...config,
    ...statisticsConfig(tuning.statistics),
    // Only the pull loop waits for librdkafka's queue signal: the stream's thread drains the
    // queue at once, so the signal would wake the event loop for every message.
    ...(pull ? { queue_non_empty_cb: () => fetchLoop?.wake() } : {}),
  });
  watchStatistics(consumer, tuning.statistics, logger);
  consumer.on("event.error", (error) => logger.warn({ err: kafkaError("consumer", error) }, "Kafka error"));
  consumer.on("error", (error) => logger.warn({ err: error }, "Kafka client error"));
  const committer = new Committer(consumer, logger);
  const feed = {
    consumer,
    logger,
    deliver: (message: IncomingMessage) => dispatcher.push(message),
    pending: () => dispatcher.pending(),
    maxPending: tuning.maxPending ?? 1000,
  };
  if (pull) fetchLoop = new FetchLoop(feed);
  const loop =
    fetchLoop ?? new StreamLoop({ ...feed, ...(tuning.onStall === undefined ? {} : { onStall: tuning.onStall }) });
  return { consumer, dispatcher, committer, loop };
}

/**
 * Stops fetching and waits up to `timeoutMs` for the handlers in flight; when the consumer was
 * running, then commits what they finished (a failure is logged) and lets go of its partitions.
 */
async function windDown(
  run: Run,
  timeoutMs: number,
  logger: Logger,
  running: { readonly commit: () => Promise<void>; readonly release: () => void } | undefined,
): Promise<void> {
  await run.loop.stop();
  run.dispatcher.close();
  await run.dispatcher.drain(timeoutMs);
  if (running === undefined) return;
  try {
    await withTimeout(running.commit(), 5000, "final commit");
  } catch (error) {
    logger.warn({ err: error }, "final commit failed");
  }
  try {
    running.release();
  } catch {
    // Not subscribed or assigned (start failed half-way).
  }
}

/** Disconnects within 15 s; a disconnect that does not finish is logged, not thrown. */
function disconnectQuietly(consumer: NativeConsumer, logger: Logger): Promise<void> {
  return withTimeout(disconnect(consumer), 15_000, "consumer disconnect").catch((error: unknown) =>
    logger.warn({ err: error }, "consumer disconnect did not finish"),
  );
}

type Status = "idle" | "running" | "closing" | "closed";

/** Group member with cooperative-sticky assignment; commits only handled positions. */
export class KafkaGroupConsumer implements GroupConsumer {
  readonly #settings: KafkaSettings;
  readonly #logger: Logger;
  readonly #options: GroupConsumerOptions;
  readonly #tuning: ConsumerTuning;
  readonly #assigned = new Set<string>();
  #status: Status = "idle";
  #run: Run | undefined;
  #commitTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  #rebalances: Promise<void> = Promise.resolve();

  constructor(settings: KafkaSettings, logger: Logger, options: GroupConsumerOptions, tuning: ConsumerTuning = {}) {
    this.#settings = settings;
    this.#options = options;
    this.#tuning = tuning;
    this.#logger = logger.child({ groupId: options.groupId, topics: options.topics });
  }

  async start(handler: MessageHandler): Promise<void> {
    if (this.#status !== "idle") throw new TetherError("invalid_argument", "group consumer already started or closed");
    this.#status = "running";
    const config: Config = {
      ...consumerConfig(this.#settings, this.#logger, this.#options.groupId, "group"),
      "partition.assignment.strategy": "cooperative-sticky",
      "auto.offset.reset": this.#options.fromBeginning === false ? "latest" : "earliest",
      rebalance_cb: (error: NativeError, partitions: NativeTopicPartition[]) => this.#onRebalance(error, partitions),
    };
    const run = makeRun(this.#settings, config, this.#logger, this.#tuning, {
      handler,
      concurrency: this.#options.concurrency,
      orderBy: this.#options.orderBy,
      ...(this.#options.maxRetryDelayMs === undefined ? {} : { maxRetryDelayMs: this.#options.maxRetryDelayMs }),
      onError: (error, message, attempt) =>
        this.#logger.warn(
          { err: error, topic: message.topic, partition: message.partition, offset: message.offset, attempt },
          "handler failed; retrying",
        ),
    });
    this.#run = run;
    try {
      await connect(run.consumer, 15_000);
      if (this.#status !== "running") return;
      run.consumer.subscribe([...this.#options.topics]);
    } catch (error) {
      await this.close(0);
      throw kafkaError("group consumer start", error);
    }
    run.loop.start();
    this.#commitTimer = setInterval(() => void this.#commitQuietly(), this.#tuning.commitIntervalMs ?? 500);
    this.#commitTimer.unref();
  }

  assignment(): readonly string[] {
    return [...this.#assigned].sort();
  }

  async lag(): Promise<number> {
    const run = this.#run;
    if (this.#status !== "running" || run === undefined) {
      throw new TetherError("closed", "group consumer is not running");
    }
    const { consumer } = run;
    const groupId = this.#options.groupId;
    const partitions: NativeTopicPartition[] = [];
    for (const topic of this.#options.topics) {
      const metadata = await call<NativeMetadata>(`metadata of ${topic}`, (done) =>
        consumer.getMetadata({ topic, timeout: lagTimeoutMs }, done),
      );
      const count = metadata.topics.find((entry) => entry.name === topic)?.partitions.length ?? 0;
      for (let partition = 0; partition < count; partition += 1) partitions.push({ topic, partition });
    }
    if (partitions.length === 0) return 0;
    // One call at a time: each holds a libuv pool thread until the broker answers, and the pull
    // loop's fetches run on that pool too (a sample of 12 partitions at once stalled them).
    const committed = await call<NativeTopicPartition[]>(`committed offsets of group ${groupId}`, (done) =>
      consumer.committed(partitions, lagTimeoutMs, done),
    );
    const watermarks: Array<{ highOffset: number; lowOffset: number }> = [];
    for (const { topic, partition } of partitions) {
      watermarks.push(
        await call(`watermarks of ${topic}:${partition}`, (done) =>
          consumer.queryWatermarkOffsets(topic, partition, lagTimeoutMs, done),
        ),
      );
    }
    const committedAt = new Map<string, number>();
    for (const entry of committed) {
      if (entry.error !== undefined && entry.error !== null && entry.error.code !== 0) {
        throw kafkaError(`committed offsets of group ${groupId}`, entry.error);
      }
      if (typeof entry.offset === "number" && entry.offset >= 0) {
        committedAt.set(`${entry.topic}:${entry.partition}`, entry.offset);
      }
    }
    let lag = 0;
    partitions.forEach(({ topic, partition }, index) => {
      const { highOffset, lowOffset } = watermarks[index]!;
      lag += partitionLag(highOffset, committedAt.get(`${topic}:${partition}`), lowOffset);
    });
    return lag;
  }

  close(timeoutMs = 10_000): Promise<void> {
    this.#closing ??= this.#close(timeoutMs);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<void> {
    const wasRunning = this.#status === "running";
    this.#status = "closing";
    clearInterval(this.#commitTimer);
    const run = this.#run;
    if (run === undefined) {
      this.#status = "closed";
      return;
    }
    await windDown(
      run,
      timeoutMs,
      this.#logger,
      wasRunning
        ? { commit: () => run.committer.commit(run.dispatcher.positions()), release: () => run.consumer.unsubscribe() }
        : undefined,
    );
    await disconnectQuietly(run.consumer, this.#logger);
    await this.#rebalances;
    this.#assigned.clear();
    this.#status = "closed";
  }

  #onRebalance(error: NativeError, partitions: NativeTopicPartition[]): void {
    const step = this.#rebalances.then(() => this.#rebalance(error, partitions));
    this.#rebalances = step.catch((failure: unknown) => this.#logger.warn({ err: failure }, "rebalance step failed"));
  }

  async #rebalance(error: NativeError, partitions: NativeTopicPartition[]): Promise<void> {
    const { consumer, dispatcher, committer, loop } = this.#run!;
    const cooperative = consumer.rebalanceProtocol() === "COOPERATIVE";
    if (error.code === codes.assignPartitions) {
      for (const p of partitions) this.#assigned.add(`${p.topic}:${p.partition}`);
      this.#logger.info({ partitions: partitions.map((p) => `${p.topic}:${p.partition}`) }, "partitions assigned");
      if (cooperative) consumer.incrementalAssign(partitions);
      else consumer.assign(partitions);
      if (loop.paused()) consumer.pause(partitions);
      return;
    }
    if (error.code === codes.revokePartitions) {
      const lost = consumer.assignmentLost();
      const finals = new Map<string, number>();
      await Promise.all(
        partitions.map(async (p) => {
          const id = `${p.topic}:${p.partition}`;
          this.#assigned.delete(id);
          const position = await dispatcher.revoke(p.topic, p.partition);
          if (position >= 0) finals.set(id, position);
        }),
      );
      if (!lost && finals.size > 0) {
        try {
          await withTimeout(committer.commit(finals), 5000, "commit on revoke");
        } catch (failure) {
          this.#logger.warn({ err: failure }, "commit on revoke failed");
        }
      }
      for (const id of finals.keys()) committer.forget(id);
      this.#logger.info({ partitions: partitions.map((p) => `${p.topic}:${p.partition}`), lost }, "partitions revoked");
      if (cooperative) consumer.incrementalUnassign(partitions);
      else consumer.unassign();
      return;
    }
    this.#logger.warn({ err: kafkaError("rebalance", error) }, "rebalance error");
    try {
      consumer.unassign();
    } catch {
      // Already closed.
    }
    this.#assigned.clear();
  }

  async #commitQuietly(): Promise<void> {
    if (this.#status !== "running") return;
    try {
      const run = this.#run!;
      await run.committer.commit(run.dispatcher.positions());
    } catch (error) {
      this.#logger.debug({ err: error }, "periodic commit failed; retrying");
    }
  }
}

/**
 * Reads one fixed partition without joining the group; commits under the group id, or hands its
 * position to `offsets` when given (and then commits nothing).
 */
export class KafkaPartitionConsumer implements PartitionConsumer {
  readonly #settings: KafkaSettings;
  readonly #logger: Logger;
  readonly #options: PartitionConsumerOptions;
  readonly #tuning: ConsumerTuning;
  readonly #saver: OffsetSaver | undefined;
  #status: Status = "idle";
  #run: Run | undefined;
  #commitTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(settings: KafkaSettings, logger: Logger, options: PartitionConsumerOptions, tuning: ConsumerTuning = {}) {
    this.#settings = settings;
    this.#options = options;
    this.#tuning = tuning;
    this.#logger = logger.child({ groupId: options.groupId, topic: options.topic, partition: options.partition });
    this.#saver = options.offsets === undefined ? undefined : new OffsetSaver(options.offsets, this.#logger);
  }

  async start(handler: MessageHandler): Promise<void> {
    if (this.#status !== "idle") {
      throw new TetherError("invalid_argument", "partition consumer already started or closed");
    }
    this.#status = "running";
    const { topic, partition } = this.#options;
    const config: Config = {
      ...consumerConfig(this.#settings, this.#logger, this.#options.groupId, `slot-${partition}`),
      // Where to start when the group has no committed offset for this partition.
      "auto.offset.reset": this.#options.fallback === "latest" ? "latest" : "earliest",
    };
    const run = makeRun(this.#settings, config, this.#logger, this.#tuning, {
      handler,
      concurrency: this.#options.concurrency,
      orderBy: this.#options.orderBy,
      ...(this.#options.maxRetryDelayMs === undefined ? {} : { maxRetryDelayMs: this.#options.maxRetryDelayMs }),
      onError: (error, message, attempt) =>
        this.#logger.warn({ err: error, offset: message.offset, attempt }, "handler failed; retrying"),
    });
    this.#run = run;
    const { consumer } = run;
    try {
      await connect(consumer, 15_000);
      if (this.#status !== "running") return;
      const offset = await this.#startOffset(consumer);
      if (this.#status !== "running") return;
      consumer.assign([{ topic, partition, offset }]);
    } catch (error) {
      await this.close(0);
      throw kafkaError("partition consumer start", error);
    }
    run.loop.start();
    this.#commitTimer = setInterval(() => void this.commit().catch(() => {}), this.#tuning.commitIntervalMs ?? 500);
    this.#commitTimer.unref();
  }

  /**
   * The stored offset of the partition (the group's committed one, or what `offsets` loads),
   * else the fallback: -2 for earliest, the partition's current end for latest. The end is
   * fixed here rather than left to librdkafka (-1), so that a message produced once start()
   * resolved is read.
   */
  async #startOffset(consumer: NativeConsumer): Promise<number> {
    const offsets = this.#options.offsets;
    const stored =
      offsets === undefined
        ? await this.#retrying("read committed offset", () => this.#committedOffset(consumer))
        : await offsets.load();
    if (stored !== null) {
      if (!Number.isSafeInteger(stored) || stored < 0) {
        throw new TetherError("invalid_argument", `stored offset ${stored} is not an offset`);
      }
      return stored;
    }
    if (this.#options.fallback !== "latest") return -2;
    return await this.#retrying("read end offset", () => this.#endOffset(consumer));
  }

  /**
   * Read here rather than left to assign() itself: librdkafka gives up for good when that read
   * meets a request-level NOT_COORDINATOR (a group coordinator still loading, or just moved), and
   * the partition stays assigned but is never fetched (confluentinc/librdkafka#5586).
   */
  async #committedOffset(consumer: NativeConsumer): Promise<number | null> {
    const { topic, partition } = this.#options;
    const [entry] = await new Promise<NativeTopicPartition[]>((resolve, reject) => {
      consumer.committed([{ topic, partition }], 5000, (error, result) => {
        if (error) reject(error);
        else resolve(result ?? []);
      });
    });
    if (entry?.error !== undefined && entry.error !== null && entry.error.code !== 0) throw entry.error;
    const offset = entry?.offset;
    return typeof offset === "number" && offset >= 0 ? offset : null;
  }

  #endOffset(consumer: NativeConsumer): Promise<number> {
    const { topic, partition } = this.#options;
    return new Promise<number>((resolve, reject) => {
      consumer.queryWatermarkOffsets(topic, partition, 5000, (error, watermarks) => {
        if (error) reject(error);
        else resolve(watermarks.highOffset);
      });
    });
  }

  /** Runs `read` until it succeeds, for up to a minute while the consumer is running. */
  async #retrying<T>(what: string, read: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + 60_000;
    for (let attempt = 1; ; attempt++) {
      try {
        return await read();
      } catch (error) {
        if (Date.now() > deadline || this.#status !== "running") throw kafkaError(what, error);
        if (attempt === 1)
          this.#logger.warn({ err: kafkaError(what, error), what }, "reading the start offset failed; retrying");
        await sleep(Math.min(2000, 100 * attempt));
      }
    }
  }

  async commit(): Promise<void> {
    const run = this.#run;
    if (run === undefined || this.#status === "closed") return;
    const { topic, partition } = this.#options;
    const position = run.dispatcher.position(topic, partition);
    if (position < 0) return;
    if (this.#saver !== undefined) await this.#saver.save(position);
    else await run.committer.commit(new Map([[`${topic}:${partition}`, position]]));
  }

  close(timeoutMs = 10_000): Promise<void> {
    this.#closing ??= this.#close(timeoutMs);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<void> {
    const wasRunning = this.#status === "running";
    this.#status = "closing";
    clearInterval(this.#commitTimer);
    const run = this.#run;
    if (run === undefined) {
      this.#status = "closed";
      return;
    }
    await windDown(
      run,
      timeoutMs,
      this.#logger,
      wasRunning ? { commit: () => this.commit(), release: () => run.consumer.unassign() } : undefined,
    );
    this.#status = "closed";
    await disconnectQuietly(run.consumer, this.#logger);
  }
}
