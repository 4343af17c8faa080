import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { Limiter } from "../../async/index.ts";
import type { DynamoDbSettings } from "../../config/index.ts";

/** Bound of one fenced lease call unless configured otherwise. */
export const DEFAULT_LEASE_TIMEOUT_MS = 1000;

/** Requests in flight per registry unless configured otherwise. */
export const DEFAULT_MAX_CONCURRENCY = 64;

/** Smallest socket pool of a client; a larger bound gets twice its size. */
const MIN_SOCKETS = 128;

/**
 * A DynamoDB client tuned for short calls: kept-alive sockets, tight timeouts, few retries, and
 * at most `maxConcurrency` requests in flight.
 *
 * The SDK starts its connect timeout when a request asks the agent for a socket, so a request
 * that waits behind a full pool fails after 1 s while DynamoDB is healthy. Requests past the
 * bound wait in a queue in front of the SDK's HTTP handler instead: each attempt takes a turn
 * after the retry step and gives it back once its response is read, and the socket pool is twice
 * the bound, so an attempt that has a turn always finds a socket and neither timeout counts the
 * wait.
 */
export function createDynamoClient(
  settings: DynamoDbSettings,
  options: { requestTimeoutMs?: number; maxAttempts?: number; maxConcurrency?: number } = {},
): DynamoDBClient {
  const maxConcurrency = options.maxConcurrency ?? settings.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
  const limiter = new Limiter({ concurrency: maxConcurrency });
  const agentOptions = {
    keepAlive: true,
    keepAliveMsecs: 10_000,
    maxSockets: Math.max(MIN_SOCKETS, 2 * maxConcurrency),
  };
  const client = new DynamoDBClient({
    region: settings.region,
    ...(settings.endpoint === undefined
      ? {}
      : {
          endpoint: settings.endpoint,
          // DynamoDB Local accepts any credentials; none may exist on a developer's machine.
          credentials: { accessKeyId: "local", secretAccessKey: "local" },
        }),
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: {
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: 1000,
      requestTimeout: options.requestTimeoutMs ?? 3000,
    },
  });
  // Inside the retry step (finalizeRequest, high priority) and outside the response parsing
  // (deserialize step), so a turn spans exactly one attempt's use of a socket.
  client.middlewareStack.add((next) => (args) => limiter.run(() => next(args)), {
    step: "finalizeRequest",
    priority: "low",
    name: "tetherConcurrencyLimit",
  });
  return client;
}

/**
 * The client of the fenced lease calls: every request on a new TCP connection (no keep-alive,
 * so a connection that went bad with a frozen or cut-off host is never reused), one attempt,
 * and a request timeout of `timeoutMs`. It has no concurrency queue: a lease call never waits
 * behind the registry's other traffic.
 */
export function createLeaseClient(
  settings: DynamoDbSettings,
  timeoutMs: number,
  credentials?: DynamoDBClient["config"]["credentials"],
): DynamoDBClient {
  const agentOptions = { keepAlive: false };
  return new DynamoDBClient({
    region: settings.region,
    ...(settings.endpoint === undefined
      ? credentials === undefined
        ? {}
        : { credentials }
      : { endpoint: settings.endpoint, credentials: { accessKeyId: "local", secretAccessKey: "local" } }),
    maxAttempts: 1,
    requestHandler: {
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: timeoutMs,
      requestTimeout: timeoutMs,
      throwOnRequestTimeout: true,
    },
  });
}
