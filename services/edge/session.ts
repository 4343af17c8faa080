import type { Duplex } from "node:stream";
import type { Logger } from "../../shared/log/index.ts";
import { type ErrorFrameFields, encodeError, LineSplitter, mayStartObject } from "../../shared/protocol/index.ts";
import type { PresenceWill } from "../../shared/records/index.ts";
import type { EdgeLimits } from "./config.ts";
import type { EdgeMetrics } from "./metrics.ts";
import { ConnectionProtocol, type Wire, type WireFactory } from "./wire.ts";
import type { WriteBatch } from "./write-batch.ts";

/**
 * Where a connection is in its life. An open session has a device and an epoch by type; a
 * closing one remembers whether it had been open (its ownership record and presence follow).
 */
export type SessionState =
  | { readonly phase: "hello" }
  | { readonly phase: "authenticating"; readonly deviceId: string }
  | { readonly phase: "open"; readonly deviceId: string; readonly epoch: number }
  | {
      readonly phase: "closing";
      readonly deviceId: string | undefined;
      readonly wasOpen: boolean;
      readonly at: number;
    };

/** Why reading a socket is paused; bits, since several may hold at once. */
export const Paused = { Inflight: 1, Producer: 2, Hello: 4 } as const;
export type Paused = (typeof Paused)[keyof typeof Paused];

/** What a session tells the edge; the session itself never reaches into other rooms. */
export interface SessionEvents {
  line(session: Session, line: Buffer): void;
  /** The session closed (the socket may still be flushing); `before` is the state it left. */
  closed(session: Session, reason: string, before: SessionState): void;
  /** The socket is gone for good. */
  gone(session: Session): void;
}

export interface SessionOptions {
  /** A TCP or TLS socket, or a WebSocket carried as a stream. */
  readonly socket: Duplex;
  readonly connId: string;
  /** The device's address, for per-source budgets. */
  readonly source: string;
  readonly openedAt: number;
  readonly clock: () => number;
  readonly limits: EdgeLimits;
  readonly batch: WriteBatch;
  readonly metrics: EdgeMetrics;
  readonly log: Logger;
  readonly events: SessionEvents;
  /** The pre-hello budget this session holds a place in until welcome or close. */
  readonly budget: UnwelcomedBudget;
  /** A wire other than NDJSON lines (MQTT); absent for NDJSON. */
  readonly wire?: WireFactory;
  /** The protocol name of an NDJSON session (TCP or WebSocket). */
  readonly protocol?: ConnectionProtocol;
}

/** Counts sockets not welcomed yet; a session gives its place back once. */
export interface UnwelcomedBudget {
  release(source: string): void;
}

/**
 * One device connection: its socket, framing, state, rate bucket, open requests, pauses and
 * write path. Kept small (an edge holds tens of thousands): no timers of its own (one sweep
 * serves all), sets made only when used.
 */
export class Session {
  readonly socket: Duplex;
  readonly connId: string;
  readonly source: string;
  readonly openedAt: number;
  #state: SessionState = { phase: "hello" };
  #lastSeen: number;
  readonly #splitter: LineSplitter;
  readonly #limits: EdgeLimits;
  readonly #clock: () => number;
  readonly #batch: WriteBatch;
  readonly #metrics: EdgeMetrics;
  readonly #log: Logger;
  readonly #events: SessionEvents;
  readonly #budget: UnwelcomedBudget;
  #holdsBudget = true;
  #corked = false;
  #paused = 0;
  #badFrames = 0;
  #open = 0;
  #tokens: number;
  #tokensAt: number;
  /** Pushes written and not acked yet (message ids). */
  #unacked: Set<string> | undefined;
  /** Lines right behind the hello, held until welcome is out (pipelining clients). */
  #early: Buffer[] | undefined;
  /** The ownership epoch of this connection once it was welcomed; 0 before. */
  #epoch = 0;
  /** The device acknowledges answers (protocol 1.1 `ackAnswers`). */
  #ackAnswers = false;
  /** Outbox entries already written on this connection (each goes out once per connection). */
  #outboxSent: Set<string> | undefined;
  /** Answers written and not yet confirmed (acked, or handed to the kernel): request id -> outcome. */
  #answers: Map<string, (delivered: boolean) => void> | undefined;
  /** The MQTT wire, when the device does not speak NDJSON lines. */
  readonly #wire: Wire | undefined;
  readonly #protocol: ConnectionProtocol;
  /** Idle bound the device asked for (MQTT keep-alive); the edge's own when undefined. */
  #idleMs: number | undefined;

