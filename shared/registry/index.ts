/**
 * The registry module's public surface: the port, a factory that picks the adapter from
 * configuration, and the one rule for whether a device's owner is live.
 */
import type { CommonConfig } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import { MemoryRegistry } from "./memory/index.ts";
import type { Registry, RegistryCallObserver } from "./types.ts";

export {
  LeaseCache,
  type LeaseReader,
  leaseHeldBy,
  leaseLive,
  type OwnerLiveOptions,
  ownerLive,
} from "./liveness.ts";
export type { MemoryRegistryOptions } from "./memory/index.ts";
export type * from "./types.ts";
export { MemoryRegistry };

/**
 * Creates the registry `config.registry` names. The DynamoDB adapter is loaded only when
 * asked for, so the embedded mode never loads the AWS SDK. An in-memory registry is its own
 * store, so the parts of one process must share one instance.
 */
export async function createRegistry(
  config: CommonConfig,
  logger: Logger,
  options: { readonly calls?: RegistryCallObserver } = {},
): Promise<Registry> {
  if (config.registry === "memory") return new MemoryRegistry();
  const { createDynamoRegistry } = await import("./dynamodb/index.ts");
  return await createDynamoRegistry({ settings: config.dynamodb, names: config.names, logger, ...options });
}
