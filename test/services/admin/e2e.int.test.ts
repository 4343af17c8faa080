import { tetherTopics } from "../../../shared/broker/index.ts";
import { createKafkaBroker } from "../../../shared/broker/kafka/index.ts";
import { resourceNames } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { createDynamoRegistry, ensureTables } from "../../../shared/registry/dynamodb/index.ts";
import {
  localDynamoDbSettings,
  localKafkaSettings,
  testCommonConfig,
  uniquePrefix,
  useLocalCluster,
} from "../../harness/index.ts";
import { adminEndToEnd } from "./e2e.ts";

adminEndToEnd(
  "Kafka and DynamoDB Local",
  async () => {
    const env = await useLocalCluster();
    const logger = silentLogger();
    const prefix = uniquePrefix();
    const names = resourceNames(prefix);
    const kafka = localKafkaSettings(env, "admin-e2e", { replicationFactor: 1 });
    const dynamodb = localDynamoDbSettings(env);
    const common = testCommonConfig({ names, maxEdges: 4, kafka, dynamodb });
    const broker = createKafkaBroker({ settings: kafka, logger });
    const admin = broker.admin();
    await admin.ensureTopics(tetherTopics({ names, maxEdges: 4, workPartitions: 2, replicationFactor: 1 }));
    await admin.close();
    await ensureTables({ settings: dynamodb, names, logger });
    const registry = createDynamoRegistry({ settings: dynamodb, names, logger });
    return {
      broker,
      registry,
      common,
      workerEnv: {
        TETHER_ENV: "development",
        TETHER_BROKER: "kafka",
        TETHER_KAFKA_BROKERS: env.kafkaBrokers,
        TETHER_REGISTRY: "dynamodb",
        TETHER_DYNAMODB_ENDPOINT: env.dynamodbEndpoint,
        TETHER_NAME_PREFIX: prefix,
      },
      close: () => registry.close(),
    };
  },
  { deliveryMs: 20_000, suiteTimeoutMs: 180_000 },
);
