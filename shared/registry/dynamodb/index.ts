/**
 * The DynamoDB adapter of the registry port, on the low-level `@aws-sdk/client-dynamodb`
 * client. The only module of the project that imports the AWS SDK for DynamoDB.
 *
 * Tables (names from {@link ResourceNames}):
 * - connections: pk `deviceId`; GSI `byEdge` on `edgeId`. Owner attributes edgeId, slot,
 *   connId, connectedAt; counters `epoch`, `attempts` (hello attempts taken) and
 *   `claimedAttempt` (highest attempt that claimed). A released connection keeps its item
 *   without the owner attributes, so the counters keep going up, with `expiresAt` (epoch
 *   seconds, TTL) a day ahead; a claim removes `expiresAt`.
 * - edges: pk `slot` (number); one lease per slot: edgeId, host, startedAt, leaseUntil,
 *   connections, and for fencing `generation` (number), `version` (string, new on every write),
 *   `leaseMs`, `committed` (number, absent until written) and `released` (boolean). A row
 *   without them reads as generation 0, version `legacy-<startedAt>-<leaseUntil>`, not released.
 * - outbox: pk `deviceId`, sk `messageId`; `expiresAt` in epoch seconds for DynamoDB's TTL,
 *   `expiresAtMs` exact.
 */
import { randomUUID } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import {
  type AttributeValue,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand,
  type UpdateItemCommandInput,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import { Limiter } from "../../async/index.ts";
import type { DynamoDbSettings, ResourceNames } from "../../config/index.ts";
import { type ErrorCode, hasErrorCode, isTetherError, TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import { ClosedGuard, checkAttempt, checkOffset, outboxOrder, pageLimit } from "../rules.ts";
import type {
  ClaimResult,
  ConnectionClaim,
  ConnectionRecord,
  ConnectionStore,
  LeaseRequest,
  LeaseStore,
  OutboxEntry,
  OutboxStore,
  Page,
  Registry,
  RenewExtra,
  SlotLease,
} from "../types.ts";

/** Name of the GSI on `connections` that lists one edge's devices (the CDK stack uses the same). */
export const byEdgeIndex = "byEdge";

export interface DynamoRegistryOptions {
  readonly settings: DynamoDbSettings;
  readonly names: ResourceNames;
  readonly logger: Logger;
  /** Bound of one HTTP attempt. Default 3000 ms. */
  readonly requestTimeoutMs?: number;
  /** SDK attempts per call, the first included. Default 3. */
  readonly maxAttempts?: number;
  /**
   * Most DynamoDB requests in flight at once; more wait their turn. Default
   * `settings.maxConcurrency`, else {@link DEFAULT_MAX_CONCURRENCY}.
   */
  readonly maxConcurrency?: number;
  /**
   * Bound of one fenced lease call (acquireFree, takeOver, renewHeld, commitOffset,
   * releaseHeld), each a single attempt on a new connection. Default `settings.leaseTimeoutMs`,
   * else {@link DEFAULT_LEASE_TIMEOUT_MS}.
   */
  readonly leaseTimeoutMs?: number;
}

/** Bound of one fenced lease call unless configured otherwise. */
export const DEFAULT_LEASE_TIMEOUT_MS = 1000;

/** Requests in flight per registry unless configured otherwise. */
export const DEFAULT_MAX_CONCURRENCY = 64;

/** Smallest socket pool of a client; a larger bound gets twice its size. */
const MIN_SOCKETS = 128;

type Item = Record<string, AttributeValue>;

const retryableNames = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "InternalServerError",
  "InternalFailure",
  "ServiceUnavailable",
  "ServiceUnavailableException",
  "LimitExceededException",
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "TransactionInProgressException",
]);

function errorCodeFor(name: string, status: number | undefined): ErrorCode {
  if (name === "ConditionalCheckFailedException" || name === "TransactionConflictException") return "conflict";
  if (name === "ResourceNotFoundException") return "not_found";
  if (name === "ValidationException" || name === "SerializationException") return "invalid_argument";
  if (
    name === "AccessDeniedException" ||
    name === "UnrecognizedClientException" ||
    name === "InvalidSignatureException" ||
    name === "ExpiredTokenException" ||
    name === "CredentialsProviderError"
  ) {
    return "unauthorized";
  }
  if (retryableNames.has(name) || status === undefined || status >= 500) return "unavailable";
  return "internal";
}

