import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../../shared/log/index.ts";
import type { Edge } from "./edge.ts";

export interface EdgeHttpOptions {
  readonly edge: Edge;
  readonly port: number;
  readonly host?: string;
  readonly logger: Logger;
}

/**
 * The edge's operations port: `/healthz` (the process serves), `/readyz` (it takes new
 * devices: running with its slot lease; fails while draining so the load balancer stops
 * sending connections) and `/metrics` (Prometheus text).
 */
export class EdgeHttp {
  readonly #server: Server;
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
        edge.metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, { "content-type": edge.metrics.registry.contentType });
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
    const server = this.#server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#options.port, this.#options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return server.address() as AddressInfo;
  }

  /** Safe to call twice. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
    return this.#closed;
  }
}
