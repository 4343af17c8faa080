/**
 * `replies` records: answers, pushes and control orders on the partition (slot) of the edge
 * that is to act on them. The value of an answer or push is the device's frame, which an edge
 * writes to the socket as it is; what the edge routes by is in the headers, so it never parses
 * the frame. A record's kind comes from its `tether-kind` header alone; answers, the bulk of the
 * topic, carry none (a record without it is an answer).
 */
import type { IncomingMessage, MessageHeaders, OutgoingMessage } from "../broker/types.ts";
import type { DownlinkRecord } from "./downlink.ts";
import {
  type Decoded,
  Header,
  isNonEmptyString,
  parseObject,
  ReplyKind,
  type ReplyRoute,
  readTimeHeader,
  refuse,
} from "./headers.ts";
import type { RequestRecord } from "./request.ts";

/** Value of a `replies` record of kind `control`: an order for the edge holding the slot. */
export type ControlRecord =
  | {
      readonly op: "close";
      readonly deviceId: string;
      readonly connId: string;
      readonly reason: "replaced" | "kicked";
      /** For `replaced`: the ownership epoch of the device's connection that replaced this one. */
      readonly epoch?: number;
    }
  | { readonly op: "deliver_outbox"; readonly deviceId: string };

/** A `replies` record of kind `answer`: a `res` or `error` frame for one request. */
export interface AnswerReply {
  readonly kind: typeof ReplyKind.Answer;
  readonly deviceId: string;
  /** The connection that sent the request; null when the record names none. */
  readonly connId: string | null;
  /** Null when the record names no request. */
  readonly requestId: string | null;
  /** When the edge read the request off the socket (ms since the epoch); null when unknown. */
  readonly receivedAt: number | null;
  /** Outbox expiry of a parked answer (ms since the epoch); null when the record sets none. */
  readonly expiresAt: number | null;
  /** Edges that forwarded the record already. */
  readonly hops: number;
  /** The frame, as the device gets it. */
  readonly frame: Buffer;
}

/** A `replies` record of kind `push`: a push frame, already in the device's outbox. */
export interface PushReply {
  readonly kind: typeof ReplyKind.Push;
  readonly deviceId: string;
  /**
   * The push's message id, which the device acks. Null when the record lacks the header, which
   * every producer of pushes writes; the id is then only in the frame.
   */
  readonly messageId: string | null;
  /** Outbox expiry (ms since the epoch); null when the record sets none. */
  readonly expiresAt: number | null;
  /** The connection an edge forwarded the push for; null as the router writes it. */
  readonly connId: string | null;
  /** Edges that forwarded the record already. */
  readonly hops: number;
  /** The frame, as the device gets it. */
  readonly frame: Buffer;
}

/** A `replies` record of kind `control`. */
export interface ControlReply {
  readonly kind: typeof ReplyKind.Control;
  readonly control: ControlRecord;
}

/** A decoded `replies` record; see {@link decodeReply}. */
export type Reply = AnswerReply | PushReply | ControlReply;

/**
 * The `replies` record carrying a request's answer frame to the edge slot of its reply route.
 * `traceparent`, when tracing is on, is the trace context the edge's delivery continues.
 */
export function answerRecord(
  repliesTopic: string,
  route: ReplyRoute,
  request: Pick<RequestRecord, "deviceId" | "id" | "receivedAt">,
  frame: string,
  traceparent?: string,
): OutgoingMessage {
  // No kind header (a record without one is an answer) and no device header (the key is the
  // device): each header costs the client a copy and an allocation on both sides of the broker.
  const headers: Record<string, string> = {
    [Header.Conn]: route.connId,
    [Header.RequestId]: request.id,
    // Lets the edge measure the whole round trip of the request.
    [Header.ReceivedAt]: String(request.receivedAt),
  };
  if (traceparent !== undefined) headers[Header.TraceParent] = traceparent;
  return { topic: repliesTopic, partition: route.slot, key: request.deviceId, value: frame, headers };
}

/**
 * The `replies` record carrying a push frame to the edge slot that holds the device. `frame`
 * comes from `pushFrame`, the one builder of push frames.
 */