/** Turns an SDK or network error into a TetherError; SDK classes never leave this module. */
export function dynamoError(what: string, error: unknown): TetherError {
  if (isTetherError(error)) return error;
  const failure = error as {
    name?: unknown;
    message?: unknown;
    code?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  const name = typeof failure?.name === "string" ? failure.name : "Error";
  const message = typeof failure?.message === "string" ? failure.message : String(error);
  const status = failure?.$metadata?.httpStatusCode;
  return new TetherError(errorCodeFor(name, status), `${what}: ${message}`, {
    cause: error,
    details: { dynamoError: name, ...(status === undefined ? {} : { status }) },
  });
}

function isConditionFailure(error: unknown): boolean {
  return (error as { name?: unknown })?.name === "ConditionalCheckFailedException";
}

// Marshalling by hand: the items are small and flat.
const S = (value: string): AttributeValue => ({ S: value });
const N = (value: number): AttributeValue => ({ N: String(value) });

function str(item: Item, name: string): string {
  const value = item[name];
  if (value === undefined || !("S" in value) || value.S === undefined) {
    throw new TetherError("internal", `registry row lacks string attribute ${name}`);
  }
  return value.S;
}

function num(item: Item, name: string): number {
  const value = item[name];
  if (value === undefined || !("N" in value) || value.N === undefined) {
    throw new TetherError("internal", `registry row lacks number attribute ${name}`);
  }
  return Number(value.N);
}

function optionalNum(item: Item, name: string): number | undefined {
  const value = item[name];
  return value !== undefined && "N" in value && value.N !== undefined ? Number(value.N) : undefined;
}

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

/**
 * A DynamoDB client tuned for short calls: kept-alive sockets, tight timeouts, few retries, and
 * at most `maxConcurrency` requests in flight.
 *
 * The SDK starts its connect timeout when a request asks the agent for a socket, so a request
 * that waits behind a full pool fails after 1 s while DynamoDB is healthy. Requests past the
 * bound wait in a queue in front of the SDK's HTTP handler instead: each attempt takes a turn
 * after the retry step and gives it back once its response is read, and the socket pool is twice
 * the bound, so an attempt that has a turn always finds a socket and neither timeout counts the
 * wait.
 */
export function createDynamoClient(
  settings: DynamoDbSettings,
  options: { requestTimeoutMs?: number; maxAttempts?: number; maxConcurrency?: number } = {},
): DynamoDBClient {
  const maxConcurrency = options.maxConcurrency ?? settings.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
  const limiter = new Limiter({ concurrency: maxConcurrency });
  const agentOptions = {
    keepAlive: true,
    keepAliveMsecs: 10_000,
    maxSockets: Math.max(MIN_SOCKETS, 2 * maxConcurrency),
  };
  const client = new DynamoDBClient({
    region: settings.region,
    ...(settings.endpoint === undefined
      ? {}
      : {
          endpoint: settings.endpoint,
          // DynamoDB Local accepts any credentials; none may exist on a developer's machine.
          credentials: { accessKeyId: "local", secretAccessKey: "local" },
        }),
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: {
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: 1000,
      requestTimeout: options.requestTimeoutMs ?? 3000,
    },
  });
  // Inside the retry step (finalizeRequest, high priority) and outside the response parsing
  // (deserialize step), so a turn spans exactly one attempt's use of a socket.
  client.middlewareStack.add((next) => (args) => limiter.run(() => next(args)), {
    step: "finalizeRequest",
    priority: "low",
    name: "tetherConcurrencyLimit",
  });
  return client;
}

/**
 * The client of the fenced lease calls: every request on a new TCP connection (no keep-alive,
 * so a connection that went bad with a frozen or cut-off host is never reused), one attempt,
 * and a request timeout of `timeoutMs`. It has no concurrency queue: a lease call never waits
 * behind the registry's other traffic.
 */
export function createLeaseClient(
  settings: DynamoDbSettings,
  timeoutMs: number,
  credentials?: DynamoDBClient["config"]["credentials"],
): DynamoDBClient {
  const agentOptions = { keepAlive: false };
  return new DynamoDBClient({
    region: settings.region,
    ...(settings.endpoint === undefined
      ? credentials === undefined
        ? {}
        : { credentials }
      : { endpoint: settings.endpoint, credentials: { accessKeyId: "local", secretAccessKey: "local" } }),
    maxAttempts: 1,
    requestHandler: {
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: timeoutMs,
      requestTimeout: timeoutMs,
      throwOnRequestTimeout: true,
    },
  });
}

/** One table of a registry: its client, its name and the registry's closed guard. */
class Table {
  readonly client: DynamoDBClient;
  readonly name: string;
  readonly guard: ClosedGuard;

  constructor(client: DynamoDBClient, name: string, guard: ClosedGuard) {
    this.client = client;
    this.name = name;
    this.guard = guard;
  }

  /** Runs `call` when the registry is open; whatever it throws comes out as a TetherError. */
  async run<T>(what: string, call: (client: DynamoDBClient, table: string) => Promise<T>): Promise<T> {
    this.guard.check();
    try {
      return await call(this.client, this.name);
    } catch (error) {
      throw dynamoError(what, error);
    }
  }
}

function toConnection(item: Item): ConnectionRecord | null {
  if (item.connId === undefined) return null;
  const attempt = optionalNum(item, "claimedAttempt");
  return {
    deviceId: str(item, "deviceId"),
    edgeId: str(item, "edgeId"),
    slot: num(item, "slot"),
    connId: str(item, "connId"),
    epoch: num(item, "epoch"),
    connectedAt: num(item, "connectedAt"),
    ...(attempt === undefined ? {} : { attempt }),
  };
}

/** How long a device's item without an owner is kept: its counters matter for in-flight hellos only. */
const IDLE_DEVICE_TTL_S = 24 * 60 * 60;

/** The `expiresAt` (epoch seconds, DynamoDB's TTL) of a device's item that has no owner from now on. */
function idleExpiry(): AttributeValue {
  return N(Math.ceil(Date.now() / 1000) + IDLE_DEVICE_TTL_S);
}

class DynamoConnectionStore implements ConnectionStore {
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
          UpdateExpression: "REMOVE edgeId, slot, connId, connectedAt SET expiresAt = :expires",
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
  owner: Pick<ConnectionRecord, "deviceId" | "edgeId" | "slot" | "connId" | "connectedAt"> & { attempt?: number },
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
    UpdateExpression: `${set} ADD epoch :one REMOVE expiresAt`,
    ExpressionAttributeValues: values,
    ...(condition === undefined ? {} : { ConditionExpression: condition }),
  };
}

