/** `downlink` records: a push for one device, written by the admin API and read by the router. */
import type { IncomingMessage, OutgoingMessage } from "../broker/types.ts";
import { encodePush } from "../protocol/encode.ts";
import { type Decoded, Header, isFiniteNumber, isNonEmptyString, parseObject, refuse } from "./headers.ts";

/** Value of a `downlink` record: a push for one device. */
export interface DownlinkRecord {
  readonly deviceId: string;
  readonly messageId: string;
  readonly type: string;
  readonly body: unknown;
  /** Milliseconds since the epoch; past it the push is dropped. */
  readonly expiresAt: number;
  readonly createdAt: number;
}

/** The `downlink` record of a push, keyed by its device so that a device's pushes keep their order. */
export function downlinkRecord(downlinkTopic: string, push: DownlinkRecord): OutgoingMessage {
  const value: DownlinkRecord = {
    deviceId: push.deviceId,
    messageId: push.messageId,
    type: push.type,
    body: push.body,
    expiresAt: push.expiresAt,
    createdAt: push.createdAt,
  };
  return {
    topic: downlinkTopic,
    key: push.deviceId,
    value: JSON.stringify(value),
    headers: { [Header.Device]: push.deviceId, [Header.MessageId]: push.messageId },
  };
}

/**
 * Reads a `downlink` record. A missing body reads as `null`; a missing or malformed `createdAt`
 * as the broker timestamp.
 */
export function decodeDownlink(message: IncomingMessage): Decoded<DownlinkRecord> {
  const parsed = parseObject(message.value, "downlink");
  if (!parsed.ok) return parsed;
  const fields = parsed.value;
  const { deviceId, messageId, type, expiresAt, createdAt } = fields;
  if (!isNonEmptyString(deviceId)) return refuse("downlink has no deviceId");
  if (!isNonEmptyString(messageId)) return refuse("downlink has no messageId");
  if (!isNonEmptyString(type)) return refuse("downlink has no type");
  if (!isFiniteNumber(expiresAt)) return refuse("downlink has no valid expiresAt");
  return {
    ok: true,
    value: {
      deviceId,
      messageId,
      type,
      body: fields.body === undefined ? null : fields.body,
      expiresAt,
      createdAt: isFiniteNumber(createdAt) ? createdAt : message.timestamp,
    },
  };
}

/**
 * The `push` frame of a push, without its line end: what the outbox keeps, what a `push` reply
 * carries and what the admin API measures against the frame limit. Every push frame is made here.
 */
export function pushFrame(push: Pick<DownlinkRecord, "messageId" | "type" | "body">): string {
  const line = encodePush(push.messageId, push.type, JSON.stringify(push.body === undefined ? null : push.body));
  return line.slice(0, -1);
}
