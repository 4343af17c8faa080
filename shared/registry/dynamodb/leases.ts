import { randomUUID } from "node:crypto";
import {
  DeleteItemCommand,
  GetItemCommand,
  ScanCommand,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from "@aws-sdk/client-dynamodb";
import { hasErrorCode, TetherError } from "../../errors/index.ts";
import { checkOffset } from "../rules.ts";
import type { LeaseRequest, LeaseStore, RenewExtra, SlotLease } from "../types.ts";
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

/**
 * The version a row written before versions existed reads as: its start and end, which every
 * write of that time changed. {@link versionCondition} turns it back into a condition.
 */
function legacyVersion(startedAt: number, leaseUntil: number): string {
  return `legacy-${startedAt}-${leaseUntil}`;
}

function toLease(item: Item): SlotLease {
  const connections = optionalNum(item, "connections");
  const startedAt = num(item, "startedAt");
  const leaseUntil = num(item, "leaseUntil");
  const released = item.released;
  return {
    slot: num(item, "slot"),
    edgeId: str(item, "edgeId"),
    host: str(item, "host"),
    startedAt,
    leaseUntil,
    ...(connections === undefined ? {} : { connections }),
    generation: optionalNum(item, "generation") ?? 0,
    version: optionalStr(item, "version") ?? legacyVersion(startedAt, leaseUntil),
    // A row from before leaseMs was stored: start to end is at least the lease it was given, and
    // erring long is the safe side for a taker.
    leaseMs: optionalNum(item, "leaseMs") ?? Math.max(0, leaseUntil - startedAt),
    committed: optionalNum(item, "committed") ?? null,
    released: released !== undefined && "BOOL" in released && released.BOOL === true,
  };
}

/** Condition and values that hold while the row's version is `expected`, a legacy one included. */
function versionCondition(expected: string): { condition: string; values: Item } {
  const legacy = /^legacy-(\d+)-(\d+)$/.exec(expected);
  if (legacy !== null) {
    return {
      condition: "attribute_not_exists(version) AND startedAt = :seenStart AND leaseUntil = :seenUntil",
      values: { ":seenStart": N(Number(legacy[1])), ":seenUntil": N(Number(legacy[2])) },
    };
  }
  return { condition: "version = :seen", values: { ":seen": S(expected) } };
}

/** Holds while the row names `:me` with generation `:gen` (a row without one has generation 0). */
function heldCondition(generation: number): string {
  const sameGeneration =
    generation === 0 ? "(attribute_not_exists(generation) OR generation = :gen)" : "generation = :gen";
  return `edgeId = :me AND ${sameGeneration}`;
}

const notReleased = "(attribute_not_exists(released) OR released = :no)";

/** The attributes a new holder writes; the generation is added to and `committed` left as it is. */
function holderWrite(lease: LeaseRequest, now: number): { update: string; values: Item } {
  return {
    update:
      "SET edgeId = :me, host = :host, startedAt = :now, leaseUntil = :until, leaseMs = :ms, version = :version, released = :no REMOVE connections",
    values: {
      ":me": S(lease.edgeId),
      ":host": S(lease.host),
      ":now": N(now),
      ":until": N(now + lease.leaseMs),
      ":ms": N(lease.leaseMs),
      ":version": S(randomUUID()),
      ":no": { BOOL: false },
    },
  };
}

function leaseConflict(slot: number, message: string, cause: unknown): TetherError {
  return new TetherError("conflict", `slot ${slot} ${message}`, { cause, details: { slot } });
}

/** Fenced lease calls are one attempt each, so the holder's own loop decides about retries. */
export interface LeaseCallOptions {
  /** Bound of one call, connecting included. */
  readonly timeoutMs: number;
}

export class DynamoLeaseStore implements LeaseStore {
  readonly #table: Table;
  /** Table on the lease client: a fresh connection and a single short attempt per call. */
  readonly #fenced: Table;
  readonly #timeoutMs: number;

  constructor(table: Table, fenced: Table, options: LeaseCallOptions) {
    this.#table = table;
    this.#fenced = fenced;
    this.#timeoutMs = options.timeoutMs;
  }

  async acquire(lease: LeaseRequest): Promise<SlotLease> {
    this.#table.guard.check();
    const now = Date.now();
    const write = holderWrite(lease, now);
    try {
      // A new holder: free, released, or expired in another edge's name. It gets the next generation.
      return await this.#update(this.#table, lease.slot, {
        UpdateExpression: `${write.update} ADD generation :one`,
        ConditionExpression: "attribute_not_exists(slot) OR released = :yes OR (edgeId <> :me AND leaseUntil <= :now)",
        ExpressionAttributeValues: { ...write.values, ":one": N(1), ":yes": { BOOL: true } },
      });
    } catch (error) {
      if (!isConditionFailure(error)) throw dynamoError("acquire slot lease", error);
    }
    try {
      // Already ours and not released: the same holder, so the same generation.
      return await this.#update(this.#table, lease.slot, {
        UpdateExpression: write.update,
        ConditionExpression: `edgeId = :me AND ${notReleased}`,
        ExpressionAttributeValues: write.values,
      });
    } catch (error) {
      if (isConditionFailure(error)) throw leaseConflict(lease.slot, "is held by another edge", error);
      throw dynamoError("acquire slot lease", error);
    }
  }

  async renew(slot: number, edgeId: string, leaseMs: number, connections?: number): Promise<SlotLease> {
    this.#table.guard.check();
    const values: Item = {
      ":until": N(Date.now() + leaseMs),
      ":ms": N(leaseMs),
      ":version": S(randomUUID()),
      ":me": S(edgeId),
      ":no": { BOOL: false },
    };
    let update = "SET leaseUntil = :until, leaseMs = :ms, version = :version";
    if (connections !== undefined) {
      update += ", connections = :count";
      values[":count"] = N(connections);
    }
    try {
      return await this.#update(this.#table, slot, {
        UpdateExpression: update,
        ConditionExpression: `edgeId = :me AND ${notReleased}`,
        ExpressionAttributeValues: values,
      });
    } catch (error) {
      if (isConditionFailure(error)) throw leaseConflict(slot, "is no longer held by this edge", error);
      throw dynamoError("renew slot lease", error);
    }
  }

  async release(slot: number, edgeId: string): Promise<void> {
    this.#table.guard.check();
    try {
      await this.#table.client.send(
        new DeleteItemCommand({
          TableName: this.#table.name,
          Key: { slot: N(slot) },
          ConditionExpression: "edgeId = :me",
          ExpressionAttributeValues: { ":me": S(edgeId) },
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) return;
      throw dynamoError("release slot lease", error);
    }
  }

  get(slot: number): Promise<SlotLease | null> {
    return this.#table.run("get slot lease", async (client, table) => {
      const result = await client.send(
        new GetItemCommand({ TableName: table, Key: { slot: N(slot) }, ConsistentRead: true }),
      );
      return result.Item === undefined ? null : toLease(result.Item);
    });
  }

  async list(): Promise<readonly SlotLease[]> {
    const leases: SlotLease[] = [];
    await this.#table.run("list slot leases", async (client, table) => {
      let start: Item | undefined;
      do {
        const page = await client.send(
          new ScanCommand({
            TableName: table,
            ConsistentRead: true,
            ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          }),
        );
        for (const item of page.Items ?? []) leases.push(toLease(item));
        start = page.LastEvaluatedKey;
      } while (start !== undefined);
    });
    return leases.sort((a, b) => a.slot - b.slot);
  }

  async acquireFree(lease: LeaseRequest): Promise<SlotLease> {
    const write = holderWrite(lease, Date.now());
    return await this.#fencedUpdate("acquire free slot lease", lease.slot, "is held and not released", {
      UpdateExpression: `${write.update} ADD generation :one`,
      ConditionExpression: "attribute_not_exists(slot) OR released = :yes",
      ExpressionAttributeValues: { ...write.values, ":one": N(1), ":yes": { BOOL: true } },
    });
  }

  async takeOver(lease: LeaseRequest, expectedVersion: string): Promise<SlotLease> {
    const write = holderWrite(lease, Date.now());
    const seen = versionCondition(expectedVersion);
    return await this.#fencedUpdate("take over slot lease", lease.slot, "changed since its version was watched", {
      UpdateExpression: `${write.update} ADD generation :one`,
      ConditionExpression: `attribute_exists(slot) AND ${seen.condition}`,
      ExpressionAttributeValues: { ...write.values, ...seen.values, ":one": N(1) },
    });
  }

  async renewHeld(
    slot: number,
    edgeId: string,
    generation: number,
    leaseMs: number,
    extra: RenewExtra = {},
  ): Promise<SlotLease> {
    if (extra.committed !== undefined) checkOffset(extra.committed);
    const values: Item = {
      ":until": N(Date.now() + leaseMs),
      ":ms": N(leaseMs),
      ":version": S(randomUUID()),
      ":me": S(edgeId),
      ":gen": N(generation),
      ":no": { BOOL: false },
    };
    let update = "SET leaseUntil = :until, leaseMs = :ms, version = :version";
    if (extra.connections !== undefined) {
      update += ", connections = :count";
      values[":count"] = N(extra.connections);
    }
    if (extra.committed !== undefined) {
      update += ", committed = :offset";
      values[":offset"] = N(extra.committed);
    }
    return await this.#fencedUpdate("renew held slot lease", slot, "is no longer held with this generation", {
      UpdateExpression: update,
      ConditionExpression: `${heldCondition(generation)} AND ${notReleased}`,
      ExpressionAttributeValues: values,
    });
  }

  async commitOffset(slot: number, edgeId: string, generation: number, offset: number): Promise<void> {
    checkOffset(offset);
    await this.#fencedUpdate("commit slot offset", slot, "is no longer held with this generation", {
      UpdateExpression: "SET committed = :offset, version = :version",
      ConditionExpression: heldCondition(generation),
      ExpressionAttributeValues: {
        ":offset": N(offset),
        ":version": S(randomUUID()),
        ":me": S(edgeId),
        ":gen": N(generation),
      },
    });
  }

  async releaseHeld(slot: number, edgeId: string, generation: number): Promise<void> {
    try {
      await this.#fencedUpdate("release held slot lease", slot, "is no longer held with this generation", {
        // Ending the lease now keeps readers that judge liveness by leaseUntil from counting it.
        UpdateExpression: "SET released = :yes, version = :version, leaseUntil = :now",
        ConditionExpression: `${heldCondition(generation)} AND ${notReleased}`,
        ExpressionAttributeValues: {
          ":yes": { BOOL: true },
          ":no": { BOOL: false },
          ":version": S(randomUUID()),
          ":me": S(edgeId),
          ":gen": N(generation),
          ":now": N(Date.now()),
        },
      });
    } catch (error) {
      if (!hasErrorCode(error, "conflict")) throw error;
      // Not ours with this generation (or already released): nothing to give up.
    }
  }

  /** One conditional update of a slot's row that hands back the row as written. */
  async #update(
    table: Table,
    slot: number,
    input: Pick<UpdateItemCommandInput, "UpdateExpression" | "ConditionExpression" | "ExpressionAttributeValues">,
    abortSignal?: AbortSignal,
  ): Promise<SlotLease> {
    const result = await table.client.send(
      new UpdateItemCommand({ TableName: table.name, Key: { slot: N(slot) }, ReturnValues: "ALL_NEW", ...input }),
      abortSignal === undefined ? {} : { abortSignal },
    );
    if (result.Attributes === undefined) throw new TetherError("internal", "lease write returned no row");
    return toLease(result.Attributes);
  }

  /**
   * {@link #update} on the lease client, bounded by the lease timeout: a lost condition rejects
   * with `conflict` (saying `conflictMessage`), a call past the bound with `timeout`.
   */
  async #fencedUpdate(
    what: string,
    slot: number,
    conflictMessage: string,
    input: Pick<UpdateItemCommandInput, "UpdateExpression" | "ConditionExpression" | "ExpressionAttributeValues">,
  ): Promise<SlotLease> {
    this.#fenced.guard.check();
    const deadline = AbortSignal.timeout(this.#timeoutMs);
    try {
      return await this.#update(this.#fenced, slot, input, deadline);
    } catch (error) {
      if (isConditionFailure(error)) throw leaseConflict(slot, conflictMessage, error);
      if (deadline.aborted || (error as { name?: unknown })?.name === "TimeoutError") {
        throw new TetherError("timeout", `${what} took longer than ${this.#timeoutMs} ms`, {
          cause: error,
          details: { slot, ms: this.#timeoutMs },
        });
      }
      throw dynamoError(what, error);
    }
  }
}