  constructor(options: SessionOptions) {
    this.socket = options.socket;
    this.connId = options.connId;
    this.source = options.source;
    this.openedAt = options.openedAt;
    this.#clock = options.clock;
    this.#lastSeen = options.clock();
    this.#limits = options.limits;
    this.#batch = options.batch;
    this.#metrics = options.metrics;
    this.#log = options.log;
    this.#events = options.events;
    this.#budget = options.budget;
    this.#tokens = options.limits.rateLimit;
    this.#tokensAt = this.#lastSeen;
    this.#splitter = new LineSplitter({
      maxFrameBytes: options.limits.maxHelloBytes,
      onLine: (line) => this.#events.line(this, line),
      onOversize: () => this.#oversize(),
    });
    this.#protocol = options.protocol ?? ConnectionProtocol.Ndjson;
    this.#wire = options.wire?.(this);
  }

  /** Which protocol the device speaks (and over what), for the registry and the admin API. */
  get protocol(): ConnectionProtocol {
    return this.#wire?.protocol ?? this.#protocol;
  }

  /** The MQTT Will message due now that the connection ends, if the device left one. */
  get will(): PresenceWill | undefined {
    return this.#wire?.will;
  }

  /** How long the device may stay silent; undefined: the edge's 2 x heartbeat. */
  get idleMs(): number | undefined {
    return this.#idleMs;
  }

  /** The device's own keep-alive bound (MQTT), in place of the edge's idle timeout. */
  setIdleMs(idleMs: number): void {
    this.#idleMs = idleMs;
  }

  get state(): SessionState {
    return this.#state;
  }

  /** The device, once a hello named it. */
  get deviceId(): string | undefined {
    return this.#state.phase === "hello" ? undefined : this.#state.deviceId;
  }

  get isOpen(): boolean {
    return this.#state.phase === "open";
  }

  get isClosing(): boolean {
    return this.#state.phase === "closing";
  }

  get lastSeen(): number {
    return this.#lastSeen;
  }

  touch(now: number): void {
    this.#lastSeen = now;
  }

  /** Bytes from the socket; whatever goes wrong handling them ends this connection only. */
  receive(chunk: Buffer): void {
    try {
      if (this.#wire !== undefined) {
        this.#wire.receive(chunk);
        return;
      }
      if (this.#state.phase === "hello" && this.#splitter.pendingBytes === 0 && !mayStartObject(chunk)) {
        // Before hello only a JSON object can come: junk is cut at its first byte, not held.
        this.sendError({ code: "bad_frame", message: "expected a hello frame (a JSON object)" });
        this.close("bad_hello");
        return;
      }
      this.#splitter.push(chunk);
    } catch (error) {
      this.#fault(error);
    }
  }

  #fault(error: unknown): void {
    this.#metrics.connectionFaults.inc();
    this.#log.error({ err: error, connId: this.connId, deviceId: this.deviceId }, "connection failed; closing it");
    try {
      if (!this.isClosing)
        this.sendError({ code: "internal", message: "the edge could not handle this connection", retryable: true });
      this.close("internal");
    } catch (closeError) {
      this.#log.error({ err: closeError, connId: this.connId }, "closing a failed connection failed");
      this.socket.destroy();
    }
  }

  #oversize(): void {
    const hello = this.#state.phase === "hello";
    const limit = hello ? this.#limits.maxHelloBytes : this.#limits.maxFrameBytes;
    const message = `${hello ? "line before hello" : "frame"} longer than ${limit} bytes`;
    this.sendError({ code: "frame_too_large", message });
    this.close("frame_too_large");
  }

  /** The ownership epoch this connection was welcomed with; 0 when it never was. */
  get epoch(): number {
    return this.#epoch;
  }

  /** True when the device acknowledges every final answer. */
  get ackAnswers(): boolean {
    return this.#ackAnswers;
  }

  /** A hello naming the device was read: lines behind it may be as large as any request. */
  authenticating(deviceId: string, ackAnswers = false): void {
    this.#ackAnswers = ackAnswers;
    this.#state = { phase: "authenticating", deviceId };
    this.#splitter.setMaxFrameBytes(this.#limits.maxFrameBytes);
  }

  /** Welcome is about to be written: the session serves the device from here on. */
  opened(deviceId: string, epoch: number): void {
    this.#state = { phase: "open", deviceId, epoch };
    this.#epoch = epoch;
    this.#giveBackBudget();
  }

  #giveBackBudget(): void {
    if (!this.#holdsBudget) return;
    this.#holdsBudget = false;
    this.#budget.release(this.source);
  }

  /** Holds a line read while the hello is checked; reading pauses until welcome. */
  holdEarly(line: Buffer): void {
    this.#early ??= [];
    this.#early.push(Buffer.from(line));
    this.pause(Paused.Hello);
  }

  /** Hands the held lines over once; reading resumes. */
  takeEarly(): Buffer[] {
    const early = this.#early ?? [];
    this.#early = undefined;
    this.unpause(Paused.Hello);
    return early;
  }

  /** Counts a bad line; true when there were too many in a row. */
  badFrame(): boolean {
    this.#badFrames += 1;
    return this.#badFrames >= MAX_BAD_FRAMES;
  }

  goodFrame(): void {
    this.#badFrames = 0;
  }

  /** Takes one token of the rate bucket: 0 when allowed, else the milliseconds to wait. */
  takeToken(now: number): number {
    const rate = this.#limits.rateLimit;
    const tokens = Math.min(rate, this.#tokens + ((now - this.#tokensAt) * rate) / 1000);
    this.#tokensAt = now;
    if (tokens < 1) {
      this.#tokens = tokens;
      return Math.ceil(((1 - tokens) * 1000) / rate);
    }
    this.#tokens = tokens - 1;
    return 0;
  }

  /** One more request is open; reading pauses at the in-flight bound. */
  requestOpened(): void {
    this.#open += 1;
    if (this.#open >= this.#limits.maxInflight) this.pause(Paused.Inflight);
  }

  /** One of the open requests is finished (answered or failed). */
  requestFinished(): void {
    if (this.#open > 0) this.#open -= 1;
    if (this.#open < this.#limits.maxInflight) this.unpause(Paused.Inflight);
  }

  /**
   * Writes a final answer and reports once whether it was delivered: for a device that
   * acknowledges answers, when its ack comes; otherwise when the bytes reached the kernel. An
   * answer still in the edge's own buffer when the connection ends, or never acked, reports
   * false, so that it can be kept for the next connection.
   */
  writeAnswer(frame: Buffer, requestId: string | null, done: (delivered: boolean) => void): void {
    if (this.isClosing || this.socket.destroyed) {
      done(false);
      return;
    }
    if (this.#ackAnswers && requestId !== null) {
      this.#answers ??= new Map();
      // A repeat of an answer still unacked: the earlier copy counts as delivered with it.
      this.#answers.get(requestId)?.(true);
      this.#answers.set(requestId, once(done));
      this.#wire?.answerNext();
      this.write(frame);
      return;
    }
    const report = once(done);
    this.#wire?.answerNext();
    this.write(frame, (error) => report(error === undefined || error === null));
  }

  /** True the first time an outbox entry is offered to this connection, false after. */
  firstOutboxOffer(messageId: string): boolean {
    this.#outboxSent ??= new Set();
    if (this.#outboxSent.has(messageId)) return false;
    this.#outboxSent.add(messageId);
    return true;
  }

  /** The device acked the answer to `requestId`; true when one was waiting. */
  answerAcked(requestId: string): boolean {
    const done = this.#answers?.get(requestId);
    if (done === undefined) return false;
    this.#answers?.delete(requestId);
    done(true);
    return true;
  }

  pushWritten(messageId: string): void {
    this.#unacked ??= new Set();
    this.#unacked.add(messageId);
  }

  /** True when the id was a push written to this session and not acked before. */
  pushAcked(messageId: string): boolean {
    return this.#unacked?.delete(messageId) === true;
  }

  pause(why: Paused): void {
    if (this.#paused === 0) this.socket.pause();
    this.#paused |= why;
  }

  unpause(why: Paused): void {
    if ((this.#paused & why) === 0) return;
    this.#paused &= ~why;
    if (this.#paused === 0 && !this.isClosing) this.socket.resume();
  }

  /** Writes a frame; a socket that does not keep up with its frames is cut. */
  write(frame: string | Buffer, flushed?: (error?: Error | null) => void): void {
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) {
      flushed?.(new Error("connection closed"));
      return;
    }
    const data = this.#wire === undefined ? frame : this.#wire.encode(frame);
    if (data === undefined) {
      flushed?.(null);
      return;
    }
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      this.#batch.add(this);
    }
    if (flushed === undefined) socket.write(data);
    else socket.write(data, flushed);
    if (socket.writableLength > this.#limits.maxQueuedBytes) {
      this.#log.info({ connId: this.connId, deviceId: this.deviceId }, "device not reading; connection cut");
      this.close("slow_consumer", undefined, true);
    }
  }

  /** End of the turn: what was written goes out. */
  uncork(): void {
    this.#corked = false;
    if (!this.socket.destroyed) this.socket.uncork();
  }

  sendError(fields: ErrorFrameFields): void {
    this.#metrics.error(fields.code);
    this.write(encodeError(fields));
  }

  /**
   * Closes: an optional last frame, then a graceful end (or a reset with `destroy`). Safe to
   * call twice; the edge hears of it through `closed` at once, so replies in flight for this
   * connection take the forward/park path.
   */
  close(reason: string, lastFrame?: string, destroy = false): void {
    const before = this.#state;
    if (before.phase === "closing") return;
    this.#state = { phase: "closing", deviceId: this.deviceId, wasOpen: before.phase === "open", at: this.#clock() };
    this.#giveBackBudget();
    this.#splitter.stop();
    const socket = this.socket;
    const last = lastFrame === undefined || this.#wire === undefined ? lastFrame : this.#wire.encode(lastFrame);
    this.#wire?.stop();
    if (last !== undefined && !socket.destroyed) {
      socket.write(last);
      this.#metrics.frameOut("bye");
    }
    if (destroy) socket.destroy();
    else if (!socket.destroyed) {
      socket.end();
      // Keep reading (and dropping) so that unread input does not turn the close into a reset.
      if (this.#paused !== 0) socket.resume();
    }
    this.#paused = 0;
    const answers = this.#answers;
    this.#answers = undefined;
    for (const done of answers?.values() ?? []) done(false);
    this.#metrics.close(reason);
    this.#events.closed(this, reason, before);
  }

  /** The socket closed (either side). */
  socketClosed(): void {
    if (!this.isClosing) this.close("disconnected");
    this.#events.gone(this);
  }
}

/** Bad frames in a row after which the edge gives up on a connection. */
const MAX_BAD_FRAMES = 10;

/** Wraps a callback so that only its first call counts. */
function once(done: (delivered: boolean) => void): (delivered: boolean) => void {
  let called = false;
  return (delivered) => {
    if (called) return;
    called = true;
    done(delivered);
  };
}
