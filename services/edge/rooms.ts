import type { Limiter } from "../../shared/async/index.ts";
import type { Authenticator } from "../../shared/auth/index.ts";
import type { Broker, PartitionConsumer, Producer } from "../../shared/broker/types.ts";
import type { ResourceNames } from "../../shared/config/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import type { Registry } from "../../shared/registry/types.ts";
import type { EdgeConfig } from "./config.ts";
import { Delivery } from "./delivery.ts";
import { Ingress } from "./ingress.ts";
import type { SlotKeeper } from "./lease.ts";
import type { DeviceListener } from "./listener.ts";
import type { EdgeMetrics } from "./metrics.ts";
import { Outbound } from "./outbound.ts";
import { Ownership } from "./ownership.ts";
import { Protocol } from "./protocol.ts";

/** What a started edge is made of, once it holds a slot. */
export interface Rooms {
  readonly producer: Producer;
  readonly keeper: SlotKeeper;
  readonly slot: number;
  readonly ingress: Ingress;
  readonly ownership: Ownership;
  readonly delivery: Delivery;
  readonly protocol: Protocol;
  consumer?: PartitionConsumer;
}

export interface RoomsDeps {
  readonly config: EdgeConfig;
  readonly registry: Registry;
  readonly log: Logger;
  readonly auth: Authenticator;
  readonly metrics: EdgeMetrics;
  readonly now: () => number;
  readonly producer: Producer;
  readonly keeper: SlotKeeper;
  readonly slot: number;
  readonly listener: DeviceListener;
  readonly running: () => boolean;
  readonly delivering: () => boolean;
  readonly helloCalls: Limiter;
  readonly background: Limiter;
}

/** Wires the rooms of an edge to each other (the picture is in docs/architecture.md). */
export function buildRooms(deps: RoomsDeps): Rooms {
  const { config, registry, log, auth, metrics, now, producer, keeper, slot, listener } = deps;
  const { running, delivering, helloCalls, background } = deps;
  const session = (connId: string) => listener.get(connId);
  const outbound = new Outbound(config, producer, log);
  const ingress = new Ingress({ config, log, metrics, now, producer, slot });
  let protocol: Protocol | undefined;
  let delivery: Delivery | undefined;
  const ownership = new Ownership({
    ...{ config, log, metrics, registry, auth, now, slot, outbound, session, running, helloCalls, background },
    welcomed: async (opened) => {
      protocol?.replayEarly(opened);
      const deviceId = opened.deviceId;
      if (deviceId !== undefined) await delivery?.deliverOutbox(opened, deviceId);
    },
  });
  const replies = new Delivery({
    ...{ config, log, metrics, registry, now, slot, producer, outbound, ownership, ingress, session },
    ...{ delivering, helloCalls, background },
  });
  delivery = replies;
  protocol = new Protocol({ config, metrics, now, ownership, ingress, delivery: replies });
  return { producer, keeper, slot, ingress, ownership, delivery: replies, protocol };
}

/** Concurrent reply handlers; replies of one device stay in order (keyed by deviceId). */
const REPLY_CONCURRENCY = 64;

/** The consumer group under which an edge commits its progress on a reply slot. */
export function slotGroupId(names: ResourceNames, slot: number): string {
  const topic = names.repliesTopic;
  const prefix = topic.endsWith("replies") ? topic.slice(0, -"replies".length) : `${topic}.`;
  return `${prefix}edge-slot-${slot}`;
}

/** Starts the consumer of the edge's reply slot, from the slot's committed offset. */
export async function startReplies(broker: Broker, config: EdgeConfig, rooms: Rooms): Promise<void> {
  const names = config.common.names;
  const consumer = broker.partitionConsumer({
    groupId: slotGroupId(names, rooms.slot),
    topic: names.repliesTopic,
    partition: rooms.slot,
    fallback: "earliest",
    concurrency: REPLY_CONCURRENCY,
    orderBy: "key",
  });
  rooms.consumer = consumer;
  await consumer.start((message) => rooms.delivery.onReply(message));
}

/** One coarse timer for every connection (hello, handshake and idle timeouts, stuck closes). */
export function sweepEvery(config: EdgeConfig, sweep: () => void): NodeJS.Timeout {
  const limits = config.limits;
  const everyMs = Math.min(1000, Math.max(20, Math.floor(Math.min(limits.helloTimeoutMs, limits.heartbeatMs) / 4)));
  const timer = setInterval(sweep, everyMs);
  timer.unref();
  return timer;
}
