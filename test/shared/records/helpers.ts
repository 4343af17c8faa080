import type { IncomingMessage, OutgoingMessage } from "../../../shared/broker/types.ts";

/** `message` as a consumer gets it from the broker. */
export function received(message: OutgoingMessage, overrides: Partial<IncomingMessage> = {}): IncomingMessage {
  return {
    topic: message.topic,
    partition: message.partition ?? 0,
    offset: "7",
    key: message.key ?? null,
    value: Buffer.isBuffer(message.value) ? message.value : Buffer.from(message.value, "utf8"),
    headers: message.headers ?? {},
    timestamp: 1_700_000_000_000,
    ...overrides,
  };
}

/** A record with a value and headers of the test's choosing. */
export function raw(value: string | Buffer, headers: Record<string, string> = {}, key: string | null = null) {
  return received({ topic: "t", value, headers, key });
}
