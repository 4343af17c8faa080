import { ErrorCode, TetherError } from "../errors/index.ts";

/** The environment as read once in a service's `main.ts`. */
export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Collects configuration problems so that a process reports every bad variable at once
 * instead of failing on the first.
 */
export class ConfigReader {
  readonly #env: Env;
  readonly #problems: string[] = [];

  constructor(env: Env) {
    this.#env = env;
  }

  /** The raw value, with empty strings treated as unset. */
  raw(name: string): string | undefined {
    const value = this.#env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  optionalString(name: string): string | undefined {
    return this.raw(name);
  }

  requiredString(name: string, why: string): string {
    const value = this.raw(name);
    if (value === undefined) {
      this.problem(name, `is required ${why}`);
      return "";
    }
    return value;
  }

  integer(name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value)) {
      this.problem(name, `must be a whole number, got ${JSON.stringify(value)}`);
      return fallback;
    }
    const parsed = Number(value);
    const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = range;
    if (parsed < min || parsed > max) {
      this.problem(name, `must be between ${min} and ${max}, got ${parsed}`);
      return fallback;
    }
    return parsed;
  }

  port(name: string, fallback: number): number {
    return this.integer(name, fallback, { min: 0, max: 65535 });
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const lower = value.toLowerCase();
    if (["1", "true", "yes", "on"].includes(lower)) return true;
    if (["0", "false", "no", "off"].includes(lower)) return false;
    this.problem(name, `must be true or false, got ${JSON.stringify(value)}`);
    return fallback;
  }

  oneOf<const T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    this.problem(name, `must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
    return fallback;
  }

  list(name: string): string[] {
    const value = this.raw(name);
    if (value === undefined) return [];
    return value
      .split(",")
      .map((part) => part.trim())
      .filter((part) => part !== "");
  }

  /** Records a problem found by a cross-field check. */
  problem(name: string, message: string): void {
    this.#problems.push(`${name} ${message}`);
  }

  /** Throws one error naming every bad variable, or returns the value frozen. */
  finish<T extends object>(value: T): Readonly<T> {
    if (this.#problems.length > 0) {
      throw new TetherError(ErrorCode.InvalidConfig, `invalid configuration:\n  - ${this.#problems.join("\n  - ")}`, {
        details: { problems: [...this.#problems] },
      });
    }
    return deepFreeze(value);
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Settings every service shares: which adapters to use and how to reach them. */
export interface CommonConfig {
  /** `development` unlocks conveniences that must never run in production (auth mode `none`). */
  readonly environment: "production" | "development";
  readonly logLevel: string;
  readonly broker: "memory" | "kafka";
  readonly kafka: KafkaSettings;
  readonly registry: "memory" | "dynamodb";
  readonly dynamodb: DynamoDbSettings;
  /** Kafka topic, consumer group and DynamoDB table names; prefixed per environment. */
  readonly names: ResourceNames;
  /**
   * Partitions of `replies`, hence the number of edge slots. Raising it grows `replies` at the
   * next start; lowering it never shrinks the topic.
   */
  readonly maxEdges: number;
  /** Partitions of `requests`, `downlink` and `events`: the most workers that share the load. Grows topics like maxEdges. */
  readonly workPartitions: number;
}

/** Producer compression codecs (librdkafka compression.type). */
export const kafkaCompressions = ["none", "lz4", "zstd", "gzip", "snappy"] as const;
export type KafkaCompression = (typeof kafkaCompressions)[number];

export interface KafkaSettings {
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** `none` for local Kafka, `aws-iam` for MSK IAM (OAUTHBEARER), `plain` for SASL/PLAIN over TLS. */
  readonly auth: "none" | "aws-iam" | "plain";
  readonly ssl: boolean;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly region: string | undefined;
  /** Replication factor used when the service creates topics. */
  readonly replicationFactor: number;
  /**
   * How long producers wait to fill a batch (librdkafka linger.ms). 0, the edge's default, is the
   * lowest latency; a few milliseconds trade latency for fewer, larger produce requests at high
   * rates. The worker defaults to 1: its answers to one edge all go to that edge's partition.
   */
  readonly lingerMs?: number;
  /**
   * How consumers take messages from librdkafka: `pull` (default), batches taken on the libuv
   * pool when librdkafka signals its queue, gathering more per call under load (measured at
   * saturation: about 17% more round trips/s and a quarter less CPU per round trip than
   * stream, and the lower p99 at 1,000 round trips/s); `stream`, the client's consume thread
   * handing each message over as it arrives (p50 at 1,000 round trips/s about 0.3 ms lower).
   */
  readonly consumeMode?: "stream" | "pull";
  /**
   * Producer compression (librdkafka compression.type). Default `none`: with linger 0 a batch
   * mostly holds one small record, which compression does not shrink, and the broker then
   * decompresses every batch to validate it. Worth it with a linger that fills batches.
   */
  readonly compression?: KafkaCompression;
  /**
   * How often each Kafka client reports its statistics (queue depth, broker round trips,
   * consumer lag) to the service's metrics, in ms; 0 turns them off. Default 15 000.
   */
  readonly statisticsIntervalMs?: number;
}

export interface DynamoDbSettings {
  readonly endpoint: string | undefined;
  readonly region: string;
  /**
   * Most DynamoDB requests one process has in flight; more wait their turn instead of failing.
   * The registry's default (64) when omitted.
   */
  readonly maxConcurrency?: number;
  /**
   * Bound of one fenced lease call (acquireFree, takeOver, renewHeld, commitOffset,
   * releaseHeld): a single attempt on a fresh connection that rejects once this passed, so the
   * lease holder's own retry loop decides what happens next. The registry's default (1000 ms)
   * when omitted.
   */
  readonly leaseTimeoutMs?: number;
}

export interface ResourceNames {
  readonly requestsTopic: string;
  readonly repliesTopic: string;
  readonly downlinkTopic: string;
  readonly eventsTopic: string;
  /** Edge liveness beacons: one partition, short retention, read from its end. */
  readonly edgesTopic: string;
  /** Group id under which edges read the beacons (they never commit: each reads from the end). */
  readonly beaconsGroup: string;
  readonly dlqTopic: string;
  readonly connectionsTable: string;
  readonly edgesTable: string;
  readonly outboxTable: string;
  /** Consumer group of `requests`: the workers' handlers. */
  readonly workersGroup: string;
  /** Consumer group of `downlink`: the workers' push router. */
  readonly routerGroup: string;
  /**
   * Start of every reply slot's consumer group; slot n's group is {@link slotGroup}`(names, n)`.
   * With `*` appended it matches exactly those groups (the edge's IAM grant).
   */
  readonly slotGroupPrefix: string;
}

/** Topic, table and consumer group names for a prefix ("" gives the bare names of the design). */
export function resourceNames(prefix = ""): ResourceNames {
  return {
    requestsTopic: `${prefix}requests`,
    repliesTopic: `${prefix}replies`,
    downlinkTopic: `${prefix}downlink`,
    eventsTopic: `${prefix}events`,
    edgesTopic: `${prefix}edges`,
    beaconsGroup: `${prefix}edge-beacons`,
    dlqTopic: `${prefix}requests.dlq`,
    connectionsTable: `${prefix}connections`,
    edgesTable: `${prefix}edges`,
    outboxTable: `${prefix}outbox`,
    workersGroup: `${prefix}workers`,
    routerGroup: `${prefix}router`,
    slotGroupPrefix: `${prefix}edge-slot-`,
  };
}

/**
 * The consumer group under which the edge holding reply slot `slot` commits its progress on
 * that partition of `replies`. Kept stable: a new name would lose the committed offsets.
 */
export function slotGroup(names: Pick<ResourceNames, "slotGroupPrefix">, slot: number): string {
  return `${names.slotGroupPrefix}${slot}`;
}

/** Shared settings whose default depends on the service. */
export interface CommonDefaults {
  /** TETHER_KAFKA_LINGER_MS when unset. Default 0. */
  readonly lingerMs?: number;
}

/** Reads the settings every service shares. Problems are recorded on `reader`. */
export function readCommonConfig(reader: ConfigReader, clientId: string, defaults: CommonDefaults = {}): CommonConfig {
  const broker = reader.oneOf("TETHER_BROKER", ["memory", "kafka"] as const, "memory");
  const registry = reader.oneOf("TETHER_REGISTRY", ["memory", "dynamodb"] as const, "memory");
  const brokers = reader.list("TETHER_KAFKA_BROKERS");
  if (broker === "kafka" && brokers.length === 0) {
    reader.problem("TETHER_KAFKA_BROKERS", "is required when TETHER_BROKER=kafka (host:port, comma-separated)");
  }
  const auth = reader.oneOf("TETHER_KAFKA_AUTH", ["none", "aws-iam", "plain"] as const, "none");
  const username = reader.optionalString("TETHER_KAFKA_USERNAME");
  const password = reader.optionalString("TETHER_KAFKA_PASSWORD");
  if (auth === "plain" && (username === undefined || password === undefined)) {
    reader.problem("TETHER_KAFKA_USERNAME", "and TETHER_KAFKA_PASSWORD are required when TETHER_KAFKA_AUTH=plain");
  }
  const region = reader.optionalString("AWS_REGION") ?? reader.optionalString("AWS_DEFAULT_REGION");
  if (auth === "aws-iam" && region === undefined) {
    reader.problem("AWS_REGION", "is required when TETHER_KAFKA_AUTH=aws-iam");
  }
  const prefix = reader.string("TETHER_NAME_PREFIX", "");
  const environment = reader.oneOf("TETHER_ENV", ["production", "development"] as const, "production");
  if (!/^[A-Za-z0-9._-]*$/.test(prefix)) {
    reader.problem("TETHER_NAME_PREFIX", "may only hold A-Z a-z 0-9 . _ -");
  }
  const names = resourceNames(prefix);
  return {
    environment,
    logLevel: reader.oneOf(
      "TETHER_LOG_LEVEL",
      ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const,
      "info",
    ),
    broker,
    kafka: {
      brokers,
      clientId: reader.string("TETHER_KAFKA_CLIENT_ID", clientId),
      auth,
      ssl: reader.boolean("TETHER_KAFKA_SSL", auth !== "none"),
      username,
      password,
      region,
      replicationFactor: reader.integer("TETHER_KAFKA_REPLICATION_FACTOR", -1, { min: -1, max: 5 }),
      lingerMs: reader.integer("TETHER_KAFKA_LINGER_MS", defaults.lingerMs ?? 0, { min: 0, max: 1000 }),
      consumeMode: reader.oneOf("TETHER_KAFKA_CONSUME", ["pull", "stream"] as const, "pull"),
      compression: reader.oneOf("TETHER_KAFKA_COMPRESSION", kafkaCompressions, "none"),
      statisticsIntervalMs: reader.integer("TETHER_KAFKA_STATS_INTERVAL_MS", 15_000, { min: 0, max: 3_600_000 }),
    },
    registry,
    dynamodb: {
      endpoint: reader.optionalString("TETHER_DYNAMODB_ENDPOINT"),
      region: region ?? "us-east-1",
      maxConcurrency: reader.integer("TETHER_DYNAMODB_MAX_CONCURRENCY", 64, { min: 1, max: 4096 }),
      leaseTimeoutMs: reader.integer("TETHER_DYNAMODB_LEASE_TIMEOUT_MS", 1000, { min: 50, max: 60_000 }),
    },
    names: {
      ...names,
      // Set by the CDK stack, which lets CloudFormation name the tables.
      connectionsTable: reader.string("TETHER_CONNECTIONS_TABLE", names.connectionsTable),
      edgesTable: reader.string("TETHER_EDGES_TABLE", names.edgesTable),
      outboxTable: reader.string("TETHER_OUTBOX_TABLE", names.outboxTable),
    },
    maxEdges: reader.integer("TETHER_MAX_EDGES", 64, { min: 1, max: 4096 }),
    workPartitions: reader.integer("TETHER_WORK_PARTITIONS", 12, { min: 1, max: 1000 }),
  };
}
