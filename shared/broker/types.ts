/**
 * The broker port. Domain code (edge, worker, admin) depends only on these interfaces;
 * the Kafka adapter and the in-memory adapter implement them, and one contract suite
 * (`test/shared/broker/contract.ts`) holds both to the same behaviour.
 */

/** Kafka headers, as UTF-8 strings. */
export type MessageHeaders = Readonly<Record<string, string>>;

export interface OutgoingMessage {
  readonly topic: string;
  /** Partitioning key; messages with one key land on one partition, in order. */
  readonly key?: string | null;
  readonly value: Buffer | string;
  /** An explicit partition; when omitted the partition comes from the key. */
  readonly partition?: number;
  readonly headers?: MessageHeaders;
}

/** Where a produced message landed, once acknowledged by all in-sync replicas. */
export interface DeliveryReport {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offsets are 64-bit; kept as decimal strings. */
  readonly offset: string;
}

export interface IncomingMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers: MessageHeaders;
  /** Broker timestamp in milliseconds since the epoch. */
  readonly timestamp: number;
}

export interface SendOptions {
  /**
   * Upper bound for the delivery report. Past it the promise rejects with
   * `TetherError("unavailable")`; the message may still land (at-least-once).
   */
  readonly timeoutMs?: number;
}

export interface Producer {
  connect(): Promise<void>;
  /**
   * Produces one message with idempotence and acks=all. Resolves with the delivery report;
   * rejects with `TetherError("unavailable")` when the broker cannot take it in time, or
   * when the local queue is full.
   */
  send(message: OutgoingMessage, options?: SendOptions): Promise<DeliveryReport>;
  /** Waits for every queued message to be delivered, up to `timeoutMs`. */
  flush(timeoutMs: number): Promise<void>;
  /**
   * Sends still waiting for their outcome (a delivery report, a failure or the send() bound);
   * for backpressure. A send that timed out no longer counts, although the client may still
   * hold its record for a while.
   */
  queued(): number;
  /** Flushes (bounded) and disconnects. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * What a handler may resolve with when its work is queued but not yet durable (an answer handed
 * to the producer, its delivery report still to come). The message's key is released at once,
 * so the key's next message can start, but its offset becomes committable only once `durable`
 * resolves; when `durable` rejects, the message is handled again after a backoff.
 */
export interface Pending {
  readonly durable: Promise<void>;
}

/**
 * Called once per message. The consumer commits a message's offset only after its handler
 * resolved (and the `Pending` it returned, if any, became durable) and every earlier message of
 * the same partition was handled too. A handler that rejects is retried with backoff: it blocks
 * its key (or partition) until it succeeds.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: plain `async (m) => { ... }` handlers return Promise<void>.
export type MessageHandler = (message: IncomingMessage) => Promise<void | Pending>;

export interface DispatchOptions {
  /** Handlers running at once across all partitions. Default 1. */
  readonly concurrency?: number;
  /**
   * `key`: messages with the same key run one after another, in offset order; different keys
   * run concurrently. `partition`: one at a time per partition. Default `key`.
   */
  readonly orderBy?: "key" | "partition";
  /**
   * Longest wait before a rejected handler runs again (the wait doubles from 100 ms up to it).
   * Default 5000. A consumer whose handler refuses while a condition holds (the edge's reply
   * slot while its lease cannot be proven) sets it low, so it resumes soon after.
   */
  readonly maxRetryDelayMs?: number;
}

export interface GroupConsumerOptions extends DispatchOptions {
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Where a group with no committed offset starts. Default `earliest`. */
  readonly fromBeginning?: boolean;
}

export interface GroupConsumer {
  /** Joins the group (cooperative-sticky) and starts handing messages to `handler`. */
  start(handler: MessageHandler): Promise<void>;
  /** Partitions this member owns now, as `topic:partition` strings. */
  assignment(): readonly string[];
  /**
   * Messages of the group's topics, all partitions (not only this member's), past the group's
   * committed offsets; where a partition has none, past its earliest message. Asked through
   * the member's own client, so sampling it makes no connection.
   */
  lag(): Promise<number>;
  /**
   * Stops fetching, waits (up to `timeoutMs`) for in-flight handlers, commits what is done,
   * leaves the group. Safe to call twice.
   */
  close(timeoutMs?: number): Promise<void>;
}

/**
 * Where a partition consumer keeps its position instead of the group's committed offsets: the
 * edge keeps its reply slot's offset in its lease row, written only under its own lease
 * generation, so a holder that lost the slot cannot move it.
 */
