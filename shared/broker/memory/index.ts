/**
 * The in-memory broker: topics with partitions, keys placed by Kafka's murmur2 partitioner,
 * consumer groups with committed offsets and rebalancing, fixed-partition consumers. The
 * embedded mode runs on it, and the broker contract suite holds it to the Kafka adapter's
 * behaviour. Nothing is ever deleted (no retention): it lives as long as the process.
 */
import type {
  Broker,
  BrokerAdmin,
  GroupConsumer,
  GroupConsumerOptions,
  PartitionConsumer,
  PartitionConsumerOptions,
  Producer,
} from "../types.ts";
import { MemoryAdmin } from "./admin.ts";
import { Cluster, type MemoryBrokerOptions } from "./cluster.ts";
import { MemoryGroupConsumer, MemoryPartitionConsumer } from "./consumers.ts";
import { MemoryProducer } from "./producer.ts";

export type { MemoryBrokerOptions } from "./cluster.ts";
export { murmur2, partitionForKey, toPositive } from "./murmur2.ts";

/** A broker held in this process's memory; each instance is its own cluster. */
export class MemoryBroker implements Broker {
  readonly kind = "memory" as const;
  readonly #cluster: Cluster;

  constructor(options: MemoryBrokerOptions = {}) {
    this.#cluster = new Cluster(options);
  }

  producer(): Producer {
    return new MemoryProducer(this.#cluster);
  }

  groupConsumer(options: GroupConsumerOptions): GroupConsumer {
    return new MemoryGroupConsumer(this.#cluster, options);
  }

  partitionConsumer(options: PartitionConsumerOptions): PartitionConsumer {
    return new MemoryPartitionConsumer(this.#cluster, options);
  }

  admin(): BrokerAdmin {
    return new MemoryAdmin(this.#cluster);
  }

  /**
   * Test hook: while on, producers reject with `unavailable` and `ping` fails, so services'
   * error paths can be exercised without a real outage.
   */
  fail(on: boolean): void {
    this.#cluster.failing = on;
  }
}
