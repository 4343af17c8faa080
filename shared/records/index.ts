/**
 * The records edges and workers exchange through Kafka. Keep changes backward compatible:
 * a fleet runs old and new versions side by side during a deploy.
 *
 * requests  key=deviceId  value=RequestRecord JSON       headers: reply route + ids
 * replies   key=deviceId  value=frame JSON (res/error/push) or ControlRecord JSON
 *           partition = the target edge's slot           headers: kind, device, conn
 * downlink  key=deviceId  value=DownlinkRecord JSON
 * events    key=deviceId  value=PresenceEvent JSON
 *
 * Producers build `replies` records only through {@link answerRecord}, {@link pushRecord} and
 * {@link controlRecord}, so the headers an edge routes by are written in one place.
 */
import type { OutgoingMessage } from "../broker/types.ts";

export const Header = {
  /** Reply route: the slot (partition of `replies`) of the edge that took the request. */
  ReplySlot: "tether-reply-slot",
  ReplyEdge: "tether-reply-edge",
  ReplyConn: "tether-reply-conn",
  Device: "tether-device",
  RequestId: "tether-request-id",
  /** What a `replies` record carries: see {@link ReplyKind}. */
  Kind: "tether-kind",
  /** Target connection of a reply; absent for pushes (any connection of the device). */
  Conn: "tether-conn",
  /** Message id of a push, so an edge can track its ack without parsing the frame. */
  MessageId: "tether-message-id",
  /** Milliseconds since the epoch when the edge read the request off the socket. */
  ReceivedAt: "tether-received-at",
  /** How many edges forwarded this reply already; bounds forwarding loops. */
  Hops: "tether-hops",
  /** Outbox expiry (ms since the epoch) of a push or parked reply. */
  ExpiresAt: "tether-expires-at",
} as const;

export const ReplyKind = {
  /** value is a `res` or `error` frame for request `tether-request-id`. */
  Answer: "answer",
  /** value is a `push` frame; already stored in the outbox by the router. */
  Push: "push",
  /** value is a {@link ControlRecord}. */
  Control: "control",
} as const;
export type ReplyKind = (typeof ReplyKind)[keyof typeof ReplyKind];

/** Value of a `requests` record. `body` is the device's JSON, untouched. */
export interface RequestRecord {
  readonly deviceId: string;
  readonly id: string;
  readonly type: string;
  readonly body: unknown;
  readonly receivedAt: number;
}

/** Where the answer to a request goes. */
export interface ReplyRoute {
  readonly slot: number;
  readonly edgeId: string;
  readonly connId: string;
}

/** Value of a `replies` record of kind `control`: an order for the edge holding the slot. */
export type ControlRecord =
  | { readonly op: "close"; readonly deviceId: string; readonly connId: string; readonly reason: "replaced" | "kicked" }
  | { readonly op: "deliver_outbox"; readonly deviceId: string };

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

/** Value of an `events` record. */
export interface PresenceEvent {
  readonly event: "connected" | "disconnected";
  readonly deviceId: string;
  readonly edgeId: string;
  readonly connId: string;
  readonly at: number;
  /** For `disconnected`: why the connection ended (`bye`, `replaced`, `idle_timeout`, ...). */
  readonly reason?: string;
}

/**
 * The `requests` record of a device's request. `bodyJson` is the device's body as JSON text,
 * spliced in as is: the edge never parses nor serialises a body (the worker parses the value
 * once). The caller guarantees it is valid JSON.
 */
export function requestRecord(
  requestsTopic: string,
  route: ReplyRoute,
  request: Omit<RequestRecord, "body">,
  bodyJson: string,
): OutgoingMessage {
  const { deviceId, id } = request;
  const value = `{"deviceId":${JSON.stringify(deviceId)},"id":${JSON.stringify(id)},"type":${JSON.stringify(request.type)},"receivedAt":${request.receivedAt},"body":${bodyJson}}`;
  const headers = replyRouteHeaders(route);
  headers[Header.Device] = deviceId;
  headers[Header.RequestId] = id;
  headers[Header.ReceivedAt] = String(request.receivedAt);
  return { topic: requestsTopic, key: deviceId, value, headers };
}

export function replyRouteHeaders(route: ReplyRoute): Record<string, string> {
  return {
    [Header.ReplySlot]: String(route.slot),
    [Header.ReplyEdge]: route.edgeId,
    [Header.ReplyConn]: route.connId,
  };
}

/** Reads the reply route a request carries, or null when it is missing or malformed. */
export function readReplyRoute(headers: Readonly<Record<string, string>>): ReplyRoute | null {
  const slotText = headers[Header.ReplySlot];
  const edgeId = headers[Header.ReplyEdge];
  const connId = headers[Header.ReplyConn];
  if (slotText === undefined || edgeId === undefined || connId === undefined) return null;
  if (!/^\d{1,5}$/.test(slotText)) return null;
  return { slot: Number(slotText), edgeId, connId };
}

/** The `replies` record carrying a request's answer frame to the edge slot of its reply route. */
export function answerRecord(
  repliesTopic: string,
  route: ReplyRoute,
  request: Pick<RequestRecord, "deviceId" | "id" | "receivedAt">,
  frame: string,
): OutgoingMessage {
  return {
    topic: repliesTopic,
    partition: route.slot,
    key: request.deviceId,
    value: frame,
    headers: {
      [Header.Kind]: ReplyKind.Answer,
      [Header.Conn]: route.connId,
      [Header.Device]: request.deviceId,
      [Header.RequestId]: request.id,
      // Lets the edge measure the whole round trip of the request.
      [Header.ReceivedAt]: String(request.receivedAt),
    },
  };
}

/** The `replies` record carrying a push frame to the edge slot that holds the device. */
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
