/**
 * A device that speaks the NDJSON protocol over raw sockets and never resends: what a device
 * on another platform sees of the delivery guarantees, with no SDK retry to hide a loss.
 *
 * Every frame received is recorded with the time and the connection it came on. Pushes are
 * acknowledged; final answers (`res`, `error` with an `id`) too when the hello asked for
 * answer acknowledgements (protocol 1.1 `ackAnswers`). `reconnect()` opens a new connection
 * with the same deviceId and sends nothing but the hello: requests still open stay unsent.
 */
import { type Socket, connect as tcpConnect } from "node:net";

export type Frame = Record<string, unknown> & { readonly t: string };

export interface ReceivedFrame {
  /** Date.now() when the frame was parsed. */
  readonly at: number;
  /** Index of the connection in `device.connections`. */
  readonly conn: number;
  readonly frame: Frame;
}

export interface SentRequest {
  readonly id: string;
  readonly type: string;
  readonly body: unknown;
  readonly at: number;
  readonly conn: number;
}

export interface RawDeviceOptions {
  readonly deviceId: string;
  /** The hello's token (absent for auth mode `none`). */
  readonly token?: string;
  /** Ask for answer acknowledgements in the hello and acknowledge every final answer. */
  readonly ackAnswers?: boolean;
  /** Acknowledge pushes (default true). */
  readonly ackPushes?: boolean;
  readonly host?: string;
}

export interface ConnectOptions {
  /** Send the hello (default true). */
  readonly hello?: boolean;
  /** Wait for `welcome` (or a refusal) this long; default 10 s. 0: do not wait. */
  readonly timeoutMs?: number;
}

/** One TCP connection of a device. */
export class RawConnection {
  readonly index: number;
  readonly port: number;
  readonly socket: Socket;
  readonly openedAt: number;
  closedAt: number | undefined;
  /** The `welcome` frame, once received. */
  welcome: Frame | undefined;
  /** The frame that refused the hello (`error`), if any. */
  refusal: Frame | undefined;
  readonly frames: ReceivedFrame[] = [];
  /** Lines that were not JSON objects with a string `t`. */
  readonly invalid: string[] = [];
  /** Ack frames this device sent on it, by id. */
  readonly acksSent: string[] = [];
  readonly closed: Promise<void>;
  #buffer = "";

  constructor(index: number, port: number, socket: Socket) {
    this.index = index;
    this.port = port;
    this.socket = socket;
    this.openedAt = Date.now();
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.closedAt = Date.now();
        resolve();
      }),
    );
  }

  get isOpen(): boolean {
    return this.closedAt === undefined;
  }

  get connId(): string | undefined {
    return typeof this.welcome?.connId === "string" ? this.welcome.connId : undefined;
  }

  get edgeId(): string | undefined {
    return typeof this.welcome?.edgeId === "string" ? this.welcome.edgeId : undefined;
  }

  /** Lines complete so far; the remainder waits for the next chunk. */
  takeLines(chunk: string): string[] {
    this.#buffer += chunk;
    const lines = this.#buffer.split("\n");
    this.#buffer = lines.pop() ?? "";
    return lines.map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line));
  }

  write(frame: object): void {
    if (!this.socket.destroyed) this.socket.write(`${JSON.stringify(frame)}\n`);
  }

  /** Stops reading: what the edge writes stays in socket buffers (a slow reader). */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Closes at once, discarding what was not read yet (RST when unread bytes remain). */
  cut(): void {
    this.socket.resetAndDestroy();
  }

  /** Closes with a FIN. */
  end(): void {
    this.socket.end();
  }
}

function isFinalAnswer(frame: Frame): boolean {
  return (frame.t === "res" || frame.t === "error") && typeof frame.id === "string";
}

export class RawDevice {
  readonly deviceId: string;
  readonly options: RawDeviceOptions;
  readonly connections: RawConnection[] = [];
  /** Every frame on every connection, in arrival order. */
  readonly frames: ReceivedFrame[] = [];
  readonly sent = new Map<string, SentRequest>();
  /** Ids sent again with `resend()` (reporting only). */
  readonly resent = new Set<string>();
  /** Called for every frame after it was recorded (and acknowledged). */
  onFrame: ((received: ReceivedFrame, connection: RawConnection) => void) | undefined;
  /** Called when a connection closes (whoever closed it). */
  onClose: ((connection: RawConnection) => void) | undefined;
  #waiters: Array<() => void> = [];

  constructor(options: RawDeviceOptions) {
    this.deviceId = options.deviceId;
    this.options = options;
  }

  /** The newest connection. */
  get current(): RawConnection | undefined {
    return this.connections.at(-1);
  }

