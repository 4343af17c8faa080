/** What every store of the DynamoDB registry shares: attribute conversion, error mapping, its table. */
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type ErrorCode, isTetherError, TetherError } from "../../errors/index.ts";
import type { ClosedGuard } from "../rules.ts";

export type Item = Record<string, AttributeValue>;

const retryableNames = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "InternalServerError",
  "InternalFailure",
  "ServiceUnavailable",
  "ServiceUnavailableException",
  "LimitExceededException",
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "TransactionInProgressException",
]);

function errorCodeFor(name: string, status: number | undefined): ErrorCode {
  if (name === "ConditionalCheckFailedException" || name === "TransactionConflictException") return "conflict";
  if (name === "ResourceNotFoundException") return "not_found";
  if (name === "ValidationException" || name === "SerializationException") return "invalid_argument";
  if (
    name === "AccessDeniedException" ||
    name === "UnrecognizedClientException" ||
    name === "InvalidSignatureException" ||
    name === "ExpiredTokenException" ||
    name === "CredentialsProviderError"
  ) {
    return "unauthorized";
  }
  if (retryableNames.has(name) || status === undefined || status >= 500) return "unavailable";
  return "internal";
}

/** Turns an SDK or network error into a TetherError; SDK classes never leave this adapter. */
export function dynamoError(what: string, error: unknown): TetherError {
  if (isTetherError(error)) return error;
  const failure = error as {
    name?: unknown;
    message?: unknown;
    code?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  const name = typeof failure?.name === "string" ? failure.name : "Error";
  const message = typeof failure?.message === "string" ? failure.message : String(error);
  const status = failure?.$metadata?.httpStatusCode;
  return new TetherError(errorCodeFor(name, status), `${what}: ${message}`, {
    cause: error,
    details: { dynamoError: name, ...(status === undefined ? {} : { status }) },
  });
}

export function isConditionFailure(error: unknown): boolean {
  return (error as { name?: unknown })?.name === "ConditionalCheckFailedException";
}

// Marshalling by hand: the items are small and flat.
export const S = (value: string): AttributeValue => ({ S: value });
export const N = (value: number): AttributeValue => ({ N: String(value) });

export function str(item: Item, name: string): string {
  const value = item[name];
  if (value === undefined || !("S" in value) || value.S === undefined) {
    throw new TetherError("internal", `registry row lacks string attribute ${name}`);
  }
  return value.S;
}

export function num(item: Item, name: string): number {
  const value = item[name];
  if (value === undefined || !("N" in value) || value.N === undefined) {
    throw new TetherError("internal", `registry row lacks number attribute ${name}`);
  }
  return Number(value.N);
}

export function optionalNum(item: Item, name: string): number | undefined {
  const value = item[name];
  return value !== undefined && "N" in value && value.N !== undefined ? Number(value.N) : undefined;
}

export function optionalStr(item: Item, name: string): string | undefined {
  const value = item[name];
  return value !== undefined && "S" in value && value.S !== undefined ? value.S : undefined;
}

/** One table of a registry: its client, its name and the registry's closed guard. */
export class Table {
  readonly client: DynamoDBClient;
  readonly name: string;
  readonly guard: ClosedGuard;

  constructor(client: DynamoDBClient, name: string, guard: ClosedGuard) {
    this.client = client;
    this.name = name;
    this.guard = guard;
  }

  /** Runs `call` when the registry is open; whatever it throws comes out as a TetherError. */
  async run<T>(what: string, call: (client: DynamoDBClient, table: string) => Promise<T>): Promise<T> {
    this.guard.check();
    try {
      return await call(this.client, this.name);
    } catch (error) {
      throw dynamoError(what, error);
    }
  }
}
