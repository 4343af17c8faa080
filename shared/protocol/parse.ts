/** Validation of frames, both directions. Never throws. */

import { isUtf8 } from "node:buffer";
import {
  type AckFrame,
  type ClientFrame,
  DEVICE_ID_PATTERN,
  type ErrorFrame,
  type HelloFrame,
  MAX_REQUEST_ID_LENGTH,
  PROTOCOL_VERSION,
  type PushFrame,
  type RequestFrame,
  type ResponseFrame,
  type ServerByeFrame,
  type ServerFrame,
  TYPE_PATTERN,
  type WelcomeFrame,
} from "./frames.ts";
import { type JsonMember, MAX_JSON_DEPTH, scanJson } from "./json.ts";

/** Outcome of {@link parseClientFrame}: a valid frame, or the error to answer with. */
export type ParseResult =
  | { readonly ok: true; readonly frame: ClientFrame }
  | {
      readonly ok: false;
      readonly code: "bad_frame" | "unknown_frame";
      /** Safe to send back to the device: it never echoes more than a short prefix of the input. */
      readonly message: string;
      /** The request id, when the line is a `req` whose id could be read. */
      readonly id?: string;
    };

/** Outcome of {@link parseServerFrame}. */
export type ServerParseResult =
  | { readonly ok: true; readonly frame: ServerFrame }
  | { readonly ok: false; readonly code: "bad_frame" | "unknown_frame"; readonly message: string };

type JsonObject = Record<string, unknown>;

const LONE_SURROGATE = /\p{Cs}/u;

/**
 * True for a valid request id: a string of 1 to 64 characters (Unicode code points), with no
 * unpaired UTF-16 surrogate (those cannot round-trip through UTF-8).
 */
export function isValidRequestId(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0) return false;
  if (value.length > MAX_REQUEST_ID_LENGTH * 2) return false;
  if (LONE_SURROGATE.test(value)) return false;
  if (value.length <= MAX_REQUEST_ID_LENGTH) return true;
  let points = 0;
  for (const _ of value) points++;
  return points <= MAX_REQUEST_ID_LENGTH;
}

/** True for a valid `deviceId` (1 to 128 characters of `A-Z a-z 0-9 . _ : -`). */
export function isValidDeviceId(value: unknown): value is string {
  return typeof value === "string" && DEVICE_ID_PATTERN.test(value);
}

/** True for a valid handler `type` (1 to 128 characters of `A-Z a-z 0-9 . _ : / -`). */
export function isValidType(value: unknown): value is string {
  return typeof value === "string" && TYPE_PATTERN.test(value);
}

