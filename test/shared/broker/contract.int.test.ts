import { createKafkaBroker } from "../../../shared/broker/kafka/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { localKafkaSettings, uniquePrefix, useLocalCluster } from "../../harness/index.ts";
import { brokerContract } from "./contract.ts";

/** The broker contract on Kafka with pulled consumption (TETHER_KAFKA_CONSUME=pull). */
brokerContract(
  "kafka, pull consumption",
  async () => {
    const env = await useLocalCluster();
    const broker = createKafkaBroker({
      settings: { ...localKafkaSettings(env, "broker-contract", { replicationFactor: 1 }), consumeMode: "pull" },
      logger: silentLogger(),
    });
    // Kafka commits periodically and rebalances take seconds, hence the longer waits.
    return { broker, prefix: uniquePrefix(), settleMs: 3_000, waitMs: 60_000 };
  },
  { testTimeoutMs: 180_000 },
);
