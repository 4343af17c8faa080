import { DeleteItemCommand, PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb";
import { outboxOrder } from "../rules.ts";
import type { OutboxEntry, OutboxStore } from "../types.ts";
import { type Item, N, num, S, str, type Table } from "./common.ts";

export class DynamoOutboxStore implements OutboxStore {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async put(entry: OutboxEntry): Promise<void> {
    await this.#table.run("store outbox entry", (client, table) =>
      client.send(
        new PutItemCommand({
          TableName: table,
          Item: {
            deviceId: S(entry.deviceId),
            messageId: S(entry.messageId),
            frame: S(entry.frame),
            createdAt: N(entry.createdAt),
            // DynamoDB's TTL reads epoch seconds; round up so nothing is removed early.
            expiresAt: N(Math.ceil(entry.expiresAt / 1000)),
            expiresAtMs: N(entry.expiresAt),
          },
        }),
      ),
    );
  }

  async list(deviceId: string, limit?: number): Promise<readonly OutboxEntry[]> {
    const entries: OutboxEntry[] = [];
    await this.#table.run("list outbox", async (client, table) => {
      const now = Date.now();
      let start: Item | undefined;
      do {
        // TTL deletes lazily (within days), so expired rows are filtered here.
        const page = await client.send(
          new QueryCommand({
            TableName: table,
            KeyConditionExpression: "deviceId = :device",
            FilterExpression: "expiresAtMs > :now",
            ExpressionAttributeValues: { ":device": S(deviceId), ":now": N(now) },
            ConsistentRead: true,
            ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          }),
        );
        for (const item of page.Items ?? []) {
          entries.push({
            deviceId: str(item, "deviceId"),
            messageId: str(item, "messageId"),
            frame: str(item, "frame"),
            createdAt: num(item, "createdAt"),
            expiresAt: num(item, "expiresAtMs"),
          });
        }
        start = page.LastEvaluatedKey;
      } while (start !== undefined);
    });
    return outboxOrder(entries, limit);
  }

  async delete(deviceId: string, messageId: string): Promise<void> {
    await this.#table.run("delete outbox entry", (client, table) =>
      client.send(new DeleteItemCommand({ TableName: table, Key: { deviceId: S(deviceId), messageId: S(messageId) } })),
    );
  }
}
