/** `requests.dlq` records: a request a worker gave up on, with why and where it came from. */
import type { IncomingMessage, OutgoingMessage } from "../broker/types.ts";
import { type Decoded, isFiniteNumber, isNonEmptyString, parseObject, refuse } from "./headers.ts";
import type { RequestRecord } from "./request.ts";

/**
 * Value of a `requests.dlq` record (JSON). The Kafka record itself keeps the original key
 * (deviceId) and the original headers, so a tool can re-produce `request` to `requests` with
 * `headers` and get the same reply route.
 */
export interface DeadLetterRecord {
  /** Why the request was given up on: the last error thrown by its handler. */
  readonly error: {
    readonly name: string;
    readonly message: string;
    /** Present when the error had one; cut to a few kilobytes. */
    readonly stack?: string;
  };
  /** Handler runs made, the first included (0 when the request could not even be parsed). */
  readonly attempts: number;
  /** The request as it was consumed, or null when its value was not a valid request. */
  readonly request: RequestRecord | null;
  /** The original value as text, only when `request` is null. */
  readonly rawValue?: string;
  /** The original Kafka headers (also copied onto the DLQ record's own headers). */
  readonly headers: Readonly<Record<string, string>>;
  /** Where the request was read from. */
  readonly source: { readonly topic: string; readonly partition: number; readonly offset: string };
  /** Milliseconds since the epoch when the worker gave up. */
  readonly failedAt: number;
}

/** What a dead letter is made of. */
export interface DeadLetterInput {
  /** The `requests` record given up on. */
  readonly message: IncomingMessage;
  /** Its decoded value, or null when it could not be decoded. */
  readonly request: RequestRecord | null;
  /** Whatever the last run threw. */
  readonly error: unknown;
  readonly attempts: number;
  readonly failedAt: number;
}

const MAX_STACK_CHARS = 4096;

/** Turns whatever a handler threw into the `error` part of a dead letter. */
export function describeFailure(error: unknown): DeadLetterRecord["error"] {
  if (error instanceof Error) {
    const stack = typeof error.stack === "string" ? error.stack.slice(0, MAX_STACK_CHARS) : undefined;
    return stack === undefined
      ? { name: error.name, message: error.message }
      : { name: error.name, message: error.message, stack };
  }
  let message: string;
  try {
    message = typeof error === "string" ? error : (JSON.stringify(error) ?? String(error));
  } catch {
    message = String(error);
  }
  return { name: typeof error, message };
}

/** The record to produce to `requests.dlq` for a request the worker gave up on. */
export function deadLetterRecord(dlqTopic: string, letter: DeadLetterInput): OutgoingMessage {
  const { message } = letter;
  const value: DeadLetterRecord = {
    error: describeFailure(letter.error),
    attempts: letter.attempts,
    request: letter.request,
    ...(letter.request === null ? { rawValue: message.value.toString("utf8") } : {}),
    headers: { ...message.headers },
    source: { topic: message.topic, partition: message.partition, offset: message.offset },
    failedAt: letter.failedAt,
  };
  return { topic: dlqTopic, key: message.key, value: JSON.stringify(value), headers: { ...message.headers } };
}

/**
 * Reads a `requests.dlq` record. The request it holds is returned as written, not checked again:
 * it was checked when the worker read it, and a null one is kept as `rawValue`.
 */
export function decodeDeadLetter(message: IncomingMessage): Decoded<DeadLetterRecord> {
  const parsed = parseObject(message.value, "dead letter");
  if (!parsed.ok) return parsed;
  const { error, attempts, request, rawValue, headers, source, failedAt } = parsed.value;
  const failure = readFailure(error);
  if (failure === null) return refuse("dead letter has no valid error");
  if (!isFiniteNumber(attempts) || attempts < 0) return refuse("dead letter has no valid attempts");
  if (request !== null && !isObject(request)) return refuse("dead letter request is neither an object nor null");
  if (rawValue !== undefined && typeof rawValue !== "string") return refuse("dead letter rawValue is not a string");
  if (!isStringRecord(headers)) return refuse("dead letter headers are not strings");
  const origin = readSource(source);
  if (origin === null) return refuse("dead letter has no valid source");
  if (!isFiniteNumber(failedAt)) return refuse("dead letter has no valid failedAt");
  const value: DeadLetterRecord = {
    error: failure,
    attempts,
    request: request as RequestRecord | null,
    ...(rawValue === undefined ? {} : { rawValue }),
    headers,
    source: origin,
    failedAt,
  };
  return { ok: true, value };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return isObject(value) && Object.values(value).every((item) => typeof item === "string");
}

function readFailure(value: unknown): DeadLetterRecord["error"] | null {
  if (!isObject(value)) return null;
  const { name, message, stack } = value;
  if (typeof name !== "string" || typeof message !== "string") return null;
  if (stack === undefined) return { name, message };
  return typeof stack === "string" ? { name, message, stack } : null;
}

function readSource(value: unknown): DeadLetterRecord["source"] | null {
  if (!isObject(value)) return null;
  const { topic, partition, offset } = value;
  if (!isNonEmptyString(topic) || !Number.isInteger(partition) || typeof offset !== "string") return null;
  return { topic, partition: partition as number, offset };
}
