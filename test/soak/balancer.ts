/**
 * A tiny TCP load balancer in front of the edges, as the NLB is in AWS: each new connection goes
 * to the next live edge (round robin, skipping refused ones), bytes are piped both ways with
 * backpressure, and when either side closes so does the other. It also reads the edge-to-device
 * byte stream to count answers and pushes per id, which is how the suite sees an answer that
 * arrived twice (the SDK drops repeats before the application could count them).
 */
import { connect, createServer, type Server, type Socket } from "node:net";

/** Error codes that are not a final answer to a request. */
const NOT_FINAL = new Set(["unavailable", "rate_limited", "duplicate_id"]);
const HEAD_BYTES = 160;

export interface BalancerCounts {
  readonly connections: number;
  /** Connections that found no edge to go to. */
  readonly refused: number;
  /** Final answers (res or error) per request id, as written by the edges. */
  readonly answers: ReadonlyMap<string, number>;
  /** Pushes per message id. */
  readonly pushes: ReadonlyMap<string, number>;
}

export class Balancer {
  readonly #server: Server;
  readonly #backends: () => readonly number[];
  readonly #pairs = new Set<Socket>();
  readonly #answers = new Map<string, number>();
  readonly #pushes = new Map<string, number>();
  #next = 0;
  #connections = 0;
  #refused = 0;
  #port = 0;

  /** `backends` is asked on every connection, so edges can come and go. */
  constructor(backends: () => readonly number[]) {
    this.#backends = backends;
    this.#server = createServer((client) => this.#accept(client));
  }

  get port(): number {
    return this.#port;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen({ host: "127.0.0.1", port: 0, backlog: 8192 }, resolve);
    });
    const address = this.#server.address();
    if (address === null || typeof address === "string") throw new Error("balancer has no port");
    this.#port = address.port;
    return this.#port;
  }

  counts(): BalancerCounts {
    return {
      connections: this.#connections,
      refused: this.#refused,
      answers: this.#answers,
      pushes: this.#pushes,
    };
  }

  /** Answers (and pushes) seen more than once. */
  duplicates(): { answers: number; pushes: number } {
    let answers = 0;
    let pushes = 0;
    for (const count of this.#answers.values()) answers += count - 1;
    for (const count of this.#pushes.values()) pushes += count - 1;
    return { answers, pushes };
  }

  #accept(client: Socket): void {
    this.#connections += 1;
    client.setNoDelay(true);
    client.on("error", () => client.destroy());
    this.#pairs.add(client);
    client.once("close", () => this.#pairs.delete(client));
    client.pause();
    this.#dial(client, 0);
  }

  #dial(client: Socket, tries: number): void {
    const ports = this.#backends();
    if (ports.length === 0 || tries >= Math.max(3, ports.length * 2) || client.destroyed) {
      this.#refused += 1;
      client.destroy();
      return;
    }
    const port = ports[this.#next++ % ports.length] as number;
    const edge = connect({ host: "127.0.0.1", port });
    edge.setNoDelay(true);
    let connected = false;
    edge.once("connect", () => {
      connected = true;
      if (client.destroyed) {
        edge.destroy();
        return;
      }
      this.#pairs.add(edge);
      edge.once("close", () => this.#pairs.delete(edge));
      let head = "";
      edge.on("data", (chunk: Buffer) => {
        head = this.#scan(head, chunk);
      });
      edge.pipe(client);
      client.pipe(edge);
      client.resume();
      edge.once("close", () => client.destroy());
      client.once("close", () => edge.destroy());
    });
    edge.on("error", () => {
      if (!connected) this.#dial(client, tries + 1);
      else edge.destroy();
    });
  }

  /** Collects the first bytes of each line and counts ids of answers and pushes. */
  #scan(head: string, chunk: Buffer): string {
    let start = 0;
    let current = head;
    for (;;) {
      const newline = chunk.indexOf(10, start);
      const end = newline === -1 ? chunk.length : newline;
      if (current.length < HEAD_BYTES) {
        current += chunk.toString("latin1", start, Math.min(end, start + HEAD_BYTES - current.length));
      }
      if (newline === -1) return current;
      this.#line(current);
      current = "";
      start = newline + 1;
    }
  }

  #line(head: string): void {
    let map: Map<string, number> | undefined;
    let idStart = -1;
    if (head.startsWith('{"t":"res","id":"')) {
      map = this.#answers;
      idStart = 17;
    } else if (head.startsWith('{"t":"push","id":"')) {
      map = this.#pushes;
      idStart = 18;
    } else if (head.startsWith('{"t":"error","id":"')) {
      idStart = 19;
      const code = /"code":"([^"]+)"/.exec(head)?.[1];
      if (code === undefined || NOT_FINAL.has(code)) return;
      map = this.#answers;
    }
    if (map === undefined) return;
    const idEnd = head.indexOf('"', idStart);
    if (idEnd === -1) return;
    const id = head.slice(idStart, idEnd);
    map.set(id, (map.get(id) ?? 0) + 1);
  }

  /** Stops listening and cuts every connection. Safe to call twice. */
  async close(): Promise<void> {
    for (const socket of this.#pairs) socket.destroy();
    this.#pairs.clear();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
