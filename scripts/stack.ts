/**
 * `npm run stack`: starts the local cluster by hand (Kafka 4 in KRaft mode and DynamoDB Local,
 * on free loopback ports), creates the design's topics and tables with their bare names, prints
 * what to export so services and tests use it, and runs until Ctrl-C.
 *
 *   TETHER_MAX_EDGES   partitions of `replies` (default 64)
 */

import { createKafkaBroker } from "../shared/broker/kafka/index.ts";
import { tetherTopics } from "../shared/broker/topics.ts";
import { ConfigReader, resourceNames } from "../shared/config/index.ts";
import { createLogger } from "../shared/log/index.ts";
import { ensureTables } from "../shared/registry/dynamodb/index.ts";
import { localDynamoDbSettings, localKafkaSettings, startLocalCluster } from "../test/harness/index.ts";

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<void> {
  const reader = new ConfigReader(process.env);
  const maxEdges = reader.integer("TETHER_MAX_EDGES", 64, { min: 1, max: 4096 });
  reader.finish({});
  const logger = createLogger({ name: "stack", level: "warn" });
  const cluster = await startLocalCluster({ log: say, handleSignals: false });
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    say(`\n${signal}: stopping the local cluster`);
    void cluster.stop().finally(() => {
      say("stopped");
      process.exit(0);
    });
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  const names = resourceNames("");
  const dynamodb = localDynamoDbSettings(cluster);
  const admin = createKafkaBroker({ settings: localKafkaSettings(cluster, "tether-stack"), logger }).admin();
  try {
    await Promise.all([
      admin.ensureTopics(tetherTopics({ names, maxEdges })),
      ensureTables({ settings: dynamodb, names, logger }),
    ]);
  } finally {
    await admin.close();
  }
  say(`topics ${Object.values(names).slice(0, 5).join(", ")} (replies: ${maxEdges} partitions) and tables ready`);
  say("");
  say("# run services or tests against this cluster with:");
  say("export TETHER_BROKER=kafka");
  say(`export TETHER_KAFKA_BROKERS=${cluster.kafkaBrokers}`);
  say("export TETHER_REGISTRY=dynamodb");
  say(`export TETHER_DYNAMODB_ENDPOINT=${cluster.dynamodbEndpoint}`);
  say(`export TETHER_MAX_EDGES=${maxEdges}`);
  say("export AWS_REGION=us-east-1");
  say("");
  say("Ctrl-C stops the cluster.");
  setInterval(() => {}, 1 << 30);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
