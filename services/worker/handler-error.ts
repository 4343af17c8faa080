/** Options of a {@link HandlerError}. */
export interface HandlerErrorOptions {
  /** Tells the device whether sending the request again (with a new id) may succeed. Default false. */
  readonly retryable?: boolean;
  readonly cause?: unknown;
}

/**
 * The error a handler throws to answer the device with an `error` frame. It is a final answer:
 * the worker does not retry it, and a repeat of the request within the dedupe window gets the
 * same answer. `code` is the handler's own (`invalid_input`, `not_found`, ...); `message` goes
 * to the device, so it must not carry secrets.
 */
export class HandlerError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: HandlerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HandlerError";
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** True for a {@link HandlerError}, also across module copies. Never throws. */
export function isHandlerError(value: unknown): value is HandlerError {
  try {
    if (value instanceof HandlerError) return true;
    if (typeof value !== "object" || value === null) return false;
    const candidate = value as { name?: unknown; code?: unknown; message?: unknown };
    return (
      candidate.name === "HandlerError" && typeof candidate.code === "string" && typeof candidate.message === "string"
    );
  } catch {
    return false;
  }
}
