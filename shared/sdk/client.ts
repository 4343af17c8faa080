/**
 * The TypeScript device SDK: one device's connection to a Tether edge, kept up across failures.
 */

import { randomBytes } from "node:crypto";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import { backoff } from "../async/index.ts";
import { ErrorCode, TetherError } from "../errors/index.ts";
import {
  CLIENT_BYE_LINE,
  DEFAULT_MAX_FRAME_BYTES,
  encodeAck,
  encodeFrame,
  encodeReq,
  type HelloFrame,
  isValidDeviceId,
  isValidRequestId,
  isValidType,
  LineSplitter,
  PING_LINE,
  PROTOCOL_VERSION,
  type PushFrame,
  parseServerFrame,
  type ServerFrame,
  type WelcomeFrame,
} from "../protocol/index.ts";
import { ClientErrorCode, TetherRequestError } from "./errors.ts";

/** The parts of a pino logger the SDK uses; a pino `Logger` fits. */
export interface SdkLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ReconnectOptions {
  /** First backoff ceiling, in ms (default 200). */
  readonly initialMs: number;
  /** Largest backoff ceiling, in ms (default 30000). */
  readonly maxMs: number;
  /**
   * Share of each delay that is random, 0 to 1 (default 1, "full jitter": a delay is uniform in
   * [0, ceiling]). For a `bye draining` the delay is `reconnectMs`, varied by up to 10% times this.
   */
  readonly jitter: number;
}

export interface TetherClientOptions {
  readonly host: string;
  readonly port: number;
  readonly deviceId: string;
  /** Per the edge's auth mode; omit in mode `none`. */
  readonly token?: string | undefined;
  /** `true` or TLS options to connect with TLS (server name defaults to `host`). */
  readonly tls?: boolean | ConnectionOptions | undefined;
  /** Default timeout of a request, from the call to its final answer (default 30000). */
  readonly requestTimeoutMs?: number | undefined;
  /** Backoff between connection attempts; `false` disables reconnecting (default: on). */
  readonly reconnect?: Partial<ReconnectOptions> | false | undefined;
  /** Bound on one attempt, from starting the TCP connection to `welcome` (default 10000). */
  readonly connectTimeoutMs?: number | undefined;
  /** Send `ping` when nothing was sent for a heartbeat, and drop a silent connection (default true). */
  readonly heartbeat?: boolean | undefined;
  /** Local address to bind the socket to (load tests spread over 127.0.0.x). */
  readonly localAddress?: string | undefined;
  /** Longest frame accepted from the edge (default 16 MiB). */
  readonly maxIncomingFrameBytes?: number | undefined;
  readonly logger?: SdkLogger | undefined;
  /** Random source in [0, 1), for tests. */
  readonly random?: (() => number) | undefined;
  /**
   * Ask for answer acknowledgements (protocol 1.1, default false): the hello carries
   * `"ackAnswers":true` and, when the edge confirms it in `welcome`, the client acks every final
   * answer (`res`, or `error` with an id), repeats included. The edge then keeps an answer until
   * it is acked and sends it again on the next connection, instead of counting it delivered once
   * written to the socket.
   */
  readonly ackAnswers?: boolean | undefined;
}

export interface RequestOptions {
  /** Overrides the client's `requestTimeoutMs`. */
  readonly timeoutMs?: number | undefined;
  /** The request id (1 to 64 characters); generated when omitted. Reuse one only to retry. */
  readonly id?: string | undefined;
  /** Called once when the edge acks: the request is durably accepted and will be answered. */
  readonly onAck?: (() => void) | undefined;
}

/** What the edge said in `welcome`. */
export interface ConnectionInfo {
  readonly connId: string;
  readonly edgeId: string;
  readonly heartbeatMs: number;
  readonly maxFrameBytes: number;
  /** True when the client asked for answer acknowledgements and the edge confirmed them. */
  readonly ackAnswers: boolean;
}

