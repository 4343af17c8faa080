/**
 * The in-memory registry: the same conditional-write semantics as the DynamoDB adapter
 * (atomic epoch claims, owner-checked deletes, leases with expiry, an outbox with TTL), held
 * in this process. The registry contract suite holds both adapters to the same behaviour.
 */
import { randomUUID } from "node:crypto";
import { ErrorCode, TetherError } from "../../errors/index.ts";
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

export interface MemoryRegistryOptions {
  /** The clock for lease liveness and outbox expiry; `Date.now` when omitted. */
  readonly now?: () => number;
}

function encodeCursor(deviceId: string): string {
  return Buffer.from(JSON.stringify({ after: deviceId }), "utf8").toString("base64url");
}

function decodeCursor(cursor: string): string {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (typeof parsed === "object" && parsed !== null && typeof (parsed as { after?: unknown }).after === "string") {
      return (parsed as { after: string }).after;
    }
  } catch {
    // Falls through to the error below.
  }
  throw new TetherError(ErrorCode.InvalidArgument, "malformed page cursor");
}

/** What a device's item keeps besides its owner, across releases: the counters. */
interface DeviceCounters {
  /** Highest epoch ever given, so a claim after a release still goes up. */
  epoch: number;
  /** Hello attempts taken so far. */
  attempts: number;
  /** Highest attempt that claimed; absent while no claim carried one. */
  claimedAttempt: number | undefined;
}

class MemoryConnectionStore implements ConnectionStore {
  readonly #state: ClosedGuard;
  /** Owners, without the attempt (that is read from the counters). */
  readonly #records = new Map<string, Omit<ConnectionRecord, "attempt">>();
  readonly #counters = new Map<string, DeviceCounters>();

  constructor(state: ClosedGuard) {
    this.#state = state;
  }

  async beginAttempt(deviceId: string): Promise<number> {
    this.#state.check();
    const counters = this.#countersOf(deviceId);
    counters.attempts += 1;
    return counters.attempts;
  }

  async claim(claim: ConnectionClaim): Promise<ClaimResult> {
    this.#state.check();
    if (claim.attempt !== undefined) checkAttempt(claim.attempt);
    const counters = this.#countersOf(claim.deviceId);
    if (
      claim.attempt !== undefined &&
      counters.claimedAttempt !== undefined &&
      counters.claimedAttempt >= claim.attempt
    ) {
      throw new TetherError(ErrorCode.Conflict, `device ${claim.deviceId} was claimed by a later hello`, {
        details: { deviceId: claim.deviceId, attempt: claim.attempt, claimedAttempt: counters.claimedAttempt },
      });
    }
    const previous = this.#read(claim.deviceId);
    counters.epoch += 1;
    if (claim.attempt !== undefined) counters.claimedAttempt = claim.attempt;
    this.#records.set(
      claim.deviceId,
      Object.freeze({
        deviceId: claim.deviceId,
        edgeId: claim.edgeId,
        slot: claim.slot,
        connId: claim.connId,
        epoch: counters.epoch,
        connectedAt: claim.connectedAt,
        ...(claim.protocol === undefined ? {} : { protocol: claim.protocol }),
      }),
    );
    return { record: this.#read(claim.deviceId)!, previous };
  }

  async get(deviceId: string): Promise<ConnectionRecord | null> {
    this.#state.check();
    return this.#read(deviceId);
  }

  async release(deviceId: string, connId: string): Promise<boolean> {
    this.#state.check();
    const record = this.#records.get(deviceId);
    if (record === undefined || record.connId !== connId) return false;
    this.#records.delete(deviceId);
    return true;
  }

  async restore(connId: string, previous: ConnectionRecord): Promise<boolean> {
    this.#state.check();
    const deviceId = previous.deviceId;
    if (this.#records.get(deviceId)?.connId !== connId) return false;
    const counters = this.#countersOf(deviceId);
    counters.epoch += 1;
    this.#records.set(
      deviceId,
      Object.freeze({
        deviceId,
        edgeId: previous.edgeId,
        slot: previous.slot,
        connId: previous.connId,
        epoch: counters.epoch,
        connectedAt: previous.connectedAt,
        ...(previous.protocol === undefined ? {} : { protocol: previous.protocol }),
      }),
    );
    return true;
  }

