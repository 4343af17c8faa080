import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
  GetItemCommand,
  ResourceInUseException,
  UpdateItemCommand,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import { ErrorCode, TetherError } from "../../../shared/errors/index.ts";
import type { KvItem, KvPut, KvPutResult, KvStore } from "./kv.ts";

export interface DynamoKvSettings {
  readonly table: string;
  /** DynamoDB Local's address; unset in AWS. */
  readonly endpoint?: string | undefined;
  readonly region: string;
}

function clientConfig(settings: DynamoKvSettings): DynamoDBClientConfig {
  return settings.endpoint === undefined
    ? { region: settings.region }
    : {
        region: settings.region,
        endpoint: settings.endpoint,
        // DynamoDB Local accepts any credentials; keep the SDK from looking for real ones.
        credentials: { accessKeyId: "local", secretAccessKey: "local" },
      };
}

/** Creates the example table (pk deviceId, sk key; on-demand) unless it exists. */
export async function ensureKvTable(settings: DynamoKvSettings): Promise<void> {
  const client = new DynamoDBClient(clientConfig(settings));
  try {
    await client.send(
      new CreateTableCommand({
        TableName: settings.table,
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: [
          { AttributeName: "deviceId", AttributeType: "S" },
          { AttributeName: "key", AttributeType: "S" },
        ],
        KeySchema: [
          { AttributeName: "deviceId", KeyType: "HASH" },
          { AttributeName: "key", KeyType: "RANGE" },
        ],
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw unavailable("creating the kv table failed", error);
  }
  try {
    await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: settings.table });
  } finally {
    client.destroy();
  }
}

/**
 * The example `KvStore` on DynamoDB. Items: deviceId (pk), key (sk), `json` (the value as JSON
 * text), `version`, `lastRequest` (idempotency key of the last write). A put is one conditional
 * UpdateItem: it applies only if the item's last write came from another request (and the
 * version matches `ifVersion`, when given); on a failed condition DynamoDB hands back the old
 * item, which tells a replay of this very request apart from a version mismatch. Only the last
 * writer is remembered: the worker's dedupe window catches ordinary repeats, and `ifVersion`
 * guards against an old request replayed after newer writes.
 */
export function createDynamoKvStore(settings: DynamoKvSettings): KvStore {
  const client = new DynamoDBClient(clientConfig(settings));
  const table = settings.table;
  let closed = false;
  return {
    async get(deviceId: string, key: string): Promise<KvItem | null> {
      try {
        const { Item } = await client.send(
          new GetItemCommand({
            TableName: table,
            Key: { deviceId: { S: deviceId }, key: { S: key } },
            ConsistentRead: true,
          }),
        );
        if (Item === undefined) return null;
        return { value: JSON.parse(Item.json?.S ?? "null"), version: Number(Item.version?.N ?? "0") };
      } catch (error) {
        throw unavailable("kv get failed", error);
      }
    },

    async put(put: KvPut): Promise<KvPutResult> {
      const conditions = ["(attribute_not_exists(#lastRequest) OR #lastRequest <> :rk)"];
      const values: Record<string, { S: string } | { N: string }> = {
        ":rk": { S: put.requestKey },
        ":json": { S: JSON.stringify(put.value) },
        ":zero": { N: "0" },
        ":one": { N: "1" },
        ":now": { N: String(Date.now()) },
      };
      if (put.ifVersion === 0) conditions.push("attribute_not_exists(#version)");
      else if (put.ifVersion !== undefined) {
        conditions.push("#version = :expected");
        values[":expected"] = { N: String(put.ifVersion) };
      }
      try {
        const { Attributes } = await client.send(
          new UpdateItemCommand({
            TableName: table,
            Key: { deviceId: { S: put.deviceId }, key: { S: put.key } },
            UpdateExpression:
              "SET #version = if_not_exists(#version, :zero) + :one, #json = :json, #lastRequest = :rk, #updatedAt = :now",
            ConditionExpression: conditions.join(" AND "),
            // Names go through placeholders: several of them are DynamoDB reserved words.
            ExpressionAttributeNames: {
              "#version": "version",
              "#json": "json",
              "#lastRequest": "lastRequest",
              "#updatedAt": "updatedAt",
            },
            ExpressionAttributeValues: values,
            ReturnValues: "UPDATED_NEW",
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          }),
        );
        return { status: "written", version: Number(Attributes?.version?.N ?? "0") };
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) {
          const old = error.Item;
          const version = Number(old?.version?.N ?? "0");
          if (old?.lastRequest?.S === put.requestKey) return { status: "replayed", version };
          return { status: "version_mismatch", version };
        }
        throw unavailable("kv put failed", error);
      }
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      client.destroy();
    },
  };
}

function unavailable(message: string, cause: unknown): TetherError {
  return new TetherError(ErrorCode.Unavailable, message, { cause });
}
