import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { RegistryCallObserver } from "../types.ts";
import { dynamoError } from "./common.ts";

/**
 * Reports every call of `client` to `observer`: its latency from the first attempt to the
 * answer (retries included, as a caller waits for them) and, when it failed, the TetherError
 * code it maps to. A middleware at the SDK's first step, so calls made outside the stores
 * (the readiness ping) count too.
 */
export function observeCalls(client: DynamoDBClient, observer: RegistryCallObserver): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? "Unknown").replace(/Command$/, "");
      const input = args.input as { TableName?: unknown };
      const table = typeof input.TableName === "string" ? input.TableName : "";
      const started = performance.now();
      try {
        const result = await next(args);
        observer.observe({ operation, table, seconds: (performance.now() - started) / 1000 });
        return result;
      } catch (error) {
        const errorCode = dynamoError(operation, error).code;
        observer.observe({ operation, table, seconds: (performance.now() - started) / 1000, errorCode });
        throw error;
      }
    },
    { step: "initialize", priority: "high", name: "tetherCallMetrics" },
  );
}
