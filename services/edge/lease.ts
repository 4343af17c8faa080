import { sleep } from "../../shared/async/index.ts";
import type { Broker } from "../../shared/broker/types.ts";
import { ErrorCode, hasErrorCode, TetherError } from "../../shared/errors/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import type { LeaseStore } from "../../shared/registry/types.ts";
import type { EdgeConfig } from "./config.ts";

export interface SlotKeeperOptions {
  readonly leases: LeaseStore;
  readonly edgeId: string;
  readonly host: string;
  readonly leaseMs: number;
  /** Slots to choose from: partitions 0 .. slots-1 of `replies`. */
  readonly slots: number;
  readonly logger: Logger;
  readonly now: () => number;
  /** Open connections, reported on every renewal. */
  readonly connections: () => number;
  /** Called once when the lease is gone or can no longer be proven live. */
  readonly onLost: (error: TetherError) => void;
  /** First slot tried; random when omitted (spreads a fleet starting at once). */
  readonly firstSlot?: number;
}

/**
 * Holds one slot lease: acquires a free or expired slot, renews it every third of the lease,
 * and declares it lost (once) on a renewal conflict or when no renewal succeeded early enough
 * to be sure the lease is still ours. The margin exists because another edge may take the
 * slot the moment the lease expires; stopping before that keeps two edges off one slot.
 */
export class SlotKeeper {
  readonly #options: SlotKeeperOptions;
  readonly #renewEveryMs: number;
  readonly #marginMs: number;
  #slot = -1;
  /** Our own conservative view of the lease end: call start + leaseMs of the last success. */
  #leaseUntil = 0;
  #lastRenewAt = 0;
  #renewing = false;
  #timer: NodeJS.Timeout | undefined;
  #state: "idle" | "held" | "lost" | "released" = "idle";

  constructor(options: SlotKeeperOptions) {
    this.#options = options;
    this.#renewEveryMs = Math.max(1, Math.floor(options.leaseMs / 3));
    this.#marginMs = Math.max(50, Math.floor(options.leaseMs / 5));
  }

  get slot(): number {
    return this.#slot;
  }

  /** True while the lease is held and believed live. */
  get held(): boolean {
    return this.#state === "held";
  }

  /** Tries every slot once, starting at `firstSlot`; rejects with `conflict` when all are taken. */
  async acquire(): Promise<number> {
    const { leases, edgeId, host, leaseMs, slots, logger } = this.#options;
    const first = this.#options.firstSlot ?? Math.floor(Math.random() * slots);
    let lastError: unknown;
    for (let i = 0; i < slots; i++) {
      const slot = (first + i) % slots;
      const startedAt = this.#options.now();
      try {
        const lease = await leases.acquire({ slot, edgeId, host, leaseMs });
        this.#slot = slot;
        this.#leaseUntil = Math.min(lease.leaseUntil, startedAt + leaseMs);
        this.#lastRenewAt = startedAt;
        this.#state = "held";
        this.#timer = setInterval(() => this.#tick(), Math.max(20, Math.floor(leaseMs / 6)));
        logger.info({ slot, edgeId }, "slot lease acquired");
        return slot;
      } catch (error) {
        if (!hasErrorCode(error, ErrorCode.Conflict)) throw error;
        lastError = error;
      }
    }
    throw new TetherError(ErrorCode.Conflict, `all ${slots} reply slots are held by live edges`, {
      cause: lastError,
      retryable: true,
    });
  }

  #tick(): void {
    if (this.#state !== "held") return;
    const now = this.#options.now();
    if (now >= this.#leaseUntil - this.#marginMs) {
      this.#lose(
        new TetherError(ErrorCode.Timeout, "slot lease could not be renewed before it expired", {
          details: { slot: this.#slot },
        }),
      );
      return;
    }
    if (this.#renewing || now - this.#lastRenewAt < this.#renewEveryMs) return;
    this.#renewing = true;
    const { leases, edgeId, leaseMs, logger } = this.#options;
    const slot = this.#slot;
    leases.renew(slot, edgeId, leaseMs, this.#options.connections()).then(
      (lease) => {
        this.#renewing = false;
        if (this.#state !== "held") return;
        this.#leaseUntil = Math.min(lease.leaseUntil, now + leaseMs);
        this.#lastRenewAt = now;
      },
      (error: unknown) => {
        this.#renewing = false;
        if (this.#state !== "held") return;
        if (hasErrorCode(error, ErrorCode.Conflict)) {
          this.#lose(
            new TetherError(ErrorCode.Conflict, "slot lease taken by another edge", {
              cause: error,
              details: { slot },
            }),
          );
          return;
        }
        logger.warn({ err: error, slot }, "slot lease renewal failed; retrying");
      },
    );
  }

  #lose(error: TetherError): void {
    if (this.#state !== "held") return;
    this.#state = "lost";
    this.#stopTimer();
    this.#options.onLost(error);
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Gives the slot up (when held); a lost lease is left alone. Safe to call twice. */
  async release(): Promise<void> {
    this.#stopTimer();
    if (this.#state !== "held") {
      if (this.#state === "idle") this.#state = "released";
      return;
    }
    this.#state = "released";
    try {
      await this.#options.leases.release(this.#slot, this.#options.edgeId);
      this.#options.logger.info({ slot: this.#slot }, "slot lease released");
    } catch (error) {
      this.#options.logger.warn({ err: error, slot: this.#slot }, "slot lease release failed; it will expire");
    }
  }
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
