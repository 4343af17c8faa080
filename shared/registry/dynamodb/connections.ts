import {
  type AttributeValue,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from "@aws-sdk/client-dynamodb";
import { TetherError } from "../../errors/index.ts";
import { checkAttempt, pageLimit } from "../rules.ts";
import type { ClaimResult, ConnectionClaim, ConnectionRecord, ConnectionStore, Page } from "../types.ts";
import {
  dynamoError,
  type Item,
  isConditionFailure,
  N,
  num,
  optionalNum,
  optionalStr,
  S,
  str,
  type Table,
} from "./common.ts";

/** Name of the GSI on `connections` that lists one edge's devices (the CDK stack uses the same). */
export const byEdgeIndex = "byEdge";

function encodeCursor(key: Item): string {
  return Buffer.from(JSON.stringify(key), "utf8").toString("base64url");
}

function decodeCursor(cursor: string): Item {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) return parsed as Item;
  } catch {
    // Falls through.
  }
  throw new TetherError("invalid_argument", "malformed page cursor");
}

function toConnection(item: Item): ConnectionRecord | null {
  if (item.connId === undefined) return null;
  const attempt = optionalNum(item, "claimedAttempt");
  const protocol = optionalStr(item, "protocol");
  return {
    deviceId: str(item, "deviceId"),
    edgeId: str(item, "edgeId"),
    slot: num(item, "slot"),
    connId: str(item, "connId"),
    epoch: num(item, "epoch"),
    connectedAt: num(item, "connectedAt"),
    ...(attempt === undefined ? {} : { attempt }),
    ...(protocol === undefined ? {} : { protocol }),
  };
}

/** How long a device's item without an owner is kept: its counters matter for in-flight hellos only. */
const IDLE_DEVICE_TTL_S = 24 * 60 * 60;

/** The `expiresAt` (epoch seconds, DynamoDB's TTL) of a device's item that has no owner from now on. */
function idleExpiry(): AttributeValue {
  return N(Math.ceil(Date.now() / 1000) + IDLE_DEVICE_TTL_S);
}

export class DynamoConnectionStore implements ConnectionStore {
  readonly #table: Table;

  constructor(table: Table) {
    this.#table = table;
  }

