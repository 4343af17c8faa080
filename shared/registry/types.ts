/**
 * The registry port: who owns each device, which edge holds which reply slot, and the outbox
 * of messages waiting for offline devices. DynamoDB and in-memory adapters implement it.
 * Conditional writes that lose reject with `TetherError("conflict")`.
 */

/** Who holds a device's newest connection. */
export interface ConnectionRecord {
  readonly deviceId: string;
  readonly edgeId: string;
  readonly slot: number;
  readonly connId: string;
  /** Goes up by one on every claim; a newer connection always has the higher epoch. */
  readonly epoch: number;
  /** Milliseconds since the epoch. */
  readonly connectedAt: number;
}

export type ConnectionClaim = Omit<ConnectionRecord, "epoch">;

export interface ClaimResult {
  /** The record as written, with its new epoch. */
  readonly record: ConnectionRecord;
  /** The record it replaced, if there was one: that connection must be told `bye replaced`. */
  readonly previous: ConnectionRecord | null;
}

export interface Page<T> {
  readonly items: readonly T[];
  /** Opaque; pass back to get the next page. Absent on the last page. */
  readonly cursor?: string;
}

export interface ConnectionStore {
  /** Makes `claim` the device's owner, atomically bumping the epoch. */
  claim(claim: ConnectionClaim): Promise<ClaimResult>;
  get(deviceId: string): Promise<ConnectionRecord | null>;
  /** Deletes the record only if it still names `connId`; returns whether it did. */
  release(deviceId: string, connId: string): Promise<boolean>;
  /**
   * Hands the record back to `previous` (the owner a claim replaced) if it still names `connId`,
   * with an epoch higher than any before; returns whether it did. For a claim whose connection
   * closed before its welcome: the connection it displaced is still the device's live one.
   */
  restore(connId: string, previous: ConnectionRecord): Promise<boolean>;
  /** One edge's devices (the GSI on edgeId), a page at a time. */
  listByEdge(edgeId: string, options?: { limit?: number; cursor?: string }): Promise<Page<ConnectionRecord>>;
}

/** An edge's lease on one partition of `replies`. */
export interface SlotLease {
  readonly slot: number;
  readonly edgeId: string;
  readonly host: string;
  readonly startedAt: number;
  /** Milliseconds since the epoch; the lease is live while `leaseUntil > now`. */
  readonly leaseUntil: number;
  /** Open device connections the edge reported at its last renewal. */
  readonly connections?: number;
}

export interface LeaseStore {
  /**
   * Takes `slot` if it is free, expired or already held by `edgeId`. Rejects with `conflict`
   * when another edge holds a live lease.
   */
  acquire(lease: { slot: number; edgeId: string; host: string; leaseMs: number }): Promise<SlotLease>;
  /** Extends the lease; rejects with `conflict` when `edgeId` no longer holds it. */
  renew(slot: number, edgeId: string, leaseMs: number, connections?: number): Promise<SlotLease>;
  /** Gives the slot up if `edgeId` holds it (no error otherwise). */
  release(slot: number, edgeId: string): Promise<void>;
  get(slot: number): Promise<SlotLease | null>;
  /** Every lease row, live or expired. */
  list(): Promise<readonly SlotLease[]>;
}

export interface OutboxEntry {
  readonly deviceId: string;
  readonly messageId: string;
  /** The frame to deliver, as the JSON text of a `push`, `res` or `error` frame. */
  readonly frame: string;
  readonly createdAt: number;
  /** Milliseconds since the epoch; expired entries are never returned. */
  readonly expiresAt: number;
}

export interface OutboxStore {
  /** Stores an entry; storing the same (deviceId, messageId) again overwrites it. */
  put(entry: OutboxEntry): Promise<void>;
  /** Live entries of a device, oldest first. */
  list(deviceId: string, limit?: number): Promise<readonly OutboxEntry[]>;
  delete(deviceId: string, messageId: string): Promise<void>;
}

export interface Registry {
  readonly kind: "dynamodb" | "memory";
  readonly connections: ConnectionStore;
  readonly leases: LeaseStore;
  readonly outbox: OutboxStore;
  /** A cheap call that proves the store answers; rejects with `unavailable` otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