export interface SlotOffsets {
  /** The offset to start at; `null` when none is stored (the consumer uses its `fallback`). */
  load(): Promise<number | null>;
  /**
   * Stores the next offset to read: every message before it was handled and its `Pending`, if
   * any, became durable. Called on the consumer's commit schedule, one call at a time, with a
   * watermark that only grows. A rejection is logged and the watermark is offered again at the
   * next commit; consumption goes on.
   */
  save(nextOffset: number): Promise<void>;
}

export interface PartitionConsumerOptions extends DispatchOptions {
  /** Offsets are committed under this group id, so a successor resumes where this one stopped. */
  readonly groupId: string;
  readonly topic: string;
  readonly partition: number;
  /**
   * Where to start when there is no stored offset for the partition (or it is out of the log's
   * range). Default `earliest`. `latest` is fixed when `start()` resolves: everything produced
   * after that is read.
   */
  readonly fallback?: "earliest" | "latest";
  /**
   * When given, the position is loaded from and saved to it, and nothing is committed to the
   * broker under `groupId`.
   */
  readonly offsets?: SlotOffsets;
}

/** Reads one fixed partition, without group membership (the edge's reply slot). */
export interface PartitionConsumer {
  start(handler: MessageHandler): Promise<void>;
  /**
   * Commits what is done so far (or saves it, with `offsets`); also happens periodically and on
   * close. Rejects when the broker or `offsets.save` refused.
   */
  commit(): Promise<void>;
  /** Stops at once: no handler is called after this resolves. Safe to call twice. */
  close(timeoutMs?: number): Promise<void>;
}

export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** -1 means the broker's default. */
  readonly replicationFactor?: number;
  readonly config?: Readonly<Record<string, string>>;
}

export interface BrokerAdmin {
  /**
   * Creates topics that do not exist and adds partitions to those with fewer than asked; a
   * topic with more is left as it is (partitions are never removed), with a warning.
   */
  ensureTopics(topics: readonly TopicSpec[]): Promise<void>;
  /** Partition count of a topic; rejects with `not_found` when it does not exist. */
  partitionCount(topic: string): Promise<number>;
  /**
   * Messages not yet consumed by `groupId` on `topic`, summed over partitions.
   * For lag metrics and tests.
   */
  groupLag(groupId: string, topic: string): Promise<number>;
  /**
   * The log end offset (high watermark: the offset the next message will get) of each partition
   * of `topic`, indexed by partition; rejects with `not_found` when the topic does not exist.
   */
  endOffsets(topic: string): Promise<readonly number[]>;
  /** A cheap call that proves the broker answers; rejects with `unavailable` otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Factory for the clients of one broker. */
export interface Broker {
  readonly kind: "kafka" | "memory";
  producer(): Producer;
  groupConsumer(options: GroupConsumerOptions): GroupConsumer;
  partitionConsumer(options: PartitionConsumerOptions): PartitionConsumer;
  admin(): BrokerAdmin;
}

/**
 * A Kafka client's own figures, as its library reports them every `intervalMs` (librdkafka
 * statistics). The adapter reads them; the service decides where they go (its metrics).
 */
export interface ClientStatistics {
  readonly role: "producer" | "consumer";
  /** Messages waiting in the client to be sent (producers) or handed over (consumers). */
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  readonly brokers: readonly BrokerStatistics[];
  /** Partitions this client consumes, with how far behind their end it is. */
  readonly partitions: readonly PartitionStatistics[];
}

export interface BrokerStatistics {
  /** `host:port/id`, as the client names the connection. */
  readonly broker: string;
  /** Request round trip, in seconds, over the last interval. */
  readonly rttAvg: number;
  readonly rttP99: number;
  /** Time a produced message waited in the client's queue before it was sent, in seconds. */
  readonly internalLatencyAvg: number;
  readonly internalLatencyP99: number;
}

export interface PartitionStatistics {
  readonly topic: string;
  readonly partition: number;
  /** Messages between the consumer's position and the partition's end; -1 when unknown. */
  readonly lag: number;
}

/** Where a Kafka adapter sends its clients' statistics; absent, none are collected. */
export interface StatisticsListener {
  /** How often each client reports; librdkafka's `statistics.interval.ms`. */
  readonly intervalMs: number;
  onStatistics(statistics: ClientStatistics): void;
}
