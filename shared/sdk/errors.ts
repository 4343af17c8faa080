/** Errors the device SDK rejects requests with. */

/**
 * Codes the SDK itself produces, next to the wire codes the edge and handlers send
 * (`unavailable`, `rate_limited`, `unknown_type`, `internal`, handler codes...).
 */
export const ClientErrorCode = {
  /** No final answer within the request's timeout (the SDK's own clock). */
  Timeout: "timeout",
  /** The client was closed before the answer came. */
  Closed: "closed",
  /** A newer connection of the same deviceId took over; this client stopped. */
  Replaced: "replaced",
  /** The edge refused the token; this client stopped. */
  Unauthorized: "unauthorized",
  /** The connection was lost and reconnecting is switched off. */
  Disconnected: "disconnected",
  /** The request does not fit in one frame (`maxFrameBytes`). */
  FrameTooLarge: "frame_too_large",
  /** The arguments were not usable (bad type or id, an id already in use, a body JSON cannot hold). */
  InvalidRequest: "invalid_request",
  /** Connecting failed and reconnecting is switched off. */
  ConnectFailed: "connect_failed",
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

export interface TetherRequestErrorOptions {
  readonly retryable?: boolean;
  readonly requestId?: string | undefined;
  readonly retryAfterMs?: number | undefined;
  readonly cause?: unknown;
}

/**
 * A request's failure: an `error` frame from the edge (its `code`, `message`, `retryable`), or
 * one of the SDK's own {@link ClientErrorCode}s.
 */
export class TetherRequestError extends Error {
  /** The wire code (`unavailable`, `invalid_input`, ...) or a {@link ClientErrorCode}. */
  readonly code: string;
  readonly retryable: boolean;
  readonly requestId: string | undefined;
  /** For `rate_limited`: when to try again. */
  readonly retryAfterMs: number | undefined;

  constructor(code: string, message: string, options: TetherRequestErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TetherRequestError";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.requestId = options.requestId;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** True for a {@link TetherRequestError}, also across module copies. Never throws. */
export function isTetherRequestError(value: unknown): value is TetherRequestError {
  try {
    if (value instanceof TetherRequestError) return true;
    return (
      typeof value === "object" &&
      value !== null &&
      (value as { name?: unknown }).name === "TetherRequestError" &&
      typeof (value as { code?: unknown }).code === "string"
    );
  } catch {
    return false;
  }
}