function optionalStr(item: Item, name: string): string | undefined {
  const value = item[name];
  return value !== undefined && "S" in value && value.S !== undefined ? value.S : undefined;
}

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
interface LeaseCallOptions {
  /** Bound of one call, connecting included. */
  readonly timeoutMs: number;
}

class DynamoLeaseStore implements LeaseStore {
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

class DynamoOutboxStore implements OutboxStore {
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

/** The registry on DynamoDB. */
export class DynamoRegistry implements Registry {
  readonly kind = "dynamodb" as const;
  readonly connections: ConnectionStore;
  readonly leases: LeaseStore;
  readonly outbox: OutboxStore;
  readonly #client: DynamoDBClient;
  readonly #leaseClient: DynamoDBClient;
  readonly #names: ResourceNames;
  readonly #guard = new ClosedGuard();

  constructor(options: DynamoRegistryOptions) {
    this.#client = createDynamoClient(options.settings, options);
    const leaseTimeoutMs = options.leaseTimeoutMs ?? options.settings.leaseTimeoutMs ?? DEFAULT_LEASE_TIMEOUT_MS;
    // The registry client's credentials, so a lease call never waits on fetching them itself.
    this.#leaseClient = createLeaseClient(options.settings, leaseTimeoutMs, this.#client.config.credentials);
    this.#names = options.names;
    const table = (name: string): Table => new Table(this.#client, name, this.#guard);
    this.connections = new DynamoConnectionStore(table(options.names.connectionsTable));
    this.leases = new DynamoLeaseStore(
      table(options.names.edgesTable),
      new Table(this.#leaseClient, options.names.edgesTable, this.#guard),
      { timeoutMs: leaseTimeoutMs },
    );
    this.outbox = new DynamoOutboxStore(table(options.names.outboxTable));
  }

  async ping(): Promise<void> {
    this.#guard.check();
    try {
      await this.#client.send(new DescribeTableCommand({ TableName: this.#names.edgesTable }));
    } catch (error) {
      const failure = dynamoError("ping", error);
      throw failure.code === "unavailable"
        ? failure
        : new TetherError("unavailable", failure.message, { cause: failure.cause, details: failure.details });
    }
  }

  async close(): Promise<void> {
    if (this.#guard.closed) return;
    this.#guard.closed = true;
    this.#client.destroy();
    this.#leaseClient.destroy();
  }
}

/** Creates the registry; no call is made until it is used. */
export function createDynamoRegistry(options: DynamoRegistryOptions): DynamoRegistry {
  return new DynamoRegistry(options);
}

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
