import { backoff, sleep } from "../async/index.ts";
import type { IncomingMessage, MessageHandler } from "./types.ts";

/** Logs a handler failure; the dispatcher retries the message after a backoff. */
export type DispatchErrorListener = (error: unknown, message: IncomingMessage, attempt: number) => void;

export interface DispatcherOptions {
  readonly handler: MessageHandler;
  readonly concurrency?: number;
  readonly orderBy?: "key" | "partition";
  readonly onError?: DispatchErrorListener;
  /** First retry delay after a handler rejects; doubles up to `maxRetryDelayMs`. */
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
}

interface Entry {
  readonly message: IncomingMessage;
  readonly partition: PartitionProgress;
  readonly offset: number;
  done: boolean;
}

/** Offsets of one partition in arrival order; the committable position is the first not done. */
class PartitionProgress {
  readonly id: string;
  readonly entries: Entry[] = [];
  head = 0;
  /** Next offset to commit (last contiguous done offset + 1), or -1 when nothing is done yet. */
  position = -1;
  /** Entries whose handler runs or whose effect is not durable yet. */
  busy = 0;
  revoked = false;
  readonly #idleWaiters: Array<() => void> = [];

  constructor(id: string) {
    this.id = id;
  }

  advance(): void {
    while (this.head < this.entries.length) {
      const entry = this.entries[this.head]!;
      if (!entry.done) break;
      this.position = entry.offset + 1;
      this.head += 1;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
  }

  pending(): number {
    return this.entries.length - this.head;
  }

  waitIdle(): Promise<void> {
    if (this.busy === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  notifyIfIdle(): void {
    if (this.busy !== 0) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}

/**
 * Runs a consumer's handler with bounded concurrency while keeping per-key (or per-partition)
 * order, and tracks, per partition, the offset up to which every message has been handled:
 * only that position is ever committed, so a crash replays rather than loses. A handler that
 * returns a `Pending` frees its key and its concurrency slot at once while its offset waits for
 * `durable`: a device's next request runs while the answer to the previous one is in flight.
 * Both broker adapters use it, so ordering and commit rules are the same in Kafka and in memory.
 */
export class Dispatcher {
  readonly #handler: MessageHandler;
  readonly #concurrency: number;
  readonly #orderBy: "key" | "partition";
  readonly #onError: DispatchErrorListener | undefined;
  readonly #retryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #partitions = new Map<string, PartitionProgress>();
  readonly #chains = new Map<string, Entry[]>();
  readonly #ready: string[] = [];
  #readyHead = 0;
  /** Handlers running now (bounded by the concurrency). */
  #running = 0;
  /** Handled entries waiting for their `durable` promise. */
  #settling = 0;
  /** Entries accepted and neither settled nor dropped. */
  #pending = 0;
  #closed = false;
  readonly #idleWaiters: Array<() => void> = [];

  constructor(options: DispatcherOptions) {
    this.#handler = options.handler;
    this.#concurrency = Math.max(1, options.concurrency ?? 1);
    this.#orderBy = options.orderBy ?? "key";
    this.#onError = options.onError;
    this.#retryDelayMs = options.retryDelayMs ?? 100;
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 5000;
  }

  /** Messages accepted and not yet settled, across partitions (for pausing fetches). */
  pending(): number {
    return this.#pending;
  }

  /** Accepts a message; messages of one partition must be pushed in offset order. */
  push(message: IncomingMessage): void {
    if (this.#closed) return;
    const partitionId = `${message.topic}:${message.partition}`;
    let partition = this.#partitions.get(partitionId);
    if (partition === undefined || partition.revoked) {
      partition = new PartitionProgress(partitionId);
      this.#partitions.set(partitionId, partition);
    }
    const entry: Entry = { message, partition, offset: Number(message.offset), done: false };
    partition.entries.push(entry);
    this.#pending += 1;
    const chainKey =
      this.#orderBy === "partition" || message.key === null ? partitionId : `${partitionId}\u0000${message.key}`;
    const chain = this.#chains.get(chainKey);
    if (chain === undefined) {
      this.#chains.set(chainKey, [entry]);
      this.#ready.push(chainKey);
    } else {
      chain.push(entry);
    }
    this.#pump();
  }

  /**
   * Committable positions: for each partition with progress, the next offset to read
   * (Kafka's commit convention). Revoked partitions are left out.
   */
  positions(): Map<string, number> {
    const result = new Map<string, number>();
    for (const [id, partition] of this.#partitions) {
      if (!partition.revoked && partition.position >= 0) result.set(id, partition.position);
    }
    return result;
  }

  /** Position of one partition, or -1 when nothing of it has been handled. */
  position(topic: string, partition: number): number {
    const progress = this.#partitions.get(`${topic}:${partition}`);
    return progress === undefined ? -1 : progress.position;
  }

  /**
   * Forgets a partition (it was revoked): queued messages are dropped, handlers already
   * running finish. Resolves, with the final position, once none of its handlers runs and
   * every handled message's effect is durable.
   */
  async revoke(topic: string, partition: number): Promise<number> {
    const id = `${topic}:${partition}`;
    const progress = this.#partitions.get(id);
    if (progress === undefined) return -1;
    progress.revoked = true;
    // A chain can hold entries of an earlier assignment of the same partition ahead of this
    // one's, so every chain is searched, not only those this partition heads.
    for (const [chainKey, chain] of this.#chains) {
      const kept = chain.filter(
        (entry, index) => entry.partition !== progress || (index === 0 && this.#isRunning(entry)),
      );
      const dropped = chain.length - kept.length;
      if (dropped === 0) continue;
      this.#pending -= dropped;
      if (kept.length === 0) {
        this.#chains.delete(chainKey);
        continue;
      }
      chain.splice(0, chain.length, ...kept);
      if (!this.#isRunning(kept[0]!)) this.#ready.push(chainKey);
    }
    this.#pump();
    await progress.waitIdle();
    if (this.#partitions.get(id) === progress) this.#partitions.delete(id);
    return progress.position;
  }

  /**
   * Resolves when no handler is running and every handled message is durable, or after
   * `timeoutMs`; returns whether idle.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.#idle()) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.#idleWaiters.push(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([idle, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops starting handlers; queued messages are dropped (they were not committed). */
  close(): void {
    this.#closed = true;
    for (const [key, chain] of this.#chains) {
      const head = chain[0];
      if (head !== undefined && this.#isRunning(head)) {
        chain.length = 1;
      } else {
        this.#chains.delete(key);
      }
    }
    this.#ready.length = 0;
    this.#readyHead = 0;
    this.#pending = this.#running + this.#settling;
  }

  #idle(): boolean {
    return this.#running === 0 && this.#settling === 0;
  }

  readonly #runningEntries = new Set<Entry>();

  #isRunning(entry: Entry): boolean {
    return this.#runningEntries.has(entry);
  }

  #pump(): void {
    while (!this.#closed && this.#running < this.#concurrency && this.#readyHead < this.#ready.length) {
      const chainKey = this.#ready[this.#readyHead]!;
      this.#readyHead += 1;
      if (this.#readyHead > 1024 && this.#readyHead * 2 > this.#ready.length) {
        this.#ready.splice(0, this.#readyHead);
        this.#readyHead = 0;
      }
      const chain = this.#chains.get(chainKey);
      const entry = chain?.[0];
      if (entry === undefined || entry.partition.revoked || this.#runningEntries.has(entry)) continue;
      void this.#run(chainKey, entry);
    }
  }

  async #run(chainKey: string, entry: Entry): Promise<void> {
    this.#running += 1;
    entry.partition.busy += 1;
    this.#runningEntries.add(entry);
    let attempt = 0;
    let handled = false;
    let durable: Promise<void> | undefined;
    for (;;) {
      attempt += 1;
      try {
        const outcome = await this.#handler(entry.message);
        handled = true;
        durable = outcome?.durable;
        break;
      } catch (error) {
        this.#report(error, entry, attempt);
        if (this.#closed || entry.partition.revoked) break;
        await this.#retryWait(attempt);
        if (this.#closed || entry.partition.revoked) break;
      }
    }
    this.#runningEntries.delete(entry);
    this.#running -= 1;
    const chain = this.#chains.get(chainKey);
    if (chain !== undefined && chain[0] === entry) {
      chain.shift();
      if (this.#closed) {
        this.#pending -= chain.length;
        this.#chains.delete(chainKey);
      } else if (chain.length === 0) this.#chains.delete(chainKey);
      else this.#ready.push(chainKey);
    }
    if (durable !== undefined) {
      this.#settling += 1;
      void this.#settle(entry, durable, attempt);
    } else {
      entry.done = handled;
      this.#finish(entry);
    }
    this.#pump();
  }

  /**
   * Waits for a handled message's effect to become durable; when it fails, runs the handler
   * again (outside the key's order: the key has moved on) until it holds or the partition goes.
   */
  async #settle(entry: Entry, first: Promise<void>, attempts: number): Promise<void> {
    let durable = first;
    let attempt = attempts;
    let retries = 0;
    for (;;) {
      try {
        await durable;
        entry.done = true;
        break;
      } catch (error) {
        this.#report(error, entry, attempt);
        if (this.#closed || entry.partition.revoked) break;
        retries += 1;
        await this.#retryWait(retries);
        if (this.#closed || entry.partition.revoked) break;
        attempt += 1;
        try {
          const outcome = await this.#handler(entry.message);
          durable = outcome?.durable ?? Promise.resolve();
        } catch (again) {
          durable = Promise.reject(again);
        }
      }
    }
    this.#settling -= 1;
    this.#finish(entry);
  }

  /** The entry leaves the dispatcher: done ones move the partition's position on. */
  #finish(entry: Entry): void {
    this.#pending -= 1;
    entry.partition.busy -= 1;
    if (entry.done) entry.partition.advance();
    entry.partition.notifyIfIdle();
    if (this.#idle()) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** The pause before retry number `retry`; its timer never keeps the process alive. */
  async #retryWait(retry: number): Promise<void> {
    await sleep(backoff(retry, { baseMs: this.#retryDelayMs, maxMs: this.#maxRetryDelayMs }), { ref: false });
  }

  #report(error: unknown, entry: Entry, attempt: number): void {
    try {
      this.#onError?.(error, entry.message, attempt);
    } catch {
      // A failing listener must not stop the retries.
    }
  }
}
