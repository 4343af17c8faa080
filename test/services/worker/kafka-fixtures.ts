import type { WorkerConfig } from "../../../services/worker/config.ts";
import { createBroker, tetherTopics } from "../../../shared/broker/index.ts";
import type { Broker } from "../../../shared/broker/types.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { uniquePrefix, useLocalCluster } from "../../harness/index.ts";
import { testConfig } from "./fixtures.ts";

export interface KafkaEnv {
  readonly config: WorkerConfig;
  readonly broker: Broker;
  /** Environment for a worker process pointed at the same cluster and names. */
  readonly processEnv: Record<string, string>;
}

/**
 * A fresh set of topics on the local cluster (real Kafka, DynamoDB Local), a worker
 * configuration naming them, and a Kafka broker to reach them.
 */
export async function kafkaEnv(overrides: Record<string, string> = {}, workPartitions = 6): Promise<KafkaEnv> {
  const cluster = await useLocalCluster();
  const processEnv: Record<string, string> = {
    TETHER_NAME_PREFIX: uniquePrefix(),
    TETHER_BROKER: "kafka",
    TETHER_KAFKA_BROKERS: cluster.kafkaBrokers,
    TETHER_REGISTRY: "dynamodb",
    TETHER_DYNAMODB_ENDPOINT: cluster.dynamodbEndpoint,
    AWS_REGION: "us-east-1",
    // The count the topics are made with below, so a worker process does not grow them.
    TETHER_WORK_PARTITIONS: String(workPartitions),
    ...overrides,
  };
  const config = testConfig(processEnv.TETHER_NAME_PREFIX ?? "", processEnv);
  const broker = await createBroker(config, silentLogger());
  const admin = broker.admin();
  try {
    await admin.ensureTopics(tetherTopics({ names: config.names, maxEdges: config.maxEdges, workPartitions }));
  } finally {
    await admin.close();
  }
  return { config, broker, processEnv };
}
