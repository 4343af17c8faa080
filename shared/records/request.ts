/** `requests` records: a device's request, written by an edge and read by a worker. */
import type { IncomingMessage, OutgoingMessage } from "../broker/types.ts";
import { MAX_REQUEST_ID_LENGTH } from "../protocol/frames.ts";
import {
  Header,
  isFiniteNumber,
  isNonEmptyString,
  parseObject,
  type Refused,
  type ReplyRoute,
  readReplyRoute,
  replyRouteHeaders,
} from "./headers.ts";

/** Value of a `requests` record. `body` is the device's JSON, untouched. */
export interface RequestRecord {
  readonly deviceId: string;
  readonly id: string;
  readonly type: string;
  readonly body: unknown;
  readonly receivedAt: number;
}

/** A request and where its answer goes. */
export interface RoutedRequest {
  readonly request: RequestRecord;
  readonly route: ReplyRoute;
}

/**
 * Outcome of {@link decodeRequest}. A request refused only for its reply route still carries
 * its value, so the dead letter holds the request and not just its bytes.
 */
export type DecodedRequest =
  | { readonly ok: true; readonly value: RoutedRequest }
  | (Refused & { readonly request: RequestRecord | null });

/**
 * The `requests` record of a device's request, keyed by the device, with the reply route as its
 * only headers (and `traceparent`). `bodyJson` is the device's body as JSON text,
 * spliced in as is: the edge never parses nor serialises a body (the worker parses the value
 * once). The caller guarantees it is valid JSON. `traceparent`, when tracing is on, is the
 * trace context the worker continues.
 */
export function requestRecord(
  requestsTopic: string,
  route: ReplyRoute,
  request: Omit<RequestRecord, "body">,
  bodyJson: string,
  traceparent?: string,
): OutgoingMessage {
  const { deviceId, id } = request;
  const value = `{"deviceId":${JSON.stringify(deviceId)},"id":${JSON.stringify(id)},"type":${JSON.stringify(request.type)},"receivedAt":${request.receivedAt},"body":${bodyJson}}`;
  // Only the reply route: the device is the key, the id and receipt time are in the value, and
  // every header costs the client a copy and an allocation on each side of the broker.
  const headers = replyRouteHeaders(route);
  if (traceparent !== undefined) headers[Header.TraceParent] = traceparent;
  return { topic: requestsTopic, key: deviceId, value, headers };
}

/**
 * Reads a `requests` record: its value (a {@link RequestRecord}) and its reply route headers.
 * A missing body reads as `null`; a missing or malformed `receivedAt` as the broker timestamp.
 */
export function decodeRequest(message: IncomingMessage): DecodedRequest {
  const parsed = parseObject(message.value, "request");
  if (!parsed.ok) return { ...parsed, request: null };
  const fields = parsed.value;
  const { deviceId, id, type, receivedAt } = fields;
  if (!isNonEmptyString(deviceId)) return refusedRequest("request has no deviceId", null);
  if (!isNonEmptyString(id) || id.length > MAX_REQUEST_ID_LENGTH) {
    return refusedRequest("request has no valid id", null);
  }
  if (!isNonEmptyString(type)) return refusedRequest("request has no type", null);
  const request: RequestRecord = {
    deviceId,
    id,
    type,
    body: fields.body === undefined ? null : fields.body,
    receivedAt: isFiniteNumber(receivedAt) ? receivedAt : message.timestamp,
  };
  const route = readReplyRoute(message.headers);
  if (route === null) return refusedRequest("request has no valid reply route headers", request);
  return { ok: true, value: { request, route } };
}

function refusedRequest(reason: string, request: RequestRecord | null): DecodedRequest {
  return { ok: false, reason, request };
}
