/**
 * A bounded, time-limited memory of answers by idempotency key (`deviceId:id`), so that a
 * request seen again (the device resent it, or Kafka redelivered it after a crash or a
 * rebalance) is answered with the first answer instead of running its handler twice.
 *
 * Trade-offs, chosen on purpose:
 * - The window lives in one worker's memory: no network hop on the request path, but its
 *   size bounds how far back repeats are caught, and a restart forgets it. Handlers that must
 *   never apply an effect twice still use the idempotency key against their own backend
 *   (see the `kv.put` example: a conditional write).
 * - Requests are keyed by deviceId, so one device's requests, repeats included, always land on
 *   one partition and hence one worker. A rebalance that moves that partition to another
 *   worker moves the device to a window that lacks its history; the cooperative-sticky
 *   assignor keeps partitions where they are whenever it can, so this happens rarely (a worker
 *   joins, leaves or dies), and then the handler simply runs again.
 */
export interface DedupeWindowOptions {
  /** Most keys remembered; the least recently used goes first. */
  readonly maxEntries: number;
  /** How long an answer is remembered, in milliseconds. */
  readonly ttlMs: number;
  readonly now?: () => number;
}

interface Slot<V> {
  readonly value: V;
  readonly expiresAt: number;
}

export class DedupeWindow<V> {
  readonly #entries = new Map<string, Slot<V>>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(options: DedupeWindowOptions) {
    this.#maxEntries = Math.max(0, options.maxEntries);
    this.#ttlMs = options.ttlMs;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The remembered value, or undefined when unknown or expired. A hit counts as a use. */
  get(key: string): V | undefined {
    const slot = this.#entries.get(key);
    if (slot === undefined) return undefined;
    this.#entries.delete(key);
    if (slot.expiresAt <= this.#now()) return undefined;
    // Re-inserting moves the key to the young end of the Map's insertion order.
    this.#entries.set(key, slot);
    return slot.value;
  }

  set(key: string, value: V): void {
    if (this.#maxEntries === 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, { value, expiresAt: this.#now() + this.#ttlMs });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
