/** Frames of the device protocol, version 1 (see PROTOCOL.md). */

export const PROTOCOL_VERSION = 1;

/** Error codes the edge and the framework put on the wire. Handlers may use their own codes too. */
export const WireErrorCode = {
  FrameTooLarge: "frame_too_large",
  Unauthorized: "unauthorized",
  HelloTimeout: "hello_timeout",
  NotAuthenticated: "not_authenticated",
  Unavailable: "unavailable",
  UnknownType: "unknown_type",
  Internal: "internal",
  Timeout: "timeout",
  BadFrame: "bad_frame",
  UnknownFrame: "unknown_frame",
  RateLimited: "rate_limited",
  DuplicateId: "duplicate_id",
} as const;
export type WireErrorCode = (typeof WireErrorCode)[keyof typeof WireErrorCode];

export const ByeReason = {
  Replaced: "replaced",
  IdleTimeout: "idle_timeout",
  Draining: "draining",
  Kicked: "kicked",
} as const;
export type ByeReason = (typeof ByeReason)[keyof typeof ByeReason];

// Client to edge.
export interface HelloFrame {
  readonly t: "hello";
  readonly v: number;
  readonly deviceId: string;
  readonly token?: string;
  /** Protocol 1.1: the device acknowledges final answers and asks the edge to keep them until then. */
  readonly ackAnswers?: boolean;
}
export interface RequestFrame {
  readonly t: "req";
  readonly id: string;
  readonly type: string;
  /** The request's `body` exactly as the device wrote it (JSON text; `null` when absent). */
  readonly bodyJson: string;
}
export interface AckFrame {
  readonly t: "ack";
  readonly id: string;
}
export interface PingFrame {
  readonly t: "ping";
}
export interface ClientByeFrame {
  readonly t: "bye";
}
export type ClientFrame = HelloFrame | RequestFrame | AckFrame | PingFrame | ClientByeFrame;

// Edge to client.
export interface WelcomeFrame {
  readonly t: "welcome";
  readonly connId: string;
  readonly edgeId: string;
  readonly heartbeatMs: number;
  readonly maxFrameBytes: number;
  /** Protocol 1.1: present (true) when the edge agreed to a hello's `ackAnswers`. */
  readonly ackAnswers?: boolean;
}
export interface ResponseFrame {
  readonly t: "res";
  readonly id: string;
  readonly body: unknown;
}
export interface ErrorFrame {
  readonly t: "error";
  readonly id?: string;
  readonly code: string;
  readonly message?: string;
  readonly retryable?: boolean;
  readonly retryAfterMs?: number;
}
export interface PushFrame {
  readonly t: "push";
  readonly id: string;
  readonly type: string;
  readonly body: unknown;
}
export interface PongFrame {
  readonly t: "pong";
}
export interface ServerByeFrame {
  readonly t: "bye";
  readonly reason: ByeReason;
  readonly reconnectMs?: number;
}
export type ServerFrame = WelcomeFrame | AckFrame | ResponseFrame | ErrorFrame | PushFrame | PongFrame | ServerByeFrame;

/** deviceId: 1 to 128 characters of A-Z a-z 0-9 . _ : - */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** Handler type: 1 to 128 characters of A-Z a-z 0-9 . _ : / - */
export const TYPE_PATTERN = /^[A-Za-z0-9._:/-]{1,128}$/;
export const MAX_REQUEST_ID_LENGTH = 64;
export const DEFAULT_MAX_FRAME_BYTES = 65536;
export const DEFAULT_HEARTBEAT_MS = 30000;
export const DEFAULT_HELLO_TIMEOUT_MS = 5000;
