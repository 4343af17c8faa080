import type { ConnectionRecord, Registry, SlotLease } from "../../shared/registry/types.ts";

/** A lease counts while its expiry is in the future. */
export function isLive(lease: SlotLease, now: number): boolean {
  return lease.leaseUntil > now;
}

export interface DevicePresence {
  readonly record: ConnectionRecord;
  /** True when the record's edge still holds a live lease on the record's slot. */
  readonly online: boolean;
}

export interface PresenceContext {
  readonly registry: Registry;
  readonly maxEdges: number;
  readonly now: () => number;
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
  const lease = await context.registry.leases.get(record.slot);
  const online = lease !== null && lease.edgeId === record.edgeId && isLive(lease, context.now());
  return { record, online };
}
