/**
 * The Kafka adapter of the broker port, on `@confluentinc/kafka-javascript` (librdkafka).
 * The only module of the project that imports the Kafka client.
 */
import type { KafkaSettings } from "../../config/index.ts";
import type { TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import type {
  Broker,
  BrokerAdmin,
  GroupConsumer,
  GroupConsumerOptions,
  PartitionConsumer,
  PartitionConsumerOptions,
  Producer,
  StatisticsListener,
} from "../types.ts";
import { KafkaAdmin } from "./admin.ts";
import { type ConsumerTuning, KafkaGroupConsumer, KafkaPartitionConsumer } from "./consumer.ts";
import { native } from "./native.ts";
import { KafkaProducer, type ProducerTuning } from "./producer.ts";

export type { ConsumerTuning } from "./consumer.ts";
export type { ProducerTuning } from "./producer.ts";

export interface KafkaBrokerOptions {
  readonly settings: KafkaSettings;
  readonly logger: Logger;
  readonly producer?: ProducerTuning;
  readonly consumer?: ConsumerTuning;
  /** Every client's statistics go here (queue depth, broker round trips, consumer lag). */
  readonly statistics?: StatisticsListener;
  /** A consumer's client stopped and cannot be recovered in place (see ConsumerTuning.onStall). */
  readonly onFatal?: (error: TetherError) => void;
}

/** Factory for Kafka clients; every call makes a new client with its own connections. */
export class KafkaBroker implements Broker {
  readonly kind = "kafka" as const;
  readonly #options: KafkaBrokerOptions;
  readonly #logger: Logger;

  constructor(options: KafkaBrokerOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: "kafka" });
  }

  producer(): Producer {
    const { producer, statistics } = this.#options;
    return new KafkaProducer(this.#options.settings, this.#logger, { ...producer, statistics });
  }

  groupConsumer(options: GroupConsumerOptions): GroupConsumer {
    return new KafkaGroupConsumer(this.#options.settings, this.#logger, options, this.#consumerTuning());
  }

  partitionConsumer(options: PartitionConsumerOptions): PartitionConsumer {
    return new KafkaPartitionConsumer(this.#options.settings, this.#logger, options, this.#consumerTuning());
  }

  #consumerTuning(): ConsumerTuning {
    const { consumer, statistics, onFatal } = this.#options;
    return { ...consumer, statistics, ...(onFatal === undefined ? {} : { onStall: onFatal }) };
  }

  admin(): BrokerAdmin {
    return new KafkaAdmin(this.#options.settings, this.#logger);
  }
}

/** Creates the Kafka broker; nothing connects until a client is used. */
export function createKafkaBroker(options: KafkaBrokerOptions): KafkaBroker {
  return new KafkaBroker(options);
}

/** Version of the bundled librdkafka, for start-up logs. */
export function librdkafkaVersion(): string {
  return native.librdkafkaVersion;
}
