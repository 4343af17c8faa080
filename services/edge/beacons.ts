import type { Broker, PartitionConsumer, Producer } from "../../shared/broker/types.ts";
import type { Logger } from "../../shared/log/index.ts";
import type { EdgeConfig } from "./config.ts";

/** A slot an edge says it holds, with the generation of its lease. */
export interface HeldSlot {
  readonly slot: number;
  readonly generation: number;
}

interface Heard {
  readonly edgeId: string;
  readonly generation: number;
  /** Our monotonic time when it arrived. */
  readonly at: number;
}

export interface BeaconsOptions {
  readonly broker: Broker;
  readonly producer: Producer;
  readonly config: EdgeConfig;
  readonly logger: Logger;
  readonly clock: () => number;
  /** The slots this edge holds now. */
  readonly held: () => readonly HeldSlot[];
}

/**
 * Liveness through Kafka, beside the lease rows in DynamoDB: every edge says every third of a
 * lease which slots it holds, and hears what the others say. An edge cut off from DynamoDB
 * cannot renew its lease rows, but it still beacons, so no janitor adopts its slots while it
 * waits for the registry to come back; a crashed or frozen edge falls silent on both channels.
 */
export class Beacons {
  readonly #options: BeaconsOptions;
  readonly #heard = new Map<number, Heard>();
  #consumer: PartitionConsumer | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: BeaconsOptions) {
    this.#options = options;
  }

  async start(): Promise<void> {
    const { broker, config } = this.#options;
    const names = config.common.names;
    const consumer = broker.partitionConsumer({
      groupId: names.beaconsGroup,
      topic: names.edgesTopic,
      partition: 0,
      fallback: "latest",
      offsets: { load: async () => null, save: async () => {} },
    });
    this.#consumer = consumer;
    await consumer.start(async (message) => this.#hear(message.value));
    this.#send();
    this.#timer = setInterval(() => this.#send(), Math.max(20, Math.floor(config.leaseMs / 3)));
    this.#timer.unref();
  }

  /** When the holder of `slot` (`edgeId`) was last heard from, on our clock; -Infinity if never. */
  lastHeard(slot: number, edgeId: string): number {
    const heard = this.#heard.get(slot);
    return heard !== undefined && heard.edgeId === edgeId ? heard.at : Number.NEGATIVE_INFINITY;
  }

  #hear(value: Buffer): void {
    let beacon: { edgeId?: unknown; slots?: unknown };
    try {
      beacon = JSON.parse(value.toString("utf8")) as typeof beacon;
    } catch {
      return;
    }
    if (typeof beacon.edgeId !== "string" || !Array.isArray(beacon.slots)) return;
    const at = this.#options.clock();
    for (const held of beacon.slots as unknown[]) {
      const { slot, generation } = (held ?? {}) as Partial<HeldSlot>;
      if (typeof slot !== "number" || typeof generation !== "number") continue;
      this.#heard.set(slot, { edgeId: beacon.edgeId, generation, at });
    }
  }

  #send(): void {
    const { producer, config, logger } = this.#options;
    const value = JSON.stringify({ edgeId: config.edgeId, slots: this.#options.held(), at: Date.now() });
    producer
      .send({ topic: config.common.names.edgesTopic, key: config.edgeId, value }, { timeoutMs: config.leaseMs })
      .catch((error: unknown) => logger.debug({ err: error }, "beacon not written"));
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await this.#consumer?.close(0);
  }
}
