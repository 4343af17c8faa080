import type { AddressInfo } from "node:net";
import { Limiter, pollUntil } from "../../shared/async/index.ts";
import type { Authenticator } from "../../shared/auth/index.ts";
import type { Broker } from "../../shared/broker/types.ts";
import { ErrorCode, TetherError } from "../../shared/errors/index.ts";
import { Shutdown } from "../../shared/lifecycle/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import { ByeReason, encodeBye } from "../../shared/protocol/index.ts";
import type { Registry } from "../../shared/registry/types.ts";
import type { Tracing } from "../../shared/telemetry/index.ts";
import type { EdgeConfig } from "./config.ts";
import { acquireSlot, countSlots, HeldLease } from "./lease.ts";
import { DeviceListener } from "./listener.ts";
import { EdgeMetrics } from "./metrics.ts";
import { reconnectMs } from "./ownership.ts";
import { buildRooms, type Rooms, startReplies, sweepEvery, watchSlots } from "./rooms.ts";

export interface EdgeDeps {
  readonly config: EdgeConfig;
  readonly logger: Logger;
  readonly broker: Broker;
  readonly registry: Registry;
  readonly authenticator: Authenticator;
  /** Clock in milliseconds since the epoch; `Date.now` by default. */
  readonly now?: () => number;
  /** Monotonic clock in milliseconds for leases; `performance.now` by default. */
  readonly clock?: () => number;
  /** Called once when the edge stopped itself (lost its slot lease); the process should exit non-zero. */
  readonly onFatal?: (error: TetherError) => void;
  /** First slot to try; random by default. */
  readonly firstSlot?: number;
  /** The edge's metrics, when the process made them (with its own series); new ones otherwise. */
  readonly metrics?: EdgeMetrics;
  /** Spans for requests and their answers; without it the edge traces nothing. */
  readonly tracing?: Tracing;
}

export type EdgeStatus = "created" | "starting" | "running" | "draining" | "closed" | "failed";

/**
 * One edge: the device listener, the reply slot and the rooms between (see
 * docs/architecture.md). Built by {@link createEdge}; nothing happens until {@link Edge.start}.
 */
export class Edge {
  readonly metrics: EdgeMetrics;
  readonly #deps: EdgeDeps;
  readonly #now: () => number;
  readonly #clock: () => number;
  readonly #listener: DeviceListener;
  readonly #helloCalls = new Limiter({ concurrency: 64 });
  readonly #background = new Limiter({ concurrency: 16 });
  #rooms: Rooms | undefined;
  #status: EdgeStatus = "created";
  /** True while the slot lease is ours: reply handlers deliver and complete only then. */
  #delivering = false;
  #sweepTimer: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;
  #fatal: TetherError | undefined;
  readonly #fatalWaiters: Array<(error: TetherError) => void> = [];

  constructor(deps: EdgeDeps) {
    this.#deps = deps;
    this.metrics = deps.metrics ?? new EdgeMetrics();
    this.#now = deps.now ?? Date.now;
    this.#clock = deps.clock ?? (() => performance.now());
    this.#listener = new DeviceListener({
      ...{ config: deps.config, log: deps.logger, metrics: this.metrics, now: this.#now },
      accepting: () => this.#status === "running",
      events: {
        line: (session, line) => this.#rooms?.protocol.line(session, line),
        closed: (session, reason, before) => {
          this.#rooms?.ingress.forgetSession(session);
          if (before.phase === "open") this.#rooms?.ownership.ended(session, before.deviceId, reason);
        },
        gone: (session) => {
          if (this.#listener.forget(session)) this.metrics.connections.dec();
          this.#rooms?.ingress.forgetSession(session);
        },
      },
    });
  }

  get edgeId(): string {
    return this.#deps.config.edgeId;
  }
  get status(): EdgeStatus {
    return this.#status;
  }

  /** The reply slot (partition of `replies`) this edge holds; -1 before start. */
  get slot(): number {
    return this.#rooms?.slot ?? -1;
  }

  /** Ready for new devices: running, slot lease held. */
  get ready(): boolean {
    return this.#status === "running" && this.#rooms?.lease.valid() === true;
  }

  /** Open sockets (all states, TLS handshakes included). */
  get connectionCount(): number {
    return this.#listener.size;
  }

  /** Sockets not welcomed yet (handshaking, waiting for hello, claiming). */
  get pendingConnections(): number {
    return this.#listener.unwelcomed;
  }

  /** Requests sent to the broker whose answer this edge has not seen yet. */
  get awaitingAnswers(): number {
    return this.#rooms?.ingress.awaiting ?? 0;
  }

  /** The device listener's address; valid after start. */
  address(): AddressInfo {
    return this.#listener.address();
  }

  /** The MQTT listener's address; valid after start. */
  mqttAddress(): AddressInfo {
    return this.#listener.mqttAddress();
  }

  /** The WebSocket listener's address; valid after start. */
  wsAddress(): AddressInfo {
    return this.#listener.wsAddress();
  }