export const ClientStatus = {
  Idle: "idle",
  Connecting: "connecting",
  Open: "open",
  Backoff: "backoff",
  Closed: "closed",
} as const;
export type ClientStatus = (typeof ClientStatus)[keyof typeof ClientStatus];

/**
 * Why a connection ended: a `bye` reason from the edge (`draining`, `kicked`, `replaced`,
 * `idle_timeout`), a connection-level error code from the edge (`unauthorized`,
 * `hello_timeout`, `not_authenticated`, `frame_too_large`), or the client's view:
 * `closed` (by {@link TetherClient.close}), `socket_closed`, `socket_error`, `connect_timeout`,
 * `heartbeat_timeout`, `protocol_error`.
 */
export type DisconnectReason = string;

export interface DisconnectInfo {
  readonly reason: DisconnectReason;
  /** Whether the connection had reached `welcome`. */
  readonly wasOpen: boolean;
  readonly willReconnect: boolean;
  /** Delay before the next attempt, when reconnecting. */
  readonly retryInMs?: number;
  /** The socket error, if one ended the connection. */
  readonly error?: Error;
}

/** A push from the backend, as given to push handlers. */
export interface Push {
  readonly id: string;
  readonly type: string;
  readonly body: unknown;
}

/** Called for each push; the push is acked after it returns (or its promise resolves). */
export type PushHandler = (push: Push) => unknown;

export interface TetherClientEvents {
  connected: (info: ConnectionInfo) => void;
  disconnected: (info: DisconnectInfo) => void;
  /** A newer connection of this deviceId took over; the client has stopped. */
  replaced: () => void;
  /** Something went wrong that no request owns (a push handler failed, a bad frame...). */
  error: (error: Error) => void;
}

type Listeners = { [K in keyof TetherClientEvents]: Set<TetherClientEvents[K]> };

interface PendingRequest {
  readonly id: string;
  readonly type: string;
  readonly line: string;
  acked: boolean;
  readonly onAck: (() => void) | undefined;
  readonly resolve: (body: unknown) => void;
  readonly reject: (error: TetherRequestError) => void;
  readonly timer: NodeJS.Timeout;
}

interface PingWaiter {
  readonly sentAt: number;
  readonly resolve: ((rttMs: number) => void) | undefined;
  readonly reject: ((error: Error) => void) | undefined;
}

interface Waiter {
  readonly resolve: (info: ConnectionInfo) => void;
  readonly reject: (error: Error) => void;
}

/** One connection attempt and, if it gets there, one session. */
interface Connection {
  readonly socket: Socket;
  readonly splitter: LineSplitter;
  readonly startedAt: number;
  connected: boolean;
  info: ConnectionInfo | undefined;
  welcomedAt: number;
  lastSentAt: number;
  lastReceivedAt: number;
  reason: DisconnectReason | undefined;
  reconnectMs: number | undefined;
  /** Set when the edge said something after which reconnecting is pointless. */
  fatal: TetherRequestError | undefined;
  error: Error | undefined;
  connectTimer: NodeJS.Timeout | undefined;
  heartbeatTimer: NodeJS.Timeout | undefined;
  pings: PingWaiter[];
  corked: boolean;
}

const DEFAULT_RECONNECT: ReconnectOptions = { initialMs: 200, maxMs: 30_000, jitter: 1 };
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_INCOMING_FRAME_BYTES = 16 * 1024 * 1024;
/** A connection that stayed up this long resets the backoff. */
const STABLE_CONNECTION_MS = 5_000;
/**
 * How long a hello this client gave up on (no `welcome` before the attempt ended) may still be
 * completed by an edge that was slow to take it: long enough for the edge's own bound on a
 * pending hello plus a claim in flight to the store.
 */
const ABANDONED_HELLO_MS = 60_000;
/** Recently handled push ids, to hand a redelivered push to the handlers only once. */
const RECENT_PUSH_IDS = 1024;
const CLOSE_GRACE_MS = 1_000;

