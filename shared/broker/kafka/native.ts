/**
 * The parts of `@confluentinc/kafka-javascript` (its callback API, on librdkafka) this adapter
 * uses, typed narrowly. Some methods used here (incremental assignment, commits with a
 * callback, the queue wake-up callback) exist in the library but not in its type definitions.
 */
import { RdKafka } from "@confluentinc/kafka-javascript";

export type Config = Record<string, string | number | boolean | ((...args: never[]) => unknown)>;

export interface NativeError {
  readonly message: string;
  readonly code: number;
  readonly isRetriable?: boolean;
  readonly isFatal?: boolean;
}

export interface NativeTopicPartition {
  topic: string;
  partition: number;
  offset?: number;
  error?: NativeError;
}

export interface NativeMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key?: Buffer | string | null;
  readonly value: Buffer | null;
  readonly timestamp?: number;
  readonly headers?: ReadonlyArray<Readonly<Record<string, Buffer | string>>>;
}

export interface NativeDeliveryReport {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly opaque?: unknown;
}

export interface NativeMetadata {
  readonly brokers: ReadonlyArray<{ id: number; host: string; port: number }>;
  readonly topics: ReadonlyArray<{ name: string; partitions: ReadonlyArray<{ id: number }> }>;
}

type Callback<T = void> = (error: NativeError | null | undefined, value: T) => void;

interface NativeClient {
  connect(options: { timeout?: number; topic?: string; allTopics?: boolean } | null, callback: Callback<unknown>): void;
  isConnected(): boolean;
  getMetadata(
    options: { timeout?: number; topic?: string; allTopics?: boolean },
    callback: Callback<NativeMetadata>,
  ): void;
  on(event: "event.error", listener: (error: NativeError) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
}

export interface NativeProducer extends NativeClient {
  produce(
    topic: string,
    partition: number | null,
    value: Buffer,
    key: string | null | undefined,
    timestamp: number | null | undefined,
    opaque: unknown,
    headers: Array<Record<string, string>> | undefined,
  ): unknown;
  flush(timeoutMs: number, callback: (error: NativeError | null | undefined) => void): void;
  disconnect(timeoutMs: number, callback: Callback<unknown>): void;
  setPollInBackground(enabled: boolean): void;
  on(
    event: "delivery-report",
    listener: (error: NativeError | null | undefined, report: NativeDeliveryReport) => void,
  ): void;
  on(event: "event.error", listener: (error: NativeError) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
}

export interface NativeConsumer extends NativeClient {
  disconnect(callback: Callback<unknown>): void;
  subscribe(topics: string[]): void;
  unsubscribe(): void;
  assign(partitions: NativeTopicPartition[]): void;
  unassign(): void;
  incrementalAssign(partitions: NativeTopicPartition[]): void;
  incrementalUnassign(partitions: NativeTopicPartition[]): void;
  assignments(): NativeTopicPartition[];
  rebalanceProtocol(): string;
  assignmentLost(): boolean;
  consume(count: number, callback: Callback<NativeMessage[]>): void;
  /**
   * Without a count: starts the binding's consume thread, which blocks in librdkafka's poll and
   * hands each message to `callback` on the event loop as it arrives (once per consumer).
   */
  consume(callback: (error: NativeError | null | undefined, message?: NativeMessage) => void): void;
  setDefaultConsumeTimeout(timeoutMs: number): void;
  /** Pause of the consume thread after a poll that timed out. */
  setDefaultConsumeLoopTimeoutDelay(delayMs: number): void;
  setDefaultIsTimeoutOnlyForFirstMessage(enabled: boolean): void;
  commitCb(partitions: NativeTopicPartition[], callback: (error: NativeError | null | undefined) => void): void;
  committed(partitions: NativeTopicPartition[], timeoutMs: number, callback: Callback<NativeTopicPartition[]>): void;
  /** Asks the partition's leader for its low and high watermarks. */
  queryWatermarkOffsets(
    topic: string,
    partition: number,
    timeoutMs: number,
    callback: Callback<{ highOffset: number; lowOffset: number }>,
  ): void;
  pause(partitions: NativeTopicPartition[]): void;
  resume(partitions: NativeTopicPartition[]): void;
  /** The application's position (next offset to hand out) of each partition, -1001 when unknown. */
  position(partitions?: NativeTopicPartition[]): NativeTopicPartition[];
}

export interface NativeAdmin {
  createTopic(
    topic: { topic: string; num_partitions: number; replication_factor: number; config?: Record<string, string> },
    timeoutMs: number,
    callback: (error: NativeError | null | undefined) => void,
  ): void;
  /** Raises a topic's partition count to `totalPartitions` (Kafka never lowers it). */
  createPartitions(
    topic: string,
    totalPartitions: number,
    timeoutMs: number,
    callback: (error: NativeError | null | undefined) => void,
  ): void;
  describeTopics(
    topics: string[],
    options: { timeout: number },
    callback: Callback<Array<{ name: string; partitions: Array<{ partition: number }>; error?: NativeError }>>,
  ): void;
  listOffsets(
    partitions: Array<{ topic: string; partition: number; offset: unknown }>,
    options: { timeout: number },
    callback: Callback<Array<{ topic: string; partition: number; offset: number; error?: NativeError }>>,
  ): void;
  disconnect(): void;
}

interface NativeModule {
  Producer: new (config: Config) => NativeProducer;
  KafkaConsumer: new (config: Config, topicConfig?: Config) => NativeConsumer;
  AdminClient: {
    create(config: Config, handlers?: Record<string, (...args: never[]) => void>): NativeAdmin & NativeClient;
    OffsetSpec: { EARLIEST: unknown; LATEST: unknown };
  };
  librdkafkaVersion: string;
}

/** The library's callback API. */
export const native = RdKafka as unknown as NativeModule;

/** librdkafka error codes this adapter acts on. */
export const codes = {
  destroyed: -197,
  transport: -195,
  resolve: -193,
  messageTimedOut: -192,
  partitionEof: -191,
  unknownPartition: -190,
  unknownTopic: -188,
  allBrokersDown: -187,
  invalidArgument: -186,
  timedOut: -185,
  queueFull: -184,
  assignPartitions: -175,
  revokePartitions: -174,
  state: -172,
  authentication: -169,
  noOffset: -168,
  fatal: -150,
  unknownTopicOrPartition: 3,
  requestTimedOut: 7,
  messageTooLarge: 10,
  topicAuthorizationFailed: 29,
  groupAuthorizationFailed: 30,
  clusterAuthorizationFailed: 31,
  topicAlreadyExists: 36,
  invalidPartitions: 37,
  invalidReplicationFactor: 38,
  invalidConfig: 40,
  policyViolation: 44,
  saslAuthenticationFailed: 58,
  groupIdNotFound: 69,
} as const;
