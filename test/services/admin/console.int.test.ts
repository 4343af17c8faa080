/**
 * The console's /v1 routes on Kafka and DynamoDB Local: the tails of `events` and `requests.dlq`
 * read real partitions, replays land on the real `requests` topic, outboxes come from the table.
 */
import type { TestContext } from "node:test";
import { createTestAdapters, uniquePrefix } from "../../harness/index.ts";
import { type ConsoleAdapters, consoleContract } from "./console-contract.ts";

const MAX_EDGES = 4;
const WORK_PARTITIONS = 3;

async function kafkaAdapters(t: TestContext): Promise<ConsoleAdapters> {
  const adapters = await createTestAdapters(uniquePrefix(), { maxEdges: MAX_EDGES, workPartitions: WORK_PARTITIONS });
  const admin = adapters.broker.admin();
  const producer = adapters.broker.producer();
  await producer.connect();
  // After the app, which the contract closes first: the tails stop before the clients they share.
  t.after(async () => {
    await producer.close();
    await admin.close();
    await adapters.close();
  });
  return {
    broker: adapters.broker,
    admin,
    producer,
    registry: adapters.registry,
    names: adapters.names,
    maxEdges: MAX_EDGES,
    workPartitions: WORK_PARTITIONS,
    deliveryMs: 20_000,
  };
}

consoleContract("Kafka and DynamoDB Local", kafkaAdapters);
