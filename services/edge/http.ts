import { createServer, type Server } from "node:http";
import { type AddressInfo, createServer as createNetServer, type Server as NetServer } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "../../shared/log/index.ts";
import type { Edge } from "./edge.ts";
import { takeProxyHeader } from "./proxy-protocol.ts";

export interface EdgeHttpOptions {
  readonly edge: Edge;
  readonly port: number;
  readonly host?: string;
  readonly logger: Logger;
  /**
   * Behind a load balancer with PROXY protocol on, its health checks start with a PROXY header
   * too; the header is then taken off when present (a local probe sends none).
   */
  readonly proxyProtocol?: boolean;
  /** What `/metrics` serves; the edge's own registry by default (the embedded mode's holds more). */
  readonly metrics?: Registry;
}

/**
 * The edge's operations port: `/healthz` (the process serves), `/readyz` (it takes new
 * devices: running with its slot lease; fails while draining so the load balancer stops
 * sending connections) and `/metrics` (Prometheus text).
 */
export class EdgeHttp {
  readonly #server: Server;
  #front: NetServer | undefined;
  readonly #options: EdgeHttpOptions;
  #closed: Promise<void> | undefined;

  constructor(options: EdgeHttpOptions) {
    this.#options = options;
    const { edge, logger } = options;
    this.#server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD" }).end();
        return;
      }
      if (path === "/healthz") {
        const healthy = edge.status !== "failed";
        res.writeHead(healthy ? 200 : 503, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: healthy ? "ok" : "failed", edgeId: edge.edgeId }));
        return;
      }
      if (path === "/readyz") {
        const ready = edge.ready;
        res.writeHead(ready ? 200 : 503, { "content-type": "application/json" });
        res.end(JSON.stringify({ ready, status: edge.status, slot: edge.slot, connections: edge.connectionCount }));
        return;
      }
      if (path === "/metrics") {
        const metrics = options.metrics ?? edge.metrics.registry;
        metrics.metrics().then(
          (text) => {
            res.writeHead(200, { "content-type": metrics.contentType });
            res.end(text);
          },
          (error: unknown) => {
            logger.warn({ err: error }, "metrics rendering failed");
            res.writeHead(500).end();
          },
        );
        return;
      }
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
    });
    this.#server.on("error", (error) => logger.error({ err: error }, "edge http server error"));
  }

  async listen(): Promise<AddressInfo> {
    const server = this.#options.proxyProtocol === true ? this.#proxyFront() : this.#server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#options.port, this.#options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  /** A plain listener that takes an optional PROXY header off, then hands the socket to HTTP. */
  #proxyFront(): NetServer {
    const front = createNetServer((socket) => {
      socket.on("error", () => socket.destroy());
      socket.setTimeout(5000, () => socket.destroy());
      takeProxyHeader(socket, false, (taken) => {
        if (!taken.ok) {
          socket.destroy();
          return;
        }
        socket.setTimeout(0);
        if (taken.rest.length > 0) socket.unshift(taken.rest);
        this.#server.emit("connection", socket);
      });
    });
    this.#front = front;
    return front;
  }

  /** Safe to call twice. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      const front = this.#front;
      if (front === undefined) this.#server.close(() => resolve());
      else {
        front.close(() => resolve());
        this.#server.close();
      }
      this.#server.closeAllConnections();
    });
    return this.#closed;
  }
}
