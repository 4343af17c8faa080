/** Encoding of frames to NDJSON lines (each ends in `\n`). */

import type { ByeReason, ClientFrame, ServerFrame } from "./frames.ts";

/** Any frame as one NDJSON line. */
export function encodeFrame(frame: ServerFrame | ClientFrame): string {
  if (frame.t === "req") return encodeReq(frame.id, frame.type, frame.bodyJson);
  return `${JSON.stringify(frame)}\n`;
}

/**
 * Makes a JSON text safe to splice into a line. Valid JSON holds raw CR/LF only as whitespace
 * between tokens (never inside strings), so removing them keeps the meaning and the framing.
 * An empty text becomes `null`.
 */
export function toLineJson(json: string): string {
  if (json.length === 0) return "null";
  if (json.indexOf("\n") === -1 && json.indexOf("\r") === -1) return json;
  return json.replace(/[\r\n]/g, "");
}

/** `{"t":"ack","id":...}` */
export function encodeAck(id: string): string {
  return `{"t":"ack","id":${JSON.stringify(id)}}\n`;
}

/**
 * `{"t":"res","id":...,"body":...}` with a body that is already JSON text (as read from a record),
 * so it is not parsed and serialised again. The caller guarantees `bodyJson` is valid JSON.
 */
export function encodeRes(id: string, bodyJson: string): string {
  return `{"t":"res","id":${JSON.stringify(id)},"body":${toLineJson(bodyJson)}}\n`;
}

/** `{"t":"push","id":...,"type":...,"body":...}` with a body that is already JSON text. */
export function encodePush(id: string, type: string, bodyJson: string): string {
  return `{"t":"push","id":${JSON.stringify(id)},"type":${JSON.stringify(type)},"body":${toLineJson(bodyJson)}}\n`;
}

/** `{"t":"req","id":...,"type":...,"body":...}` with a body that is already JSON text. */
export function encodeReq(id: string, type: string, bodyJson: string): string {
  return `{"t":"req","id":${JSON.stringify(id)},"type":${JSON.stringify(type)},"body":${toLineJson(bodyJson)}}\n`;
}

export interface ErrorFrameFields {
  readonly code: string;
  readonly id?: string | undefined;
  readonly message?: string | undefined;
  readonly retryable?: boolean | undefined;
  readonly retryAfterMs?: number | undefined;
}

/** `{"t":"error",...}`; fields left undefined are omitted. */
export function encodeError(fields: ErrorFrameFields): string {
  let line = '{"t":"error"';
  if (fields.id !== undefined) line += `,"id":${JSON.stringify(fields.id)}`;
  line += `,"code":${JSON.stringify(fields.code)}`;
  if (fields.message !== undefined) line += `,"message":${JSON.stringify(fields.message)}`;
  if (fields.retryable !== undefined) line += `,"retryable":${fields.retryable ? "true" : "false"}`;
  if (fields.retryAfterMs !== undefined && Number.isFinite(fields.retryAfterMs)) {
    line += `,"retryAfterMs":${Math.max(0, Math.round(fields.retryAfterMs))}`;
  }
  return `${line}}\n`;
}

/** `{"t":"bye","reason":...}`, with `reconnectMs` when given. */
/**
 * `{"t":"bye","reason":"replaced","epoch":n}`: the connection was replaced by the device's newer
 * one, whose ownership epoch is `epoch` (when known), so the device can tell which is newer.
 */
export function encodeReplaced(epoch?: number): string {
  if (epoch === undefined || !Number.isSafeInteger(epoch)) return encodeBye("replaced");
  return `{"t":"bye","reason":"replaced","epoch":${epoch}}\n`;
}

export function encodeBye(reason: ByeReason, reconnectMs?: number): string {
  if (reconnectMs === undefined || !Number.isFinite(reconnectMs)) {
    return `{"t":"bye","reason":${JSON.stringify(reason)}}\n`;
  }
  return `{"t":"bye","reason":${JSON.stringify(reason)},"reconnectMs":${Math.max(0, Math.round(reconnectMs))}}\n`;
}

export interface WelcomeFields {
  readonly connId: string;
  readonly edgeId: string;
  readonly heartbeatMs: number;
  readonly maxFrameBytes: number;
  /** Confirms a hello's `ackAnswers`; the field goes on the wire only when true. */
  readonly ackAnswers?: boolean | undefined;
}

/** `{"t":"welcome",...}`, with `"ackAnswers":true` when the edge agreed to answer acknowledgements. */
export function encodeWelcome(fields: WelcomeFields): string {
  return (
    `{"t":"welcome","connId":${JSON.stringify(fields.connId)},"edgeId":${JSON.stringify(fields.edgeId)},` +
    `"heartbeatMs":${fields.heartbeatMs},"maxFrameBytes":${fields.maxFrameBytes}` +
    `${fields.ackAnswers === true ? ',"ackAnswers":true' : ""}}\n`
  );
}

/** `{"t":"pong"}` */
export const PONG_LINE = '{"t":"pong"}\n';
/** `{"t":"ping"}` */
export const PING_LINE = '{"t":"ping"}\n';
/** `{"t":"bye"}` from a client. */
export const CLIENT_BYE_LINE = '{"t":"bye"}\n';
