import type { IncomingMessage, OutgoingMessage } from "../../shared/broker/types.ts";
import type { RequestRecord } from "../../shared/records/index.ts";

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

export interface DeadLetterInput {
  readonly topic: string;
  readonly message: IncomingMessage;
  readonly request: RequestRecord | null;
  readonly error: unknown;
  readonly attempts: number;
  readonly failedAt: number;
}

/** The record to produce to `requests.dlq` for a request the worker gave up on. */
export function deadLetterMessage(input: DeadLetterInput): OutgoingMessage {
  const { message } = input;
  const record: DeadLetterRecord = {
    error: describeFailure(input.error),
    attempts: input.attempts,
    request: input.request,
    ...(input.request === null ? { rawValue: message.value.toString("utf8") } : {}),
    headers: { ...message.headers },
    source: { topic: message.topic, partition: message.partition, offset: message.offset },
    failedAt: input.failedAt,
  };
  return {
    topic: input.topic,
    key: message.key,
    value: JSON.stringify(record),
    headers: { ...message.headers },
  };
}
