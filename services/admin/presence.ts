import type { ConnectionRecord, LeaseStore, Registry, SlotLease } from "../../shared/registry/types.ts";

/** A lease counts while its expiry is in the future. */
export function isLive(lease: SlotLease, now: number): boolean {
  return lease.leaseUntil > now;
}

/**
 * Remembers slot leases for a short while so that a device lookup costs one registry read
 * instead of two. Only a lease that proves a device online is served from memory, and only
 * while it is both younger than `ttlMs` and still unexpired: an expired or foreign lease is
 * always read again, so the cache can never make a device look offline, and it can make one
 * look online for at most `ttlMs` after its edge gave the slot up.
 */
export class LeaseCache {
  readonly #leases: LeaseStore;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<number, { readonly lease: SlotLease; readonly readAt: number }>();
  /** One read per slot at a time; concurrent lookups share it. */
  readonly #reading = new Map<number, Promise<SlotLease | null>>();

  constructor(leases: LeaseStore, ttlMs: number, now: () => number) {
    this.#leases = leases;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** Whether `edgeId` holds a live lease on `slot`. */
  async heldBy(slot: number, edgeId: string): Promise<boolean> {
    const now = this.#now();
    const cached = this.#entries.get(slot);
    if (
      cached !== undefined &&
      now - cached.readAt < this.#ttlMs &&
      cached.lease.edgeId === edgeId &&
      isLive(cached.lease, now)
    ) {
      return true;
    }
    const lease = await this.#read(slot);
    return lease !== null && lease.edgeId === edgeId && isLive(lease, this.#now());
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

export interface DevicePresence {
  readonly record: ConnectionRecord;
  /** True when the record's edge still holds a live lease on the record's slot. */
  readonly online: boolean;
}

export interface PresenceContext {
  readonly registry: Registry;
  readonly leaseCache: LeaseCache;
  readonly maxEdges: number;
}

/**
 * The device's newest connection record and whether it counts. A record counts only while the
 * edge it names holds a live lease on its slot: edges write no per-connection heartbeats, so an
 * edge that died leaves records behind, and this check is what discards them.
 */
export async function lookupDevice(context: PresenceContext, deviceId: string): Promise<DevicePresence | null> {
  const record = await context.registry.connections.get(deviceId);
  if (record === null) return null;
  if (!Number.isInteger(record.slot) || record.slot < 0 || record.slot >= context.maxEdges) {
    return { record, online: false };
  }
  const online = await context.leaseCache.heldBy(record.slot, record.edgeId);
  return { record, online };
}
