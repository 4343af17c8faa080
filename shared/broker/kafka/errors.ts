import { type ErrorCode, isTetherError, TetherError } from "../../errors/index.ts";
import { codes, type NativeError } from "./native.ts";

function isNativeError(value: unknown): value is NativeError {
  return typeof value === "object" && value !== null && typeof (value as { code?: unknown }).code === "number";
}

function codeFor(error: NativeError): ErrorCode {
  switch (error.code) {
    case codes.unknownTopic:
    case codes.unknownTopicOrPartition:
    case codes.unknownPartition:
    case codes.groupIdNotFound:
      return "not_found";
    case codes.authentication:
    case codes.saslAuthenticationFailed:
    case codes.topicAuthorizationFailed:
    case codes.groupAuthorizationFailed:
    case codes.clusterAuthorizationFailed:
      return "unauthorized";
    case codes.invalidArgument:
    case codes.invalidPartitions:
    case codes.invalidReplicationFactor:
    case codes.invalidConfig:
    case codes.policyViolation:
    case codes.messageTooLarge:
      return "invalid_argument";
    case codes.destroyed:
      return "closed";
    case codes.timedOut:
    case codes.messageTimedOut:
    case codes.requestTimedOut:
    case codes.queueFull:
    case codes.transport:
    case codes.resolve:
    case codes.allBrokersDown:
      return "unavailable";
    default:
      return error.isFatal === true ? "internal" : "unavailable";
  }
}

/**
 * Turns whatever the Kafka client threw or passed to a callback into a TetherError, so that no
 * librdkafka error object leaves the adapter.
 */
export function kafkaError(what: string, error: unknown, details?: Record<string, unknown>): TetherError {
  if (isTetherError(error)) return error;
  if (isNativeError(error)) {
    return new TetherError(codeFor(error), `${what}: ${error.message}`, {
      cause: error,
      details: { ...details, kafkaCode: error.code },
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  if (/not connected|disconnected/i.test(message)) {
    return new TetherError("unavailable", `${what}: ${message}`, { cause: error, details });
  }
  return new TetherError("internal", `${what}: ${message}`, { cause: error, details });
}

/** Whether a client error event says the credentials were refused. */
export function isAuthFailure(error: unknown): boolean {
  if (!isNativeError(error)) return false;
  // Error events carry code -1 with the reason only in the message.
  return (
    error.code === codes.authentication ||
    error.code === codes.saslAuthenticationFailed ||
    error.code === codes.clusterAuthorizationFailed ||
    /authentication fail/i.test(error.message)
  );
}

/**
 * A call that timed out or found no broker, after the client reported refused credentials,
 * failed because of them: say so instead of "unavailable".
 */
export function withAuthCause(error: TetherError, lastAuthFailure: unknown): TetherError {
  if (lastAuthFailure === undefined || error.code !== "unavailable") return error;
  return new TetherError("unauthorized", `Kafka refused the credentials: ${(lastAuthFailure as NativeError).message}`, {
    cause: error,
  });
}

/** Runs one callback-style client call as a promise, its error mapped by {@link kafkaError}. */
export function call<T>(
  what: string,
  start: (done: (error: NativeError | null | undefined, value: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      start((error, value) => (error ? reject(kafkaError(what, error)) : resolve(value)));
    } catch (error) {
      reject(kafkaError(what, error));
    }
  });
}
