/**
 * Device protocol v1: frame types, limits, streaming framing, validation and encoding.
 * The public surface of `shared/protocol`; see PROTOCOL.md for the wire contract.
 */

export {
  CLIENT_BYE_LINE,
  type ErrorFrameFields,
  encodeAck,
  encodeBye,
  encodeError,
  encodeFrame,
  encodePush,
  encodeReplaced,
  encodeReq,
  encodeRes,
  encodeWelcome,
  PING_LINE,
  PONG_LINE,
  toLineJson,
  type WelcomeFields,
} from "./encode.ts";
export * from "./frames.ts";
export { LineSplitter, type LineSplitterOptions, mayStartObject } from "./framing.ts";
export { type JsonMember, type JsonScan, MAX_JSON_DEPTH, scanJson } from "./json.ts";
export {
  isValidDeviceId,
  isValidRequestId,
  isValidType,
  type ParseResult,
  parseClientFrame,
  parseServerFrame,
  type ServerParseResult,
} from "./parse.ts";
