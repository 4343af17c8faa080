import type { Broker, GroupConsumer, IncomingMessage, Producer } from "../../shared/broker/types.ts";
import type { ResourceNames } from "../../shared/config/index.ts";
import { TetherError } from "../../shared/errors/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import { decodeDownlink, pushFrame, pushRecord } from "../../shared/records/index.ts";
import { ownerLive } from "../../shared/registry/index.ts";
import type { ConnectionRecord, Registry } from "../../shared/registry/types.ts";
import type { WorkerMetrics } from "./metrics.ts";

export interface PushRouterOptions {
  readonly broker: Broker;
  /** Shared with the worker; the router neither connects nor closes it. */
  readonly producer: Producer;
  readonly registry: Registry;
  readonly names: ResourceNames;
  readonly groupId: string;
  readonly concurrency: number;
  readonly logger: Logger;
  readonly metrics: WorkerMetrics;
  readonly now?: () => number;
}

export type PushOutcome = "routed" | "stored" | "expired" | "malformed";

/**
 * Routes pushes from `downlink` to the edge that holds the device. Every push is written to
 * the outbox first, so it survives whatever happens next: the owning edge deletes it once the
 * device acks, and an edge delivers what is left when the device connects again. Then, when
 * the device is online (a connection record whose edge still holds a live lease on its slot),
 * the push goes to that slot's `replies` partition right away.
 */
export class PushRouter {
  readonly #options: PushRouterOptions;
  readonly #now: () => number;
  #consumer: GroupConsumer | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: PushRouterOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    this.#consumer = this.#options.broker.groupConsumer({
      groupId: this.#options.groupId,
      topics: [this.#options.names.downlinkTopic],
      concurrency: this.#options.concurrency,
      orderBy: "key",
    });
    await this.#consumer.start(async (message) => {
      const outcome = await this.route(message);
      this.#options.metrics.pushes.inc({ outcome });
    });
  }

  /** The router group's backlog on `downlink` (see {@link GroupConsumer.lag}). */
  lag(): Promise<number> {
    if (this.#consumer === undefined) return Promise.reject(new TetherError("closed", "push router not started"));
    return this.#consumer.lag();
  }

  /** Stops fetching, finishes in-flight pushes (up to `timeoutMs`), commits, leaves. Safe twice. */
  close(timeoutMs?: number): Promise<void> {
    this.#closing ??= this.#consumer?.close(timeoutMs) ?? Promise.resolve();
    return this.#closing;
  }

  /**
   * Handles one `downlink` record. Rejects when the registry or broker fails, so the consumer
   * tries the record again rather than commit past it.
   */
  async route(message: IncomingMessage): Promise<PushOutcome> {
    const { registry, logger, names, producer } = this.#options;
    const decoded = decodeDownlink(message);
    if (!decoded.ok) {
      const { partition, offset } = message;
      logger.warn({ partition, offset, reason: decoded.reason }, "malformed downlink record dropped");
      return "malformed";
    }
    const push = decoded.value;
    const now = this.#now();
    if (push.expiresAt <= now) {
      logger.debug({ deviceId: push.deviceId, messageId: push.messageId }, "expired push dropped");
      return "expired";
    }
    const frame = pushFrame(push);
    await registry.outbox.put({
      deviceId: push.deviceId,
      messageId: push.messageId,
      frame,
      createdAt: push.createdAt,
      expiresAt: push.expiresAt,
    });
    const owner = await this.#liveOwner(push.deviceId, now);
    if (owner === null) return "stored";
    await producer.send(pushRecord(names.repliesTopic, owner.slot, push, frame));
    return "routed";
  }

  /** The device's connection, if its owner is live at `now` (the registry's `ownerLive`). */
  async #liveOwner(deviceId: string, now: number): Promise<ConnectionRecord | null> {
    const { registry } = this.#options;
    const connection = await registry.connections.get(deviceId);
    if (connection === null) return null;
    return (await ownerLive(registry.leases, connection, () => now)) ? connection : null;
  }
}
