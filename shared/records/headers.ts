/** Header names, the reply route and the result type every decoder of this module returns. */

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
  /**
   * W3C trace context of the span that wrote the record, when tracing is on: a request carries
   * the edge's, its answer the worker's, so one trace spans the round trip.
   */
  TraceParent: "traceparent",
} as const;

export const ReplyKind = {
  /** value is a `res` or `error` frame for request `tether-request-id`. */
  Answer: "answer",
  /** value is a `push` frame; already stored in the outbox by the router. */
  Push: "push",
  /** value is a `ControlRecord`. */
  Control: "control",
} as const;
export type ReplyKind = (typeof ReplyKind)[keyof typeof ReplyKind];

/**
 * What a decoder returns: the record's typed value, or why the record was refused. Decoders
 * never throw, whatever the bytes they are given.
 */
export type Decoded<T> = { readonly ok: true; readonly value: T } | Refused;

/** A record a decoder refused, with a reason fit for a log line or a dead letter. */
export interface Refused {
  readonly ok: false;
  readonly reason: string;
}

/** Where the answer to a request goes. */
export interface ReplyRoute {
  readonly slot: number;
  readonly edgeId: string;
  readonly connId: string;
}

/** The headers that carry a request's reply route. */
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

export function refuse(reason: string): Refused {
  return { ok: false, reason };
}

/**
 * Parses a record value that must be a JSON object. Only for values a consumer reads field by
 * field; a value passed on untouched is never parsed.
 */
export function parseObject(value: Buffer, what: string): Decoded<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString("utf8"));
  } catch {
    return refuse(`${what} value is not JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return refuse(`${what} value is not a JSON object`);
  }
  return { ok: true, value: parsed as Record<string, unknown> };
}

export function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value !== "";
}

export function isFiniteNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** A header holding milliseconds since the epoch, or null when it is absent or not a positive number. */
export function readTimeHeader(headers: Readonly<Record<string, string>>, name: string): number | null {
  const text = headers[name];
  if (text === undefined) return null;
  const value = Number(text);
  return Number.isFinite(value) && value > 0 ? value : null;
}

/** The `traceparent` a record carries, unchecked (the tracer parses it); undefined without one. */
export function readTraceParent(headers: Readonly<Record<string, string>>): string | undefined {
  return headers[Header.TraceParent];
}
