/**
 * The records edges and workers exchange through Kafka: one encoder and one decoder per kind,
 * side by side, headers included. Keep changes backward compatible: a fleet runs old and new
 * versions side by side during a deploy.
 *
 * requests      key=deviceId  value=RequestRecord JSON      headers: reply route + ids
 * replies       key=deviceId  value=frame JSON (res/error/push) or ControlRecord JSON
 *               partition = the target edge's slot          headers: kind, device, conn, ...
 * downlink      key=deviceId  value=DownlinkRecord JSON     headers: device, message id
 * events        key=deviceId  value=PresenceEvent JSON
 * requests.dlq  key=deviceId  value=DeadLetterRecord JSON   headers: the request's own
 *
 * Per kind, encoder / decoder:
 * - request: {@link requestRecord} / {@link decodeRequest}
 * - reply: {@link answerRecord}, {@link pushRecord}, {@link controlRecord} and
 *   {@link forwardedRecord} / {@link decodeReply} ({@link decodeControl} for an order alone)
 * - downlink: {@link downlinkRecord} / {@link decodeDownlink}; {@link pushFrame} makes the
 *   push frame a downlink becomes
 * - presence: {@link presenceRecord} / {@link decodePresence}
 * - dead letter: {@link deadLetterRecord} / {@link decodeDeadLetter}
 *
 * Records are built and read only through these functions, so the headers a consumer routes by
 * are written in one place, and a consumer reads a record's kind from its headers, never from
 * its value. Decoders never throw: they return {@link Decoded}, a value or a reason.
 */

export {
  type DeadLetterInput,
  type DeadLetterRecord,
  deadLetterRecord,
  decodeDeadLetter,
  describeFailure,
} from "./dead-letter.ts";
export { type DownlinkRecord, decodeDownlink, downlinkRecord, pushFrame } from "./downlink.ts";
export {
  type Decoded,
  Header,
  type Refused,
  ReplyKind,
  type ReplyRoute,
  readReplyRoute,
  readTraceParent,
  replyRouteHeaders,
} from "./headers.ts";
export {
  decodePresence,
  type PresenceEvent,
  PresenceEventKind,
  type PresenceWill,
  presenceRecord,
} from "./presence.ts";
export {
  type AnswerReply,
  answerRecord,
  type ControlRecord,
  type ControlReply,
  controlRecord,
  decodeControl,
  decodeReply,
  forwardedRecord,
  type PushReply,
  pushRecord,
  type Reply,
} from "./reply.ts";
export {
  type DecodedRequest,
  decodeRequest,
  type RequestRecord,
  type RoutedRequest,
  requestRecord,
} from "./request.ts";
