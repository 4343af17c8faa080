import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  type DynamoDBClient,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import type { DynamoDbSettings, ResourceNames } from "../../config/index.ts";
import { TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import { createDynamoClient } from "./client.ts";
import { dynamoError } from "./common.ts";
import { byEdgeIndex } from "./connections.ts";

export interface EnsureTablesOptions {
  readonly settings: DynamoDbSettings;
  readonly names: ResourceNames;
  readonly logger: Logger;
  /** Bound for every table to become ACTIVE. Default 60 s. */
  readonly timeoutMs?: number;
}

/**
 * Creates the three registry tables when missing (on demand, GSI `byEdge`, TTL on `expiresAt`)
 * and waits until they are ACTIVE. Idempotent. In AWS the CDK stack owns the tables; this is
 * for DynamoDB Local and tests.
 */
export async function ensureTables(options: EnsureTablesOptions): Promise<void> {
  const { names, logger } = options;
  const client = createDynamoClient(options.settings, { requestTimeoutMs: 10_000 });
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  const tables = [
    {
      TableName: names.connectionsTable,
      AttributeDefinitions: [
        { AttributeName: "deviceId", AttributeType: "S" as const },
        { AttributeName: "edgeId", AttributeType: "S" as const },
      ],
      KeySchema: [{ AttributeName: "deviceId", KeyType: "HASH" as const }],
      GlobalSecondaryIndexes: [
        {
          IndexName: byEdgeIndex,
          KeySchema: [{ AttributeName: "edgeId", KeyType: "HASH" as const }],
          Projection: { ProjectionType: "ALL" as const },
        },
      ],
    },
    {
      TableName: names.edgesTable,
      AttributeDefinitions: [{ AttributeName: "slot", AttributeType: "N" as const }],
      KeySchema: [{ AttributeName: "slot", KeyType: "HASH" as const }],
    },
    {
      TableName: names.outboxTable,
      AttributeDefinitions: [
        { AttributeName: "deviceId", AttributeType: "S" as const },
        { AttributeName: "messageId", AttributeType: "S" as const },
      ],
      KeySchema: [
        { AttributeName: "deviceId", KeyType: "HASH" as const },
        { AttributeName: "messageId", KeyType: "RANGE" as const },
      ],
    },
  ];
  try {
    await Promise.all(
      tables.map(async (table) => {
        try {
          await client.send(new CreateTableCommand({ ...table, BillingMode: "PAY_PER_REQUEST" }));
          logger.info({ table: table.TableName }, "DynamoDB table created");
        } catch (error) {
          if ((error as { name?: unknown })?.name !== "ResourceInUseException") {
            throw dynamoError(`create table ${table.TableName}`, error);
          }
        }
        await waitActive(client, table.TableName, deadline);
        await ensureTtl(client, table.TableName);
      }),
    );
  } finally {
    client.destroy();
  }
}

async function waitActive(client: DynamoDBClient, table: string, deadline: number): Promise<void> {
  for (;;) {
    try {
      const described = await client.send(new DescribeTableCommand({ TableName: table }));
      const indexesReady = (described.Table?.GlobalSecondaryIndexes ?? []).every((i) => i.IndexStatus === "ACTIVE");
      if (described.Table?.TableStatus === "ACTIVE" && indexesReady) return;
    } catch (error) {
      if ((error as { name?: unknown })?.name !== "ResourceNotFoundException") {
        throw dynamoError(`describe table ${table}`, error);
      }
    }
    if (Date.now() > deadline) throw new TetherError("timeout", `table ${table} did not become ACTIVE in time`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function ensureTtl(client: DynamoDBClient, table: string): Promise<void> {
  try {
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: table }));
    const status = ttl.TimeToLiveDescription?.TimeToLiveStatus;
    if (status === "ENABLED" || status === "ENABLING") return;
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: table,
        TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
      }),
    );
  } catch (error) {
    // Enabling twice at once answers "already enabled": the goal is met.
    if ((error as { name?: unknown })?.name === "ValidationException") return;
    throw dynamoError(`enable TTL on ${table}`, error);
  }
}
