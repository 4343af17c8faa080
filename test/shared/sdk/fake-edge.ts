/** A tiny scriptable edge over real TCP, for SDK and CLI tests. Not the product's edge. */

import type { AddressInfo } from "node:net";
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import {
  type ClientFrame,
  encodeFrame,
  LineSplitter,
  parseClientFrame,
  type ServerFrame,
} from "../../../shared/protocol/index.ts";

export interface FakeConnection {
  readonly index: number;
  readonly socket: Socket;
  readonly frames: ClientFrame[];
  send(frame: ServerFrame): void;
  sendRaw(text: string): void;
  close(): void;
}

export type FrameHandler = (conn: FakeConnection, frame: ClientFrame) => void;

export interface FakeEdgeOptions {
  /** Replaces the default behaviour (welcome, ack + echo res, pong, close on bye). */
  readonly onFrame?: FrameHandler;
  readonly heartbeatMs?: number;
  readonly maxFrameBytes?: number;
  /** Serve TLS with this key and certificate (PEM). */
  readonly tls?: { readonly key: string; readonly cert: string };
}

/** The default behaviour: welcome on hello, ack and echo the body on req, pong on ping. */
export function defaultBehaviour(heartbeatMs = 30_000, maxFrameBytes = 65_536): FrameHandler {
  return (conn, frame) => {
    switch (frame.t) {
      case "hello":
        conn.send({ t: "welcome", connId: `c${conn.index}`, edgeId: "fake", heartbeatMs, maxFrameBytes });
        return;
      case "req":
        conn.send({ t: "ack", id: frame.id });
        conn.sendRaw(`{"t":"res","id":${JSON.stringify(frame.id)},"body":${frame.bodyJson}}\n`);
        return;
      case "ping":
        conn.send({ t: "pong" });
        return;
      case "bye":
        conn.close();
        return;
      default:
        return;
    }
  };
}

export class FakeEdge {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly connections: FakeConnection[] = [];
  onFrame: FrameHandler;
  #connectionListeners: Array<(conn: FakeConnection) => void> = [];

  constructor(options: FakeEdgeOptions = {}) {
    this.onFrame = options.onFrame ?? defaultBehaviour(options.heartbeatMs, options.maxFrameBytes);
    this.#server =
      options.tls === undefined
        ? createServer((socket) => this.#accept(socket))
        : createTlsServer({ key: options.tls.key, cert: options.tls.cert }, (socket) => this.#accept(socket));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    return (this.#server.address() as AddressInfo).port;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Resolves with the next connection (or the n-th one, counting from 0). */
  nextConnection(index = this.connections.length): Promise<FakeConnection> {
    const existing = this.connections[index];
    if (existing !== undefined) return Promise.resolve(existing);
    return new Promise((resolve) => {
      const listener = (conn: FakeConnection): void => {
        if (conn.index !== index) return;
        this.#connectionListeners = this.#connectionListeners.filter((l) => l !== listener);
        resolve(conn);
      };
      this.#connectionListeners.push(listener);
    });
  }

  /** All frames of one type received on any connection. */
  received<T extends ClientFrame["t"]>(t: T): Array<Extract<ClientFrame, { t: T }>> {
    return this.connections.flatMap((c) => c.frames.filter((f): f is Extract<ClientFrame, { t: T }> => f.t === t));
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("close", () => this.#sockets.delete(socket));
    socket.on("error", () => {});
    const conn: FakeConnection = {
      index: this.connections.length,
      socket,
      frames: [],
      send: (frame) => {
        if (!socket.destroyed) socket.write(encodeFrame(frame));
      },
      sendRaw: (text) => {
        if (!socket.destroyed) socket.write(text);
      },
      close: () => socket.end(),
    };
    this.connections.push(conn);
    const splitter = new LineSplitter({
      maxFrameBytes: 1 << 20,
      onLine: (line) => {
        const parsed = parseClientFrame(line);
        if (!parsed.ok) {
          conn.send({ t: "error", code: parsed.code, message: parsed.message });
          return;
        }
        conn.frames.push(parsed.frame);
        this.onFrame(conn, parsed.frame);
      },
      onOversize: () => socket.destroy(),
    });
    socket.on("data", (chunk: Buffer) => splitter.push(chunk));
    for (const listener of this.#connectionListeners) listener(conn);
  }
}
