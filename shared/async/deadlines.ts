/** What a deadline queue holds: a bound, the instant it runs out, and whether it was settled. */
export interface Deadline {
  /** performance.now() past which the item expires. */
  readonly deadline: number;
  /** The bound it was given; items with equal bounds expire in the order they were added. */
  readonly timeoutMs: number;
  readonly settled: boolean;
}

/**
 * Deadlines without a timer per item (a producer's sends, a worker's handler runs): items with
 * the same bound expire in the order they were added, so one queue per bound is ordered by
 * deadline and a sweep stops at the first item still in time.
 */
export class Deadlines<T extends Deadline> {
  readonly #queues = new Map<number, { items: T[]; head: number }>();
  #timer: NodeJS.Timeout | undefined;
  readonly #expire: (item: T) => void;
  readonly #sweepMs: number;

  /** `expire` gets each item still unsettled at its deadline, within `sweepMs` of it. */
  constructor(expire: (item: T) => void, sweepMs = 100) {
    this.#expire = expire;
    this.#sweepMs = sweepMs;
  }

  add(item: T): void {
    let queue = this.#queues.get(item.timeoutMs);
    if (queue === undefined) {
      queue = { items: [], head: 0 };
      this.#queues.set(item.timeoutMs, queue);
    }
    queue.items.push(item);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#sweep(), this.#sweepMs);
      this.#timer.unref();
    }
  }

  #sweep(): void {
    const now = performance.now();
    for (const [bound, queue] of this.#queues) {
      const { items } = queue;
      while (queue.head < items.length) {
        const item = items[queue.head]!;
        if (!item.settled && item.deadline > now) break;
        queue.head += 1;
        if (!item.settled) this.#expire(item);
      }
      if (queue.head === items.length) this.#queues.delete(bound);
      else if (queue.head > 1024 && queue.head * 2 > items.length) {
        queue.items = items.slice(queue.head);
        queue.head = 0;
      }
    }
    if (this.#queues.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#queues.clear();
  }
}