  /**
   * Opens a new connection to `port` and says hello; resolves once `welcome` (or the refusal)
   * came, or at once with `timeoutMs: 0`. Never resends anything.
   */
  async connect(port: number, options: ConnectOptions = {}): Promise<RawConnection> {
    const socket = tcpConnect({ host: this.options.host ?? "127.0.0.1", port, noDelay: true });
    const connection = new RawConnection(this.connections.length, port, socket);
    this.connections.push(connection);
    socket.setEncoding("utf8");
    socket.on("error", () => {});
    socket.on("data", (chunk: string) => this.#read(connection, chunk));
    void connection.closed.then(() => {
      this.#notify();
      this.onClose?.(connection);
    });
    await new Promise<void>((resolve, reject) => {
      const failed = (error: Error): void => reject(error);
      socket.once("error", failed);
      socket.once("connect", () => {
        socket.off("error", failed);
        resolve();
      });
    });
    if (options.hello !== false) this.hello(connection);
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (options.hello !== false && timeoutMs > 0) {
      await this.waitFor(
        () => connection.welcome !== undefined || connection.refusal !== undefined || !connection.isOpen,
        {
          timeoutMs,
          what: `welcome of ${this.deviceId} on connection ${connection.index}`,
        },
      );
    }
    return connection;
  }

  /** A new connection with the same deviceId; open requests are not sent again. */
  reconnect(port: number, options: ConnectOptions = {}): Promise<RawConnection> {
    return this.connect(port, options);
  }

  hello(connection: RawConnection): void {
    connection.write({
      t: "hello",
      v: 1,
      deviceId: this.deviceId,
      ...(this.options.token === undefined ? {} : { token: this.options.token }),
      ...(this.options.ackAnswers === true ? { ackAnswers: true } : {}),
    });
  }

  /** Sends a request on the newest connection (or `connection`); `id` must be new. */
  request(id: string, type: string, body: unknown, connection = this.current): void {
    if (connection === undefined) throw new Error(`${this.deviceId} has no connection`);
    if (this.sent.has(id)) throw new Error(`${this.deviceId} already sent ${id}: a raw device never resends`);
    this.sent.set(id, { id, type, body, at: Date.now(), conn: connection.index });
    connection.write({ t: "req", id, type, body });
  }

  /**
   * Sends an earlier request again, same id, type and body, on the newest connection. Not part
   * of any guarantee measure: only for reporting, apart, what a resend would have recovered.
   */
  resend(id: string, connection = this.current): void {
    const request = this.sent.get(id);
    if (request === undefined) throw new Error(`${this.deviceId} never sent ${id}`);
    if (connection === undefined) throw new Error(`${this.deviceId} has no connection`);
    this.resent.add(id);
    connection.write({ t: "req", id, type: request.type, body: request.body });
  }

  /** Open connections (not yet closed by either side). */
  openConnections(): RawConnection[] {
    return this.connections.filter((connection) => connection.isOpen);
  }

  framesOf(t: string, connection?: RawConnection): ReceivedFrame[] {
    return this.frames.filter(
      (received) => received.frame.t === t && (connection === undefined || received.conn === connection.index),
    );
  }

  /** Ids of requests this device sent that got an `ack`. */
  ackedIds(): Set<string> {
    const ids = new Set<string>();
    for (const received of this.frames) {
      const id = received.frame.id;
      if (received.frame.t === "ack" && typeof id === "string" && this.sent.has(id)) ids.add(id);
    }
    return ids;
  }

  /** Ids of requests answered (`res` or `error` with the id) on any connection. */
  answeredIds(): Set<string> {
    const ids = new Set<string>();
    for (const received of this.frames) {
      const id = received.frame.id;
      if (isFinalAnswer(received.frame) && typeof id === "string" && this.sent.has(id)) ids.add(id);
    }
    return ids;
  }

  /** Requests answered with `error`, by code (`unavailable`, `rate_limited` included). */
  errorCodes(): Map<string, string> {
    const codes = new Map<string, string>();
    for (const received of this.frames) {
      const { id, code } = received.frame;
      if (received.frame.t === "error" && typeof id === "string") codes.set(id, String(code));
    }
    return codes;
  }

  /** Acked, never answered on any connection: the losses the guarantee forbids. */
  lostAcked(): string[] {
    const answered = this.answeredIds();
    return [...this.ackedIds()].filter((id) => !answered.has(id));
  }

  /** Ids of pushes received (on any connection). */
  pushIds(): Set<string> {
    return new Set(
      this.framesOf("push")
        .map((received) => received.frame.id)
        .filter((id): id is string => typeof id === "string"),
    );
  }

  /** The first answer frame for `id`, if any. */
  answerOf(id: string): ReceivedFrame | undefined {
    return this.frames.find((received) => isFinalAnswer(received.frame) && received.frame.id === id);
  }

  /** Resolves once `check()` holds; rejects after the timeout. Re-checked on every frame and close. */
  async waitFor(check: () => boolean, options: { timeoutMs?: number; what?: string } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${options.what ?? "condition"} not reached within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 250));
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.push(done);
      });
    }
  }

  /** Destroys every connection. */
  close(): void {
    for (const connection of this.connections) connection.socket.destroy();
  }

  #read(connection: RawConnection, chunk: string): void {
    for (const line of connection.takeLines(chunk)) {
      if (line === "") continue;
      let frame: Frame;
      try {
        const value = JSON.parse(line) as unknown;
        if (typeof value !== "object" || value === null || typeof (value as Frame).t !== "string") {
          connection.invalid.push(line);
          continue;
        }
        frame = value as Frame;
      } catch {
        connection.invalid.push(line);
        continue;
      }
      const received: ReceivedFrame = { at: Date.now(), conn: connection.index, frame };
      connection.frames.push(received);
      this.frames.push(received);
      if (frame.t === "welcome" && connection.welcome === undefined) connection.welcome = frame;
      if (frame.t === "error" && connection.welcome === undefined && frame.id === undefined) connection.refusal = frame;
      const id = frame.id;
      const ackIt =
        typeof id === "string" &&
        ((frame.t === "push" && this.options.ackPushes !== false) ||
          (this.options.ackAnswers === true && isFinalAnswer(frame)));
      if (ackIt) {
        connection.write({ t: "ack", id });
        connection.acksSent.push(id);
      }
      this.onFrame?.(received, connection);
    }
    this.#notify();
  }

  #notify(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }
}
