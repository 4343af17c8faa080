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
  /**
   * The highest hello attempt (from {@link ConnectionStore.beginAttempt}) that claimed the
   * device; absent while no claim carried one.
   */
  readonly attempt?: number;
  /**
   * What the device speaks, as the edge names it (`ndjson`, `ndjson+ws`, `mqtt5`, `mqtt3.1.1`,
   * `mqtt5+ws`, `mqtt3.1.1+ws`); absent in records written before edges told it.
   */
  readonly protocol?: string;
}

export interface ConnectionClaim extends Omit<ConnectionRecord, "epoch" | "attempt"> {
  /**
   * The hello's attempt number from {@link ConnectionStore.beginAttempt}. With it the claim wins
   * only over lower attempts: one whose attempt, or a higher one, already claimed is refused.
   */
  readonly attempt?: number;
}

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
  /**
   * Takes the device's next hello attempt number, atomically: concurrent calls get distinct,
   * increasing numbers. Creates the device's item without an owner when it has none.
   */
  beginAttempt(deviceId: string): Promise<number>;
  /**
   * Makes `claim` the device's owner, atomically bumping the epoch. With `claim.attempt`, only
   * while no claim of that attempt or a higher one was made; rejects with `conflict` otherwise
   * and changes nothing.
   */
  claim(claim: ConnectionClaim): Promise<ClaimResult>;
  /** The device's owner; null when it has none (never claimed, or released). */
  get(deviceId: string): Promise<ConnectionRecord | null>;
  /**
   * Removes the owner only if the record still names `connId`; returns whether it did. The
   * device's epoch and attempt counters stay, so no older attempt can claim afterwards.
   */
  release(deviceId: string, connId: string): Promise<boolean>;
  /**
   * Hands the record back to `previous` (the owner a claim replaced) if it still names `connId`,
   * with an epoch higher than any before; returns whether it did. For a claim whose connection
   * closed before its welcome: the connection it displaced is still the device's live one. The
   * highest claimed attempt stays as it is.
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
  /**
   * Fencing token: goes up by one each time the holder changes and never goes down. The holder
   * presents it on every fenced write, so a holder that lost the slot cannot write again.
   */
  readonly generation: number;
  /**
   * Random, new on every write to the row. A taker watches it: a version that stayed the same
   * for a full `leaseMs` on the taker's own clock means the holder stopped renewing.
   */
  readonly version: string;
  /** How long the holder promised it renews within, in milliseconds. */
  readonly leaseMs: number;
  /** Next offset to read on the slot's partition, as the holder last wrote it; null when never written. */
  readonly committed: number | null;
  /** True once the holder gave the slot up with {@link LeaseStore.releaseHeld}: free to take. */
  readonly released: boolean;
}

/** What an edge asks for when it takes a slot. */
export interface LeaseRequest {
  readonly slot: number;
  readonly edgeId: string;
  readonly host: string;
  readonly leaseMs: number;
}

/** What a fenced renewal may report besides extending the lease. */
export interface RenewExtra {
  /** Open device connections, for the admin API. */
  readonly connections?: number;
  /** Next offset to read on the slot, as {@link LeaseStore.commitOffset} would write it. */
  readonly committed?: number;
}

export interface LeaseStore {
  /**
   * Takes `slot` if it is free, expired, released or already held by `edgeId`, judging expiry
   * by the store's clock. A new holder (or any holder after a release) gets the next generation;
   * `committed` is kept. Rejects with `conflict` when another edge holds a live lease.
   */
  acquire(lease: LeaseRequest): Promise<SlotLease>;
  /** Extends the lease (a new version); rejects with `conflict` when `edgeId` no longer holds it. */
  renew(slot: number, edgeId: string, leaseMs: number, connections?: number): Promise<SlotLease>;
  /**
   * Gives the slot up if `edgeId` holds it (no error otherwise) by deleting the row, so the
   * generation and committed offset start over; {@link LeaseStore.releaseHeld} keeps them.
   */
  release(slot: number, edgeId: string): Promise<void>;
  get(slot: number): Promise<SlotLease | null>;
  /** Every lease row, live or expired. */
  list(): Promise<readonly SlotLease[]>;
  /**
   * Takes `slot` only when it has no row or its row is released; the generation is the old one
   * plus one (1 for a new row) and `committed` is kept. Never compares clocks. Rejects with
   * `conflict` otherwise.
   */
  acquireFree(lease: LeaseRequest): Promise<SlotLease>;
  /**
   * Takes `slot` from its holder only while the row's version still equals `expectedVersion`:
   * the caller watched that version unchanged for a full lease on its own clock. The generation
   * goes up by one and `committed` is kept. Rejects with `conflict` otherwise.
   */
  takeOver(lease: LeaseRequest, expectedVersion: string): Promise<SlotLease>;
  /**
   * Renews the lease `edgeId` holds with `generation` (not released): a new version, `leaseUntil`
   * = now + `leaseMs` on the store's wall clock (informational only), and the counts in `extra`.
   * Rejects with `conflict` otherwise.
   */
  renewHeld(slot: number, edgeId: string, generation: number, leaseMs: number, extra?: RenewExtra): Promise<SlotLease>;
  /**
   * Sets the slot's committed offset while `edgeId` holds it with `generation`, so a holder that
   * lost the slot cannot move it. Rejects with `conflict` otherwise.
   */
  commitOffset(slot: number, edgeId: string, generation: number, offset: number): Promise<void>;
  /**
   * Marks the slot released (with a new version) when `edgeId` holds it with `generation`; keeps
   * the row, its generation and its committed offset for the next holder. No error otherwise.
   */
  releaseHeld(slot: number, edgeId: string, generation: number): Promise<void>;
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

/**
 * Told about every call a registry adapter makes to its store (DynamoDB), for metrics. The
 * operation is the store's own name for the call (`GetItem`, `UpdateItem`, ...); `errorCode`
 * is the TetherError code the call failed with (`conflict` for a condition that did not hold),
 * absent when it succeeded.
 */
export interface RegistryCallObserver {
  observe(call: { operation: string; table: string; seconds: number; errorCode?: string }): void;
}
