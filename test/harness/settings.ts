/**
 * Settings fixtures for tests, benchmarks and scripts: Kafka and DynamoDB settings for the
 * local cluster and a whole CommonConfig. Builds plain objects only, so unit tests can import
 * it without loading an adapter.
 */
import {
  type CommonConfig,
  type DynamoDbSettings,
  type KafkaSettings,
  type ResourceNames,
  resourceNames,
} from "../../shared/config/index.ts";

/** Where the integration tests find Kafka and DynamoDB. */
export interface ClusterEnv {
  readonly kafkaBrokers: string;
  readonly dynamodbEndpoint: string;
}

/**
 * Kafka settings for the local (or env-given) cluster: no authentication, no TLS, the broker's
 * replication factor (an empty list gives no brokers). `overrides` replaces single fields, such
 * as a test's own replication factor.
 */
export function localKafkaSettings(
  env: Pick<ClusterEnv, "kafkaBrokers">,
  clientId = "tether-test",
  overrides: Partial<KafkaSettings> = {},
): KafkaSettings {
  return {
    brokers: env.kafkaBrokers
      .split(",")
      .map((broker) => broker.trim())
      .filter((broker) => broker !== ""),
    clientId,
    auth: "none",
    ssl: false,
    username: undefined,
    password: undefined,
    region: undefined,
    replicationFactor: -1,
    ...overrides,
  };
}

/** DynamoDB settings for DynamoDB Local at `env.dynamodbEndpoint`. */
export function localDynamoDbSettings(env: Pick<ClusterEnv, "dynamodbEndpoint">): DynamoDbSettings {
  return { endpoint: env.dynamodbEndpoint, region: "us-east-1" };
}

export interface TestCommonOptions {
  /** Default: the bare names, `resourceNames("")`. */
  readonly names?: ResourceNames;
  /** Default 4. */
  readonly maxEdges?: number;
  /** TETHER_WORK_PARTITIONS; 12 (the services' default) unless given. */
  readonly workPartitions?: number;
  /** Given: the Kafka broker on these settings. Otherwise the in-memory broker. */
  readonly kafka?: KafkaSettings;
  /** Given: the DynamoDB registry on these settings. Otherwise the in-memory registry. */
  readonly dynamodb?: DynamoDbSettings;
}

/**
 * A CommonConfig for tests: development mode, silent logs, and the in-memory adapters unless
 * Kafka or DynamoDB settings are given.
 */
export function testCommonConfig(options: TestCommonOptions = {}): CommonConfig {
  const { kafka, dynamodb } = options;
  return {
    environment: "development",
    logLevel: "silent",
    broker: kafka === undefined ? "memory" : "kafka",
    kafka: kafka ?? localKafkaSettings({ kafkaBrokers: "" }, "test"),
    registry: dynamodb === undefined ? "memory" : "dynamodb",
    dynamodb: dynamodb ?? { endpoint: undefined, region: "us-east-1" },
    names: options.names ?? resourceNames(""),
    maxEdges: options.maxEdges ?? 4,
    workPartitions: options.workPartitions ?? 12,
  };
}
