import { ErrorCode, TetherError } from "../../errors/index.ts";
import type { DeliveryReport, OutgoingMessage, Producer } from "../types.ts";
import type { Cluster } from "./cluster.ts";
import type { PartitionLog, StoredRecord } from "./log.ts";

export class MemoryProducer implements Producer {
  readonly #cluster: Cluster;
  #queue: Array<{
    readonly log: PartitionLog;
    readonly record: StoredRecord;
    readonly resolve: (report: DeliveryReport) => void;
  }> = [];
  #scheduled = false;
  readonly #flushWaiters: Array<() => void> = [];
  #closed = false;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
  }

  async connect(): Promise<void> {
    if (this.#cluster.failing) throw new TetherError(ErrorCode.Unavailable, "broker unavailable");
  }

  send(message: OutgoingMessage): Promise<DeliveryReport> {
    try {
      if (this.#closed) throw new TetherError(ErrorCode.Closed, "producer is closed");
      if (this.#cluster.failing) throw new TetherError(ErrorCode.Unavailable, "broker unavailable");
      const topic = this.#cluster.requireTopic(message.topic);
      const partition = this.#cluster.choosePartition(message, topic);
      const record: StoredRecord = {
        key: message.key ?? null,
        value: typeof message.value === "string" ? Buffer.from(message.value, "utf8") : Buffer.from(message.value),
        headers: Object.freeze({ ...message.headers }),
        timestamp: Date.now(),
      };
      return new Promise((resolve) => {
        this.#queue.push({ log: topic.partitions[partition]!, record, resolve });
        this.#schedule();
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async flush(timeoutMs: number): Promise<void> {
    if (this.#queue.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<boolean>((resolve) => this.#flushWaiters.push(() => resolve(true)));
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const flushed = await Promise.race([done, late]);
    clearTimeout(timer);
    if (!flushed) throw new TetherError(ErrorCode.Timeout, `flush did not finish within ${timeoutMs} ms`);
  }

  queued(): number {
    return this.#queue.length;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.flush(5000);
  }

  // Delivery happens on a later turn of the event loop, as with a real broker, so that no
  // caller comes to depend on a send being acknowledged synchronously.
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const batch = this.#queue;
      this.#queue = [];
      for (const item of batch) {
        const offset = item.log.append(item.record);
        item.resolve({ topic: item.log.topic, partition: item.log.partition, offset: String(offset) });
      }
      if (this.#queue.length === 0) for (const resolve of this.#flushWaiters.splice(0)) resolve();
    });
  }
}
