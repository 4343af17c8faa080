import { sleep } from "../../shared/async/index.ts";
import type { Broker } from "../../shared/broker/types.ts";
import { ErrorCode, hasErrorCode, TetherError } from "../../shared/errors/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import type { LeaseStore, SlotLease } from "../../shared/registry/types.ts";
import type { EdgeConfig } from "./config.ts";

/**
 * Slot leases, fenced. A lease row carries a generation that only goes up (a new holder bumps
 * it) and a version that every write changes. The holder judges its lease on its own monotonic
 * clock, counted from when the renewal that proved it was sent; nothing compares wall clocks
 * across hosts. A taker takes a slot over only after watching its version stay unchanged for a
 * whole lease on its own clock (and, in the janitor, hearing no beacon from the holder), and
 * every write of the holder is conditional on its generation, so a zombie's renewals, commits
 * and releases are refused.
 */

export interface HeldLeaseOptions {
  readonly leases: LeaseStore;
  readonly edgeId: string;
  readonly leaseMs: number;
  readonly logger: Logger;
  /** Monotonic milliseconds (performance.now by default). */
  readonly clock: () => number;
  /** Open connections, reported on every renewal. */
  readonly connections?: () => number;
  /** Called once when another edge provably holds the slot now. */
  readonly onTaken: (error: TetherError) => void;
  /** Told every renewal's outcome and the loss of the lease (metrics). */
  readonly metrics?: { renewed(ok: boolean): void; lost(): void };
}

/** A margin below the lease, so the holder stops before any taker may start. */
export function leaseMargin(leaseMs: number): number {
  return Math.max(50, Math.floor(leaseMs / 5));
}

