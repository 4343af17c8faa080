import { type LeaseCache, ownerLive } from "../../shared/registry/index.ts";
import type { ConnectionRecord, Registry } from "../../shared/registry/types.ts";

export interface DevicePresence {
  readonly record: ConnectionRecord;
  /** True when the record's edge still holds a live lease on the record's slot. */
  readonly online: boolean;
}

export interface PresenceContext {
  readonly registry: Registry;
  readonly leaseCache: LeaseCache;
  readonly maxEdges: number;
  readonly now: () => number;
}

/**
 * The device's newest connection record and whether it counts, by the registry's owner
 * liveness rule (`ownerLive`) on the API's lease cache. A record naming a slot past `maxEdges`
 * never counts, so a kick is never sent to a partition that does not exist.
 */
export async function lookupDevice(context: PresenceContext, deviceId: string): Promise<DevicePresence | null> {
  const record = await context.registry.connections.get(deviceId);
  if (record === null) return null;
  const online = await ownerLive(context.leaseCache, record, context.now, { slots: context.maxEdges });
  return { record, online };
}
