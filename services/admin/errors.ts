import type { IncomingMessage, ServerResponse } from "node:http";
import type {
  FastifyBaseLogger,
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifyTypeProvider,
  RawServerDefault,
} from "fastify";
import { ErrorCode, isTetherError } from "../../shared/errors/index.ts";

/**
 * Every error code the admin API answers with, and its HTTP status. Closed list: a new code is
 * added here and documented in docs/admin-api.md.
 */
export const ApiErrorStatus = {
  /**
   * The request failed its schema: bad id, unknown field, missing field, out-of-range number, or
   * a JSON body nested deeper than the devices accept.
   */
  validation_failed: 400,
  /** The request could not be read: malformed JSON, empty JSON body, bad cursor. */
  bad_request: 400,
  /** No bearer token, or the wrong one. */
  unauthorized: 401,
  /** No such route. */
  not_found: 404,
  /** No connection record for the device: it never connected, or its last connection closed cleanly. */
  device_not_found: 404,
  /** The device has a record but no live connection, so there is nothing to kick. */
  device_offline: 404,
  /** The request body, or the push frame made from it, is over the limit. */
  payload_too_large: 413,
  /** The body is not `application/json`. */
  unsupported_media_type: 415,
  /** Too many failed authentications from this address; wait for `Retry-After`. */
  rate_limited: 429,
  /** The API is at its bound of requests in flight; retry after `Retry-After`. */
  overloaded: 429,
  /** Kafka or DynamoDB did not answer in time; retry later. */
  unavailable: 503,
  /** A bug; the log has the details. */
  internal: 500,
} as const;

export type ApiErrorCode = keyof typeof ApiErrorStatus;

export const apiErrorCodes = Object.keys(ApiErrorStatus) as ApiErrorCode[];

/** The body of every error response. */
export interface ApiErrorBody {
  readonly statusCode: number;
  readonly code: ApiErrorCode;
  readonly message: string;
}

/** Thrown by route handlers for an expected failure; the error handler turns it into a response. */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly statusCode: number;
  /** Sent as `Retry-After` (whole seconds) when set. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ApiErrorCode, message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ApiError";
    this.code = code;
    this.statusCode = ApiErrorStatus[code];
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** Why a request was refused, for its one log line. */
export interface Rejection {
  readonly code: ApiErrorCode;
  readonly reason: string | undefined;
}

// Filled by the error handler, read once the response is sent.
const rejections = new WeakMap<FastifyRequest, Rejection>();

/** The code a request was refused with, if it was. */
export function rejectionOf(request: FastifyRequest): Rejection | undefined {
  return rejections.get(request);
}

function body(code: ApiErrorCode, message: string): ApiErrorBody {
  return { statusCode: ApiErrorStatus[code], code, message };
}

/** Maps anything a route, hook or Fastify itself threw onto one of the API's codes. */
export function toApiError(error: unknown): ApiErrorBody {
  if (error instanceof ApiError) return body(error.code, error.message);
  if (isTetherError(error)) {
    switch (error.code) {
      case ErrorCode.Unavailable:
      case ErrorCode.Timeout:
      case ErrorCode.Closed:
        return body("unavailable", "a dependency of the admin API is unavailable; retry later");
      case ErrorCode.InvalidArgument:
        return body("bad_request", error.message);
      case ErrorCode.Unauthorized:
        return body("unauthorized", "missing or wrong bearer token");
      case ErrorCode.NotFound:
        return body("not_found", error.message);
      default:
        return body("internal", "internal error");
    }
  }
  const fastifyError = error as Partial<FastifyError> | null;
  if (fastifyError !== null && typeof fastifyError === "object") {
    if (Array.isArray(fastifyError.validation)) {
      return body("validation_failed", fastifyError.message ?? "request failed validation");
    }
    switch (fastifyError.statusCode) {
      case 413:
        return body("payload_too_large", "request body is too large");
      case 415:
        return body("unsupported_media_type", "request body must be application/json");
      case 404:
        return body("not_found", "not found");
      default:
        if (typeof fastifyError.statusCode === "number" && fastifyError.statusCode >= 400) {
          if (fastifyError.statusCode < 500) return body("bad_request", fastifyError.message ?? "bad request");
        }
    }
  }
  return body("internal", "internal error");
}

/** Installs the one error handler and the not-found handler every route shares. */
export function installErrorHandlers<P extends FastifyTypeProvider>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, P>,
): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const answer = toApiError(error);
    if (answer.statusCode >= 500) {
      // Now, with the stack: the response may never finish if the client is gone.
      request.log.error({ err: error, code: answer.code }, "request failed");
    }
    // A refusal is logged once, on the request's completion line.
    rejections.set(request, { code: answer.code, reason: (error as Error | null)?.message });
    if (error instanceof ApiError && error.retryAfterSeconds !== undefined) {
      reply.header("retry-after", String(error.retryAfterSeconds));
    }
    return reply.code(answer.statusCode).type("application/json; charset=utf-8").send(answer);
  });
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const answer = body("not_found", `no route for ${request.method} ${request.url.split("?")[0] ?? ""}`);
    rejections.set(request, { code: answer.code, reason: undefined });
    return reply.code(404).send(answer);
  });
}
