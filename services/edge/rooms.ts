import type { Limiter } from "../../shared/async/index.ts";
import type { Authenticator } from "../../shared/auth/index.ts";
import type { Broker, PartitionConsumer, Producer } from "../../shared/broker/types.ts";
import { slotGroup } from "../../shared/config/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import type { Registry } from "../../shared/registry/types.ts";
import type { Tracing } from "../../shared/telemetry/index.ts";
import { Beacons } from "./beacons.ts";
import type { EdgeConfig } from "./config.ts";
import { Delivery } from "./delivery.ts";
import { Ingress } from "./ingress.ts";
import { Janitor } from "./janitor.ts";
import type { HeldLease } from "./lease.ts";
import type { DeviceListener } from "./listener.ts";
import type { EdgeMetrics } from "./metrics.ts";
import { Outbound } from "./outbound.ts";
import { Ownership } from "./ownership.ts";
import { Protocol } from "./protocol.ts";

/** What a started edge is made of, once it holds a slot. */
export interface Rooms {
  readonly producer: Producer;
  readonly lease: HeldLease;
  readonly slot: number;
  readonly ingress: Ingress;
  readonly ownership: Ownership;
  readonly delivery: Delivery;
  readonly protocol: Protocol;
  consumer?: PartitionConsumer;
  beacons?: Beacons;
  janitor?: Janitor;
}

export interface RoomsDeps {
  readonly config: EdgeConfig;
  readonly registry: Registry;
  readonly log: Logger;
  readonly auth: Authenticator;
  readonly metrics: EdgeMetrics;
  readonly now: () => number;
  readonly producer: Producer;
  readonly lease: HeldLease;
  readonly listener: DeviceListener;
  readonly running: () => boolean;
  /** True while this edge may write answers, pushes and acks of its own slot. */
  readonly fence: () => boolean;
  readonly helloCalls: Limiter;
  readonly background: Limiter;
  /** Spans for requests (ingress) and answers (delivery); none without it. */
  readonly tracing?: Tracing | undefined;
}

/** Wires the rooms of an edge to each other (the picture is in docs/architecture.md). */
export function buildRooms(deps: RoomsDeps): Rooms {
  const { config, registry, log, auth, metrics, now, producer, lease, listener } = deps;
  const { running, fence, helloCalls, background, tracing } = deps;
  const slot = lease.slot;
  const session = (connId: string) => listener.get(connId);
  const outbound = new Outbound(config, producer, log);
  const ingress = new Ingress({ config, log, metrics, now, producer, slot, fence, tracing });
  let protocol: Protocol | undefined;
  let delivery: Delivery | undefined;
  const ownership = new Ownership({
    ...{ config, log, metrics, registry, auth, now, slot, outbound, session, running, fence, helloCalls, background },
    welcomed: async (opened) => {
      protocol?.replayEarly(opened);
      const deviceId = opened.deviceId;
      if (deviceId !== undefined) await delivery?.deliverOutbox(opened, deviceId);
    },
  });
  const replies = new Delivery({
    ...{ config, log, metrics, registry, now, slot, producer, outbound, ownership, ingress, session },
    ...{ helloCalls, background, tracing },
  });
  delivery = replies;
  protocol = new Protocol({ config, metrics, now, ownership, ingress, delivery: replies });
  return { producer, lease, slot, ingress, ownership, delivery: replies, protocol };
}

/** Concurrent reply handlers; replies of one device stay in order (keyed by deviceId). */
const REPLY_CONCURRENCY = 64;

/**
 * Starts the consumer of the edge's reply slot at the offset its lease row holds; offsets are
 * saved there too, under the lease's generation, so an edge that lost the slot cannot move them.
 */
export async function startReplies(
  broker: Broker,
  config: EdgeConfig,
  rooms: Rooms,
  fence: () => boolean,
): Promise<void> {
  const names = config.common.names;
  const lease = rooms.lease;
  const consumer = broker.partitionConsumer({
    groupId: slotGroup(names, rooms.slot),
    topic: names.repliesTopic,
    partition: rooms.slot,
    fallback: "earliest",
    concurrency: REPLY_CONCURRENCY,
    orderBy: "key",
    // While the lease cannot be proven every record is refused; resume within a third of a lease.
    maxRetryDelayMs: Math.max(50, Math.floor(config.leaseMs / 3)),
    offsets: { load: async () => lease.startOffset, save: (next) => lease.commit(next) },
  });
  rooms.consumer = consumer;
  await consumer.start((message) => rooms.delivery.onReply(message, fence));
}

/** One coarse timer for every connection (hello, handshake and idle timeouts, stuck closes). */
export function sweepEvery(config: EdgeConfig, sweep: () => void): NodeJS.Timeout {
  const limits = config.limits;
  const everyMs = Math.min(1000, Math.max(20, Math.floor(Math.min(limits.helloTimeoutMs, limits.heartbeatMs) / 4)));
  const timer = setInterval(sweep, everyMs);
  timer.unref();
  return timer;
}

export interface WatchDeps {
  readonly broker: Broker;
  readonly registry: Registry;
  readonly config: EdgeConfig;
  readonly log: Logger;
  readonly clock: () => number;
  readonly slots: number;
  readonly producer: Producer;
}

/**
 * Starts the edge's part in keeping every slot read: beacons (liveness through Kafka) and the
 * janitor that adopts slots whose holder fell silent. Records of adopted slots are handled like
 * the edge's own, fenced by the adopted lease.
 */
export async function watchSlots(rooms: Rooms, deps: WatchDeps, delivering: () => boolean): Promise<void> {
  const { broker, registry, config, log, clock, slots, producer } = deps;
  const own = { slot: rooms.slot, generation: rooms.lease.generation };
  let janitor: Janitor | undefined;
  const beacons = new Beacons({
    broker,
    producer,
    config,
    logger: log,
    clock,
    held: () => [own, ...(janitor?.held() ?? [])],
  });
  janitor = new Janitor({
    ...{ broker, leases: registry.leases, config, logger: log, clock, beacons, slots, ownSlot: rooms.slot },
    handle: (message, fence) => rooms.delivery.onReply(message, () => delivering() && fence()),
  });
  rooms.beacons = beacons;
  rooms.janitor = janitor;
  await beacons.start();
  janitor.start();
}
