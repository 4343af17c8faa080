/** `events` records: a device connected to or disconnected from an edge. */
import type { IncomingMessage, OutgoingMessage } from "../broker/types.ts";
import { type Decoded, isFiniteNumber, isNonEmptyString, parseObject, refuse } from "./headers.ts";

export const PresenceEventKind = {
  Connected: "connected",
  Disconnected: "disconnected",
} as const;
export type PresenceEventKind = (typeof PresenceEventKind)[keyof typeof PresenceEventKind];

/** Value of an `events` record. */
export interface PresenceEvent {
  readonly event: PresenceEventKind;
  readonly deviceId: string;
  readonly edgeId: string;
  readonly connId: string;
  readonly at: number;
  /** For `disconnected`: why the connection ended (`bye`, `replaced`, `idle_timeout`, ...). */
  readonly reason?: string;
  /** The connection's ownership epoch: of two events of one device, the higher epoch is newer. */
  readonly epoch?: number;
  /**
   * For `disconnected`: the MQTT Will message the device left in CONNECT, when the connection
   * ended without DISCONNECT (the payload as UTF-8 text).
   */
  readonly will?: PresenceWill;
}

/** An MQTT device's Will message, carried by its `disconnected` event. */
export interface PresenceWill {
  readonly topic: string;
  readonly payload: string;
}

/**
 * The `events` record of a presence change, keyed by the device so that its events stay in
 * order. It carries no headers.
 */
export function presenceRecord(eventsTopic: string, event: PresenceEvent): OutgoingMessage {
  const value: PresenceEvent = {
    event: event.event,
    deviceId: event.deviceId,
    edgeId: event.edgeId,
    connId: event.connId,
    at: event.at,
    ...(event.reason === undefined ? {} : { reason: event.reason }),
    ...(event.epoch === undefined ? {} : { epoch: event.epoch }),
    ...(event.will === undefined ? {} : { will: { topic: event.will.topic, payload: event.will.payload } }),
  };
  return { topic: eventsTopic, key: event.deviceId, value: JSON.stringify(value) };
}

/** Reads an `events` record. */
export function decodePresence(message: IncomingMessage): Decoded<PresenceEvent> {
  const parsed = parseObject(message.value, "presence event");
  if (!parsed.ok) return parsed;
  const { event, deviceId, edgeId, connId, at, reason, epoch, will } = parsed.value;
  if (event !== PresenceEventKind.Connected && event !== PresenceEventKind.Disconnected) {
    return refuse("presence event is neither connected nor disconnected");
  }
  if (!isNonEmptyString(deviceId)) return refuse("presence event has no deviceId");
  if (!isNonEmptyString(edgeId)) return refuse("presence event has no edgeId");
  if (!isNonEmptyString(connId)) return refuse("presence event has no connId");
  if (!isFiniteNumber(at)) return refuse("presence event has no valid at");
  if (reason !== undefined && typeof reason !== "string") return refuse("presence event reason is not a string");
  const willValue = readWill(will);
  if (willValue === null) return refuse("presence event will is not a topic and payload");
  const value: PresenceEvent = {
    ...{ event, deviceId, edgeId, connId, at },
    ...(reason === undefined ? {} : { reason }),
    ...(Number.isSafeInteger(epoch) ? { epoch: epoch as number } : {}),
    ...(willValue === undefined ? {} : { will: willValue }),
  };
  return { ok: true, value };
}

/** undefined when absent, null when malformed. */
function readWill(will: unknown): PresenceWill | undefined | null {
  if (will === undefined) return undefined;
  if (typeof will !== "object" || will === null) return null;
  const { topic, payload } = will as Record<string, unknown>;
  if (typeof topic !== "string" || typeof payload !== "string") return null;
  return { topic, payload };
}