  #countersOf(deviceId: string): DeviceCounters {
    let counters = this.#counters.get(deviceId);
    if (counters === undefined) {
      counters = { epoch: 0, attempts: 0, claimedAttempt: undefined };
      this.#counters.set(deviceId, counters);
    }
    return counters;
  }

  /** A fresh copy of the device's owner with its claimed attempt, or null. */
  #read(deviceId: string): ConnectionRecord | null {
    const record = this.#records.get(deviceId);
    if (record === undefined) return null;
    const attempt = this.#counters.get(deviceId)?.claimedAttempt;
    return attempt === undefined ? { ...record } : { ...record, attempt };
  }

  async listByEdge(edgeId: string, options: { limit?: number; cursor?: string } = {}): Promise<Page<ConnectionRecord>> {
    this.#state.check();
    const limit = pageLimit(options.limit);
    const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    const matching = [...this.#records.values()]
      .filter((record) => record.edgeId === edgeId && (after === undefined || record.deviceId > after))
      .sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
    const items = matching.slice(0, limit).map((record) => this.#read(record.deviceId)!);
    const last = items.at(-1);
    if (matching.length > limit && last !== undefined) return { items, cursor: encodeCursor(last.deviceId) };
    return { items };
  }
}

function leaseConflict(slot: number, message: string): TetherError {
  return new TetherError(ErrorCode.Conflict, `slot ${slot} ${message}`, { details: { slot } });
}

class MemoryLeaseStore implements LeaseStore {
  readonly #state: ClosedGuard;
  readonly #now: () => number;
  readonly #leases = new Map<number, SlotLease>();

  constructor(state: ClosedGuard, now: () => number) {
    this.#state = state;
    this.#now = now;
  }

  async acquire(lease: LeaseRequest): Promise<SlotLease> {
    this.#state.check();
    const now = this.#now();
    const current = this.#leases.get(lease.slot);
    const held = current !== undefined && !current.released;
    if (held && current.edgeId !== lease.edgeId && current.leaseUntil > now) {
      throw leaseConflict(lease.slot, "is held by another edge");
    }
    const sameHolder = held && current.edgeId === lease.edgeId;
    return this.#take(lease, current, sameHolder ? current.generation : (current?.generation ?? 0) + 1);
  }

  async acquireFree(lease: LeaseRequest): Promise<SlotLease> {
    this.#state.check();
    const current = this.#leases.get(lease.slot);
    if (current !== undefined && !current.released) throw leaseConflict(lease.slot, "is held and not released");
    return this.#take(lease, current, (current?.generation ?? 0) + 1);
  }

  async takeOver(lease: LeaseRequest, expectedVersion: string): Promise<SlotLease> {
    this.#state.check();
    const current = this.#leases.get(lease.slot);
    if (current === undefined || current.version !== expectedVersion) {
      throw leaseConflict(lease.slot, "changed since its version was watched");
    }
    return this.#take(lease, current, current.generation + 1);
  }

  async renew(slot: number, edgeId: string, leaseMs: number, connections?: number): Promise<SlotLease> {
    this.#state.check();
    const current = this.#leases.get(slot);
    if (current === undefined || current.released || current.edgeId !== edgeId) {
      throw leaseConflict(slot, "is no longer held by this edge");
    }
    return this.#write({
      ...current,
      leaseUntil: this.#now() + leaseMs,
      leaseMs,
      ...(connections === undefined ? {} : { connections }),
    });
  }

  async renewHeld(
    slot: number,
    edgeId: string,
    generation: number,
    leaseMs: number,
    extra: RenewExtra = {},
  ): Promise<SlotLease> {
    this.#state.check();
    if (extra.committed !== undefined) checkOffset(extra.committed);
    const current = this.#held(slot, edgeId, generation);
    if (current === undefined || current.released) throw leaseConflict(slot, "is no longer held with this generation");
    return this.#write({
      ...current,
      leaseUntil: this.#now() + leaseMs,
      leaseMs,
      ...(extra.connections === undefined ? {} : { connections: extra.connections }),
      ...(extra.committed === undefined ? {} : { committed: extra.committed }),
    });
  }

  async commitOffset(slot: number, edgeId: string, generation: number, offset: number): Promise<void> {
    this.#state.check();
    checkOffset(offset);
    const current = this.#held(slot, edgeId, generation);
    if (current === undefined) throw leaseConflict(slot, "is no longer held with this generation");
    this.#write({ ...current, committed: offset });
  }

  async release(slot: number, edgeId: string): Promise<void> {
    this.#state.check();
    if (this.#leases.get(slot)?.edgeId === edgeId) this.#leases.delete(slot);
  }

  async releaseHeld(slot: number, edgeId: string, generation: number): Promise<void> {
    this.#state.check();
    const current = this.#held(slot, edgeId, generation);
    if (current === undefined || current.released) return;
    // Ending the lease now keeps readers that judge liveness by leaseUntil from counting it.
    this.#write({ ...current, released: true, leaseUntil: this.#now() });
  }

  async get(slot: number): Promise<SlotLease | null> {
    this.#state.check();
    const lease = this.#leases.get(slot);
    return lease === undefined ? null : { ...lease };
  }

  async list(): Promise<readonly SlotLease[]> {
    this.#state.check();
    return [...this.#leases.values()].sort((a, b) => a.slot - b.slot).map((lease) => ({ ...lease }));
  }

  /** The row of `slot` when it names `edgeId` with `generation`, released or not. */
  #held(slot: number, edgeId: string, generation: number): SlotLease | undefined {
    const current = this.#leases.get(slot);
    return current !== undefined && current.edgeId === edgeId && current.generation === generation
      ? current
      : undefined;
  }

  /** Gives the slot to `lease` with `generation`, keeping the committed offset of `current`. */
  #take(lease: LeaseRequest, current: SlotLease | undefined, generation: number): SlotLease {
    const now = this.#now();
    return this.#write({
      slot: lease.slot,
      edgeId: lease.edgeId,
      host: lease.host,
      startedAt: now,
      leaseUntil: now + lease.leaseMs,
      generation,
      version: "",
      leaseMs: lease.leaseMs,
      committed: current?.committed ?? null,
      released: false,
    });
  }

  /** Stores `row` under a new version and hands out a copy. */
  #write(row: SlotLease): SlotLease {
    const written: SlotLease = Object.freeze({ ...row, version: randomUUID() });
    this.#leases.set(written.slot, written);
    return { ...written };
  }
}

