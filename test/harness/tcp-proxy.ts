/**
 * A TCP proxy to put between one process and a server it talks to (an edge and DynamoDB Local),
 * to cut or slow that link while the test runs. Modes, switchable at any time:
 *
 * - `pass`: bytes go through as they come.
 * - `delay`: every chunk, in both directions, goes out `ms` after it came in; order is kept.
 * - `blackhole`: sockets stay open, nothing goes through. What arrives meanwhile is held, as
 *   TCP would retransmit it, and goes out when the mode becomes `pass` or `delay` again.
 * - `refuse`: every open connection is closed, and new ones are closed as soon as accepted.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

export type ProxyMode =
  | { readonly kind: "pass" }
  | {
      readonly kind: "delay";
      readonly ms: number;
      /** `answers`: only what the target sends back is delayed (requests reach it at once). */
      readonly only?: "answers";
    }
  | { readonly kind: "blackhole" }
  | { readonly kind: "refuse" };

export interface TcpProxyOptions {
  readonly targetHost: string;
  readonly targetPort: number;
  /** Port to listen on, 127.0.0.1; default: one the OS picks. */
  readonly port?: number;
  readonly mode?: ProxyMode;
}

export interface TcpProxyCounts {
  /** Connections accepted and forwarded. */
  readonly accepted: number;
  /** Connections closed at once because the mode was `refuse`. */
  readonly refused: number;
  /** Connections open now. */
  readonly open: number;
  /** Chunks held (blackhole or delay) and not yet forwarded. */
  readonly held: number;
}

interface Held {
  readonly chunk: Buffer;
  /** performance.now() at which it may go out. */
  readonly due: number;
}

/** One direction of one proxied connection: a FIFO of chunks from `from` to `to`. */
class Lane {
  readonly #proxy: TcpProxy;
  readonly #to: Socket;
  /** True for the lane that carries the target's answers back to the client. */
  readonly #answers: boolean;
  readonly #queue: Held[] = [];
  #timer: NodeJS.Timeout | undefined;
  #ended = false;

  constructor(proxy: TcpProxy, from: Socket, to: Socket, answers: boolean) {
    this.#proxy = proxy;
    this.#to = to;
    this.#answers = answers;
    from.on("data", (chunk: Buffer) => {
      const mode = proxy.mode;
      const delayed = mode.kind === "delay" && (mode.only === undefined || this.#answers);
      const due = performance.now() + (delayed && mode.kind === "delay" ? mode.ms : 0);
      this.#queue.push({ chunk, due });
      this.pump();
    });
    from.on("end", () => {
      this.#ended = true;
      this.pump();
    });
  }

  get held(): number {
    return this.#queue.length;
  }

  /** Sends every chunk that is due, in order; schedules itself for the next one. */
  pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#to.destroyed) return;
    const mode = this.#proxy.mode;
    if (mode.kind === "blackhole" || mode.kind === "refuse") return;
    const now = performance.now();
    while (this.#queue.length > 0) {
      const head = this.#queue[0] as Held;
      // Chunks held under an earlier mode go out at once in `pass`; `delay` keeps their due time.
      if (mode.kind === "delay" && head.due > now) {
        this.#timer = setTimeout(() => this.pump(), Math.ceil(head.due - now));
        return;
      }
      this.#queue.shift();
      this.#to.write(head.chunk);
    }
    if (this.#ended && !this.#to.writableEnded) this.#to.end();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
  }
}

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly lanes: readonly [Lane, Lane];
}

export class TcpProxy {
  readonly #server: Server;
  readonly #options: TcpProxyOptions;
  readonly #pairs = new Set<Pair>();
  #mode: ProxyMode;
  #accepted = 0;
  #refused = 0;
  #port = 0;
  #closed: Promise<void> | undefined;

  private constructor(options: TcpProxyOptions) {
    this.#options = options;
    this.#mode = options.mode ?? { kind: "pass" };
    this.#server = createServer({ noDelay: true, allowHalfOpen: true }, (client) => this.#accept(client));
  }

  /** Starts listening on 127.0.0.1. */
  static async start(options: TcpProxyOptions): Promise<TcpProxy> {
    const proxy = new TcpProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once("error", reject);
      proxy.#server.listen({ host: "127.0.0.1", port: options.port ?? 0 }, () => {
        proxy.#server.off("error", reject);
        resolve();
      });
    });
    const address = proxy.#server.address();
    proxy.#port = typeof address === "object" && address !== null ? address.port : 0;
    return proxy;
  }

  /** A proxy in front of an `http://host:port` endpoint (DynamoDB Local). */
  static forEndpoint(endpoint: string, mode?: ProxyMode): Promise<TcpProxy> {
    const url = new URL(endpoint);
    return TcpProxy.start({
      targetHost: url.hostname,
      targetPort: Number(url.port || (url.protocol === "https:" ? 443 : 80)),
      ...(mode === undefined ? {} : { mode }),
    });
  }

  get port(): number {
    return this.#port;
  }

  /** `http://127.0.0.1:<port>`, to hand a process as its endpoint. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  setMode(mode: ProxyMode): void {
    if (mode.kind === "delay" && !(mode.ms >= 0)) throw new RangeError("delay needs ms >= 0");
    this.#mode = mode;
    if (mode.kind === "refuse") {
      for (const pair of [...this.#pairs]) this.#drop(pair);
      return;
    }
    for (const pair of this.#pairs) for (const lane of pair.lanes) lane.pump();
  }

  pass(): void {
    this.setMode({ kind: "pass" });
  }

  delay(ms: number, only?: "answers"): void {
    this.setMode(only === undefined ? { kind: "delay", ms } : { kind: "delay", ms, only });
  }

  blackhole(): void {
    this.setMode({ kind: "blackhole" });
  }

  refuse(): void {
    this.setMode({ kind: "refuse" });
  }

  counts(): TcpProxyCounts {
    let held = 0;
    for (const pair of this.#pairs) held += pair.lanes[0].held + pair.lanes[1].held;
    return { accepted: this.#accepted, refused: this.#refused, open: this.#pairs.size, held };
  }

  /** Stops listening and closes every connection. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      for (const pair of [...this.#pairs]) this.#drop(pair);
    });
    return this.#closed;
  }

  #accept(client: Socket): void {
    if (this.#mode.kind === "refuse" || this.#closed !== undefined) {
      this.#refused += 1;
      client.on("error", () => {});
      client.destroy();
      return;
    }
    this.#accepted += 1;
    const upstream = tcpConnect({
      host: this.#options.targetHost,
      port: this.#options.targetPort,
      noDelay: true,
      allowHalfOpen: true,
    });
    const pair: Pair = {
      client,
      upstream,
      lanes: [new Lane(this, client, upstream, false), new Lane(this, upstream, client, true)],
    };
    this.#pairs.add(pair);
    // Half-closes pass through (the lanes forward `end`); an error or a full close of either
    // side ends the pair.
    const drop = (): void => this.#drop(pair);
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
  }

  #drop(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    for (const lane of pair.lanes) lane.stop();
    pair.client.destroy();
    pair.upstream.destroy();
  }
}