const noop = (): void => {};
const silent: SdkLogger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * A device's connection to Tether: connects and says hello, reconnects with exponential backoff
 * and full jitter (honouring `bye draining` delays), sends requests and re-sends the open ones
 * with their ids after a reconnect, acks pushes after their handler returns, and keeps the
 * connection alive with pings.
 *
 * ```ts
 * const client = new TetherClient({ host: "localhost", port: 3000, deviceId: "dev-1" });
 * client.onPush((push) => console.log(push.type, push.body));
 * await client.connect();
 * const answer = await client.request("echo", { hello: "world" });
 * await client.close();
 * ```
 */
export class TetherClient {
  readonly #options: TetherClientOptions;
  readonly #reconnect: ReconnectOptions | undefined;
  readonly #requestTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #log: SdkLogger;
  readonly #random: () => number;
  readonly #idPrefix: string;
  #idCounter = 0;
  #status: ClientStatus = ClientStatus.Idle;
  #conn: Connection | undefined;
  #info: ConnectionInfo | undefined;
  #attempt = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;
  /** When an attempt that had sent its hello ended without `welcome` (0: none pending). */
  #abandonedHelloAt = 0;
  readonly #pending = new Map<string, PendingRequest>();
  #waiters: Waiter[] = [];
  readonly #pushHandlers = new Set<PushHandler>();
  readonly #recentPushIds = new Set<string>();
  readonly #listeners: Listeners = {
    connected: new Set(),
    disconnected: new Set(),
    replaced: new Set(),
    error: new Set(),
  };
  #closePromise: Promise<void> | undefined;
  #stoppedBy: TetherRequestError | undefined;

  constructor(options: TetherClientOptions) {
    if (!isValidDeviceId(options.deviceId)) {
      throw new TetherError(ErrorCode.InvalidArgument, "deviceId must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
    }
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw new TetherError(ErrorCode.InvalidArgument, `port must be an integer 0..65535, got ${String(options.port)}`);
    }
    this.#options = options;
    this.#reconnect = options.reconnect === false ? undefined : { ...DEFAULT_RECONNECT, ...options.reconnect };
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#log = options.logger ?? silent;
    this.#random = options.random ?? Math.random;
    this.#idPrefix = randomBytes(6).toString("base64url");
  }

  /** Where the client is in its life. */
  get status(): ClientStatus {
    return this.#status;
  }

  /** The current session's `welcome`, while open. */
  get connection(): ConnectionInfo | undefined {
    return this.#status === ClientStatus.Open ? this.#info : undefined;
  }

  /** Requests waiting for their final answer. */
  get pendingRequests(): ReadonlyArray<{ readonly id: string; readonly type: string; readonly acked: boolean }> {
    return [...this.#pending.values()].map((p) => ({ id: p.id, type: p.type, acked: p.acked }));
  }

  /** Number of requests waiting for their final answer. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  on<K extends keyof TetherClientEvents>(event: K, listener: TetherClientEvents[K]): this {
    (this.#listeners[event] as Set<TetherClientEvents[K]>).add(listener);
    return this;
  }

  off<K extends keyof TetherClientEvents>(event: K, listener: TetherClientEvents[K]): this {
    (this.#listeners[event] as Set<TetherClientEvents[K]>).delete(listener);
    return this;
  }

  /**
   * Starts the client (once) and resolves with the next `welcome`. While reconnecting is on,
   * failed attempts are retried and the promise waits; it rejects when the client stops
   * (closed, unauthorized, replaced) or, with reconnecting off, when an attempt fails.
   */
  connect(): Promise<ConnectionInfo> {
    if (this.#status === ClientStatus.Closed) {
      return Promise.reject(this.#stoppedBy ?? new TetherRequestError(ClientErrorCode.Closed, "client is closed"));
    }
    if (this.#status === ClientStatus.Open && this.#info !== undefined) return Promise.resolve(this.#info);
    const promise = new Promise<ConnectionInfo>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (this.#status === ClientStatus.Idle) this.#startAttempt();
    return promise;
  }

  /**
   * Sends a request and resolves with the `body` of its `res`. Rejects with a
   * {@link TetherRequestError}: the edge's or handler's `error` frame, or a client code
   * (`timeout`, `closed`...). A request made while disconnected is sent after the next
   * `welcome`; an open request is sent again, with the same id, after every reconnect.
   */
  request(type: string, body: unknown, options: RequestOptions = {}): Promise<unknown> {
    if (this.#status === ClientStatus.Closed) {
      return Promise.reject(this.#stoppedBy ?? new TetherRequestError(ClientErrorCode.Closed, "client is closed"));
    }
    if (!isValidType(type)) {
      return Promise.reject(
        new TetherRequestError(
          ClientErrorCode.InvalidRequest,
          "type must be 1 to 128 characters of A-Z a-z 0-9 . _ : / -",
        ),
      );
    }
    const id = options.id ?? this.#nextId();
    if (!isValidRequestId(id)) {
      return Promise.reject(new TetherRequestError(ClientErrorCode.InvalidRequest, "id must be 1 to 64 characters"));
    }
    if (this.#pending.has(id)) {
      return Promise.reject(
        new TetherRequestError(ClientErrorCode.InvalidRequest, `a request with id ${id} is already open`, {
          requestId: id,
        }),
      );
    }
    let bodyJson: string | undefined;
    try {
      bodyJson = JSON.stringify(body === undefined ? null : body);
    } catch (error) {
      return Promise.reject(
        new TetherRequestError(ClientErrorCode.InvalidRequest, "body cannot be serialised as JSON", {
          requestId: id,
          cause: error,
        }),
      );
    }
    const line = encodeReq(id, type, bodyJson ?? "null");
    const limit = this.#info?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    // A UTF-16 unit is at most 3 UTF-8 bytes: only long lines need counting.
    if ((line.length - 1) * 3 > limit && Buffer.byteLength(line) - 1 > limit) {
      return Promise.reject(
        new TetherRequestError(ClientErrorCode.FrameTooLarge, `request frame is larger than ${limit} bytes`, {
          requestId: id,
        }),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.#requestTimeoutMs;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#pending.get(id) !== entry) return;
        this.#pending.delete(id);
        reject(
          new TetherRequestError(ClientErrorCode.Timeout, `no answer to ${type} request ${id} within ${timeoutMs} ms`, {
            retryable: true,
            requestId: id,
          }),
        );
      }, timeoutMs);
      const entry: PendingRequest = { id, type, line, acked: false, onAck: options.onAck, resolve, reject, timer };
      this.#pending.set(id, entry);
      const conn = this.#conn;
      if (conn?.info !== undefined) this.#write(conn, line);
    });
  }

  /**
   * Adds a push handler; returns a function that removes it. A push is acked after every
   * handler has returned (or its promise resolved); if one throws, it is not acked and comes
   * again on a later connection. With no handler, pushes are acked and dropped.
   */
  onPush(handler: PushHandler): () => void {
    this.#pushHandlers.add(handler);
    return () => {
      this.#pushHandlers.delete(handler);
    };
  }

  /** Sends a `ping`; resolves with the round trip in ms when the `pong` comes. */
  ping(timeoutMs = 10_000): Promise<number> {
    const conn = this.#conn;
    if (conn?.info === undefined) {
      return Promise.reject(new TetherRequestError(ClientErrorCode.Disconnected, "not connected", { retryable: true }));
    }
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new TetherRequestError(ClientErrorCode.Timeout, `no pong within ${timeoutMs} ms`, { retryable: true }));
      }, timeoutMs);
      conn.pings.push({
        sentAt: performance.now(),
        resolve: (rtt) => {
          clearTimeout(timer);
          if (!settled) resolve(rtt);
        },
        reject: (error) => {
          clearTimeout(timer);
          if (!settled) reject(error);
        },
      });
      this.#write(conn, PING_LINE);
    });
  }

  /**
   * Says `bye` and closes. Open requests reject with `closed`. Safe to call twice.
   */
  close(): Promise<void> {
    if (this.#closePromise !== undefined) return this.#closePromise;
    this.#closePromise = this.#doClose();
    return this.#closePromise;
  }

  async #doClose(): Promise<void> {
    const closedError = new TetherRequestError(ClientErrorCode.Closed, "client is closed");
    this.#stop(closedError);
    const conn = this.#conn;
    if (conn === undefined) return;
    conn.reason = "closed";
    const socket = conn.socket;
    if (socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
      socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      if (conn.info !== undefined && socket.writable) socket.write(CLIENT_BYE_LINE);
      socket.end();
    });
  }

  /** Moves to `closed`: no more attempts, every waiter and request rejected with `error`. */
  #stop(error: TetherRequestError): void {
    if (this.#status === ClientStatus.Closed) return;
    this.#status = ClientStatus.Closed;
    this.#stoppedBy = error;
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#rejectAll(error);
  }

  #rejectAll(error: TetherRequestError): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.reject(error);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.reject(
        new TetherRequestError(error.code, error.message, { retryable: error.retryable, requestId: entry.id }),
      );
    }
  }

  #nextId(): string {
    this.#idCounter += 1;
    return `${this.#idPrefix}.${this.#idCounter.toString(36)}`;
  }

  #emit<K extends keyof TetherClientEvents>(event: K, ...args: Parameters<TetherClientEvents[K]>): void {
    for (const listener of this.#listeners[event]) {
      try {
        (listener as (...a: Parameters<TetherClientEvents[K]>) => void)(...args);
      } catch (error) {
        this.#log.error({ err: error, event }, "tether client event listener threw");
      }
    }
  }

  #startAttempt(): void {
    this.#reconnectTimer = undefined;
    if (this.#status === ClientStatus.Closed) return;
    this.#status = ClientStatus.Connecting;
    const options = this.#options;
    let socket: Socket;
    const tls = options.tls;
    if (tls !== undefined && tls !== false) {
      const tlsOptions: ConnectionOptions = tls === true ? {} : tls;
      socket = tlsConnect({
        host: options.host,
        port: options.port,
        ...(isIP(options.host) === 0 ? { servername: options.host } : {}),
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
        ...tlsOptions,
      });
    } else {
      socket = netConnect({
        host: options.host,
        port: options.port,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      });
    }
    const now = Date.now();
    const conn: Connection = {
      socket,
      splitter: new LineSplitter({
        maxFrameBytes: options.maxIncomingFrameBytes ?? DEFAULT_MAX_INCOMING_FRAME_BYTES,
        onLine: (line) => this.#onLine(conn, line),
        onOversize: () => {
          conn.reason = "protocol_error";
          this.#emit("error", new TetherRequestError("frame_too_large", "the edge sent an oversize frame"));
          socket.destroy();
        },
      }),
      startedAt: now,
      connected: false,
      info: undefined,
      welcomedAt: 0,
      lastSentAt: now,
      lastReceivedAt: now,
      reason: undefined,
      reconnectMs: undefined,
      fatal: undefined,
      error: undefined,
      connectTimer: undefined,
      heartbeatTimer: undefined,
      pings: [],
      corked: false,
    };
    this.#conn = conn;
    conn.connectTimer = setTimeout(() => {
      conn.reason ??= "connect_timeout";
      socket.destroy();
    }, this.#connectTimeoutMs);
    socket.setNoDelay(true);
    const onOpen = (): void => {
      conn.connected = true;
      socket.setKeepAlive(true, 30_000);
      const hello: HelloFrame = {
        t: "hello",
        v: PROTOCOL_VERSION,
        deviceId: options.deviceId,
        ...(options.token === undefined ? {} : { token: options.token }),
        ...(options.ackAnswers === true ? { ackAnswers: true } : {}),
      };
      this.#write(conn, encodeFrame(hello));
    };
    socket.once(tls !== undefined && tls !== false ? "secureConnect" : "connect", onOpen);
    socket.on("data", (chunk: Buffer) => conn.splitter.push(chunk));
    socket.on("error", (error) => {
      conn.error ??= error;
    });
    socket.on("close", () => this.#onClose(conn));
  }

  #write(conn: Connection, line: string): void {
    const socket = conn.socket;
    if (socket.destroyed || !socket.writable) return;
    conn.lastSentAt = Date.now();
    // Frames written in the same tick (answers resolved from one read, say) leave in one segment.
    if (!conn.corked) {
      conn.corked = true;
      socket.cork();
      process.nextTick(() => {
        conn.corked = false;
        socket.uncork();
      });
    }
    socket.write(line);
  }

  #onLine(conn: Connection, line: Buffer): void {
    if (conn !== this.#conn) return;
    conn.lastReceivedAt = Date.now();
    const parsed = parseServerFrame(line);
    if (!parsed.ok) {
      this.#log.warn({ code: parsed.code, reason: parsed.message }, "tether client ignored a frame from the edge");
      this.#emit(
        "error",
        new TetherRequestError(parsed.code, `edge sent a frame the client cannot use: ${parsed.message}`),
      );
      return;
    }
    this.#onFrame(conn, parsed.frame);
  }

  #onFrame(conn: Connection, frame: ServerFrame): void {
    switch (frame.t) {
      case "welcome":
        this.#onWelcome(conn, frame);
        return;
      case "ack": {
        const entry = this.#pending.get(frame.id);
        if (entry !== undefined && !entry.acked) {
          entry.acked = true;
          entry.onAck?.();
        }
        return;
      }
      case "res": {
        this.#ackAnswer(conn, frame.id);
        const entry = this.#pending.get(frame.id);
        if (entry === undefined) return; // A repeat or a late answer: already settled.
        this.#pending.delete(frame.id);
        clearTimeout(entry.timer);
        entry.resolve(frame.body);
        return;
      }
      case "error":
        this.#onErrorFrame(conn, frame);
        return;
      case "push":
        this.#onPushFrame(conn, frame);
        return;
      case "pong": {
        const waiter = conn.pings.shift();
        waiter?.resolve?.(performance.now() - waiter.sentAt);
        return;
      }
      case "bye":
        conn.reason = frame.reason;
        conn.reconnectMs = frame.reconnectMs;
        if (frame.reason === "replaced") {
          if (this.#replacedByOwnEcho()) {
            // The "newer connection" is most likely this client's own abandoned attempt, which an
            // edge completed late: the device has no other connection, so it connects again.
            this.#log.debug({}, "replaced right after an abandoned hello; reconnecting");
          } else {
            conn.fatal = new TetherRequestError(
              ClientErrorCode.Replaced,
              "a newer connection of this device took over",
            );
          }
        }
        conn.socket.end();
        return;
      default:
        return;
    }
  }

  #onWelcome(conn: Connection, frame: WelcomeFrame): void {
    if (conn.info !== undefined) return;
    if (conn.connectTimer !== undefined) clearTimeout(conn.connectTimer);
    conn.connectTimer = undefined;
    const info: ConnectionInfo = {
      connId: frame.connId,
      edgeId: frame.edgeId,
      heartbeatMs: frame.heartbeatMs,
      maxFrameBytes: frame.maxFrameBytes,
      // An echo the client did not ask for changes nothing: it only acks what it asked to.
      ackAnswers: this.#options.ackAnswers === true && frame.ackAnswers === true,
    };
    conn.info = info;
    conn.welcomedAt = Date.now();
    this.#info = info;
    this.#status = ClientStatus.Open;
    this.#log.debug({ connId: info.connId, edgeId: info.edgeId }, "tether client connected");
    if (this.#options.heartbeat !== false && info.heartbeatMs > 0) this.#startHeartbeat(conn, info.heartbeatMs);
    // Open requests go (again) in the order they were made, with their ids: the worker dedupes.
    for (const entry of this.#pending.values()) this.#write(conn, entry.line);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.resolve(info);
    this.#emit("connected", info);
  }

  #startHeartbeat(conn: Connection, heartbeatMs: number): void {
    const tick = Math.max(50, Math.floor(heartbeatMs / 2));
    conn.heartbeatTimer = setInterval(() => {
      const now = Date.now();
      if (now - conn.lastReceivedAt > 2 * heartbeatMs + tick) {
        conn.reason ??= "heartbeat_timeout";
        conn.socket.destroy();
        return;
      }
      if (now - conn.lastSentAt >= heartbeatMs - tick) {
        conn.pings.push({ sentAt: performance.now(), resolve: undefined, reject: undefined });
        this.#write(conn, PING_LINE);
      }
    }, tick);
    conn.heartbeatTimer.unref();
  }

  #onErrorFrame(conn: Connection, frame: Extract<ServerFrame, { t: "error" }>): void {
    const message = frame.message ?? frame.code;
    if (frame.id !== undefined) {
      this.#ackAnswer(conn, frame.id);
      const entry = this.#pending.get(frame.id);
      if (entry !== undefined) {
        // The first request with this id is still open at the edge: its answer is on the way.
        if (frame.code === "duplicate_id") return;
        this.#pending.delete(frame.id);
        clearTimeout(entry.timer);
        entry.reject(
          new TetherRequestError(frame.code, message, {
            retryable: frame.retryable ?? (frame.code === "unavailable" || frame.code === "rate_limited"),
            requestId: frame.id,
            retryAfterMs: frame.retryAfterMs,
          }),
        );
        return;
      }
      if (frame.code !== "bad_frame") return; // A late answer to a settled request.
    }
    switch (frame.code) {
      case "unauthorized":
        conn.reason = "unauthorized";
        // Retryable means the edge could not check the token (its key set was unreachable), not that it is wrong.
        if (frame.retryable === true) {
          this.#emit("error", new TetherRequestError(frame.code, message, { retryable: true }));
          return;
        }
        conn.fatal = new TetherRequestError(ClientErrorCode.Unauthorized, `the edge refused the token: ${message}`);
        return;
      case "hello_timeout":
      case "not_authenticated":
      case "frame_too_large":
        conn.reason = frame.code;
        this.#emit("error", new TetherRequestError(frame.code, message));
        return;
      default:
        this.#emit("error", new TetherRequestError(frame.code, message, { retryable: frame.retryable ?? false }));
    }
  }

  #onPushFrame(conn: Connection, frame: PushFrame): void {
    const push: Push = { id: frame.id, type: frame.type, body: frame.body };
    if (this.#recentPushIds.has(frame.id) || this.#pushHandlers.size === 0) {
      this.#ackPush(conn, frame.id);
      return;
    }
    const handlers = [...this.#pushHandlers];
    void Promise.all(
      handlers.map(async (handler) => {
        await handler(push);
      }),
    ).then(
      () => this.#ackPush(conn, frame.id),
      (error: unknown) => {
        this.#log.warn({ pushId: frame.id, type: frame.type }, "tether push handler failed; push not acked");
        this.#emit(
          "error",
          error instanceof Error ? error : new Error(`push handler failed: ${String(error)}`, { cause: error }),
        );
      },
    );
  }

  #ackPush(conn: Connection, id: string): void {
    this.#recentPushIds.add(id);
    if (this.#recentPushIds.size > RECENT_PUSH_IDS) {
      const oldest = this.#recentPushIds.values().next();
      if (oldest.done !== true) this.#recentPushIds.delete(oldest.value);
    }
    // The ack belongs to the connection the push came on; if that one is gone, it comes again.
    if (conn === this.#conn && conn.info !== undefined) this.#write(conn, encodeAck(id));
  }

  /**
   * Acks a final answer when the edge agreed to answer acknowledgements; a repeat is acked too,
   * or the edge would keep sending it. On the connection the answer came on, as for pushes.
   */
  #ackAnswer(conn: Connection, requestId: string): void {
    if (conn.info?.ackAnswers === true) this.#write(conn, encodeAck(requestId));
  }

  /**
   * True (once) when a `bye replaced` follows an attempt of this client whose hello went out and
   * that ended without `welcome`: the edge may still have completed that hello, taking the
   * device's ownership from the connection that did get in. Consumed, so a second instance of the
   * device still stops this one on its next takeover.
   */
  #replacedByOwnEcho(): boolean {
    const at = this.#abandonedHelloAt;
    this.#abandonedHelloAt = 0;
    return at !== 0 && Date.now() - at <= ABANDONED_HELLO_MS;
  }

  #onClose(conn: Connection): void {
    if (conn.connectTimer !== undefined) clearTimeout(conn.connectTimer);
    if (conn.heartbeatTimer !== undefined) clearInterval(conn.heartbeatTimer);
    conn.splitter.stop();
    if (conn.connected && conn.info === undefined) this.#abandonedHelloAt = Date.now();
    const pingError = new TetherRequestError(ClientErrorCode.Disconnected, "connection closed", { retryable: true });
    for (const ping of conn.pings) ping.reject?.(pingError);
    conn.pings = [];
    if (conn !== this.#conn) return;
    this.#conn = undefined;
    const wasOpen = conn.info !== undefined;
    const reason = conn.reason ?? (conn.error !== undefined ? "socket_error" : "socket_closed");
    const base = { reason, wasOpen, ...(conn.error === undefined ? {} : { error: conn.error }) };
    this.#log.debug({ reason, wasOpen }, "tether client disconnected");

    if (this.#status === ClientStatus.Closed) {
      this.#emit("disconnected", { ...base, willReconnect: false });
      return;
    }
    if (conn.fatal !== undefined) {
      this.#stop(conn.fatal);
      if (conn.fatal.code === ClientErrorCode.Replaced) this.#emit("replaced");
      else this.#emit("error", conn.fatal);
      this.#emit("disconnected", { ...base, willReconnect: false });
      return;
    }
    const reconnect = this.#reconnect;
    if (reconnect === undefined) {
      const code = wasOpen ? ClientErrorCode.Disconnected : ClientErrorCode.ConnectFailed;
      const detail = conn.error?.message ?? reason;
      this.#stop(new TetherRequestError(code, `connection to the edge ended: ${detail}`, { retryable: true }));
      this.#emit("disconnected", { ...base, willReconnect: false });
      return;
    }
    if (wasOpen && Date.now() - conn.welcomedAt >= STABLE_CONNECTION_MS) this.#attempt = 0;
    let delay: number;
    if (reason === "draining" && conn.reconnectMs !== undefined) {
      this.#attempt = 0;
      const spread = 0.1 * reconnect.jitter;
      delay = Math.max(0, Math.round(conn.reconnectMs * (1 - spread + 2 * spread * this.#random())));
    } else {
      this.#attempt += 1;
      delay = backoff(this.#attempt, {
        baseMs: reconnect.initialMs,
        maxMs: reconnect.maxMs,
        jitter: reconnect.jitter,
        random: this.#random,
      });
    }
    this.#status = ClientStatus.Backoff;
    this.#reconnectTimer = setTimeout(() => this.#startAttempt(), delay);
    this.#emit("disconnected", { ...base, willReconnect: true, retryInMs: delay });
  }
}
