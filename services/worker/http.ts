import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../../shared/log/index.ts";
import type { Worker } from "./worker.ts";

export interface HealthServer {
  /** The port actually listened on (useful with port 0). */
  readonly port: number;
  /** Stops listening; safe to call twice. */
  close(): Promise<void>;
}

export interface HealthServerOptions {
  readonly worker: Worker;
  readonly port: number;
  readonly host?: string;
  readonly logger: Logger;
}

/**
 * Serves `/healthz` (the process is alive), `/readyz` (the worker runs and the broker answers)
 * and `/metrics` (Prometheus text) for the orchestrator and the scraper.
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const { worker, logger } = options;
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    const reply = (status: number, contentType: string, body: string): void => {
      response.writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
      response.end(body);
    };
    if (request.method !== "GET" && request.method !== "HEAD") {
      reply(405, "application/json", JSON.stringify({ error: "method_not_allowed" }));
      return;
    }
    const serve = async (): Promise<void> => {
      switch (path) {
        case "/healthz":
          reply(200, "application/json", JSON.stringify({ status: "ok", worker: worker.status }));
          return;
        case "/readyz": {
          const ready = await worker.ready();
          reply(ready ? 200 : 503, "application/json", JSON.stringify({ ready, worker: worker.status }));
          return;
        }
        case "/metrics":
          reply(200, worker.metrics.registry.contentType, await worker.metrics.registry.metrics());
          return;
        default:
          reply(404, "application/json", JSON.stringify({ error: "not_found" }));
      }
    };
    serve().catch((error: unknown) => {
      logger.error({ err: error, path }, "health endpoint failed");
      if (!response.headersSent) reply(500, "application/json", JSON.stringify({ error: "internal" }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "0.0.0.0", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
