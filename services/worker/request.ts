import type { IncomingMessage } from "../../shared/broker/types.ts";
import { MAX_REQUEST_ID_LENGTH } from "../../shared/protocol/frames.ts";
import { type ReplyRoute, type RequestRecord, readReplyRoute } from "../../shared/records/index.ts";

export type ParsedRequest =
  | { readonly ok: true; readonly request: RequestRecord; readonly route: ReplyRoute }
  | { readonly ok: false; readonly reason: string; readonly request: RequestRecord | null };

/** Reads a `requests` record: its value (a RequestRecord) and its reply route headers. */
export function parseRequest(message: IncomingMessage): ParsedRequest {
  let value: unknown;
  try {
    value = JSON.parse(message.value.toString("utf8"));
  } catch {
    return { ok: false, reason: "request value is not JSON", request: null };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, reason: "request value is not a JSON object", request: null };
  }
  const candidate = value as Record<string, unknown>;
  const { deviceId, id, type, receivedAt } = candidate;
  if (typeof deviceId !== "string" || deviceId === "") {
    return { ok: false, reason: "request has no deviceId", request: null };
  }
  if (typeof id !== "string" || id === "" || id.length > MAX_REQUEST_ID_LENGTH) {
    return { ok: false, reason: "request has no valid id", request: null };
  }
  if (typeof type !== "string" || type === "") {
    return { ok: false, reason: "request has no type", request: null };
  }
  const request: RequestRecord = {
    deviceId,
    id,
    type,
    body: candidate.body === undefined ? null : candidate.body,
    receivedAt: typeof receivedAt === "number" && Number.isFinite(receivedAt) ? receivedAt : message.timestamp,
  };
  const route = readReplyRoute(message.headers);
  if (route === null) return { ok: false, reason: "request has no valid reply route headers", request };
  return { ok: true, request, route };
}
