/**
 * The project's one error type. Adapters turn vendor errors into a {@link TetherError}
 * at their boundary so that SDK error classes never leak into domain code.
 */

/** Every error code the project raises internally. Closed list: add here, document in README. */
export const ErrorCode = {
  /** A conditional write lost: someone else holds the record or a newer version exists. */
  Conflict: "conflict",
  /** The thing asked for does not exist. */
  NotFound: "not_found",
  /** A dependency (broker, registry) cannot take the call right now; retry later. */
  Unavailable: "unavailable",
  /** An operation did not finish within its bound. */
  Timeout: "timeout",
  /** The caller passed something malformed. */
  InvalidArgument: "invalid_argument",
  /** Configuration is missing or wrong; the message names the variables. */
  InvalidConfig: "invalid_config",
  /** The component was closed and cannot serve the call. */
  Closed: "closed",
  /** Credentials missing or wrong. */
  Unauthorized: "unauthorized",
  /** A bug or an unexpected state. */
  Internal: "internal",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const codes: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** Codes that are worth retrying unless a caller says otherwise. */
const retryableByDefault: ReadonlySet<ErrorCode> = new Set([ErrorCode.Unavailable, ErrorCode.Timeout]);

export interface TetherErrorOptions {
  readonly cause?: unknown;
  readonly retryable?: boolean;
  /** Extra, non-secret facts for logs (never tokens or payloads). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** The error every layer of Tether throws. */
export class TetherError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options: TetherErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TetherError";
    this.code = code;
    this.retryable = options.retryable ?? retryableByDefault.has(code);
    this.details = options.details;
  }
}

/** True when `value` is a {@link TetherError}, also across module copies. Never throws. */
export function isTetherError(value: unknown): value is TetherError {
  try {
    if (value instanceof TetherError) return true;
    if (typeof value !== "object" || value === null) return false;
    const candidate = value as { name?: unknown; code?: unknown };
    return candidate.name === "TetherError" && typeof candidate.code === "string" && codes.has(candidate.code);
  } catch {
    return false;
  }
}

/** True when `value` is a TetherError with the given code. Never throws. */
export function hasErrorCode(value: unknown, code: ErrorCode): value is TetherError {
  return isTetherError(value) && value.code === code;
}

/** A short, safe description of any thrown value, for logs and error frames. */
export function describeError(value: unknown): string {
  if (value instanceof Error) return value.message;
  try {
    return String(value);
  } catch {
    return "unprintable error";
  }
}
