/**
 * Whether a device's owner is live, decided one way for every part of the system. Edges write
 * no per-connection heartbeats, so a connection record counts only while the edge it names
 * holds an unexpired lease on the record's slot: an edge that died leaves records behind, and
 * this rule is what discards them.
 */
import type { ConnectionRecord, LeaseStore, SlotLease } from "./types.ts";

/** Where {@link ownerLive} reads leases: the registry's lease store, or a {@link LeaseCache} in front of it. */
export interface LeaseReader {
  /**
   * The lease on `slot`. `holder` is the edge the caller expects to hold it; a cache may answer
   * from memory only with a lease that shows `holder` holding it now.
   */
  get(slot: number, holder?: string): Promise<SlotLease | null>;
}

export interface OwnerLiveOptions {
  /**
   * Slots that exist (partitions of `replies`). A record naming a slot outside `[0, slots)` is
   * not live, and no lease is read for it. Unchecked when omitted.
   */
  readonly slots?: number;
}

/** Whether `lease` is unexpired at `now` (milliseconds since the epoch). */
export function leaseLive(lease: SlotLease, now: number): boolean {
  return lease.leaseUntil > now;
}

/** Whether `lease` exists, names `edgeId` and is unexpired at `now`. */
export function leaseHeldBy(lease: SlotLease | null, edgeId: string, now: number): boolean {
  return lease !== null && lease.edgeId === edgeId && leaseLive(lease, now);
}

/**
 * Whether the connection `record` describes is live: the edge it names still holds a live lease
 * on its slot. The clock is read once the lease has been read, so a slow read never counts a
 * lease that ran out meanwhile; pass `() => t` to judge at a fixed time `t`.
 */
export async function ownerLive(
  leases: LeaseReader,
  record: Pick<ConnectionRecord, "slot" | "edgeId">,
  now: () => number,
  options: OwnerLiveOptions = {},
): Promise<boolean> {
  const { slots } = options;
  if (slots !== undefined && !(Number.isInteger(record.slot) && record.slot >= 0 && record.slot < slots)) {
    return false;
  }
  const lease = await leases.get(record.slot, record.edgeId);
  return leaseHeldBy(lease, record.edgeId, now());
}

/**
 * Remembers slot leases for a short while so that a liveness check costs one registry read
 * instead of two. A remembered lease is handed out only while it is younger than `ttlMs` and
 * still shows the expected holder live: an expired or foreign lease is always read again, so
 * the cache can never make an owner look gone, and it can make one look live for at most
 * `ttlMs` after its edge gave the slot up.
 */
export class LeaseCache implements LeaseReader {
  readonly #leases: Pick<LeaseStore, "get">;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<number, { readonly lease: SlotLease; readonly readAt: number }>();
  /** One read per slot at a time; concurrent lookups share it. */
  readonly #reading = new Map<number, Promise<SlotLease | null>>();

  /** `ttlMs` of 0 or less reads the store on every call. */
  constructor(leases: Pick<LeaseStore, "get">, ttlMs: number, now: () => number) {
    this.#leases = leases;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** The remembered lease when it shows `holder` live, otherwise one read from the store. */
  get(slot: number, holder?: string): Promise<SlotLease | null> {
    const now = this.#now();
    const cached = this.#entries.get(slot);
    if (
      holder !== undefined &&
      cached !== undefined &&
      now - cached.readAt < this.#ttlMs &&
      leaseHeldBy(cached.lease, holder, now)
    ) {
      return Promise.resolve(cached.lease);
    }
    return this.#read(slot);
  }

  /** Whether `edgeId` holds a live lease on `slot`, by {@link ownerLive}'s rule. */
  heldBy(slot: number, edgeId: string): Promise<boolean> {
    return ownerLive(this, { slot, edgeId }, this.#now);
  }

  #read(slot: number): Promise<SlotLease | null> {
    const pending = this.#reading.get(slot);
    if (pending !== undefined) return pending;
    const readAt = this.#now();
    const reading = this.#leases.get(slot).then(
      (lease) => {
        if (lease === null || this.#ttlMs <= 0) this.#entries.delete(slot);
        else this.#entries.set(slot, { lease, readAt });
        return lease;
      },
      (error: unknown) => {
        this.#entries.delete(slot);
        throw error;
      },
    );
    const settled = reading.finally(() => this.#reading.delete(slot));
    this.#reading.set(slot, settled);
    return settled;
  }
}
