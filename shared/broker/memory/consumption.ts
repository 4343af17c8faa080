import { withTimeout } from "../../async/index.ts";
import { ErrorCode, TetherError } from "../../errors/index.ts";
import { Dispatcher } from "../dispatch.ts";
import type { MessageHandler } from "../types.ts";
import type { Cluster } from "./cluster.ts";
import { type PartitionLog, partitionId } from "./log.ts";

interface Cursor {
  readonly log: PartitionLog;
  next: number;
  readonly unlisten: () => void;
}

/** Feeds a dispatcher from partition logs, waking on appends and pausing when it is full. */
class Fetcher {
  readonly #dispatcher: Dispatcher;
  readonly #maxPending: number;
  readonly #cursors = new Map<string, Cursor>();
  #scheduled = false;
  #stopped = false;

  constructor(dispatcher: Dispatcher, maxPending: number) {
    this.#dispatcher = dispatcher;
    this.#maxPending = maxPending;
  }

  add(log: PartitionLog, start: number): void {
    if (this.#stopped) return;
    const id = partitionId(log.topic, log.partition);
    this.#cursors.get(id)?.unlisten();
    const unlisten = log.listen(() => this.schedule());
    this.#cursors.set(id, { log, next: start, unlisten });
    this.schedule();
  }

  remove(id: string): void {
    const cursor = this.#cursors.get(id);
    if (cursor === undefined) return;
    cursor.unlisten();
    this.#cursors.delete(id);
  }

  stop(): void {
    this.#stopped = true;
    for (const id of [...this.#cursors.keys()]) this.remove(id);
  }

  schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#fetch();
    });
  }

  #fetch(): void {
    let progress = true;
    while (progress && !this.#stopped) {
      progress = false;
      for (const cursor of this.#cursors.values()) {
        // A slice per partition per round keeps one busy partition from starving the rest.
        let budget = 64;
        if (cursor.next < cursor.log.start()) cursor.next = cursor.log.start();
        while (budget > 0 && cursor.next < cursor.log.end()) {
          if (this.#stopped || this.#dispatcher.pending() >= this.#maxPending) return;
          this.#dispatcher.push(cursor.log.read(cursor.next));
          cursor.next += 1;
          budget -= 1;
          progress = true;
        }
      }
    }
  }
}

export function checkStartable(closed: boolean, started: boolean): void {
  if (closed) throw new TetherError(ErrorCode.Closed, "consumer is closed");
  if (started) throw new TetherError(ErrorCode.InvalidArgument, "consumer already started");
}

/**
 * What a started consumer runs: the dispatcher, the fetcher feeding it, and commits of handled
 * positions, at most one per turn of the event loop.
 */
export class Consumption {
  readonly dispatcher: Dispatcher;
  readonly fetcher: Fetcher;
  readonly #commit: () => Promise<void> | undefined;
  #commitScheduled = false;

  constructor(
    cluster: Cluster,
    options: { concurrency?: number; orderBy?: "key" | "partition"; maxRetryDelayMs?: number },
    handler: MessageHandler,
    commit: () => Promise<void> | undefined,
  ) {
    this.#commit = commit;
    this.dispatcher = new Dispatcher({
      handler: async (message) => {
        // The dispatcher updates its counters after the handler (and its durable effect)
        // settles; look after that.
        const after = (): void => {
          setImmediate(() => {
            this.fetcher.schedule();
            this.#scheduleCommit();
          });
        };
        let outcome: Awaited<ReturnType<MessageHandler>>;
        try {
          outcome = await handler(message);
        } finally {
          after();
        }
        if (outcome === undefined) return undefined;
        return { durable: outcome.durable.finally(after) };
      },
      concurrency: options.concurrency,
      orderBy: options.orderBy,
      ...(options.maxRetryDelayMs === undefined ? {} : { maxRetryDelayMs: options.maxRetryDelayMs }),
      onError: (error, message, attempt) => {
        cluster.logger?.warn(
          { err: error, topic: message.topic, partition: message.partition, offset: message.offset, attempt },
          "handler failed; retrying",
        );
      },
    });
    this.fetcher = new Fetcher(this.dispatcher, cluster.maxPending);
  }

  /**
   * Stops fetching, waits up to `timeoutMs` for the handlers in flight, then commits. A save
   * that fails was logged where it failed, and one that hangs is given up after 5 s, as the
   * Kafka adapter's final commit is; closing goes on either way.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.fetcher.stop();
    this.dispatcher.close();
    await this.dispatcher.drain(timeoutMs);
    const saving = this.#commit();
    if (saving !== undefined) await withTimeout(saving, 5000, "final offset save").catch(() => {});
  }

  #scheduleCommit(): void {
    if (this.#commitScheduled) return;
    this.#commitScheduled = true;
    setImmediate(() => {
      this.#commitScheduled = false;
      void this.#commit()?.catch(() => {});
    });
  }
}

export const defaultCloseTimeoutMs = 10_000;