class MemoryOutboxStore implements OutboxStore {
  readonly #state: ClosedGuard;
  readonly #now: () => number;
  readonly #devices = new Map<string, Map<string, OutboxEntry>>();

  constructor(state: ClosedGuard, now: () => number) {
    this.#state = state;
    this.#now = now;
  }

  async put(entry: OutboxEntry): Promise<void> {
    this.#state.check();
    let entries = this.#devices.get(entry.deviceId);
    if (entries === undefined) {
      entries = new Map();
      this.#devices.set(entry.deviceId, entries);
    }
    entries.set(
      entry.messageId,
      Object.freeze({
        deviceId: entry.deviceId,
        messageId: entry.messageId,
        frame: entry.frame,
        createdAt: entry.createdAt,
        expiresAt: entry.expiresAt,
      }),
    );
  }

  async list(deviceId: string, limit?: number): Promise<readonly OutboxEntry[]> {
    this.#state.check();
    const entries = this.#devices.get(deviceId);
    if (entries === undefined) return [];
    const now = this.#now();
    for (const [messageId, entry] of entries) {
      // What DynamoDB's TTL would eventually do; expired entries are never returned either way.
      if (entry.expiresAt <= now) entries.delete(messageId);
    }
    if (entries.size === 0) this.#devices.delete(deviceId);
    return outboxOrder([...entries.values()], limit).map((entry) => ({ ...entry }));
  }

  async delete(deviceId: string, messageId: string): Promise<void> {
    this.#state.check();
    const entries = this.#devices.get(deviceId);
    if (entries === undefined) return;
    entries.delete(messageId);
    if (entries.size === 0) this.#devices.delete(deviceId);
  }
}

/** A registry held in this process's memory; each instance is its own store. */
export class MemoryRegistry implements Registry {
  readonly kind = "memory" as const;
  readonly connections: ConnectionStore;
  readonly leases: LeaseStore;
  readonly outbox: OutboxStore;
  readonly #state = new ClosedGuard();

  constructor(options: MemoryRegistryOptions = {}) {
    const now = options.now ?? Date.now;
    this.connections = new MemoryConnectionStore(this.#state);
    this.leases = new MemoryLeaseStore(this.#state, now);
    this.outbox = new MemoryOutboxStore(this.#state, now);
  }

  async ping(): Promise<void> {
    this.#state.check();
  }

  async close(): Promise<void> {
    this.#state.closed = true;
  }
}
