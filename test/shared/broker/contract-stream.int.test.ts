/** The broker contract on Kafka with event-driven consumption (TETHER_KAFKA_CONSUME=stream). */
import { createKafkaBroker } from "../../../shared/broker/kafka/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { localKafkaSettings, uniquePrefix, useLocalCluster } from "../../harness/index.ts";
import { brokerContract } from "./contract.ts";

brokerContract(
  "kafka, stream consumption",
  async () => {
    const env = await useLocalCluster();
    const broker = createKafkaBroker({
      settings: {
        ...localKafkaSettings(env, "broker-contract-stream", { replicationFactor: 1 }),
        consumeMode: "stream",
      },
      logger: silentLogger(),
    });
    return { broker, prefix: uniquePrefix(), settleMs: 3_000, waitMs: 60_000 };
  },
  { testTimeoutMs: 180_000 },
);
