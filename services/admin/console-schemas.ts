/** Schemas of the routes behind the operator console: fleet figures, device activity, events, dead letters. */
import { Type } from "typebox";
import { DeviceId, EdgeId } from "./schemas.ts";

const Millis = Type.Integer({ description: "milliseconds since the Unix epoch" });

export const MAX_REPLAY_IDS = 100;
export const MAX_DEAD_LETTERS = 1000;
export const DEFAULT_DEAD_LETTERS = 100;
export const MAX_DEVICE_EVENTS = 200;

const Totals = Type.Object(
  { sum: Type.Number({ minimum: 0 }), count: Type.Number({ minimum: 0 }) },
  { description: "running totals of a histogram since the edge started: the mean over an interval is Δsum / Δcount" },
);

const EdgeCounters = Type.Object(
  {
    connections: Type.Number({ minimum: 0, description: "open device connections now" }),
    requests: Type.Number({ minimum: 0, description: "requests accepted from devices since the edge started" }),
    acks: Type.Number({ minimum: 0, description: "requests acked since the edge started" }),
    ackLatencySeconds: Totals,
    roundTripSeconds: Totals,
  },
  { description: "the edge's own counters, read from its /metrics" },
);

export const EdgeStats = Type.Object({
  edgeId: EdgeId,
  slot: Type.Integer({ minimum: 0 }),
  host: Type.String(),
  startedAt: Millis,
  leaseUntil: Millis,
  connections: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], {
    description: "open connections at the edge's last lease renewal; null before its first report",
  }),
  metrics: Type.Union([EdgeCounters, Type.Null()], { description: "null when the edge's metrics could not be read" }),
  metricsError: Type.Optional(Type.String({ description: "why the metrics could not be read" })),
});

export const FleetStats = Type.Object({
  at: Millis,
  edges: Type.Array(EdgeStats),
  workerLag: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], {
    description: "records of `requests` the workers' group has not consumed yet; null when unknown",
  }),
  deadLetters: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], {
    description: "records written to `requests.dlq` (its log end offsets, summed); null when unknown",
  }),
});

export const PresenceEventView = Type.Object({
  id: Type.String({ description: "`partition-offset` of the `events` record" }),
  event: Type.Union([Type.Literal("connected"), Type.Literal("disconnected")]),
  deviceId: DeviceId,
  edgeId: Type.String(),
  connId: Type.String(),
  at: Millis,
  reason: Type.Optional(Type.String({ description: "for `disconnected`: bye, kicked, replaced, idle_timeout, ..." })),
  epoch: Type.Optional(Type.Integer()),
});

export const DeviceEventsQuery = Type.Object(
  { limit: Type.Integer({ minimum: 1, maximum: MAX_DEVICE_EVENTS, default: 50 }) },
  { additionalProperties: false },
);

export const DeviceEvents = Type.Object({
  deviceId: DeviceId,
  events: Type.Array(PresenceEventView, { description: "newest first, from the recent `events` the API holds" }),
});

export const OutboxItem = Type.Object({
  messageId: Type.String(),
  kind: Type.String({ description: "the parked frame's `t`: push, res or error" }),
  frame: Type.Unknown({ description: "the frame the device will be given, as JSON" }),
  createdAt: Millis,
  expiresAt: Millis,
});

export const DeviceOutbox = Type.Object({
  deviceId: DeviceId,
  items: Type.Array(OutboxItem, { description: "live entries, oldest first" }),
});

export const EventStreamQuery = Type.Object(
  {
    deviceId: Type.Optional(DeviceId),
    backlog: Type.Integer({
      minimum: 0,
      maximum: MAX_DEVICE_EVENTS,
      default: 20,
      description: "recent events sent first, before the live ones",
    }),
  },
  { additionalProperties: false },
);

export const DeadLettersQuery = Type.Object(
  { limit: Type.Integer({ minimum: 1, maximum: MAX_DEAD_LETTERS, default: DEFAULT_DEAD_LETTERS }) },
  { additionalProperties: false },
);

export const DeadLetterView = Type.Object({
  id: Type.String({ description: "`partition-offset` of the `requests.dlq` record: what a replay names" }),
  deviceId: Type.Union([Type.String(), Type.Null()], { description: "the record's key" }),
  error: Type.Object({ name: Type.String(), message: Type.String(), stack: Type.Optional(Type.String()) }),
  attempts: Type.Integer({ minimum: 0 }),
  request: Type.Union([Type.Unknown(), Type.Null()], {
    description: "the request as the worker read it; null when it was not a valid request",
  }),
  rawValue: Type.Optional(Type.String({ description: "the original value as text, when `request` is null" })),
  source: Type.Object({ topic: Type.String(), partition: Type.Integer(), offset: Type.String() }),
  failedAt: Millis,
  replayable: Type.Boolean({ description: "false when there is no request to write back" }),
});

export const DeadLetterList = Type.Object({
  written: Type.Integer({ minimum: 0, description: "records written to `requests.dlq` (log end offsets, summed)" }),
  items: Type.Array(DeadLetterView, { description: "newest first, from the recent dead letters the API holds" }),
});

export const ReplayBody = Type.Object(
  {
    ids: Type.Array(Type.String({ pattern: "^[0-9]{1,9}-[0-9]{1,20}$" }), {
      minItems: 1,
      maxItems: MAX_REPLAY_IDS,
      uniqueItems: true,
      description: "dead letter ids from the list",
    }),
  },
  { additionalProperties: false },
);

export const ReplayResult = Type.Object({
  replayed: Type.Array(
    Type.Object({
      id: Type.String(),
      partition: Type.Integer({ description: "partition of `requests` the request was written to" }),
      offset: Type.String(),
    }),
  ),
  refused: Type.Array(
    Type.Object({
      id: Type.String(),
      reason: Type.Union([Type.Literal("unknown"), Type.Literal("not_replayable")], {
        description: "unknown: not among the dead letters held; not_replayable: no valid request in it",
      }),
    }),
  ),
});