export function pushRecord(
  repliesTopic: string,
  slot: number,
  push: Pick<DownlinkRecord, "deviceId" | "messageId" | "expiresAt">,
  frame: string,
): OutgoingMessage {
  return {
    topic: repliesTopic,
    partition: slot,
    key: push.deviceId,
    value: frame,
    headers: {
      [Header.Kind]: ReplyKind.Push,
      [Header.Device]: push.deviceId,
      [Header.MessageId]: push.messageId,
      [Header.ExpiresAt]: String(push.expiresAt),
    },
  };
}

/** The `replies` record carrying an order for the edge that holds `slot`. */
export function controlRecord(repliesTopic: string, slot: number, control: ControlRecord): OutgoingMessage {
  const headers: Record<string, string> = { [Header.Kind]: ReplyKind.Control, [Header.Device]: control.deviceId };
  if (control.op === "close") headers[Header.Conn] = control.connId;
  return { topic: repliesTopic, partition: slot, key: control.deviceId, value: JSON.stringify(control), headers };
}

/**
 * A received answer or push passed on to the edge that now holds the device: the same value
 * and headers, bytes untouched, with `tether-conn` naming the device's connection there and
 * `tether-hops` one higher. The caller bounds forwarding by the decoded `hops`.
 */
export function forwardedRecord(
  repliesTopic: string,
  slot: number,
  message: IncomingMessage,
  connId: string,
): OutgoingMessage {
  return {
    topic: repliesTopic,
    partition: slot,
    key: message.headers[Header.Device] ?? message.key,
    value: message.value,
    headers: { ...message.headers, [Header.Conn]: connId, [Header.Hops]: String(readHops(message.headers) + 1) },
  };
}

/**
 * Reads a `replies` record by its `tether-kind` header; the frame itself is not parsed. A record
 * without the header is an answer, as producers older than the header wrote them. The device is
 * the `tether-device` header, or the record key without it. Refused: a record naming no device,
 * one of an unknown kind, and a control record whose value is not a valid order.
 */
export function decodeReply(message: IncomingMessage): Decoded<Reply> {
  const { headers } = message;
  const kind = headers[Header.Kind] ?? ReplyKind.Answer;
  if (kind === ReplyKind.Control) {
    const control = decodeControl(message);
    return control.ok ? { ok: true, value: { kind, control: control.value } } : control;
  }
  if (kind !== ReplyKind.Answer && kind !== ReplyKind.Push) return refuse(`reply of unknown kind ${kind.slice(0, 64)}`);
  const deviceId = headers[Header.Device] ?? message.key;
  if (!isNonEmptyString(deviceId)) return refuse("reply names no device");
  const connId = headers[Header.Conn] ?? null;
  const expiresAt = readTimeHeader(headers, Header.ExpiresAt);
  const hops = readHops(headers);
  if (kind === ReplyKind.Push) {
    const messageId = headers[Header.MessageId] ?? null;
    return { ok: true, value: { kind, deviceId, messageId, expiresAt, connId, hops, frame: message.value } };
  }
  const requestId = headers[Header.RequestId] ?? null;
  const receivedAt = readTimeHeader(headers, Header.ReceivedAt);
  return {
    ok: true,
    value: { kind, deviceId, connId, requestId, receivedAt, expiresAt, hops, frame: message.value },
  };
}

/**
 * Reads the order a `control` record carries. A `close` order with a reason other than
 * `kicked` reads as `replaced`, so that a reason added later still closes the connection.
 */
export function decodeControl(message: IncomingMessage): Decoded<ControlRecord> {
  const parsed = parseObject(message.value, "control");
  if (!parsed.ok) return parsed;
  const { op, deviceId, connId, reason, epoch } = parsed.value;
  if (!isNonEmptyString(deviceId)) return refuse("control record has no deviceId");
  if (op === "deliver_outbox") return { ok: true, value: { op, deviceId } };
  if (op !== "close") return refuse(`control record of unknown op ${String(op)}`);
  if (!isNonEmptyString(connId)) return refuse("close order has no connId");
  const close = {
    op: "close" as const,
    deviceId,
    connId,
    reason: reason === "kicked" ? ("kicked" as const) : ("replaced" as const),
  };
  return { ok: true, value: Number.isSafeInteger(epoch) ? { ...close, epoch: epoch as number } : close };
}

/** How many edges forwarded a reply; 0 when the header is absent or not a count. */
function readHops(headers: MessageHeaders): number {
  const text = headers[Header.Hops];
  if (text === undefined || !/^\d{1,6}$/.test(text)) return 0;
  return Number(text);
}
