/**
 * The embedded mode, wired as services/embedded/main.ts wires it (in-memory broker and registry,
 * edge, worker with the example handlers, admin API with the console), on free ports and with
 * one handler more: `flaky`, which throws while `failing` is set, so that a request can be
 * dead-lettered on purpose and answered once it is replayed.
 */
import type { AddressInfo } from "node:net";
import { buildApp } from "../../services/admin/app.ts";
import { readAdminConfig } from "../../services/admin/config.ts";
import { readEdgeConfig } from "../../services/edge/config.ts";
import { createEdge } from "../../services/edge/edge.ts";
import { readWorkerConfig } from "../../services/worker/config.ts";
import { registerEcho } from "../../services/worker/examples/echo.ts";
import { createWorker } from "../../services/worker/worker.ts";
import { createAuthenticator } from "../../shared/auth/index.ts";
import { MemoryBroker, tetherTopics } from "../../shared/broker/index.ts";
import type { Producer } from "../../shared/broker/types.ts";
import { silentLogger } from "../../shared/log/index.ts";
import { MemoryRegistry } from "../../shared/registry/index.ts";

export interface EmbeddedTether {
  /** The console's base, e.g. http://127.0.0.1:41234 */
  readonly adminUrl: string;
  readonly adminToken: string;
  readonly devicePort: number;
  readonly edgeId: string;
  readonly registry: MemoryRegistry;
  readonly producer: Producer;
  /** While true, `flaky` requests fail (and, with no retries, are dead-lettered at once). */
  flaky: { failing: boolean };
  close(): Promise<void>;
}

export async function startEmbedded(): Promise<EmbeddedTether> {
  // The embedded mode's own defaults (services/embedded/main.ts), which importing would start.
  const env = {
    TETHER_ENV: "development",
    TETHER_AUTH_MODE: "none",
    TETHER_BROKER: "memory",
    TETHER_REGISTRY: "memory",
    TETHER_ADMIN_PORT: "0",
    TETHER_DEVICE_PORT: "0",
    TETHER_EDGE_HTTP_PORT: "0",
    TETHER_MQTT_PORT: "0",
    TETHER_WS_PORT: "0",
    TETHER_ADMIN_TOKEN: "console-browser-token",
    // A dead letter on the first failure, and a replay that runs the handler again.
    TETHER_HANDLER_RETRIES: "0",
    TETHER_DEDUPE_SIZE: "0",
  };
  const edgeConfig = readEdgeConfig(env);
  const workerConfig = readWorkerConfig(env);
  const adminConfig = readAdminConfig(env);
  const logger = silentLogger();
  const broker = new MemoryBroker({ logger });
  const registry = new MemoryRegistry();
  const admin = broker.admin();
  await admin.ensureTopics(
    tetherTopics({
      names: edgeConfig.common.names,
      maxEdges: edgeConfig.common.maxEdges,
      workPartitions: edgeConfig.common.workPartitions,
    }),
  );
  const flaky = { failing: false };
  const worker = createWorker({ config: workerConfig, logger, broker, registry });
  registerEcho(worker).handle("flaky", (request) => {
    if (flaky.failing) throw new Error("flaky handler failed on purpose");
    return { handled: request.body };
  });
  await worker.start();
  const edge = createEdge({
    config: edgeConfig,
    logger,
    broker,
    registry,
    authenticator: createAuthenticator(edgeConfig.auth),
  });
  const producer = broker.producer();
  await producer.connect();
  const app = await buildApp({
    registry,
    producer,
    admin,
    names: adminConfig.common.names,
    maxEdges: adminConfig.common.maxEdges,
    adminToken: adminConfig.adminToken,
    logger,
    defaultMetrics: false,
    broker,
    edgeMetrics: { read: () => edge.metrics.registry.metrics() },
  });
  await edge.start();
  await app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = app.server.address() as AddressInfo;
  return {
    adminUrl: `http://127.0.0.1:${port}`,
    adminToken: adminConfig.adminToken,
    devicePort: edge.address().port,
    edgeId: edge.edgeId,
    registry,
    producer,
    flaky,
    async close() {
      await app.close();
      await edge.close();
      await worker.close(1000);
      await producer.close();
      await admin.close();
      await registry.close();
    },
  };
}
