/**
 * Real Kafka and DynamoDB for integration tests.
 *
 * `useLocalCluster()` returns where to reach them: the addresses in TETHER_KAFKA_BROKERS and
 * TETHER_DYNAMODB_ENDPOINT when set (the test runner sets them, and so can anyone pointing the
 * tests at another cluster), otherwise a local cluster started once for this process and
 * stopped when it exits. `uniquePrefix()` keeps tests in one cluster apart.
 */
import { randomBytes } from "node:crypto";
import { type LocalCluster, startLocalCluster } from "./cluster.ts";

export { type LocalCluster, type LocalClusterOptions, type StopOptions, startLocalCluster } from "./cluster.ts";

export interface ClusterEnv {
  readonly kafkaBrokers: string;
  readonly dynamodbEndpoint: string;
}

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
