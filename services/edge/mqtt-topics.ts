/**
 * The MQTT binding's topics and reason codes (PROTOCOL.md, "MQTT binding"): which topics a
 * device may publish requests to and subscribe to, and how the edge's outcomes read as MQTT
 * reason codes in 5.0 and return codes in 3.1.1.
 */

export const REQUEST_PREFIX = "tether/req/";
export const RESPONSE_PREFIX = "tether/res/";
export const PUSH_PREFIX = "tether/push/";

/** MQTT 5 reason codes the edge writes. */
export const Reason = {
  Success: 0x00,
  Unspecified: 0x80,
  Malformed: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecific: 0x83,
  UnsupportedVersion: 0x84,
  ClientIdNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  ServerShuttingDown: 0x8b,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdInUse: 0x91,
  PacketTooLarge: 0x95,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  QosNotSupported: 0x9b,
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/** MQTT 3.1.1 CONNACK return codes. */
export const ReturnCode = {
  Accepted: 0,
  UnacceptableVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUserNameOrPassword: 4,
  NotAuthorized: 5,
} as const;
export type ReturnCode = (typeof ReturnCode)[keyof typeof ReturnCode];

/** SUBACK codes for a refused filter. */
export const SUBACK_REFUSED_V5 = Reason.NotAuthorized;
export const SUBACK_FAILURE_V311 = 0x80;

/** A request topic read: the handler type, and in 3.1.1 the request id (the last level). */
export type RequestTopic = { readonly ok: true; readonly type: string; readonly id?: string } | { readonly ok: false };

/**
 * Reads `tether/req/<type>` (5.0) or `tether/req/<type>/<id>` (3.1.1). Types may contain `/`,
 * so in 3.1.1 the id is the last level. The type's characters are checked by the frame parser.
 */
export function parseRequestTopic(topic: string, v5: boolean): RequestTopic {
  if (!topic.startsWith(REQUEST_PREFIX)) return { ok: false };
  const rest = topic.slice(REQUEST_PREFIX.length);
  if (v5) return rest.length > 0 ? { ok: true, type: rest } : { ok: false };
  const slash = rest.lastIndexOf("/");
  if (slash <= 0 || slash === rest.length - 1) return { ok: false };
  return { ok: true, type: rest.slice(0, slash), id: rest.slice(slash + 1) };
}

/** A device may subscribe only where the edge writes its own messages. */
export function subscriptionAllowed(filter: string): boolean {
  return (filter.startsWith(RESPONSE_PREFIX) || filter.startsWith(PUSH_PREFIX)) && !filter.startsWith("$share/");
}

/** A response topic must name a place under `tether/res/`, without wildcards. */
export function responseTopicAllowed(topic: string): boolean {
  return topic.startsWith(RESPONSE_PREFIX) && !topic.includes("+") && !topic.includes("#");
}

/** The MQTT 5 PUBACK reason for an error frame that refuses a request. */
export function pubackReason(code: string): Reason {
  switch (code) {
    case "unavailable":
    case "rate_limited":
      return Reason.QuotaExceeded;
    case "duplicate_id":
      return Reason.PacketIdInUse;
    case "bad_frame":
      return Reason.PayloadFormatInvalid;
    default:
      return Reason.Unspecified;
  }
}

/** The CONNACK code for an error frame that refuses a hello, in 5.0 and in 3.1.1. */
export function connackRefusal(code: string): { readonly v5: Reason; readonly v311: ReturnCode } {
  switch (code) {
    case "unauthorized":
      return { v5: Reason.BadUserNameOrPassword, v311: ReturnCode.BadUserNameOrPassword };
    case "bad_frame":
      return { v5: Reason.ClientIdNotValid, v311: ReturnCode.IdentifierRejected };
    case "unavailable":
      return { v5: Reason.ServerUnavailable, v311: ReturnCode.ServerUnavailable };
    default:
      return { v5: Reason.Unspecified, v311: ReturnCode.ServerUnavailable };
  }
}

/** The MQTT 5 DISCONNECT reason for a `bye` reason. */
export function disconnectReason(bye: string): Reason {
  switch (bye) {
    case "replaced":
      return Reason.SessionTakenOver;
    case "draining":
      return Reason.ServerShuttingDown;
    case "idle_timeout":
      return Reason.KeepAliveTimeout;
    case "kicked":
      return Reason.AdministrativeAction;
    default:
      return Reason.Unspecified;
  }
}
