import type { IncomingMessage, MessageHeaders } from "../types.ts";

export interface StoredRecord {
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers: MessageHeaders;
  readonly timestamp: number;
}

/**
 * One partition's log. Old records are dropped by the topic's `retention.ms` and by a count
 * cap, so a long-running embedded process does not grow without bound; offsets keep counting.
 */
export class PartitionLog {
  readonly topic: string;
  readonly partition: number;
  readonly #retentionMs: number;
  readonly #maxRecords: number;
  #records: StoredRecord[] = [];
  /** Index in `#records` of the oldest retained record. */
  #head = 0;
  /** Offset of `#records[0]`. */
  #base = 0;
  readonly #listeners = new Set<() => void>();

  constructor(topic: string, partition: number, retentionMs: number, maxRecords: number) {
    this.topic = topic;
    this.partition = partition;
    this.#retentionMs = retentionMs;
    this.#maxRecords = maxRecords;
  }

  /** Offset of the oldest record still held. */
  start(): number {
    return this.#base + this.#head;
  }

  /** Offset the next record will get. */
  end(): number {
    return this.#base + this.#records.length;
  }

  append(record: StoredRecord): number {
    const offset = this.end();
    this.#records.push(record);
    this.#trim(record.timestamp);
    for (const listener of this.#listeners) listener();
    return offset;
  }

  /** The record at `offset`, which must lie in [start(), end()). */
  read(offset: number): IncomingMessage {
    const record = this.#records[offset - this.#base]!;
    return {
      topic: this.topic,
      partition: this.partition,
      offset: String(offset),
      key: record.key,
      value: Buffer.from(record.value),
      headers: record.headers,
      timestamp: record.timestamp,
    };
  }

  /** Calls `listener` on every append until the returned function is called. */
  listen(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #trim(now: number): void {
    const records = this.#records;
    while (records.length - this.#head > this.#maxRecords) this.#head += 1;
    if (this.#retentionMs >= 0) {
      const cutoff = now - this.#retentionMs;
      while (this.#head < records.length - 1 && records[this.#head]!.timestamp < cutoff) this.#head += 1;
    }
    // Compacts now and then rather than shifting on every append.
    if (this.#head > 1024 && this.#head * 2 > records.length) {
      this.#records = records.slice(this.#head);
      this.#base += this.#head;
      this.#head = 0;
    }
  }
}

export function partitionId(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

export function splitPartitionId(id: string): { topic: string; partition: number } {
  const separator = id.lastIndexOf(":");
  return { topic: id.slice(0, separator), partition: Number(id.slice(separator + 1)) };
}