/** One slot lease this edge holds: renewal, validity, fenced commits, release. */
export class HeldLease {
  readonly #options: HeldLeaseOptions;
  readonly slot: number;
  readonly generation: number;
  /** The offset the row held when the lease was taken: where reading resumes. */
  readonly startOffset: number | null;
  #validUntil: number;
  #committed: number | null;
  #state: "held" | "taken" | "released" = "held";
  #renewing = false;
  #lastRenewSentAt: number;
  #failuresLogged = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(options: HeldLeaseOptions, lease: SlotLease, sentAt: number) {
    this.#options = options;
    this.slot = lease.slot;
    this.generation = lease.generation;
    this.startOffset = lease.committed;
    this.#committed = lease.committed;
    this.#lastRenewSentAt = sentAt;
    this.#validUntil = sentAt + options.leaseMs - leaseMargin(options.leaseMs);
    this.#timer = setInterval(() => this.#tick(), Math.max(20, Math.floor(options.leaseMs / 6)));
    this.#timer.unref();
  }

  /** True while this edge can prove the lease: checked before every delivery, ack and commit. */
  valid(): boolean {
    return this.#state === "held" && this.#options.clock() < this.#validUntil;
  }

  get taken(): boolean {
    return this.#state === "taken";
  }

  /** The offset last saved for the slot. */
  get committed(): number | null {
    return this.#committed;
  }

  /** Saves the slot's next offset, under this lease's generation (a zombie's save is refused). */
  async commit(offset: number): Promise<void> {
    if (!this.valid()) throw new TetherError(ErrorCode.Closed, "slot lease not proven; offset not saved");
    const { leases, edgeId } = this.#options;
    await this.#conflictMeansTaken(leases.commitOffset(this.slot, edgeId, this.generation, offset));
    this.#committed = offset;
  }

  #tick(): void {
    const { leaseMs, clock } = this.#options;
    if (this.#state !== "held" || this.#renewing) return;
    if (clock() - this.#lastRenewSentAt < Math.floor(leaseMs / 3)) return;
    this.#renewing = true;
    const sentAt = clock();
    this.#lastRenewSentAt = sentAt;
    const { leases, edgeId, logger } = this.#options;
    const extra = { connections: this.#options.connections?.() ?? 0 };
    this.#conflictMeansTaken(leases.renewHeld(this.slot, edgeId, this.generation, leaseMs, extra)).then(
      () => {
        this.#renewing = false;
        this.#failuresLogged = 0;
        this.#options.metrics?.renewed(true);
        if (this.#state === "held") this.#validUntil = sentAt + leaseMs - leaseMargin(leaseMs);
      },
      (error: unknown) => {
        this.#renewing = false;
        this.#options.metrics?.renewed(false);
        if (this.#state !== "held") return;
        // The registry is slow or away: keep the sockets, keep trying; deliveries pause by
        // themselves once the lease can no longer be proven.
        if (this.#failuresLogged++ % 20 === 0) {
          logger.warn({ err: error, slot: this.slot, valid: this.valid() }, "slot lease renewal failed; retrying");
        }
      },
    );
  }

  /** A conditional write that lost means another edge has the slot: the lease is gone for good. */
  async #conflictMeansTaken<T>(write: Promise<T>): Promise<T> {
    try {
      return await write;
    } catch (error) {
      if (hasErrorCode(error, ErrorCode.Conflict) && this.#state === "held") {
        this.#state = "taken";
        clearInterval(this.#timer);
        this.#options.metrics?.lost();
        this.#options.onTaken(
          new TetherError(ErrorCode.Conflict, "slot lease taken by another edge", {
            cause: error,
            details: { slot: this.slot },
          }),
        );
      }
      throw error;
    }
  }

  /** Gives the slot up (when held). Safe to call twice. */
  async release(): Promise<void> {
    clearInterval(this.#timer);
    if (this.#state !== "held") return;
    this.#state = "released";
    const { leases, edgeId, logger } = this.#options;
    try {
      await leases.releaseHeld(this.slot, edgeId, this.generation);
      logger.info({ slot: this.slot }, "slot lease released");
    } catch (error) {
      logger.warn({ err: error, slot: this.slot }, "slot lease release failed; it will expire");
    }
  }
}

export interface AcquireOptions {
  readonly leases: LeaseStore;
  readonly edgeId: string;
  readonly host: string;
  readonly leaseMs: number;
  /** Slots to choose from: partitions 0 .. slots-1 of `replies`. */
  readonly slots: number;
  /** First slot tried; random when omitted (spreads a fleet starting at once). */
  readonly firstSlot?: number;
  readonly clock: () => number;
  readonly logger: Logger;
  /** True while the edge still wants a slot (false once it is told to stop). */
  readonly wanted: () => boolean;
}

/**
 * Takes a slot for this edge: a free one (no row, or released) if there is one; otherwise one
 * whose row stayed unchanged for a whole lease on this edge's clock. Rejects with `conflict`
 * when every slot is held by an edge that keeps renewing. While the registry cannot be reached
 * it keeps trying, with backoff, as long as the edge wants a slot.
 */
export async function acquireSlot(options: AcquireOptions): Promise<{ lease: SlotLease; sentAt: number }> {
  const { leases, edgeId, host, leaseMs, slots, clock, logger } = options;
  for (let attempt = 0; ; attempt++) {
    try {
      const rows = new Map((await leases.list()).map((row) => [row.slot, row]));
      const first = options.firstSlot ?? Math.floor(Math.random() * slots);
      for (let i = 0; i < slots; i++) {
        const slot = (first + i) % slots;
        const row = rows.get(slot);
        if (row !== undefined && !row.released) continue;
        const sentAt = clock();
        try {
          return { lease: await leases.acquireFree({ slot, edgeId, host, leaseMs }), sentAt };
        } catch (error) {
          if (!hasErrorCode(error, ErrorCode.Conflict)) throw error;
        }
      }
      return await takeOverSilent(options, rows);
    } catch (error) {
      if (hasErrorCode(error, ErrorCode.Conflict) || !options.wanted()) throw error;
      const waitMs = Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
      logger.warn({ err: error, attempt, waitMs }, "no slot lease yet (registry unreachable?); retrying");
      await sleep(waitMs);
    }
  }
}

/** Rounds of one lease each that a starting edge watches a full set of slots before it gives up. */
const WATCH_ROUNDS = 5;

/**
 * Every slot is held: watch them, a lease at a time, and take a slot that was released meanwhile
 * (an adopted slot is given back once it is drained) or one whose holder went silent.
 */
async function takeOverSilent(
  options: AcquireOptions,
  rows: ReadonlyMap<number, SlotLease>,
): Promise<{ lease: SlotLease; sentAt: number }> {
  const { leases, edgeId, host, leaseMs, slots, logger } = options;
  let watched = rows;
  for (let round = 0; round < WATCH_ROUNDS && options.wanted(); round++) {
    const longest = Math.max(leaseMs, ...[...watched.values()].map((row) => row.leaseMs || leaseMs));
    if (round === 0) logger.info({ slots, waitMs: longest }, "every slot is held; watching for one to come free");
    await sleep(longest + leaseMargin(longest));
    const now = await leases.list();
    for (const row of now) {
      if (row.slot >= slots) continue;
      const before = watched.get(row.slot);
      const take = { slot: row.slot, edgeId, host, leaseMs };
      const sentAt = options.clock();
      try {
        if (row.released) return { lease: await leases.acquireFree(take), sentAt };
        if (before !== undefined && before.version === row.version) {
          return { lease: await leases.takeOver(take, row.version), sentAt };
        }
      } catch (error) {
        if (!hasErrorCode(error, ErrorCode.Conflict)) throw error;
      }
    }
    watched = new Map(now.map((row) => [row.slot, row]));
  }
  throw new TetherError(ErrorCode.Conflict, `all ${slots} reply slots are held by live edges`, { retryable: true });
}

/**
 * How many reply slots there are: the partitions of `replies`, at most `maxEdges`. A topic made a
 * moment ago may not be in the metadata yet, so this retries a little while `starting` holds.
 */
export async function countSlots(
  broker: Broker,
  config: EdgeConfig,
  log: Logger,
  starting: () => boolean,
): Promise<number> {
  const admin = broker.admin();
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const partitions = await admin.partitionCount(config.common.names.repliesTopic);
        return Math.max(1, Math.min(partitions, config.common.maxEdges));
      } catch (error) {
        if (attempt >= 20 || !starting()) throw error;
        log.debug({ err: error, attempt }, "replies topic not visible yet");
        await sleep(250);
      }
    }
  } finally {
    await admin.close();
  }
}
