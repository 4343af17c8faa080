/**
 * Real Kafka and DynamoDB for integration tests.
 *
 * `useLocalCluster()` returns where to reach them: the addresses in TETHER_KAFKA_BROKERS and
 * TETHER_DYNAMODB_ENDPOINT when set (the test runner sets them, and so can anyone pointing the
 * tests at another cluster), otherwise a local cluster started once for this process and
 * stopped when it exits. `uniquePrefix()` keeps tests in one cluster apart.
 */
import { randomBytes } from "node:crypto";
import { createKafkaBroker } from "../../shared/broker/kafka/index.ts";
import { tetherTopics } from "../../shared/broker/topics.ts";
import type { Broker } from "../../shared/broker/types.ts";
import {
  type DynamoDbSettings,
  type KafkaSettings,
  type ResourceNames,
  resourceNames,
} from "../../shared/config/index.ts";
import { type Logger, silentLogger } from "../../shared/log/index.ts";
import { createDynamoRegistry, ensureTables } from "../../shared/registry/dynamodb/index.ts";
import type { Registry } from "../../shared/registry/types.ts";
import { type LocalCluster, startLocalCluster } from "./cluster.ts";
import { type ClusterEnv, localDynamoDbSettings, localKafkaSettings } from "./settings.ts";

export {
  type LocalCluster,
  type LocalClusterOptions,
  type StopOptions,
  startLocalCluster,
  sweepOrphans,
} from "./cluster.ts";
export {
  type ClusterEnv,
  localDynamoDbSettings,
  localKafkaSettings,
  type TestCommonOptions,
  testCommonConfig,
} from "./settings.ts";

let shared: Promise<LocalCluster> | undefined;

/** Where the integration tests find Kafka and DynamoDB. */
export async function useLocalCluster(): Promise<ClusterEnv> {
  const brokers = process.env.TETHER_KAFKA_BROKERS?.trim();
  const endpoint = process.env.TETHER_DYNAMODB_ENDPOINT?.trim();
  if (brokers && endpoint) return { kafkaBrokers: brokers, dynamodbEndpoint: endpoint };
  shared ??= startLocalCluster({ log: (line) => process.stderr.write(`# ${line}\n`) });
  const cluster = await shared;
  return {
    kafkaBrokers: brokers || cluster.kafkaBrokers,
    dynamodbEndpoint: endpoint || cluster.dynamodbEndpoint,
  };
}

/** A fresh prefix for topic, table and group names, e.g. `t3f9a1c2e-`. */
export function uniquePrefix(): string {
  return `t${randomBytes(4).toString("hex")}-`;
}

export interface TestAdaptersOptions {
  /** Partitions of `replies` (edge slots). Default 8: small, so topic creation stays fast. */
  readonly maxEdges?: number;
  /** Partitions of `requests`, `downlink` and `events`. Default 4. */
  readonly workPartitions?: number;
  readonly logger?: Logger;
}

export interface TestAdapters {
  readonly broker: Broker;
  readonly registry: Registry;
  readonly names: ResourceNames;
  readonly kafka: KafkaSettings;
  readonly dynamodb: DynamoDbSettings;
  readonly maxEdges: number;
  /** Closes the registry. Clients made from `broker` are the caller's to close. */
  close(): Promise<void>;
}

/**
 * Real adapters on the local cluster, with the design's topics and tables created under
 * `prefix` through the project's own code (tetherTopics + ensureTopics, ensureTables).
 */
export async function createTestAdapters(prefix: string, options: TestAdaptersOptions = {}): Promise<TestAdapters> {
  const env = await useLocalCluster();
  const logger = options.logger ?? silentLogger();
  const names = resourceNames(prefix);
  const maxEdges = options.maxEdges ?? 8;
  const kafka = localKafkaSettings(env);
  const dynamodb = localDynamoDbSettings(env);
  const broker = createKafkaBroker({ settings: kafka, logger });
  const admin = broker.admin();
  try {
    await Promise.all([
      admin.ensureTopics(tetherTopics({ names, maxEdges, workPartitions: options.workPartitions ?? 4 })),
      ensureTables({ settings: dynamodb, names, logger }),
    ]);
  } finally {
    await admin.close();
  }
  const registry = createDynamoRegistry({ settings: dynamodb, names, logger });
  return {
    broker,
    registry,
    names,
    kafka,
    dynamodb,
    maxEdges,
    close: () => registry.close(),
  };
}
