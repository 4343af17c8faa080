import { readWorkerConfig, type WorkerConfig } from "../../../services/worker/config.ts";
import type { Broker, IncomingMessage, OutgoingMessage, PartitionConsumer } from "../../../shared/broker/types.ts";
import type { ResourceNames } from "../../../shared/config/index.ts";
import { type ReplyRoute, requestRecord } from "../../../shared/records/index.ts";

/** A worker configuration for tests: short retry delays, names under `prefix`. */
export function testConfig(prefix: string, overrides: Record<string, string> = {}): WorkerConfig {
  return readWorkerConfig({
    TETHER_NAME_PREFIX: prefix,
    TETHER_MAX_EDGES: "4",
    TETHER_HANDLER_RETRY_BASE_MS: "5",
    TETHER_HANDLER_RETRY_MAX_MS: "20",
    TETHER_HANDLER_RETRIES: "2",
    TETHER_LAG_SAMPLE_MS: "1000",
    ...overrides,
  });
}

export interface TestRequest {
  readonly deviceId: string;
  readonly id: string;
  readonly type: string;
  readonly body?: unknown;
}

/** A `requests` record as an edge writes it. */
export function requestMessage(names: ResourceNames, request: TestRequest, route: ReplyRoute): OutgoingMessage {
  const { deviceId, id, type } = request;
  const bodyJson = JSON.stringify(request.body ?? null);
  return requestRecord(names.requestsTopic, route, { deviceId, id, type, receivedAt: Date.now() }, bodyJson);
}

export interface Collected {
  readonly message: IncomingMessage;
  readonly frame: Record<string, unknown>;
  /** `performance.now()` when the collector got it. */
  readonly at: number;
}

/** Collects what lands on some partitions of a topic: a fake edge reading its reply slot. */
export class Collector {
  readonly items: Collected[] = [];
  readonly #consumers: PartitionConsumer[] = [];
  readonly #waiters = new Set<() => void>();

  static async start(
    broker: Broker,
    topic: string,
    partitions: readonly number[],
    groupId: string,
  ): Promise<Collector> {
    const collector = new Collector();
    for (const partition of partitions) {
      const consumer = broker.partitionConsumer({ groupId, topic, partition, fallback: "earliest" });
      collector.#consumers.push(consumer);
      await consumer.start(async (message) => {
        const frame = JSON.parse(message.value.toString("utf8")) as Record<string, unknown>;
        collector.items.push({ message, frame, at: performance.now() });
        for (const wake of collector.#waiters) wake();
      });
    }
    return collector;
  }

  /** Resolves with the items once `predicate` holds; rejects after `timeoutMs`. */
  async waitUntil(predicate: (items: readonly Collected[]) => boolean, timeoutMs = 10_000): Promise<Collected[]> {
    if (predicate(this.items)) return this.items;
    return await new Promise<Collected[]>((resolve, reject) => {
      const wake = (): void => {
        if (!predicate(this.items)) return;
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve(this.items);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        reject(new Error(`condition not met within ${timeoutMs} ms; ${this.items.length} items collected`));
      }, timeoutMs);
      this.#waiters.add(wake);
    });
  }

  /** Waits for `count` items and returns them. */
  waitForCount(count: number, timeoutMs?: number): Promise<Collected[]> {
    return this.waitUntil((items) => items.length >= count, timeoutMs);
  }

  /** The items whose frame answers request `id`. */
  answersTo(id: string): Collected[] {
    return this.items.filter((item) => item.frame.id === id);
  }

  async close(): Promise<void> {
    await Promise.all(this.#consumers.map((consumer) => consumer.close()));
  }
}

export { sleep } from "../../../shared/async/index.ts";