function decode(line: Buffer | string): { ok: true; value: unknown } | { ok: false; message: string } {
  let text: string;
  if (typeof line === "string") {
    text = line;
  } else {
    if (!isUtf8(line)) return { ok: false, message: "frame is not valid UTF-8" };
    text = line.toString("utf8");
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, message: "frame is not valid JSON" };
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short, printable rendering of a user-supplied frame type for error messages. */
function quoteType(t: string): string {
  const short = t.length > 32 ? `${t.slice(0, 32)}...` : t;
  return JSON.stringify(short);
}

function badFrame(message: string, id?: string): ParseResult {
  return id === undefined ? { ok: false, code: "bad_frame", message } : { ok: false, code: "bad_frame", message, id };
}

/** A device frame being read: its bytes and where its top-level members are. */
interface ScannedFrame {
  readonly bytes: Buffer;
  readonly members: ReadonlyMap<string, JsonMember>;
}

/** The member's value, decoded; `undefined` when absent. Only small fields are read this way. */
function field(frame: ScannedFrame, key: string): unknown {
  const member = frame.members.get(key);
  if (member === undefined) return undefined;
  return JSON.parse(frame.bytes.toString("utf8", member.start, member.end));
}

/**
 * Validates one line from a device (without its line ending) against protocol v1.1.
 *
 * The line is checked against the JSON grammar and the nesting limit ({@link MAX_JSON_DEPTH})
 * without building it: only the fields the edge needs are decoded, and a request's `body` is kept
 * as the device's own JSON text (`bodyJson`), so it is never parsed nor serialised again here.
 *
 * Choices where the spec leaves room (documented in PROTOCOL.md):
 * - `hello` with `v` other than 1 is `bad_frame` ("unsupported protocol version").
 * - `hello` with `"token": null` is the same as no token.
 * - `req` without `body` means `"body": null`.
 * - a `bad_frame` for a `req` carries the request's `id` when it is a valid id.
 */
export function parseClientFrame(line: Buffer | string): ParseResult {
  const bytes = typeof line === "string" ? Buffer.from(line, "utf8") : line;
  if (!isUtf8(bytes)) return badFrame("frame is not valid UTF-8");
  const scanned = scanJson(bytes);
  if (!scanned.ok) {
    // A request refused for its nesting still names its id when the id came before the body.
    const soFar = scanned.membersSoFar;
    if (soFar === undefined) return badFrame(scanned.message);
    const frame: ScannedFrame = { bytes, members: soFar };
    const id = field(frame, "t") === "req" ? field(frame, "id") : undefined;
    return badFrame(scanned.message, isValidRequestId(id) ? id : undefined);
  }
  if (!scanned.isObject || scanned.members === null) return badFrame("frame must be a JSON object");
  const frame: ScannedFrame = { bytes, members: scanned.members };
  const t = field(frame, "t");
  if (typeof t !== "string") return badFrame('frame needs a string field "t"');
  switch (t) {
    case "req":
      return parseRequest(frame);
    case "ack": {
      const id = field(frame, "id");
      if (typeof id !== "string" || id.length === 0) return badFrame('ack needs a non-empty string "id"');
      const ack: AckFrame = { t: "ack", id };
      return { ok: true, frame: ack };
    }
    case "ping":
      return { ok: true, frame: { t: "ping" } };
    case "bye":
      return { ok: true, frame: { t: "bye" } };
    case "hello":
      return parseHello(frame);
    default:
      return { ok: false, code: "unknown_frame", message: `unknown frame type ${quoteType(t)}` };
  }
}

function parseHello(frame: ScannedFrame): ParseResult {
  const v = field(frame, "v");
  if (typeof v !== "number") return badFrame(`hello needs "v": ${PROTOCOL_VERSION}`);
  if (v !== PROTOCOL_VERSION) {
    return badFrame(`unsupported protocol version ${String(v)}; this edge speaks version ${PROTOCOL_VERSION}`);
  }
  const deviceId = field(frame, "deviceId");
  if (!isValidDeviceId(deviceId)) {
    return badFrame('hello needs "deviceId": 1 to 128 characters of A-Z a-z 0-9 . _ : -');
  }
  const token = field(frame, "token");
  if (token !== undefined && token !== null && typeof token !== "string") {
    return badFrame('hello "token" must be a string');
  }
  // Only the literal true asks for answer acknowledgements; anything else is an ignored extra.
  const ackAnswers = field(frame, "ackAnswers") === true;
  const hello: HelloFrame = {
    t: "hello",
    v,
    deviceId,
    ...(typeof token === "string" ? { token } : {}),
    ...(ackAnswers ? { ackAnswers } : {}),
  };
  return { ok: true, frame: hello };
}

function parseRequest(frame: ScannedFrame): ParseResult {
  const rawId = field(frame, "id");
  if (!isValidRequestId(rawId)) return badFrame('req needs "id": a string of 1 to 64 characters');
  const id = rawId;
  const type = field(frame, "type");
  if (!isValidType(type)) {
    return badFrame('req needs "type": 1 to 128 characters of A-Z a-z 0-9 . _ : / -', id);
  }
  const body = frame.members.get("body");
  const bodyJson = body === undefined ? "null" : frame.bytes.toString("utf8", body.start, body.end);
  const request: RequestFrame = { t: "req", id, type, bodyJson };
  return { ok: true, frame: request };
}

function serverBad(message: string): ServerParseResult {
  return { ok: false, code: "bad_frame", message };
}

function isNonNegativeNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

/**
 * Validates one line from the edge (without its line ending); for device-side code such as the
 * SDK. Unknown extra fields are ignored; an unknown `bye` reason is passed through as is.
 */
export function parseServerFrame(line: Buffer | string): ServerParseResult {
  const decoded = decode(line);
  if (!decoded.ok) return serverBad(decoded.message);
  const value = decoded.value;
  if (!isObject(value)) return serverBad("frame must be a JSON object");
  const t = value.t;
  if (typeof t !== "string") return serverBad('frame needs a string field "t"');
  switch (t) {
    case "res": {
      if (typeof value.id !== "string") return serverBad('res needs a string "id"');
      const frame: ResponseFrame = { t: "res", id: value.id, body: value.body === undefined ? null : value.body };
      return { ok: true, frame };
    }
    case "ack":
      if (typeof value.id !== "string") return serverBad('ack needs a string "id"');
      return { ok: true, frame: { t: "ack", id: value.id } };
    case "error":
      return parseErrorFrame(value);
    case "push": {
      if (typeof value.id !== "string") return serverBad('push needs a string "id"');
      if (typeof value.type !== "string") return serverBad('push needs a string "type"');
      const frame: PushFrame = {
        t: "push",
        id: value.id,
        type: value.type,
        body: value.body === undefined ? null : value.body,
      };
      return { ok: true, frame };
    }
    case "pong":
      return { ok: true, frame: { t: "pong" } };
    case "welcome": {
      const { connId, edgeId, heartbeatMs, maxFrameBytes } = value;
      if (typeof connId !== "string" || typeof edgeId !== "string") {
        return serverBad('welcome needs string "connId" and "edgeId"');
      }
      if (!isNonNegativeNumber(heartbeatMs) || !isNonNegativeNumber(maxFrameBytes)) {
        return serverBad('welcome needs numbers "heartbeatMs" and "maxFrameBytes"');
      }
      const frame: WelcomeFrame =
        value.ackAnswers === true
          ? { t: "welcome", connId, edgeId, heartbeatMs, maxFrameBytes, ackAnswers: true }
          : { t: "welcome", connId, edgeId, heartbeatMs, maxFrameBytes };
      return { ok: true, frame };
    }
    case "bye": {
      if (typeof value.reason !== "string") return serverBad('bye needs a string "reason"');
      const reason = value.reason as ServerByeFrame["reason"];
      const frame: ServerByeFrame = isNonNegativeNumber(value.reconnectMs)
        ? { t: "bye", reason, reconnectMs: value.reconnectMs }
        : { t: "bye", reason };
      return { ok: true, frame };
    }
    default:
      return { ok: false, code: "unknown_frame", message: `unknown frame type ${quoteType(t)}` };
  }
}

function parseErrorFrame(value: JsonObject): ServerParseResult {
  if (typeof value.code !== "string") return serverBad('error needs a string "code"');
  const frame: { -readonly [K in keyof ErrorFrame]: ErrorFrame[K] } = { t: "error", code: value.code };
  if (typeof value.id === "string") frame.id = value.id;
  if (typeof value.message === "string") frame.message = value.message;
  if (typeof value.retryable === "boolean") frame.retryable = value.retryable;
  if (isNonNegativeNumber(value.retryAfterMs)) frame.retryAfterMs = value.retryAfterMs;
  return { ok: true, frame };
}
