import { sleep } from "../../async/index.ts";
import type { KafkaSettings } from "../../config/index.ts";
import { TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import type { BrokerAdmin, TopicSpec } from "../types.ts";
import { baseConfig } from "./config.ts";
import { CommittedOffsetReader, partitionLag } from "./consumer.ts";
import { call, isAuthFailure, kafkaError, withAuthCause } from "./errors.ts";
import {
  codes,
  type NativeAdmin,
  type NativeError,
  type NativeMetadata,
  type NativeTopicPartition,
  native,
} from "./native.ts";

const opTimeoutMs = 15_000;

type AdminClient = ReturnType<typeof native.AdminClient.create>;

/**
 * Admin calls are rare; an idle admin client lets go of its connections (and the event loop).
 * Kept short on purpose: an admin client left connected across a broker restart (ten seconds
 * idle with lag samples every five) held the broker's start-up back by more than a minute
 * (measured 69 to 83 s against 5.5 s).
 */
const idleCloseMs = 1000;

/**
 * Topic administration and group lag over librdkafka's admin API. The native client is made on
 * first use and dropped after a second without calls, so a forgotten close() cannot keep a
 * process alive.
 */
export class KafkaAdmin implements BrokerAdmin {
  readonly #settings: KafkaSettings;
  readonly #logger: Logger;
  #client: AdminClient | undefined;
  #closed = false;
  #busy = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #authFailure: unknown;

  constructor(settings: KafkaSettings, logger: Logger) {
    this.#settings = settings;
    this.#logger = logger;
  }

  /** Runs one admin operation with a connected client, then arms the idle close. */
  async #use<T>(operation: (admin: AdminClient) => Promise<T>): Promise<T> {
    if (this.#closed) throw new TetherError("closed", "admin client is closed");
    clearTimeout(this.#idleTimer);
    this.#busy += 1;
    try {
      return await operation(this.#admin());
    } catch (error) {
      throw error instanceof TetherError ? withAuthCause(error, this.#authFailure) : error;
    } finally {
      this.#busy -= 1;
      if (this.#busy === 0 && !this.#closed) {
        this.#idleTimer = setTimeout(() => {
          if (this.#busy === 0) this.#dropClient();
        }, idleCloseMs);
        this.#idleTimer.unref();
      }
    }
  }

  /** A reader per read, closed after it (see idleCloseMs). */
  async #readCommitted(groupId: string, partitions: readonly NativeTopicPartition[]): Promise<Map<number, number>> {
    const reader = new CommittedOffsetReader(this.#settings, this.#logger, groupId);
    try {
      return await reader.read(partitions, opTimeoutMs);
    } finally {
      await reader.close(opTimeoutMs);
    }
  }

  #dropClient(): void {
    const client = this.#client;
    this.#client = undefined;
    try {
      client?.disconnect();
    } catch (error) {
      this.#logger.debug({ err: error }, "admin disconnect");
    }
  }

  #admin(): AdminClient {
    if (this.#client === undefined) {
      try {
        this.#client = native.AdminClient.create(baseConfig(this.#settings, this.#logger, "admin"), {
          "event.error": (error: NativeError) => {
            if (isAuthFailure(error)) this.#authFailure = error;
            this.#logger.warn({ err: kafkaError("admin", error) }, "Kafka admin error");
          },
        });
      } catch (error) {
        throw kafkaError("admin connect", error);
      }
    }
    return this.#client;
  }

  /**
   * Creates the topics that are missing and grows the ones with fewer partitions than asked
   * (a raised TETHER_MAX_EDGES or TETHER_WORK_PARTITIONS). Kafka cannot take partitions away:
   * a topic with more than asked keeps them, with a warning. After a topic grows, some keys hash
   * to a new partition, so a device's order holds among the records written before the growth
   * and among those written after it, not across.
   */
  ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    return this.#use(async (admin) => {
      await settleAll(
        topics.map(
          (spec) =>
            new Promise<void>((resolve, reject) => {
              const request = {
                topic: spec.name,
                num_partitions: spec.partitions,
                replication_factor: spec.replicationFactor ?? this.#settings.replicationFactor,
                ...(spec.config === undefined ? {} : { config: { ...spec.config } }),
              };
              admin.createTopic(request, opTimeoutMs, (error) => {
                if (!error || error.code === codes.topicAlreadyExists) resolve();
                else reject(kafkaError(`create topic ${spec.name}`, error, { topic: spec.name }));
              });
            }),
        ),
      );
      // CreateTopics answers once the controller has the topic; brokers learn of it a moment
      // later. Callers produce right away, so wait until every topic is visible.
      const counts = await settleAll(topics.map((spec) => this.#visiblePartitions(admin, spec.name, 1)));
      const grow: Array<{ spec: TopicSpec; from: number }> = [];
      topics.forEach((spec, index) => {
        const partitions = counts[index] ?? 0;
        if (partitions < spec.partitions) grow.push({ spec, from: partitions });
        else if (partitions > spec.partitions) {
          this.#logger.warn(
            { topic: spec.name, partitions, asked: spec.partitions },
            "topic has more partitions than asked; Kafka never removes partitions, so it keeps them",
          );
        }
      });
      await settleAll(grow.map(({ spec, from }) => this.#grow(admin, spec, from)));
    });
  }

  /** Raises one topic to `spec.partitions` and waits until the metadata shows them all. */
  async #grow(admin: AdminClient, spec: TopicSpec, from: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      admin.createPartitions(spec.name, spec.partitions, opTimeoutMs, (error) => {
        // Another process grew it first (to this count or beyond): the wait below confirms it.
        if (!error || error.code === codes.invalidPartitions) resolve();
        else reject(kafkaError(`add partitions to ${spec.name}`, error, { topic: spec.name }));
      });
    });
    const partitions = await this.#visiblePartitions(admin, spec.name, spec.partitions);
    this.#logger.info({ topic: spec.name, from, partitions }, "topic grew");
  }

  /**
   * The topic's partition count once the metadata shows at least `atLeast` of them; throws
   * after the operation timeout if the topic never appears or never reaches that count.
   */
  async #visiblePartitions(admin: AdminClient, topic: string, atLeast: number): Promise<number> {
    const deadline = Date.now() + opTimeoutMs;
    for (;;) {
      let partitions = 0;
      try {
        partitions = await this.#partitionCount(admin, topic);
      } catch (error) {
        if (!(error instanceof TetherError && error.code === "not_found") || Date.now() > deadline) throw error;
      }
      if (partitions >= atLeast) return partitions;
      if (Date.now() > deadline) {
        throw new TetherError("unavailable", `topic ${topic} shows ${partitions} of ${atLeast} partitions`, {
          details: { topic, partitions, asked: atLeast },
        });
      }
      await sleep(50);
    }
  }

  partitionCount(topic: string): Promise<number> {
    return this.#use((admin) => this.#partitionCount(admin, topic));
  }

  async #partitionCount(admin: AdminClient, topic: string): Promise<number> {
    const described = await call<
      Array<{ name: string; partitions: Array<{ partition: number }>; error?: NativeError }>
    >(`describe topic ${topic}`, (done) => admin.describeTopics([topic], { timeout: opTimeoutMs }, done));
    const entry = described.find((item) => item.name === topic);
    if (entry === undefined) throw new TetherError("not_found", `topic ${topic} does not exist`);
    if (entry.error !== undefined && entry.error.code !== 0) {
      throw kafkaError(`describe topic ${topic}`, entry.error, { topic });
    }
    return entry.partitions.length;
  }

  groupLag(groupId: string, topic: string): Promise<number> {
    return this.#use((admin) => this.#groupLag(admin, groupId, topic));
  }

  async #groupLag(admin: AdminClient, groupId: string, topic: string): Promise<number> {
    const count = await this.#partitionCount(admin, topic);
    const partitions = Array.from({ length: count }, (_, partition) => ({ topic, partition }));
    const [committedOffsets, latest, earliest] = await settleAll([
      this.#readCommitted(groupId, partitions),
      this.#listOffsets(admin, partitions, native.AdminClient.OffsetSpec.LATEST),
      this.#listOffsets(admin, partitions, native.AdminClient.OffsetSpec.EARLIEST),
    ]);
    let lag = 0;
    for (let partition = 0; partition < count; partition += 1) {
      lag += partitionLag(latest.get(partition) ?? 0, committedOffsets.get(partition), earliest.get(partition) ?? 0);
    }
    return lag;
  }

  endOffsets(topic: string): Promise<readonly number[]> {
    return this.#use(async (admin) => {
      const count = await this.#partitionCount(admin, topic);
      const partitions = Array.from({ length: count }, (_, partition) => ({ topic, partition }));
      // A topic created a moment ago answers without offsets until its leaders are elected.
      const deadline = Date.now() + opTimeoutMs;
      for (;;) {
        const latest = await this.#listOffsets(admin, partitions, native.AdminClient.OffsetSpec.LATEST);
        const ends = partitions.map(({ partition }) => latest.get(partition) ?? Number.NaN);
        const missing = ends.findIndex((end) => !(Number.isSafeInteger(end) && end >= 0));
        if (missing < 0) return ends;
        if (Date.now() > deadline) {
          throw new TetherError("unavailable", `no end offset for ${topic}:${missing}`, {
            details: { topic, partition: missing },
          });
        }
        await sleep(50);
      }
    });
  }

  async #listOffsets(
    admin: NativeAdmin,
    partitions: Array<{ topic: string; partition: number }>,
    spec: unknown,
  ): Promise<Map<number, number>> {
    const result = await call<Array<{ partition: number; offset: number; error?: NativeError }>>(
      "list partition offsets",
      (done) =>
        admin.listOffsets(
          partitions.map((p) => ({ ...p, offset: spec })),
          { timeout: opTimeoutMs },
          done,
        ),
    );
    return new Map(result.map((entry) => [entry.partition, Number(entry.offset)]));
  }

  ping(): Promise<void> {
    return this.#use(async (admin) => {
      const metadata = await call<NativeMetadata>("ping", (done) =>
        admin.getMetadata({ allTopics: false, timeout: 5000 }, done),
      ).catch((error: unknown) => {
        throw new TetherError("unavailable", "Kafka does not answer", { cause: error });
      });
      if (metadata.brokers.length === 0) throw new TetherError("unavailable", "Kafka reports no brokers");
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    // Disconnecting under a native call in flight frees what its callback still uses.
    const deadline = Date.now() + opTimeoutMs + 1000;
    while (this.#busy > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    this.#dropClient();
  }
}

/**
 * Like Promise.all, but settles only when every native call has called back: the client must
 * not be dropped (idle close) while a sibling call is still running inside librdkafka.
 */
async function settleAll<const T extends readonly unknown[]>(
  promises: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result) => result.status === "rejected");
  if (failed !== undefined) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<unknown>).value) as {
    -readonly [K in keyof T]: Awaited<T[K]>;
  };
}