  async beginAttempt(deviceId: string): Promise<number> {
    this.#table.guard.check();
    const key = { deviceId: S(deviceId) };
    try {
      try {
        // No owner (or no item): the item may be left without one, so it gets an expiry.
        const result = await this.#table.client.send(
          new UpdateItemCommand({
            TableName: this.#table.name,
            Key: key,
            UpdateExpression: "ADD attempts :one SET expiresAt = :expires",
            ConditionExpression: "attribute_not_exists(connId)",
            ExpressionAttributeValues: { ":one": N(1), ":expires": idleExpiry() },
            ReturnValues: "UPDATED_NEW",
          }),
        );
        return num(result.Attributes ?? {}, "attempts");
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
      }
      // An owner holds the item: an expiry would delete it under a live connection.
      const result = await this.#table.client.send(
        new UpdateItemCommand({
          TableName: this.#table.name,
          Key: key,
          UpdateExpression: "ADD attempts :one",
          ExpressionAttributeValues: { ":one": N(1) },
          ReturnValues: "UPDATED_NEW",
        }),
      );
      return num(result.Attributes ?? {}, "attempts");
    } catch (error) {
      throw dynamoError("begin hello attempt", error);
    }
  }

  async claim(claim: ConnectionClaim): Promise<ClaimResult> {
    this.#table.guard.check();
    if (claim.attempt !== undefined) checkAttempt(claim.attempt);
    try {
      // One atomic write: the epoch goes up by one and the replaced row comes back, so racing
      // claims are serialized by DynamoDB and each sees exactly the one it replaced.
      const result = await this.#table.client.send(
        new UpdateItemCommand({ ...ownerUpdate(this.#table.name, claim), ReturnValues: "ALL_OLD" }),
      );
      const old = result.Attributes;
      const epoch = (old === undefined ? 0 : (optionalNum(old, "epoch") ?? 0)) + 1;
      const attempt = claim.attempt ?? (old === undefined ? undefined : optionalNum(old, "claimedAttempt"));
      return {
        record: {
          deviceId: claim.deviceId,
          edgeId: claim.edgeId,
          slot: claim.slot,
          connId: claim.connId,
          epoch,
          connectedAt: claim.connectedAt,
          ...(attempt === undefined ? {} : { attempt }),
          ...(claim.protocol === undefined ? {} : { protocol: claim.protocol }),
        },
        previous: old === undefined ? null : toConnection(old),
      };
    } catch (error) {
      if (isConditionFailure(error)) {
        throw new TetherError("conflict", `device ${claim.deviceId} was claimed by a later hello`, {
          cause: error,
          details: { deviceId: claim.deviceId, attempt: claim.attempt },
        });
      }
      throw dynamoError("claim connection", error);
    }
  }

  get(deviceId: string): Promise<ConnectionRecord | null> {
    return this.#table.run("get connection", async (client, table) => {
      const result = await client.send(
        new GetItemCommand({ TableName: table, Key: { deviceId: S(deviceId) }, ConsistentRead: true }),
      );
      return result.Item === undefined ? null : toConnection(result.Item);
    });
  }

  async release(deviceId: string, connId: string): Promise<boolean> {
    this.#table.guard.check();
    try {
      // Keep the counters (epoch, attempts, claimedAttempt) so the next claim's epoch is still
      // higher and no older hello can claim; without edgeId the byEdge index drops the item.
      await this.#table.client.send(
        new UpdateItemCommand({
          TableName: this.#table.name,
          Key: { deviceId: S(deviceId) },
          UpdateExpression: "REMOVE edgeId, slot, connId, connectedAt, protocol SET expiresAt = :expires",
          ConditionExpression: "connId = :conn",
          ExpressionAttributeValues: { ":conn": S(connId), ":expires": idleExpiry() },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw dynamoError("release connection", error);
    }
  }

  async restore(connId: string, previous: ConnectionRecord): Promise<boolean> {
    this.#table.guard.check();
    try {
      await this.#table.client.send(new UpdateItemCommand(ownerUpdate(this.#table.name, previous, connId)));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw dynamoError("restore connection", error);
    }
  }

  async listByEdge(edgeId: string, options: { limit?: number; cursor?: string } = {}): Promise<Page<ConnectionRecord>> {
    this.#table.guard.check();
    const limit = pageLimit(options.limit);
    const start = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    try {
      const result = await this.#table.client.send(
        new QueryCommand({
          TableName: this.#table.name,
          IndexName: byEdgeIndex,
          KeyConditionExpression: "edgeId = :edge",
          ExpressionAttributeValues: { ":edge": S(edgeId) },
          Limit: limit,
          ...(start === undefined ? {} : { ExclusiveStartKey: start }),
        }),
      );
      const items = (result.Items ?? []).map(toConnection).filter((record) => record !== null);
      const next = result.LastEvaluatedKey;
      return next === undefined ? { items } : { items, cursor: encodeCursor(next) };
    } catch (error) {
      throw dynamoError("list connections of an edge", error);
    }
  }
}

/**
 * The write that makes `owner` the device's connection, one epoch above the last, and drops the
 * idle expiry; with `owner.attempt`, only while no claim of that attempt or a higher one was
 * made, and recording it; with `ifConnId`, only while the record still names that connection
 * (the claimed attempt then stays as it is).
 */
function ownerUpdate(
  table: string,
  owner: Pick<ConnectionRecord, "deviceId" | "edgeId" | "slot" | "connId" | "connectedAt" | "protocol"> & {
    attempt?: number;
  },
  ifConnId?: string,
): UpdateItemCommandInput {
  const values: Item = {
    ":edge": S(owner.edgeId),
    ":slot": N(owner.slot),
    ":conn": S(owner.connId),
    ":at": N(owner.connectedAt),
    ":one": N(1),
  };
  let set = "SET edgeId = :edge, slot = :slot, connId = :conn, connectedAt = :at";
  let remove = "expiresAt";
  if (owner.protocol === undefined) remove += ", protocol";
  else {
    set += ", protocol = :protocol";
    values[":protocol"] = S(owner.protocol);
  }
  let condition: string | undefined;
  if (ifConnId !== undefined) {
    condition = "connId = :if";
    values[":if"] = S(ifConnId);
  } else if (owner.attempt !== undefined) {
    set += ", claimedAttempt = :attempt";
    condition = "attribute_not_exists(claimedAttempt) OR claimedAttempt < :attempt";
    values[":attempt"] = N(owner.attempt);
  }
  return {
    TableName: table,
    Key: { deviceId: S(owner.deviceId) },
    UpdateExpression: `${set} ADD epoch :one REMOVE ${remove}`,
    ExpressionAttributeValues: values,
    ...(condition === undefined ? {} : { ConditionExpression: condition }),
  };
}
