/** The broker contract on the real Kafka adapter against a real Kafka 4 broker. */

import { createKafkaBroker } from "../../../shared/broker/kafka/index.ts";
import { resourceNames } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { uniquePrefix, useLocalCluster } from "../../harness/index.ts";
import { brokerContract } from "./contract.ts";

void resourceNames;

brokerContract("kafka", async () => {
  const env = await useLocalCluster();
  const broker = createKafkaBroker({
    settings: {
      brokers: env.kafkaBrokers.split(","),
      clientId: "tether-test",
      auth: "none",
      ssl: false,
      username: undefined,
      password: undefined,
      region: undefined,
      replicationFactor: -1,
    },
    logger: silentLogger(),
  });
  return { broker, prefix: uniquePrefix(), settleMs: 1500, waitMs: 30_000 };
});