  /** Resolves with the error when the edge stopped itself (lost its lease). */
  failed(): Promise<TetherError> {
    if (this.#fatal !== undefined) return Promise.resolve(this.#fatal);
    return new Promise((resolve) => this.#fatalWaiters.push(resolve));
  }

  /** Connects the producer, takes a slot, starts the reply consumer, then listens. */
  async start(): Promise<void> {
    if (this.#status !== "created") throw new TetherError(ErrorCode.Internal, `cannot start a ${this.#status} edge`);
    this.#status = "starting";
    const { config, broker, registry, logger: log } = this.#deps;
    try {
      const producer = broker.producer();
      await producer.connect();
      const slots = await countSlots(broker, config, log, () => this.#status === "starting");
      const clock = this.#clock;
      const leases = registry.leases;
      const { lease: row, sentAt } = await acquireSlot({
        ...{ leases, edgeId: config.edgeId, host: config.host, leaseMs: config.leaseMs, slots, clock, logger: log },
        ...(this.#deps.firstSlot === undefined ? {} : { firstSlot: this.#deps.firstSlot }),
        wanted: () => this.#status === "starting",
      });
      const lease = new HeldLease(
        {
          ...{ leases, edgeId: config.edgeId, leaseMs: config.leaseMs, logger: log, clock },
          connections: () => this.#rooms?.ownership.size ?? 0,
          onTaken: (error) => this.#fail(error),
          metrics: this.metrics.lease,
        },
        row,
        sentAt,
      );
      const fence = () => this.#delivering && lease.valid();
      const rooms = buildRooms({
        ...{ config, registry, log, producer, lease, fence, auth: this.#deps.authenticator, metrics: this.metrics },
        ...{ now: this.#now, listener: this.#listener, helloCalls: this.#helloCalls, background: this.#background },
        running: () => this.#status === "running",
        tracing: this.#deps.tracing,
      });
      this.#rooms = rooms;
      this.#delivering = true;
      await startReplies(broker, config, rooms, fence);
      await watchSlots(rooms, { broker, registry, config, log, clock, slots, producer }, () => this.#delivering);
      await this.#listener.listen();
      this.#sweepTimer = sweepEvery(config, () => {
        const now = this.#now();
        this.#listener.sweep(now);
        rooms.protocol.sweep(this.#listener.sessions(), now);
        rooms.ingress.sweep(now);
      });
      if (this.#status !== "starting") return;
      this.#status = "running";
      log.info(
        {
          ...{ edgeId: config.edgeId, slot: rooms.slot, port: this.address().port },
          ...{ mqttPort: this.mqttAddress().port, wsPort: this.wsAddress().port },
        },
        "edge started",
      );
    } catch (error) {
      await this.#shutdown(0, "closed").catch(() => {});
      throw error;
    }
  }

  /**
   * Graceful stop: readiness off, no new connections, devices told `bye draining` with
   * reconnect times spread over the drain window, answers still in flight handled (delivered,
   * forwarded or parked) until the deadline, producer flushed, lease released. Rejects when a
   * step failed.
   */
  drain(): Promise<void> {
    return this.#shutdown(this.#deps.config.drainMs, "closed");
  }

  /** Stops now (no waiting for answers in flight). Safe to call twice. */
  close(): Promise<void> {
    return this.#shutdown(0, "closed");
  }

  #shutdown(waitMs: number, final: EdgeStatus): Promise<void> {
    this.#stopping ??= this.#stop(waitMs, final);
    return this.#stopping;
  }

  async #stop(waitMs: number, final: EdgeStatus): Promise<void> {
    const { config, logger: log } = this.#deps;
    const started = this.#now();
    const wasRunning = this.#status === "running" || this.#status === "starting";
    if (this.#status !== "failed") this.#status = "draining";
    log.info({ edgeId: config.edgeId, slot: this.slot, waitMs }, "edge stopping");
    const listenerStopped = this.#listener.stop();
    this.#listener.sendAway(() => encodeBye(ByeReason.Draining, reconnectMs(config)));
    const rooms = this.#rooms;
    // Answers in flight are handled until the deadline; then ownership releases of the closed
    // connections go out before the lease is given up.
    const answered = () => rooms?.ingress.awaiting === 0 || !this.#delivering;
    if (wasRunning) await pollUntil(answered, started + waitMs, this.#now);
    const background = this.#background;
    await pollUntil(() => background.active + background.queued === 0, this.#now() + Math.max(1000, waitMs), this.#now);
    const failed = this.#status === "failed";
    const shutdown = new Shutdown({ logger: log, what: "edge drain" })
      .add("slot janitor close", () => rooms?.janitor?.close())
      .add("beacons close", () => rooms?.beacons?.close())
      .add("reply consumer close", () => rooms?.consumer?.close(1000))
      .add("stop delivering", () => {
        this.#delivering = false;
      })
      .add("producer flush", () => rooms?.producer.flush(Math.max(1000, Math.min(5000, waitMs))))
      .add("producer close", () => rooms?.producer.close())
      // A failed edge has lost its lease already: the slot is someone else's.
      .add("lease release", () => (failed ? undefined : rooms?.lease.release()))
      .add("sockets", async () => {
        if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer);
        this.#listener.destroyAll();
        await listenerStopped;
      });
    try {
      await shutdown.run();
    } finally {
      if (this.#status !== "failed") this.#status = final;
      log.info({ edgeId: config.edgeId, awaiting: this.awaitingAnswers }, "edge stopped");
    }
  }

  /** The lease is gone: stop delivering at once, send devices away, report. */
  #fail(error: TetherError): void {
    if (this.#status === "failed" || this.#status === "closed") return;
    this.#delivering = false;
    this.#status = "failed";
    this.#fatal = error;
    this.#deps.logger.error({ err: error, slot: this.slot }, "slot lease lost; the edge stops");
    this.#rooms?.consumer
      ?.close(0)
      .catch((closeError: unknown) => this.#deps.logger.warn({ err: closeError }, "reply consumer close failed"));
    this.#shutdown(0, "failed").catch(() => {});
    for (const resolve of this.#fatalWaiters.splice(0)) resolve(error);
    this.#deps.onFatal?.(error);
  }
}

/** Builds an edge from its parts; call `start()` to listen. */
export function createEdge(deps: EdgeDeps): Edge {
  return new Edge(deps);
}
