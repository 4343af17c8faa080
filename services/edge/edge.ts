import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from "node:net";
import { createSecureContext, type SecureContext, TLSSocket } from "node:tls";
import type { Authenticator } from "../../shared/auth/index.ts";
import type { Broker, IncomingMessage, PartitionConsumer, Producer } from "../../shared/broker/types.ts";
import type { ResourceNames } from "../../shared/config/index.ts";
import { describeError, ErrorCode, TetherError } from "../../shared/errors/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import {
  ByeReason,
  encodeAck,
  encodeBye,
  encodeError,
  encodeWelcome,
  type HelloFrame,
  LineSplitter,
  PONG_LINE,
  parseClientFrame,
  type RequestFrame,
  toLineJson,
  WireErrorCode,
} from "../../shared/protocol/index.ts";
import {
  type ControlRecord,
  controlRecord,
  Header,
  type PresenceEvent,
  ReplyKind,
  requestRecord,
} from "../../shared/records/index.ts";
import type { ConnectionRecord, Registry } from "../../shared/registry/types.ts";
import type { EdgeConfig } from "./config.ts";
import { Connection, ConnState, Paused } from "./connection.ts";
import { SlotKeeper } from "./lease.ts";
import { EdgeMetrics } from "./metrics.ts";
import { takeProxyHeader } from "./proxy-protocol.ts";

/** Where a device socket keeps its connection, so that one set of listeners serves all sockets. */
const CONNECTION = Symbol("tether.connection");
type TaggedSocket = Socket & { [CONNECTION]?: Connection };

/** A socket still reading its PROXY header or doing its TLS handshake. */
interface Handshake {
  readonly socket: Socket;
  readonly openedAt: number;
}

export interface EdgeDeps {
  readonly config: EdgeConfig;
  readonly logger: Logger;
  readonly broker: Broker;
  readonly registry: Registry;
  readonly authenticator: Authenticator;
  /** Clock in milliseconds since the epoch; `Date.now` by default. */
  readonly now?: () => number;
  /** Called once when the edge stopped itself (lost its slot lease); the process should exit non-zero. */
  readonly onFatal?: (error: TetherError) => void;
  /** First slot to try; random by default. */
  readonly firstSlot?: number;
}

export type EdgeStatus = "created" | "starting" | "running" | "draining" | "closed" | "failed";

/** Bad frames in a row after which the edge gives up on a connection. */
const MAX_BAD_FRAMES = 10;
/** How long a closing socket may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 2000;
/** Awaited answers older than this are forgotten (their request was lost upstream). */
const AWAIT_FORGET_MS = 60 * 60 * 1000;
/** Concurrent reply handlers; replies of one device stay in order (keyed by deviceId). */
const REPLY_CONCURRENCY = 64;
/** Registry writes nobody waits for (releases, outbox deletes) running at once. */
const BACKGROUND_CONCURRENCY = 16;
/** Registry calls of hellos (claim, outbox read) running at once. */
const HELLO_CONCURRENCY = 64;
const NEWLINE = Buffer.from("\n");
const ERROR_PREFIX = Buffer.from('{"t":"error"');

/** The consumer group under which an edge commits its progress on a reply slot. */
export function slotGroupId(names: ResourceNames, slot: number): string {
  const topic = names.repliesTopic;
  const prefix = topic.endsWith("replies") ? topic.slice(0, -"replies".length) : `${topic}.`;
  return `${prefix}edge-slot-${slot}`;
}

/**
 * One edge: the device listener, the reply slot and everything between. Built by
 * {@link createEdge}; nothing happens until {@link Edge.start}.
 */
export class Edge {
  readonly metrics = new EdgeMetrics();
  readonly #config: EdgeConfig;
  readonly #log: Logger;
  #sendFailureLoggedAt = Number.NEGATIVE_INFINITY;
  #sendFailuresUnlogged = 0;
  readonly #broker: Broker;
  readonly #registry: Registry;
  readonly #auth: Authenticator;
  readonly #now: () => number;
  readonly #onFatal: ((error: TetherError) => void) | undefined;
  readonly #firstSlot: number | undefined;
  readonly #connPrefix = `${randomBytes(4).toString("base64url")}.`;
  #connCounter = 0;

  #status: EdgeStatus = "created";
  #server: Server | undefined;
  #producer: Producer | undefined;
  #consumer: PartitionConsumer | undefined;
  #keeper: SlotKeeper | undefined;
  #slot = -1;
  #sweepTimer: NodeJS.Timeout | undefined;
  #lastForgetAt = 0;
  #stopping: Promise<void> | undefined;
  #fatalError: TetherError | undefined;
  readonly #fatalWaiters: Array<(error: TetherError) => void> = [];
  /** Set the moment the lease is lost: reply handlers must not deliver nor complete. */
  #delivering = false;

  /** Every socket, by connId, until it is closed. */
  readonly #conns = new Map<string, Connection>();
  /** The connection that owns each device on this edge. */
  readonly #owners = new Map<string, Connection>();
  /** Requests sent and not answered yet: `${connId}\n${id}` -> time read. */
  readonly #awaiting = new Map<string, number>();
  readonly #producerPaused = new Set<Connection>();
  #corked: Connection[] = [];
  readonly #backgroundQueue: Array<() => Promise<void>> = [];
  #backgroundRunning = 0;
  readonly #helloWaiters: Array<() => void> = [];
  #helloCalls = 0;
  #flushScheduled = false;
  #secureContext: SecureContext | undefined;
  readonly #handshakes = new Set<Handshake>();
  /** Connections not welcomed yet (hello or claim under way), in all and by source address. */
  #preAuth = 0;
  readonly #preAuthBySource = new Map<string, number>();

  readonly #socketData: (this: Socket, chunk: Buffer) => void;
  readonly #socketError: (this: Socket, error: Error) => void;
  readonly #socketClosed: (this: Socket) => void;

