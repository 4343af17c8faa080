import type { PresenceWill } from "../../shared/records/index.ts";
import type { Session } from "./session.ts";

/**
 * The names a connection's protocol goes by in the registry, the admin API and the console:
 * the device protocol (NDJSON, or MQTT and its version) and, after `+ws`, a WebSocket carrier.
 */
export const ConnectionProtocol = {
  Ndjson: "ndjson",
  NdjsonWs: "ndjson+ws",
  Mqtt311: "mqtt3.1.1",
  Mqtt5: "mqtt5",
  Mqtt311Ws: "mqtt3.1.1+ws",
  Mqtt5Ws: "mqtt5+ws",
} as const;
export type ConnectionProtocol = (typeof ConnectionProtocol)[keyof typeof ConnectionProtocol];

/**
 * A device wire other than NDJSON lines (MQTT). The session stays the one place that changes a
 * connection's state; the wire only translates. Bytes read from the device become the same
 * NDJSON lines a TCP device would send (handed to `SessionEvents.line`), and every frame the
 * edge writes is turned into what this wire carries instead (`undefined`: nothing to write).
 */
export interface Wire {
  /** The protocol name once the device said which version it speaks. */
  readonly protocol: ConnectionProtocol;
  /** Bytes from the socket. */
  receive(chunk: Buffer): void;
  /** An edge frame (one NDJSON line) as this wire's bytes. */
  encode(frame: string | Buffer): string | Buffer | undefined;
  /** The next frame written is a final answer (an `error` with an id is then an answer, not a refusal). */
  answerNext(): void;
  /** The connection is closing: nothing more is read. */
  stop(): void;
  /** The Will message still due when the connection ends (MQTT), if the device left one. */
  readonly will: PresenceWill | undefined;
}

/** Makes the wire of a new session. */
export type WireFactory = (session: Session) => Wire;
