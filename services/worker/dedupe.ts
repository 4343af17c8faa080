import { hash } from "node:crypto";

/** The parts of a request that make it the same request as another (protocol 1.1 "Request ids"). */
export interface RequestIdentity {
  readonly deviceId: string;
  readonly id: string;
  readonly type: string;
  /** The parsed body; its `JSON.stringify` text is what is compared. */
  readonly body: unknown;
}

/**
 * The dedupe window's key of a request: its deviceId, its id and a digest of its type and body.
 * A device may reuse an id once its request is answered, for a different request: keying on
 * the content too means only a true repeat (same id, type and body) finds the first answer.
 * The body is compared as `JSON.stringify` of its parsed value, so a resend that differs only
 * in whitespace is still a repeat. 128 bits of SHA-256 keep the key short; a collision between
 * two requests of one device with one id is not a practical concern.
 */
export function dedupeKey(request: RequestIdentity): string {
  // The type is quoted, so where it ends and the body begins is never ambiguous. One-shot
  // hash(): no Hash object per request.
  const text = JSON.stringify(request.type) + JSON.stringify(request.body === undefined ? null : request.body);
  const digest = hash("sha256", text, "base64url").slice(0, 22);
  // An array, not a joined string: deviceIds and ids may both contain ':'.
  return JSON.stringify([request.deviceId, request.id, digest]);
}

/**
 * A bounded, time-limited memory of answers by {@link dedupeKey} (deviceId, id and a digest of
 * type and body), so that a request seen again (the device resent it, or Kafka redelivered it
 * after a crash or a rebalance) is answered with the first answer instead of running its
 * handler twice. A request that reuses an id with another type or body is not found here and
 * runs as the new request it is.
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