  constructor(deps: EdgeDeps) {
    const edge = this;
    this.#socketData = function (this: Socket, chunk: Buffer) {
      const conn = (this as TaggedSocket)[CONNECTION];
      if (conn !== undefined) edge.#onData(conn, chunk);
    };
    this.#socketError = function (this: Socket, error: Error) {
      edge.#log.debug({ err: error, connId: (this as TaggedSocket)[CONNECTION]?.connId }, "device socket error");
    };
    this.#socketClosed = function (this: Socket) {
      const conn = (this as TaggedSocket)[CONNECTION];
      if (conn !== undefined) edge.#onSocketClose(conn);
    };
    this.#config = deps.config;
    this.#log = deps.logger;
    this.#broker = deps.broker;
    this.#registry = deps.registry;
    this.#auth = deps.authenticator;
    this.#now = deps.now ?? Date.now;
    this.#onFatal = deps.onFatal;
    this.#firstSlot = deps.firstSlot;
  }

  get edgeId(): string {
    return this.#config.edgeId;
  }

  get status(): EdgeStatus {
    return this.#status;
  }

  /** The reply slot (partition of `replies`) this edge holds; -1 before start. */
  get slot(): number {
    return this.#slot;
  }

  /** Ready for new devices: running, slot lease held. */
  get ready(): boolean {
    return this.#status === "running" && this.#keeper?.held === true;
  }

  /** Open sockets (all states). */
  get connectionCount(): number {
    return this.#conns.size + this.#handshakes.size;
  }

  /** Requests sent to the broker whose answer this edge has not seen yet. */
  get awaitingAnswers(): number {
    return this.#awaiting.size;
  }

  /** The device listener's address; valid after start. */
  address(): AddressInfo {
    const address = this.#server?.address();
    if (address === null || address === undefined || typeof address === "string") {
      throw new TetherError(ErrorCode.Closed, "the edge is not listening");
    }
    return address;
  }

  /** Resolves with the error when the edge stopped itself (lost its lease). */
  failed(): Promise<TetherError> {
    if (this.#fatalError !== undefined) return Promise.resolve(this.#fatalError);
    return new Promise((resolve) => this.#fatalWaiters.push(resolve));
  }

  /** Connects the producer, takes a slot, starts the reply consumer, then listens. */
  async start(): Promise<void> {
    if (this.#status !== "created")
      throw new TetherError(ErrorCode.Internal, `cannot start an edge that is ${this.#status}`);
    this.#status = "starting";
    const config = this.#config;
    const names = config.common.names;
    try {
      // A request answered `unavailable` at the produce bound may still be written later (the
      // client keeps it longer than the bound; see producerConfig): the device's retry carries
      // the same id, and the worker's dedupe window answers a repeat from its first answer.
      const producer = this.#broker.producer();
      this.#producer = producer;
      await producer.connect();

      const slots = await this.#slotCount();
      const keeper = new SlotKeeper({
        leases: this.#registry.leases,
        edgeId: config.edgeId,
        host: config.host,
        leaseMs: config.leaseMs,
        slots,
        logger: this.#log,
        now: this.#now,
        connections: () => this.#owners.size,
        onLost: (error) => this.#fail(error),
        ...(this.#firstSlot === undefined ? {} : { firstSlot: this.#firstSlot }),
      });
      this.#keeper = keeper;
      this.#slot = await keeper.acquire();
      this.#delivering = true;

      const consumer = this.#broker.partitionConsumer({
        groupId: slotGroupId(names, this.#slot),
        topic: names.repliesTopic,
        partition: this.#slot,
        fallback: "earliest",
        concurrency: REPLY_CONCURRENCY,
        orderBy: "key",
      });
      this.#consumer = consumer;
      await consumer.start((message) => this.#onReply(message));

      this.#server = await this.#listen();
      const limits = config.limits;
      const sweepMs = Math.min(1000, Math.max(20, Math.floor(Math.min(limits.helloTimeoutMs, limits.heartbeatMs) / 4)));
      this.#sweepTimer = setInterval(() => this.#sweep(), sweepMs);
      this.#sweepTimer.unref();
      if (this.#status !== "starting") return;
      this.#status = "running";
      this.#log.info({ edgeId: config.edgeId, slot: this.#slot, port: this.address().port }, "edge started");
    } catch (error) {
      await this.#shutdown(0, "closed");
      throw error;
    }
  }

  async #slotCount(): Promise<number> {
    const admin = this.#broker.admin();
    try {
      // A topic created a moment ago may not be in the metadata yet: retry a little.
      for (let attempt = 0; ; attempt++) {
        try {
          const partitions = await admin.partitionCount(this.#config.common.names.repliesTopic);
          return Math.max(1, Math.min(partitions, this.#config.common.maxEdges));
        } catch (error) {
          if (attempt >= 20 || this.#status !== "starting") throw error;
          this.#log.debug({ err: error, attempt }, "replies topic not visible yet");
          await sleep(250);
        }
      }
    } finally {
      await admin.close();
    }
  }

  async #listen(): Promise<Server> {
    const config = this.#config;
    if (config.tls !== undefined) {
      const [cert, key] = await Promise.all([readFile(config.tls.certFile), readFile(config.tls.keyFile)]);
      this.#secureContext = createSecureContext({ cert, key, minVersion: "TLSv1.2" });
    }
    // One plain listener for every mode: the PROXY header and the TLS handshake are read per
    // socket, so sockets still handshaking are counted and swept like any unwelcomed one.
    const server = createNetServer({ noDelay: true }, (socket) => this.#accept(socket));
    server.on("error", (error) => this.#log.error({ err: error }, "device listener error"));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ port: config.devicePort, host: config.deviceHost, backlog: 4096 }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return server;
  }

  // ---------------------------------------------------------------- connections

  /** Sockets not welcomed yet (handshaking, waiting for hello, claiming), edge-wide. */
  get pendingConnections(): number {
    return this.#handshakes.size + this.#preAuth;
  }

  #refuse(socket: Socket, reason: string, message: string): void {
    this.metrics.error(WireErrorCode.Unavailable);
    this.metrics.close(reason);
    socket.on("error", ignore);
    socket.end(encodeError({ code: WireErrorCode.Unavailable, message, retryable: true }));
    socket.setTimeout(CLOSE_GRACE_MS, () => socket.destroy());
  }

  #accept(socket: Socket): void {
    const limits = this.#config.limits;
    if (this.#status !== "running") {
      socket.on("error", ignore);
      socket.end(encodeBye(ByeReason.Draining, Math.floor(Math.random() * Math.max(1, this.#config.drainMs))));
      socket.setTimeout(CLOSE_GRACE_MS, () => socket.destroy());
      return;
    }
    if (this.#conns.size + this.#handshakes.size >= limits.maxConnections) {
      this.#refuse(socket, "connection_limit", "edge is at its connection limit");
      return;
    }
    if (this.pendingConnections >= limits.maxPendingConnections) {
      this.#refuse(socket, "pending_limit", "edge has too many connections waiting for hello");
      return;
    }
    socket.setNoDelay(true);
    const openedAt = this.#now();
    if (this.#config.proxyProtocol === "off" && this.#secureContext === undefined) {
      this.#open(socket, openedAt, socket.remoteAddress ?? "", undefined);
      return;
    }
    const handshake: Handshake = { socket, openedAt };
    this.#handshakes.add(handshake);
    socket.on("error", (error) => this.#log.debug({ err: error }, "device socket error before hello"));
    socket.once("close", () => this.#handshakes.delete(handshake));
    if (this.#config.proxyProtocol === "v2") this.#readProxyHeader(handshake);
    else this.#startTls(handshake, socket.remoteAddress ?? "");
  }

  /** Reads the PROXY v2 header the load balancer writes before the device's first byte. */
  #readProxyHeader(handshake: Handshake): void {
    const socket = handshake.socket;
    takeProxyHeader(socket, true, (taken) => {
      if (!taken.ok) {
        this.metrics.close("bad_proxy_header");
        this.#log.debug({ reason: taken.reason }, "connection without a valid PROXY header dropped");
        socket.destroy();
        return;
      }
      const source = taken.source ?? socket.remoteAddress ?? "";
      const rest = taken.rest.length > 0 ? taken.rest : undefined;
      if (this.#secureContext !== undefined) {
        socket.pause();
        if (rest !== undefined) socket.unshift(rest);
        this.#startTls(handshake, source);
      } else if (this.#handshakes.delete(handshake)) {
        this.#open(socket, handshake.openedAt, source, rest);
      }
    });
  }

  #startTls(handshake: Handshake, source: string): void {
    const tlsSocket = new TLSSocket(handshake.socket, { isServer: true, secureContext: this.#secureContext });
    tlsSocket.on("error", (error) => {
      this.#log.debug({ err: error }, "TLS handshake failed");
      handshake.socket.destroy();
    });
    tlsSocket.once("secure", () => {
      if (!this.#handshakes.delete(handshake)) return;
      this.#open(tlsSocket, handshake.openedAt, source, undefined);
    });
    handshake.socket.resume();
  }

  #open(socket: Socket, openedAt: number, source: string, early: Buffer | undefined): void {
    const limits = this.#config.limits;
    if (this.#status !== "running") {
      socket.destroy();
      return;
    }
    if ((this.#preAuthBySource.get(source) ?? 0) >= limits.maxPendingPerSource) {
      this.#refuse(socket, "source_limit", "too many connections waiting for hello from this address");
      return;
    }
    const connId = `${this.#connPrefix}${(this.#connCounter++).toString(36)}`;
    const conn = new Connection(socket, connId, openedAt, this.#now(), limits.rateLimit, source);
    conn.splitter = new LineSplitter({
      maxFrameBytes: limits.maxHelloBytes,
      onLine: (line) => this.#onLine(conn, line),
      onOversize: () => this.#onOversize(conn),
    });
    this.#conns.set(connId, conn);
    this.#preAuth += 1;
    this.#preAuthBySource.set(source, (this.#preAuthBySource.get(source) ?? 0) + 1);
    this.metrics.connections.inc();
    this.metrics.connectionsOpened.inc();
    // One set of listeners serves every socket (an idle or junk socket costs no closures).
    (socket as TaggedSocket)[CONNECTION] = conn;
    socket.on("data", this.#socketData);
    socket.on("error", this.#socketError);
    socket.on("close", this.#socketClosed);
    if (early !== undefined) this.#onData(conn, early);
  }

  /**
   * Every byte from a device enters here. Whatever goes wrong while handling it ends this
   * connection only, never the process.
   */
  #onData(conn: Connection, chunk: Buffer): void {
    try {
      if (conn.state === ConnState.Hello && conn.splitter.pendingBytes === 0 && !mayStartObject(chunk)) {
        // Before hello only a JSON object can come: junk is cut at its first byte, not held.
        this.#sendError(conn, WireErrorCode.BadFrame, undefined, "expected a hello frame (a JSON object)");
        this.#close(conn, "bad_hello");
        return;
      }
      conn.splitter.push(chunk);
    } catch (error) {
      this.#fault(conn, error);
    }
  }

  #fault(conn: Connection, error: unknown): void {
    this.metrics.connectionFaults.inc();
    this.#log.error({ err: error, connId: conn.connId, deviceId: conn.deviceId }, "connection failed; closing it");
    try {
      if (conn.state !== ConnState.Closing) {
        this.#sendError(conn, WireErrorCode.Internal, undefined, "the edge could not handle this connection", true);
      }
      this.#close(conn, "internal");
    } catch (closeError) {
      this.#log.error({ err: closeError, connId: conn.connId }, "closing a failed connection failed");
      conn.socket.destroy();
    }
  }

  /** The connection leaves the pre-auth budgets (welcomed, or closing). */
  #leavePreAuth(conn: Connection): void {
    if (!conn.preAuth) return;
    conn.preAuth = false;
    this.#preAuth -= 1;
    const count = (this.#preAuthBySource.get(conn.source) ?? 1) - 1;
    if (count <= 0) this.#preAuthBySource.delete(conn.source);
    else this.#preAuthBySource.set(conn.source, count);
  }

  #onSocketClose(conn: Connection): void {
    if (conn.state !== ConnState.Closing) this.#close(conn, "disconnected");
    if (this.#conns.delete(conn.connId)) this.metrics.connections.dec();
    this.#producerPaused.delete(conn);
  }

  #onOversize(conn: Connection): void {
    const limits = this.#config.limits;
    const limit = conn.state === ConnState.Hello ? limits.maxHelloBytes : limits.maxFrameBytes;
    const what = conn.state === ConnState.Hello ? "line before hello" : "frame";
    this.#sendError(conn, WireErrorCode.FrameTooLarge, undefined, `${what} longer than ${limit} bytes`);
    this.#close(conn, "frame_too_large");
  }

  #onLine(conn: Connection, line: Buffer): void {
    if (conn.state === ConnState.Closing) return;
    conn.lastSeen = this.#now();
    if (conn.state === ConnState.Auth) {
      // The stream after a hello belongs to the session it opens: a client may send its first
      // requests in the same segment. Hold them (reading paused) until welcome is written.
      conn.early ??= [];
      conn.early.push(Buffer.from(line));
      this.#pause(conn, Paused.Hello);
      return;
    }
    const parsed = parseClientFrame(line);
    if (!parsed.ok) {
      this.metrics.frameIn("other");
      if (parsed.code === WireErrorCode.UnknownFrame) {
        if (conn.state !== ConnState.Open) {
          this.#notAuthenticated(conn);
          return;
        }
        conn.badFrames = 0;
        this.#sendError(conn, WireErrorCode.UnknownFrame, undefined, parsed.message);
        return;
      }
      this.#sendError(conn, WireErrorCode.BadFrame, parsed.id, parsed.message);
      // Before welcome the only valid line is a hello: a failed one ends the connection.
      if (conn.state !== ConnState.Open) this.#close(conn, "bad_hello");
      else if (++conn.badFrames >= MAX_BAD_FRAMES) this.#close(conn, "bad_frames");
      return;
    }
    conn.badFrames = 0;
    const frame = parsed.frame;
    this.metrics.frameIn(frame.t);
    if (conn.state !== ConnState.Open) {
      if (frame.t === "hello" && conn.state === ConnState.Hello) this.#hello(conn, frame);
      else this.#notAuthenticated(conn);
      return;
    }
    switch (frame.t) {
      case "req":
        this.#request(conn, frame);
        return;
      case "ack":
        this.#pushAcked(conn, frame.id);
        return;
      case "ping":
        this.#write(conn, PONG_LINE);
        this.metrics.frameOut("pong");
        return;
      case "bye":
        this.#close(conn, "bye");
        return;
      case "hello":
        this.#sendError(conn, WireErrorCode.BadFrame, undefined, "already authenticated: hello is sent once");
        if (++conn.badFrames >= MAX_BAD_FRAMES) this.#close(conn, "bad_frames");
        return;
    }
  }

  #notAuthenticated(conn: Connection): void {
    this.#sendError(conn, WireErrorCode.NotAuthenticated, undefined, "send hello and wait for welcome first");
    this.#close(conn, "not_authenticated");
  }

  #hello(conn: Connection, frame: HelloFrame): void {
    conn.state = ConnState.Auth;
    // Frames pipelined behind the hello may be as large as any request.
    conn.splitter.setMaxFrameBytes(this.#config.limits.maxFrameBytes);
    conn.deviceId = frame.deviceId;
    this.#authenticate(conn, frame.deviceId, frame.token).catch((error: unknown) => {
      this.#log.error({ err: error, connId: conn.connId }, "hello failed");
      if (conn.state === ConnState.Auth) {
        this.#sendError(conn, WireErrorCode.Unavailable, undefined, "edge could not complete hello", true);
        this.#close(conn, "unavailable");
      }
    });
  }

  async #authenticate(conn: Connection, deviceId: string, token: string | undefined): Promise<void> {
    const verdict = await this.#auth.verify(deviceId, token);
    if (conn.state !== ConnState.Auth) return;
    if (!verdict.ok) {
      this.#log.info({ connId: conn.connId, deviceId, reason: verdict.reason }, "device refused");
      this.#sendError(conn, WireErrorCode.Unauthorized, undefined, verdict.reason, verdict.retryable);
      this.#close(conn, "unauthorized");
      return;
    }
    const connId = conn.connId;
    let claim: Awaited<ReturnType<Registry["connections"]["claim"]>>;
    try {
      // A hello that waited in the queue behind a storm may belong to a socket the device has
      // given up on since: claiming for it would take the device's record from the connection
      // it opened instead.
      const claimed = await this.#limited(async () =>
        conn.state !== ConnState.Auth
          ? null
          : this.#registry.connections.claim({
              deviceId,
              edgeId: this.#config.edgeId,
              slot: this.#slot,
              connId,
              connectedAt: this.#now(),
            }),
      );
      if (claimed === null) return;
      claim = claimed;
    } catch (error) {
      this.#log.warn({ err: error, connId, deviceId }, "ownership claim failed");
      if (conn.state === ConnState.Auth) {
        this.#sendError(conn, WireErrorCode.Unavailable, undefined, "registry unavailable, retry", true);
        this.#close(conn, "unavailable");
      }
      return;
    }
    if (conn.state !== ConnState.Auth || this.#status !== "running") {
      // Gone while claiming: the record must not outlive the socket, and a connection this
      // claim displaced (the device's live one, opened after it gave up on this socket) gets
      // its record back rather than none.
      this.#releaseRecord(deviceId, connId, claim.previous);
      if (conn.state === ConnState.Auth)
        this.#close(conn, "draining", encodeBye(ByeReason.Draining, this.#reconnectMs()));
      return;
    }
    conn.epoch = claim.record.epoch;
    const local = this.#owners.get(deviceId);
    if (local !== undefined && local !== conn) {
      if (local.epoch > conn.epoch) {
        // A newer connection of the device won the race on this very edge.
        this.#close(conn, ByeReason.Replaced, encodeBye(ByeReason.Replaced));
        return;
      }
      this.#close(local, ByeReason.Replaced, encodeBye(ByeReason.Replaced));
    }
    const previous = claim.previous;
    if (previous !== null && previous.connId !== connId) {
      if (previous.edgeId === this.#config.edgeId && previous.slot === this.#slot) {
        const older = this.#conns.get(previous.connId);
        if (older !== undefined && older.state !== ConnState.Closing) {
          this.#close(older, ByeReason.Replaced, encodeBye(ByeReason.Replaced));
        }
      } else {
        this.#sendControl(previous.slot, deviceId, {
          op: "close",
          deviceId,
          connId: previous.connId,
          reason: "replaced",
        });
      }
    }
    this.#owners.set(deviceId, conn);
    conn.state = ConnState.Open;
    this.#leavePreAuth(conn);
    conn.lastSeen = this.#now();
    const limits = this.#config.limits;
    this.#write(
      conn,
      encodeWelcome({
        connId,
        edgeId: this.#config.edgeId,
        heartbeatMs: limits.heartbeatMs,
        maxFrameBytes: limits.maxFrameBytes,
      }),
    );
    this.metrics.frameOut("welcome");
    this.#presence({ event: "connected", deviceId, edgeId: this.#config.edgeId, connId, at: this.#now() });
    this.#replayEarly(conn);
    await this.#deliverOutbox(conn);
  }

  #replayEarly(conn: Connection): void {
    const early = conn.early;
    if (early === null) return;
    conn.early = null;
    for (const line of early) {
      if (conn.state !== ConnState.Open) return;
      this.#onLine(conn, line);
    }
    this.#unpause(conn, Paused.Hello);
  }

  /**
   * Closes a connection: optional last frame, then a graceful end. The connection leaves the
   * routing maps at once, so replies still in flight for it take the forward/park path.
   */
  #close(conn: Connection, reason: string, lastFrame?: string, destroy = false): void {
    if (conn.state === ConnState.Closing) return;
    const wasOpen = conn.state === ConnState.Open;
    conn.state = ConnState.Closing;
    this.#leavePreAuth(conn);
    conn.closingAt = this.#now();
    conn.splitter.stop();
    const socket = conn.socket;
    if (lastFrame !== undefined && !socket.destroyed) {
      socket.write(lastFrame);
      this.metrics.frameOut("bye");
    }
    if (destroy) socket.destroy();
    else if (!socket.destroyed) {
      socket.end();
      // Keep reading (and dropping) so that unread input does not turn the close into a reset.
      if (conn.paused !== 0) socket.resume();
    }
    conn.paused = 0;
    this.#producerPaused.delete(conn);
    this.metrics.close(reason);
    const deviceId = conn.deviceId;
    if (deviceId === null || !wasOpen) return;
    if (this.#owners.get(deviceId) === conn) this.#owners.delete(deviceId);
    this.#releaseRecord(deviceId, conn.connId);
    this.#presence({
      event: "disconnected",
      deviceId,
      edgeId: this.#config.edgeId,
      connId: conn.connId,
      at: this.#now(),
      reason,
    });
  }

  #releaseRecord(deviceId: string, connId: string, previous: ConnectionRecord | null = null): void {
    const connections = this.#registry.connections;
    this.#background(() =>
      (previous !== null && previous.connId !== connId
        ? connections.restore(connId, previous)
        : connections.release(deviceId, connId)
      ).then(
        () => {},
        (error: unknown) => {
          this.#log.warn({ err: error, deviceId, connId }, "ownership release failed; the record dies with the lease");
        },
      ),
    );
  }

  #deleteOutboxEntry(deviceId: string, messageId: string): void {
    this.#background(() =>
      this.#registry.outbox.delete(deviceId, messageId).catch((error: unknown) => {
        this.#log.warn({ err: error, deviceId, messageId }, "outbox delete failed; the message may be delivered again");
      }),
    );
  }

  /**
   * Runs a registry call of the hello path with bounded concurrency: a reconnect storm queues
   * here, in order, instead of piling onto the store client (whose timeouts would count the wait).
   */
  async #limited<T>(call: () => Promise<T>): Promise<T> {
    if (this.#helloCalls >= HELLO_CONCURRENCY) {
      await new Promise<void>((resolve) => this.#helloWaiters.push(resolve));
    }
    this.#helloCalls += 1;
    try {
      return await call();
    } finally {
      this.#helloCalls -= 1;
      this.#helloWaiters.shift()?.();
    }
  }

  /**
   * Runs registry writes nobody waits for (releases, outbox deletes) with bounded concurrency,
   * so a drain or a mass disconnect does not fire thousands of calls at the store at once.
   * Tasks handle their own errors.
   */
  #background(task: () => Promise<void>): void {
    if (this.#backgroundRunning >= BACKGROUND_CONCURRENCY) {
      this.#backgroundQueue.push(task);
      return;
    }
    this.#backgroundRunning += 1;
    void task().finally(() => {
      this.#backgroundRunning -= 1;
      const next = this.#backgroundQueue.shift();
      if (next !== undefined) this.#background(next);
    });
  }

  #reconnectMs(): number {
    return Math.floor(Math.random() * Math.max(1, this.#config.drainMs));
  }

  // ---------------------------------------------------------------- writing

  /** Writes a frame; writes in one tick go out together (cork until the next tick). */
  #write(conn: Connection, data: string | Buffer): void {
    const socket = conn.socket;
    if (socket.destroyed || socket.writableEnded) return;
    if (!conn.corked) {
      conn.corked = true;
      socket.cork();
      this.#corked.push(conn);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        process.nextTick(this.#uncorkAll);
      }
    }
    socket.write(data);
    if (socket.writableLength > this.#config.limits.maxQueuedBytes) {
      this.#log.info({ connId: conn.connId, deviceId: conn.deviceId }, "device not reading; connection cut");
      this.#close(conn, "slow_consumer", undefined, true);
    }
  }

  readonly #uncorkAll = (): void => {
    const list = this.#corked;
    this.#corked = [];
    this.#flushScheduled = false;
    for (const conn of list) {
      conn.corked = false;
      if (!conn.socket.destroyed) conn.socket.uncork();
    }
  };

  #sendError(
    conn: Connection,
    code: string,
    id?: string,
    message?: string,
    retryable?: boolean,
    retryAfterMs?: number,
  ): void {
    this.metrics.error(code);
    this.#write(conn, encodeError({ code, id, message, retryable, retryAfterMs }));
  }

  // ---------------------------------------------------------------- requests

  #request(conn: Connection, frame: RequestFrame): void {
    const id = frame.id;
    const key = `${conn.connId}\n${id}`;
    if (this.#awaiting.has(key)) {
      this.#sendError(conn, WireErrorCode.DuplicateId, id, "a request with this id is still open");
      return;
    }
    const now = this.#now();
    const rate = this.#config.limits.rateLimit;
    let tokens = conn.tokens + ((now - conn.tokensAt) * rate) / 1000;
    if (tokens > rate) tokens = rate;
    conn.tokensAt = now;
    if (tokens < 1) {
      conn.tokens = tokens;
      this.#sendError(
        conn,
        WireErrorCode.RateLimited,
        id,
        undefined,
        undefined,
        Math.ceil(((1 - tokens) * 1000) / rate),
      );
      return;
    }
    conn.tokens = tokens - 1;
    const producer = this.#producer!;
    const deviceId = conn.deviceId!;
    this.#awaiting.set(key, now);
    conn.open += 1;
    this.metrics.requests.inc();
    const limits = this.#config.limits;
    if (conn.open >= limits.maxInflight) this.#pause(conn, Paused.Inflight);
    const record = requestRecord(
      this.#config.common.names.requestsTopic,
      { slot: this.#slot, edgeId: this.#config.edgeId, connId: conn.connId },
      { deviceId, id, type: frame.type, receivedAt: now },
      frame.bodyJson,
    );
    producer.send(record, { timeoutMs: this.#config.produceTimeoutMs }).then(
      () => this.#acked(conn, id, now),
      (error: unknown) => this.#sendFailed(conn, key, id, error),
    );
    if (producer.queued() > limits.maxProducerQueue) {
      this.#pause(conn, Paused.Producer);
      this.#producerPaused.add(conn);
    }
  }

  #acked(conn: Connection, id: string, receivedAt: number): void {
    this.metrics.acks.inc();
    this.metrics.ackLatency.observe((this.#now() - receivedAt) / 1000);
    if (conn.state === ConnState.Open) {
      this.#write(conn, encodeAck(id));
      this.metrics.frameOut("ack");
    }
    this.#maybeResumeProducer();
  }

  #sendFailed(conn: Connection, key: string, id: string, error: unknown): void {
    // Thousands a second when the broker is away: one line a second says it all.
    const now = this.#now();
    if (now - this.#sendFailureLoggedAt >= 1000) {
      this.#log.warn(
        { err: error, connId: conn.connId, alsoFailedSinceLastLine: this.#sendFailuresUnlogged },
        "request not taken by the broker",
      );
      this.#sendFailureLoggedAt = now;
      this.#sendFailuresUnlogged = 0;
    } else {
      this.#sendFailuresUnlogged += 1;
    }
    if (this.#awaiting.delete(key)) this.#answered(conn);
    if (conn.state === ConnState.Open) {
      this.#sendError(conn, WireErrorCode.Unavailable, id, "broker unavailable, retry", true);
    }
    this.#maybeResumeProducer();
  }

  #pause(conn: Connection, why: number): void {
    if (conn.paused === 0) conn.socket.pause();
    conn.paused |= why;
  }

  #unpause(conn: Connection, why: number): void {
    if ((conn.paused & why) === 0) return;
    conn.paused &= ~why;
    if (conn.paused === 0 && conn.state !== ConnState.Closing) conn.socket.resume();
  }

  /** One of the connection's open requests is finished. */
  #answered(conn: Connection): void {
    if (conn.open > 0) conn.open -= 1;
    if (conn.open < this.#config.limits.maxInflight) this.#unpause(conn, Paused.Inflight);
  }

  #maybeResumeProducer(): void {
    if (this.#producerPaused.size === 0) return;
    if (this.#producer!.queued() > this.#config.limits.maxProducerQueue / 2) return;
    for (const conn of this.#producerPaused) this.#unpause(conn, Paused.Producer);
    this.#producerPaused.clear();
  }

  #pushAcked(conn: Connection, messageId: string): void {
    if (conn.unacked === null || !conn.unacked.delete(messageId)) return;
    const deviceId = conn.deviceId!;
    this.#deleteOutboxEntry(deviceId, messageId);
  }

  #presence(event: PresenceEvent): void {
    const producer = this.#producer;
    if (producer === undefined) return;
    producer
      .send(
        { topic: this.#config.common.names.eventsTopic, key: event.deviceId, value: JSON.stringify(event) },
        { timeoutMs: this.#config.produceTimeoutMs },
      )
      .catch((error: unknown) => {
        this.#log.warn({ err: error, deviceId: event.deviceId, event: event.event }, "presence event not written");
      });
  }

  #sendControl(slot: number, deviceId: string, control: ControlRecord): void {
    this.#producer!.send(controlRecord(this.#config.common.names.repliesTopic, slot, control), {
      timeoutMs: this.#config.produceTimeoutMs,
    }).catch((error: unknown) => {
      this.#log.warn({ err: error, slot, deviceId, op: control.op }, "control record not written");
    });
  }

  // ---------------------------------------------------------------- replies

  async #onReply(message: IncomingMessage): Promise<void> {
    if (!this.#delivering) throw new TetherError(ErrorCode.Closed, "slot lease lost; not delivering");
    const headers = message.headers;
    const kind = headers[Header.Kind] ?? ReplyKind.Answer;
    const deviceId = headers[Header.Device] ?? message.key;
    if (deviceId === undefined || deviceId === null || deviceId === "") {
      this.metrics.reply("dropped");
      this.#log.warn({ partition: message.partition, offset: message.offset }, "reply without a device dropped");
      return;
    }
    if (kind === ReplyKind.Answer) {
      const connId = headers[Header.Conn];
      const requestId = headers[Header.RequestId];
      let target: Connection | undefined;
      if (connId !== undefined) {
        target = this.#conns.get(connId);
        if (requestId !== undefined && this.#awaiting.delete(`${connId}\n${requestId}`) && target !== undefined) {
          this.#answered(target);
        }
      }
      if (target !== undefined && target.state === ConnState.Open && this.#owners.get(deviceId) === target) {
        this.#deliver(target, message);
        return;
      }
      await this.#route(message, deviceId, kind);
      return;
    }
    if (kind === ReplyKind.Push) {
      const owner = this.#owners.get(deviceId);
      if (owner !== undefined && owner.state === ConnState.Open) {
        this.#deliverPush(owner, message);
        return;
      }
      await this.#route(message, deviceId, kind);
      return;
    }
    if (kind === ReplyKind.Control) {
      this.#control(message);
      return;
    }
    this.metrics.reply("dropped");
    this.#log.warn({ kind, offset: message.offset }, "reply of unknown kind dropped");
  }

  #deliver(conn: Connection, message: IncomingMessage): void {
    const value = oneLine(message.value);
    this.#write(conn, value);
    if (value[value.length - 1] !== 10) this.#write(conn, NEWLINE);
    this.metrics.reply("delivered");
    if (value.subarray(0, ERROR_PREFIX.length).equals(ERROR_PREFIX)) this.metrics.frameOut("error");
    else this.metrics.frameOut("res");
    const receivedAt = Number(message.headers[Header.ReceivedAt]);
    if (receivedAt > 0) this.metrics.replyLatency.observe(Math.max(0, this.#now() - receivedAt) / 1000);
  }

  #deliverPush(conn: Connection, message: IncomingMessage): void {
    const value = oneLine(message.value);
    this.#write(conn, value);
    if (value[value.length - 1] !== 10) this.#write(conn, NEWLINE);
    this.metrics.reply("delivered");
    this.metrics.frameOut("push");
    const messageId = message.headers[Header.MessageId] ?? pushIdOf(value.toString("utf8"));
    if (messageId !== undefined) {
      if (conn.unacked === null) conn.unacked = new Set();
      conn.unacked.add(messageId);
    }
  }

  /**
   * A reply whose connection is not here: deliver to the device's connection on this edge,
   * forward to the slot of the edge that owns it, or park it in the outbox.
   */
  async #route(message: IncomingMessage, deviceId: string, kind: ReplyKind): Promise<void> {
    const record = await this.#registry.connections.get(deviceId);
    if (!this.#delivering) throw new TetherError(ErrorCode.Closed, "slot lease lost; not delivering");
    if (record !== null) {
      if (record.edgeId === this.#config.edgeId && record.slot === this.#slot) {
        const conn = this.#conns.get(record.connId);
        if (conn !== undefined && conn.state === ConnState.Open) {
          if (kind === ReplyKind.Push) this.#deliverPush(conn, message);
          else this.#deliver(conn, message);
          return;
        }
      } else if (await this.#leaseLive(record.slot, record.edgeId)) {
        const hops = Number(message.headers[Header.Hops] ?? "0") || 0;
        if (hops < this.#config.maxHops) {
          await this.#producer!.send(
            {
              topic: this.#config.common.names.repliesTopic,
              partition: record.slot,
              key: deviceId,
              value: message.value,
              headers: { ...message.headers, [Header.Conn]: record.connId, [Header.Hops]: String(hops + 1) },
            },
            { timeoutMs: this.#config.produceTimeoutMs },
          );
          this.metrics.reply("forwarded");
          return;
        }
        this.#log.warn({ deviceId, hops }, "reply forwarded too often; parking it");
      }
    }
    if (kind === ReplyKind.Push) {
      // The router stored the push in the outbox already; it goes out on the next connection.
      this.metrics.reply("parked");
      return;
    }
    await this.#park(message, deviceId);
  }

  async #leaseLive(slot: number, edgeId: string): Promise<boolean> {
    const lease = await this.#registry.leases.get(slot);
    return lease !== null && lease.edgeId === edgeId && lease.leaseUntil > this.#now();
  }

  async #park(message: IncomingMessage, deviceId: string): Promise<void> {
    const now = this.#now();
    const requestId = message.headers[Header.RequestId];
    const expiresHeader = Number(message.headers[Header.ExpiresAt]);
    let frame = message.value.toString("utf8");
    if (frame.endsWith("\n")) frame = frame.trimEnd();
    await this.#registry.outbox.put({
      deviceId,
      messageId: requestId === undefined ? `answer:${message.partition}:${message.offset}` : `answer:${requestId}`,
      frame,
      createdAt: now,
      expiresAt: expiresHeader > now ? expiresHeader : now + this.#config.outboxTtlMs,
    });
    this.metrics.reply("parked");
    // The device may have connected between our lookup and the put, after its welcome read the
    // outbox: look again and have its edge deliver the outbox if so.
    const owner = await this.#registry.connections.get(deviceId);
    if (owner === null) return;
    if (owner.edgeId === this.#config.edgeId && owner.slot === this.#slot) {
      const conn = this.#conns.get(owner.connId);
      if (conn !== undefined && conn.state === ConnState.Open) await this.#deliverOutbox(conn);
    } else if (await this.#leaseLive(owner.slot, owner.edgeId)) {
      this.#sendControl(owner.slot, deviceId, { op: "deliver_outbox", deviceId });
    }
  }

  #control(message: IncomingMessage): void {
    let control: ControlRecord;
    try {
      control = JSON.parse(message.value.toString("utf8")) as ControlRecord;
    } catch {
      this.metrics.reply("dropped");
      return;
    }
    if (control.op === "close") {
      const conn = this.#conns.get(control.connId);
      if (conn !== undefined && conn.deviceId === control.deviceId && conn.state !== ConnState.Closing) {
        const reason = control.reason === "kicked" ? ByeReason.Kicked : ByeReason.Replaced;
        this.#close(conn, reason, encodeBye(reason));
      }
      return;
    }
    if (control.op === "deliver_outbox") {
      const owner = this.#owners.get(control.deviceId);
      if (owner !== undefined && owner.state === ConnState.Open) {
        this.#deliverOutbox(owner).catch(() => {});
      }
    }
  }

  /** Writes a device's waiting messages: answers are deleted once written, pushes once acked. */
  async #deliverOutbox(conn: Connection): Promise<void> {
    const deviceId = conn.deviceId!;
    let entries: Awaited<ReturnType<Registry["outbox"]["list"]>>;
    try {
      entries = await this.#limited(() => this.#registry.outbox.list(deviceId, 1000));
    } catch (error) {
      this.#log.warn({ err: error, deviceId }, "outbox read failed; delivered on the next connection");
      return;
    }
    for (const entry of entries) {
      if (conn.state !== ConnState.Open) return;
      const frame = `${toLineJson(entry.frame.trim())}\n`;
      const pushId = pushIdOf(entry.frame);
      this.#write(conn, frame);
      if (pushId !== undefined) {
        this.metrics.frameOut("push");
        if (conn.unacked === null) conn.unacked = new Set();
        conn.unacked.add(entry.messageId);
      } else {
        this.metrics.frameOut(entry.frame.startsWith('{"t":"error"') ? "error" : "res");
        this.metrics.reply("delivered");
        this.#deleteOutboxEntry(deviceId, entry.messageId);
      }
    }
  }

  // ---------------------------------------------------------------- timers

  /** One coarse timer for every connection: hello timeouts, idle timeouts, stuck closes. */
  #sweep(): void {
    const now = this.#now();
    const limits = this.#config.limits;
    const idleMs = 2 * limits.heartbeatMs;
    for (const conn of this.#conns.values()) {
      switch (conn.state) {
        case ConnState.Hello:
          if (now - conn.openedAt >= limits.helloTimeoutMs) {
            this.#sendError(conn, WireErrorCode.HelloTimeout, undefined, `no hello within ${limits.helloTimeoutMs} ms`);
            this.#close(conn, "hello_timeout");
          }
          break;
        case ConnState.Auth:
          if (now - conn.openedAt >= 2 * limits.helloTimeoutMs + this.#config.produceTimeoutMs) {
            this.#sendError(conn, WireErrorCode.Unavailable, undefined, "hello could not be completed in time", true);
            this.#close(conn, "unavailable");
          }
          break;
        case ConnState.Open:
          if (now - conn.lastSeen >= idleMs) this.#close(conn, ByeReason.IdleTimeout, encodeBye(ByeReason.IdleTimeout));
          break;
        case ConnState.Closing:
          if (now - conn.closingAt >= CLOSE_GRACE_MS) conn.socket.destroy();
          break;
      }
    }
    // A PROXY header or TLS handshake must be done within the hello timeout as well.
    for (const handshake of this.#handshakes) {
      if (now - handshake.openedAt >= limits.helloTimeoutMs) {
        this.#handshakes.delete(handshake);
        this.metrics.close("handshake_timeout");
        handshake.socket.destroy();
      }
    }
    if (now - this.#lastForgetAt >= 60_000) {
      this.#lastForgetAt = now;
      for (const [key, at] of this.#awaiting) {
        if (now - at > AWAIT_FORGET_MS) this.#awaiting.delete(key);
      }
    }
  }

  // ---------------------------------------------------------------- shutdown

  /**
   * Graceful stop: readiness off, no new connections, devices told `bye draining` with
   * reconnect times spread over the drain window, answers still in flight handled (delivered,
   * forwarded or parked) until the deadline, producer flushed, lease released.
   */
  drain(): Promise<void> {
    return this.#shutdown(this.#config.drainMs, "closed");
  }

  /** Stops now (no waiting for answers in flight). Safe to call twice. */
  close(): Promise<void> {
    return this.#shutdown(0, "closed");
  }

  #shutdown(waitMs: number, final: EdgeStatus): Promise<void> {
    if (this.#stopping === undefined) this.#stopping = this.#doShutdown(waitMs, final);
    return this.#stopping;
  }

  async #doShutdown(waitMs: number, final: EdgeStatus): Promise<void> {
    const started = this.#now();
    const wasRunning = this.#status === "running" || this.#status === "starting";
    if (this.#status !== "failed") this.#status = "draining";
    this.#log.info({ edgeId: this.#config.edgeId, slot: this.#slot, waitMs }, "edge stopping");
    const server = this.#server;
    const serverClosed =
      server === undefined ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()));
    for (const conn of this.#conns.values()) {
      if (conn.state === ConnState.Open) {
        this.#close(conn, ByeReason.Draining, encodeBye(ByeReason.Draining, this.#reconnectMs()));
      } else if (conn.state !== ConnState.Closing) {
        this.#close(conn, ByeReason.Draining, undefined, true);
      }
    }
    if (wasRunning && this.#delivering) {
      const deadline = started + waitMs;
      while (this.#awaiting.size > 0 && this.#now() < deadline && this.#delivering) {
        await sleep(Math.min(50, Math.max(1, deadline - this.#now())));
      }
    }
    // Ownership releases of the closed connections go out before the lease is given up.
    const backgroundDeadline = this.#now() + Math.max(1000, waitMs);
    while (this.#backgroundRunning > 0 && this.#now() < backgroundDeadline) await sleep(10);
    await this.#step("reply consumer close", () => this.#consumer?.close(1000));
    this.#delivering = false;
    await this.#step("producer flush", () => this.#producer?.flush(Math.max(1000, Math.min(5000, waitMs))));
    await this.#step("producer close", () => this.#producer?.close());
    if (this.#status !== "failed") await this.#step("lease release", () => this.#keeper?.release());
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer);
    for (const conn of this.#conns.values()) conn.socket.destroy();
    for (const handshake of this.#handshakes) handshake.socket.destroy();
    await serverClosed;
    if (this.#status !== "failed") this.#status = final;
    this.#log.info({ edgeId: this.#config.edgeId, awaiting: this.#awaiting.size }, "edge stopped");
  }

  async #step(name: string, run: () => Promise<void> | undefined): Promise<void> {
    try {
      await run();
    } catch (error) {
      this.#log.warn({ err: error, step: name }, `shutdown step failed: ${describeError(error)}`);
    }
  }

  /** The lease is gone: stop delivering at once, send devices away, report. */
  #fail(error: TetherError): void {
    if (this.#status === "failed" || this.#status === "closed") return;
    this.#delivering = false;
    this.#status = "failed";
    this.#fatalError = error;
    this.#log.error({ err: error, slot: this.#slot }, "slot lease lost; the edge stops");
    const consumer = this.#consumer;
    if (consumer !== undefined) {
      consumer
        .close(0)
        .catch((closeError: unknown) => this.#log.warn({ err: closeError }, "reply consumer close failed"));
    }
    this.#shutdown(0, "failed").catch(() => {});
    for (const resolve of this.#fatalWaiters.splice(0)) resolve(error);
    this.#onFatal?.(error);
  }
}

/** Builds an edge from its parts; call `start()` to listen. */
export function createEdge(deps: EdgeDeps): Edge {
  return new Edge(deps);
}

function ignore(): void {}

/** False when the first byte that is not white space cannot start a JSON object. */
function mayStartObject(chunk: Buffer): boolean {
  for (const byte of chunk) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) continue;
    return byte === 0x7b;
  }
  return true;
}

/**
 * A reply value as one line. Producers write compact JSON, so this is normally the value itself;
 * a value with line breaks inside (pretty-printed JSON) would break the device's framing, and in
 * valid JSON they can only be whitespace, so they are removed.
 */
function oneLine(value: Buffer): Buffer {
  const lf = value.indexOf(10);
  const cr = value.indexOf(13);
  if ((lf === -1 || lf === value.length - 1) && cr === -1) return value;
  return Buffer.from(toLineJson(value.toString("utf8").trim()), "utf8");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The id of a push frame held as JSON text, or undefined when the text is not a push. */
function pushIdOf(frame: string): string | undefined {
  if (!frame.startsWith('{"t":"push"') && !frame.includes('"push"')) return undefined;
  try {
    const parsed = JSON.parse(frame) as { t?: unknown; id?: unknown };
    return parsed.t === "push" && typeof parsed.id === "string" ? parsed.id : undefined;
  } catch {
    return undefined;
  }
}
