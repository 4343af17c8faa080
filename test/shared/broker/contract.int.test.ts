import { createKafkaBroker } from "../../../shared/broker/kafka/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { uniquePrefix, useLocalCluster } from "../../harness/index.ts";
import { brokerContract } from "./contract.ts";

brokerContract(
  "kafka",
  async () => {
    const env = await useLocalCluster();
    const broker = await createKafkaBroker({
      settings: {
        brokers: env.kafkaBrokers.split(","),
        clientId: "broker-contract",
        auth: "none",
        ssl: false,
        username: undefined,
        password: undefined,
        region: undefined,
        replicationFactor: 1,
      },
      logger: silentLogger(),
    });
    // Kafka commits periodically and rebalances take seconds, hence the longer waits.
    return { broker, prefix: uniquePrefix(), settleMs: 3_000, waitMs: 60_000 };
  },
  { testTimeoutMs: 180_000 },
);
