/**
 * The admin API as its own process: config, logger, adapters, app, signals.
 */
import { Registry as PromRegistry } from "prom-client";
import { EXIT_FAILURE, ServiceProcess, Shutdown } from "../../shared/lifecycle/index.ts";
import { createLogger } from "../../shared/log/index.ts";
import {
  buildInfo,
  DynamoCallMetrics,
  installProcessMetrics,
  kafkaClientMetrics,
} from "../../shared/telemetry/index.ts";
import { buildApp } from "./app.ts";
import { readAdminConfig } from "./config.ts";
import { httpEdgeMetrics } from "./edge-metrics.ts";

const SHUTDOWN_DEADLINE_MS = 10_000;

const life = new ServiceProcess({
  name: "tether-admin",
  crashMessage: "admin API crashed",
  stopDeadlineMs: SHUTDOWN_DEADLINE_MS,
});

async function main(): Promise<void> {
  const config = life.readConfig(() => readAdminConfig(process.env));
  const { common } = config;
  const logger = createLogger({ name: "tether-admin", level: common.logLevel });
  life.useLogger(logger);
  if (config.adminTokenGenerated) {
    // Development only: the operator needs the token to call the API, and nobody else set one.
    process.stderr.write(
      `tether-admin: TETHER_ADMIN_TOKEN not set; generated one for this run: ${config.adminToken}\n`,
    );
  }

  const { createBroker, tetherTopics } = await import("../../shared/broker/index.ts");
  const { createRegistry } = await import("../../shared/registry/index.ts");
  // Each part is closed in the reverse order it was opened in, including after a failed start.
  const shutdown = new Shutdown({ logger, what: "admin API shutdown", message: "close failed" });

  try {
    if (common.registry === "dynamodb" && common.dynamodb.endpoint !== undefined) {
      // DynamoDB Local starts empty; in AWS the stack owns the tables.
      const { ensureTables } = await import("../../shared/registry/dynamodb/index.ts");
      await ensureTables({ settings: common.dynamodb, names: common.names, logger });
    }
    // One registry for everything the process reports, served on /metrics with the API's own.
    const metrics = new PromRegistry();
    installProcessMetrics(metrics, { service: "admin", build: buildInfo(config.telemetry?.commit) });
    const registry = await createRegistry(common, logger, { calls: new DynamoCallMetrics(metrics) });
    shutdown.addFirst("registry", () => registry.close());
    const statistics = kafkaClientMetrics(metrics, common.kafka.statisticsIntervalMs);
    const broker = await createBroker(common, logger, {
      statistics,
      onFatal: (error) => life.fail(error, "Kafka consumer stalled"),
    });
    const admin = broker.admin();
    shutdown.addFirst("broker-admin", () => admin.close());
    // Pushes and kicks need `downlink` and `replies`. In development (and on the in-process
    // broker), whichever process comes up first creates what is missing; deployed on Kafka, the
    // edge and the worker own the topics (and grow them) and the admin API may only describe them.
    if (common.environment === "development" || common.broker === "memory") {
      await admin.ensureTopics(
        tetherTopics({
          names: common.names,
          maxEdges: common.maxEdges,
          workPartitions: common.workPartitions,
          replicationFactor: common.kafka.replicationFactor,
        }),
      );
    }
    const producer = broker.producer();
    shutdown.addFirst("producer", () => producer.close());
    await producer.connect();

    const app = await buildApp({
      registry,
      producer,
      admin,
      names: common.names,
      maxEdges: common.maxEdges,
      adminToken: config.adminToken,
      logger,
      maxConcurrency: config.maxConcurrency,
      trustedProxyHops: config.trustedProxyHops,
      metrics,
      broker,
      edgeMetrics: httpEdgeMetrics(config.edgeMetricsPort),
    });
    shutdown.addFirst("http", () => app.close());
    await app.listen({ port: config.port, host: config.host });
    logger.info(
      { port: config.port, host: config.host, broker: common.broker, registry: common.registry, console: "/console" },
      "admin API listening",
    );
  } catch (error) {
    logger.fatal({ err: error }, "admin API failed to start");
    await shutdown.run().catch(() => {});
    life.exit(EXIT_FAILURE);
  }

  life.onStop((reason) => {
    if (reason.kind === "signal") logger.info({ signal: reason.signal }, "admin API stopping");
    return shutdown.run();
  });
}

life.run(main);
