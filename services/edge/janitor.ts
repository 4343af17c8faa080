import type { Broker, BrokerAdmin, IncomingMessage, PartitionConsumer, Pending } from "../../shared/broker/types.ts";
import { slotGroup } from "../../shared/config/index.ts";
import { ErrorCode, hasErrorCode } from "../../shared/errors/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import type { LeaseStore, SlotLease } from "../../shared/registry/types.ts";
import type { Beacons, HeldSlot } from "./beacons.ts";
import type { EdgeConfig } from "./config.ts";
import { HeldLease, leaseMargin } from "./lease.ts";

/** Handles one record of a slot; `fence` says whether the slot's lease is still proven. */
export type SlotHandler = (message: IncomingMessage, fence: () => boolean) => Promise<undefined | Pending>;

export interface JanitorOptions {
  readonly broker: Broker;
  readonly leases: LeaseStore;
  readonly config: EdgeConfig;
  readonly logger: Logger;
  readonly clock: () => number;
  readonly beacons: Beacons;
  /** The slot this edge serves devices on (never adopted, never released here). */
  readonly ownSlot: number;
  readonly slots: number;
  readonly handle: SlotHandler;
}

/** A slot adopted in drain-only mode: read to the end, then given back. */
interface Adopted {
  readonly lease: HeldLease;
  readonly consumer: PartitionConsumer;
  /** Our clock when its last record was handled (or when it was adopted). */
  lastActivity: number;
}

/**
 * No slot is orphaned: every edge watches the other slots' lease rows and beacons. A slot whose
 * holder fell silent on both for a whole lease (on this edge's clock), or that was released,
 * and that still has unread replies, is adopted: its lease is taken over (generation + 1), its
 * records are read from the committed offset and delivered, forwarded or parked like any, and
 * once it is caught up and quiet for two leases it is released again. Several janitors may race
 * for a slot: the conditional takeover lets one win.
 */
export class Janitor {
  readonly #options: JanitorOptions;
  /** Per slot: the version last seen and when (our clock) it was first seen. */
  readonly #seen = new Map<number, { version: string; at: number }>();
  readonly #adopted = new Map<number, Adopted>();
  #admin: BrokerAdmin | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #closed = false;

  constructor(options: JanitorOptions) {
    this.#options = options;
  }

  start(): void {
    this.#admin = this.#options.broker.admin();
    this.#timer = setInterval(() => void this.#tick(), Math.max(20, Math.floor(this.#options.config.leaseMs / 2)));
    this.#timer.unref();
  }

  /** Slots adopted now, for the beacons. */
  held(): HeldSlot[] {
    return [...this.#adopted.values()].map(({ lease }) => ({ slot: lease.slot, generation: lease.generation }));
  }

  async #tick(): Promise<void> {
    if (this.#running || this.#closed || this.#admin === undefined) return;
    this.#running = true;
    try {
      const { leases, config, clock } = this.#options;
      const [rows, ends] = await Promise.all([leases.list(), this.#admin.endOffsets(config.common.names.repliesTopic)]);
      const now = clock();
      for (const row of rows) {
        if (row.slot === this.#options.ownSlot || row.slot >= this.#options.slots) continue;
        const unread = (ends[row.slot] ?? 0) > (row.committed ?? 0);
        const adopted = this.#adopted.get(row.slot);
        if (adopted !== undefined) {
          await this.#maybeGiveBack(adopted, unread, now);
          continue;
        }
        const seen = this.#seen.get(row.slot);
        if (seen === undefined || seen.version !== row.version)
          this.#seen.set(row.slot, { version: row.version, at: now });
        if (!unread || row.edgeId === config.edgeId) continue;
        if (row.released) await this.#adopt(row, "free");
        else if (this.#silent(row, now)) await this.#adopt(row, "silent");
      }
    } catch (error) {
      this.#options.logger.debug({ err: error }, "slot janitor round failed");
    } finally {
      this.#running = false;
    }
  }

  /** The holder neither renewed nor beaconed for its whole lease, on our clock. */
  #silent(row: SlotLease, now: number): boolean {
    const lease = row.leaseMs > 0 ? row.leaseMs : this.#options.config.leaseMs;
    const since = Math.max(this.#seen.get(row.slot)?.at ?? now, this.#options.beacons.lastHeard(row.slot, row.edgeId));
    return now - since >= lease + leaseMargin(lease);
  }

  async #adopt(row: SlotLease, why: "free" | "silent"): Promise<void> {
    const { leases, config, logger, clock, broker } = this.#options;
    const take = { slot: row.slot, edgeId: config.edgeId, host: config.host, leaseMs: config.leaseMs };
    const sentAt = clock();
    let taken: SlotLease;
    try {
      taken = why === "free" ? await leases.acquireFree(take) : await leases.takeOver(take, row.version);
    } catch (error) {
      if (hasErrorCode(error, ErrorCode.Conflict)) return; // another janitor, or the holder, was first
      throw error;
    }
    const lease: HeldLease = new HeldLease(
      {
        leases,
        edgeId: config.edgeId,
        leaseMs: config.leaseMs,
        logger,
        clock,
        onTaken: () => void this.#drop(row.slot),
      },
      taken,
      sentAt,
    );
    const names = config.common.names;
    const consumer = broker.partitionConsumer({
      groupId: slotGroup(names, row.slot),
      topic: names.repliesTopic,
      partition: row.slot,
      fallback: "earliest",
      concurrency: 16,
      orderBy: "key",
      maxRetryDelayMs: Math.max(50, Math.floor(config.leaseMs / 3)),
      offsets: { load: async () => lease.startOffset, save: (next) => lease.commit(next) },
    });
    const adopted: Adopted = { lease, consumer, lastActivity: clock() };
    this.#adopted.set(row.slot, adopted);
    logger.info({ slot: row.slot, from: row.edgeId, why, generation: taken.generation }, "slot adopted to drain it");
    await consumer.start((message) => {
      adopted.lastActivity = clock();
      return this.#options.handle(message, () => lease.valid());
    });
  }

  /** An adopted slot read to its end and quiet for two leases is given back (free for anyone). */
  async #maybeGiveBack(adopted: Adopted, unread: boolean, now: number): Promise<void> {
    if (unread || now - adopted.lastActivity < 2 * this.#options.config.leaseMs) return;
    await adopted.consumer.commit().catch(() => {});
    await this.#drop(adopted.lease.slot);
  }

  async #drop(slot: number): Promise<void> {
    const adopted = this.#adopted.get(slot);
    if (adopted === undefined) return;
    this.#adopted.delete(slot);
    await adopted.consumer.close(1000).catch(() => {});
    await adopted.lease.release();
    this.#options.logger.info({ slot }, "adopted slot drained and given back");
  }

  /** Stops watching; adopted slots are committed and given back. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await Promise.all([...this.#adopted.keys()].map((slot) => this.#drop(slot)));
    await this.#admin?.close();
  }
}
