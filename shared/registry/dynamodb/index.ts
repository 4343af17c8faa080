/**
 * The DynamoDB adapter of the registry port, on the low-level `@aws-sdk/client-dynamodb`
 * client. The only part of the project that imports the AWS SDK for DynamoDB.
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
import { DescribeTableCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { DynamoDbSettings, ResourceNames } from "../../config/index.ts";
import { TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import { ClosedGuard } from "../rules.ts";
import type { ConnectionStore, LeaseStore, OutboxStore, Registry, RegistryCallObserver } from "../types.ts";
import { createDynamoClient, createLeaseClient, DEFAULT_LEASE_TIMEOUT_MS, DEFAULT_MAX_CONCURRENCY } from "./client.ts";
import { dynamoError, Table } from "./common.ts";
import { DynamoConnectionStore } from "./connections.ts";
import { DynamoLeaseStore } from "./leases.ts";
import { observeCalls } from "./observe.ts";
import { DynamoOutboxStore } from "./outbox.ts";

export { byEdgeIndex } from "./connections.ts";
export { type EnsureTablesOptions, ensureTables } from "./tables.ts";
export { createDynamoClient, createLeaseClient, DEFAULT_LEASE_TIMEOUT_MS, DEFAULT_MAX_CONCURRENCY, dynamoError };

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
  /** Told the latency and outcome of every DynamoDB call (metrics). */
  readonly calls?: RegistryCallObserver;
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
    if (options.calls !== undefined) {
      observeCalls(this.#client, options.calls);
      observeCalls(this.#leaseClient, options.calls);
    }
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
