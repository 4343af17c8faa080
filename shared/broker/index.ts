/**
 * The broker module's public surface: the port, the dispatcher both adapters use, the topic
 * layout, and a factory that picks the adapter from configuration.
 */
import type { CommonConfig } from "../config/index.ts";
import type { TetherError } from "../errors/index.ts";
import type { Logger } from "../log/index.ts";
import type { Broker, StatisticsListener } from "./types.ts";

export type { DispatchErrorListener, DispatcherOptions } from "./dispatch.ts";
export { Dispatcher } from "./dispatch.ts";
export type { MemoryBrokerOptions } from "./memory/index.ts";
export { MemoryBroker } from "./memory/index.ts";
export { partitionForKey } from "./memory/murmur2.ts";
export type { TopicLayout } from "./topics.ts";
export { tetherTopics } from "./topics.ts";
export type * from "./types.ts";

/**
 * Creates the broker `config.broker` names. The Kafka adapter is loaded only when asked for,
 * so the embedded mode never loads the native Kafka client. Each call makes a new broker; an
 * in-memory broker is its own cluster, so the parts of one process must share one instance.
 */
export async function createBroker(
  config: CommonConfig,
  logger: Logger,
  options: {
    readonly statistics?: StatisticsListener;
    /** A Kafka consumer's client stopped and the service must be replaced (see StreamLoop). */
    readonly onFatal?: (error: TetherError) => void;
  } = {},
): Promise<Broker> {
  if (config.broker === "memory") {
    const { MemoryBroker } = await import("./memory/index.ts");
    return new MemoryBroker({ logger });
  }
  const { createKafkaBroker } = await import("./kafka/index.ts");
  return await createKafkaBroker({ settings: config.kafka, logger, ...options });
}
