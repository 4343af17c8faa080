import { randomUUID } from "node:crypto";
import type { Broker, BrokerAdmin, IncomingMessage, PartitionConsumer } from "../../shared/broker/types.ts";
import type { Logger } from "../../shared/log/index.ts";

/** One record a tail holds: where it was read and what it decoded to. */
export interface TailEntry<T> {
  /** `partition-offset`: names the record for as long as the topic keeps it. */
  readonly id: string;
  readonly partition: number;
  readonly offset: string;
  /** Broker timestamp, ms since the epoch. */
  readonly timestamp: number;
  readonly key: string | null;
  readonly value: T;
  readonly headers: Readonly<Record<string, string>>;
}

export interface TopicTailOptions<T> {
  readonly broker: Broker;
  readonly admin: BrokerAdmin;
  readonly topic: string;
  /** Records read back from the end of each partition when the tail starts. */
  readonly historyPerPartition: number;
  /** Records held in memory; the oldest go first. */
  readonly capacity: number;
  /** The record's value, or null to skip a record that does not decode. */
  readonly decode: (message: IncomingMessage) => T | null;
  readonly logger: Logger;
}

type Listener<T> = (entry: TailEntry<T>) => void;

/**
 * Follows every partition of one topic for the console: the last records of each partition and
 * then everything new, held in a bounded buffer, handed to subscribers as it arrives. The position
 * is kept in memory only (nothing is committed), so the tail never shows up as a consumer group
 * with lag. Started on first use: an admin API nobody opens the console of reads nothing.
 */
export class TopicTail<T> {
  readonly #options: TopicTailOptions<T>;
  readonly #entries: TailEntry<T>[] = [];
  readonly #listeners = new Set<Listener<T>>();
  readonly #consumers: PartitionConsumer[] = [];
  #started: Promise<void> | undefined;
  #closed = false;

  constructor(options: TopicTailOptions<T>) {
    this.#options = options;
  }

  /** Starts following the topic; resolves once every partition is assigned. Safe to call often. */
  start(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`the tail of ${this.#options.topic} is closed`));
    this.#started ??= this.#start().catch(async (error: unknown) => {
      // The next call tries again, from nothing.
      await this.#stopConsumers();
      this.#started = undefined;
      throw error;
    });
    return this.#started;
  }

  async #start(): Promise<void> {
    const { admin, broker, topic, historyPerPartition } = this.#options;
    const ends = await admin.endOffsets(topic);
    // One group id for the tail's consumers; with `offsets` given, nothing is committed under it.
    const groupId = `tether-admin-tail-${randomUUID()}`;
    for (const [partition, end] of ends.entries()) {
      const from = Math.max(0, end - historyPerPartition);
      const consumer = broker.partitionConsumer({
        groupId,
        topic,
        partition,
        fallback: "earliest",
        orderBy: "partition",
        offsets: { load: async () => from, save: async () => {} },
      });
      this.#consumers.push(consumer);
    }
    // Every partition at once: on Kafka each assignment takes a round trip or two.
    await Promise.all(this.#consumers.map((consumer) => consumer.start(async (message) => this.#add(message))));
  }

  #add(message: IncomingMessage): void {
    let value: T | null;
    try {
      value = this.#options.decode(message);
    } catch {
      value = null;
    }
    if (value === null) return;
    const entry: TailEntry<T> = {
      id: `${message.partition}-${message.offset}`,
      partition: message.partition,
      offset: message.offset,
      timestamp: message.timestamp,
      key: message.key,
      value,
      headers: message.headers,
    };
    this.#entries.push(entry);
    // Trimmed in batches, so that a full buffer does not shift on every record.
    const { capacity } = this.#options;
    if (this.#entries.length > capacity + Math.ceil(capacity / 4)) {
      this.#entries.splice(0, this.#entries.length - capacity);
    }
    for (const listener of this.#listeners) {
      try {
        listener(entry);
      } catch (error) {
        this.#options.logger.warn({ err: error, topic: this.#options.topic }, "tail subscriber failed");
      }
    }
  }

  /** Held records that `accept` takes, newest first, at most `limit`. */
  recent(limit: number, accept: (entry: TailEntry<T>) => boolean = () => true): TailEntry<T>[] {
    const found: TailEntry<T>[] = [];
    const { capacity } = this.#options;
    const oldest = Math.max(0, this.#entries.length - capacity);
    for (let index = this.#entries.length - 1; index >= oldest && found.length < limit; index -= 1) {
      const entry = this.#entries[index];
      if (entry !== undefined && accept(entry)) found.push(entry);
    }
    return found;
  }

  /** The held record with this id, if the buffer still has it. */
  find(id: string): TailEntry<T> | undefined {
    const { capacity } = this.#options;
    const oldest = Math.max(0, this.#entries.length - capacity);
    for (let index = this.#entries.length - 1; index >= oldest; index -= 1) {
      const entry = this.#entries[index];
      if (entry?.id === id) return entry;
    }
    return undefined;
  }

  /** Calls `listener` with every record read from now on; returns the unsubscribe. */
  subscribe(listener: Listener<T>): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  async #stopConsumers(): Promise<void> {
    const consumers = this.#consumers.splice(0);
    const results = await Promise.allSettled(consumers.map((consumer) => consumer.close()));
    for (const result of results) {
      if (result.status === "rejected") {
        this.#options.logger.warn({ err: result.reason, topic: this.#options.topic }, "tail consumer close failed");
      }
    }
  }

  /** Stops following the topic and drops the subscribers. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    await this.#started?.catch(() => {});
    await this.#stopConsumers();
  }
}
