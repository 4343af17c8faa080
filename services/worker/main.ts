/**
 * The worker process: reads its configuration, wires adapters, example handlers and the
 * health server by hand, and shuts down in order on SIGTERM/SIGINT.
 */
import { createBroker, tetherTopics } from "../../shared/broker/index.ts";
import { ServiceProcess, Shutdown } from "../../shared/lifecycle/index.ts";
import { createLogger, type Logger } from "../../shared/log/index.ts";
import { createRegistry } from "../../shared/registry/index.ts";
import {
  buildInfo,
  DynamoCallMetrics,
  installProcessMetrics,
  kafkaClientMetrics,
  startTracing,
} from "../../shared/telemetry/index.ts";
import { readWorkerConfig, type WorkerConfig } from "./config.ts";
import { registerEcho } from "./examples/echo.ts";
import { type KvStore, MemoryKvStore, registerKv } from "./examples/kv.ts";
import { registerSleep } from "./examples/sleep.ts";
import { startHealthServer } from "./http.ts";
import { WorkerMetrics } from "./metrics.ts";
import { createWorker } from "./worker.ts";

async function openKvStore(config: WorkerConfig, logger: Logger): Promise<KvStore> {
  const table = config.worker.kvTable;
  if (table === undefined) {
    logger.info("TETHER_KV_TABLE unset: the kv example handlers keep values in memory");
    return new MemoryKvStore();
  }
  // Loaded only when asked for, so a worker without the table never loads the AWS SDK.
  const { createDynamoKvStore, ensureKvTable } = await import("./examples/kv-dynamodb.ts");
  const settings = { table, endpoint: config.dynamodb.endpoint, region: config.dynamodb.region };
  // In AWS the stack owns the table; against DynamoDB Local the worker creates it.
  if (settings.endpoint !== undefined) await ensureKvTable(settings);
  return createDynamoKvStore(settings);
}

// Repeated signals are ignored: a process group and its supervisor often both forward the
// same signal, and the orchestrator sends SIGKILL anyway once its grace period is over.
const life = new ServiceProcess({
  name: "tether worker",
  startFailedMessage: "worker failed to start",
  repeatedSignal: "ignore",
});

async function main(): Promise<void> {
  const config = life.readConfig(
    () => readWorkerConfig(process.env),
    (error) => createLogger({ name: "tether-worker" }).fatal({ err: error }, "invalid configuration"),
  );
  const logger = createLogger({ name: "tether-worker", level: config.logLevel });
  life.useLogger(logger);

  // One registry for everything the process reports, served on the health port's /metrics.
  const build = buildInfo(config.telemetry?.commit);
  const metrics = new WorkerMetrics();
  installProcessMetrics(metrics.registry, { service: "worker", build });
  const statistics = kafkaClientMetrics(metrics.registry, config.kafka.statisticsIntervalMs);
  const broker = await createBroker(config, logger, {
    statistics,
    onFatal: (error) => life.fail(error, "Kafka consumer stalled"),
  });
  const admin = broker.admin();
  try {
    await admin.ensureTopics(
      tetherTopics({
        names: config.names,
        maxEdges: config.maxEdges,
        workPartitions: config.workPartitions,
        replicationFactor: config.kafka.replicationFactor,
      }),
    );
  } finally {
    await admin.close();
  }
  if (config.registry === "dynamodb" && config.dynamodb.endpoint !== undefined) {
    // Against DynamoDB Local the services create the registry tables; in AWS the stack owns them.
    const { ensureTables } = await import("../../shared/registry/dynamodb/index.ts");
    await ensureTables({ settings: config.dynamodb, names: config.names, logger });
  }
  const registry = await createRegistry(config, logger, { calls: new DynamoCallMetrics(metrics.registry) });
  const kv = await openKvStore(config, logger);
  const tracing = startTracing(config.telemetry?.tracing, build);
  if (tracing !== undefined) logger.info({ endpoint: config.telemetry?.tracing?.endpoint }, "tracing on (OTLP)");
  const worker = createWorker({ config, logger, broker, registry, metrics, tracing });
  registerSleep(registerKv(registerEcho(worker), kv));
  const health = await startHealthServer({ worker, port: config.worker.httpPort, logger });
  await worker.start();
  logger.info({ httpPort: health.port }, "worker ready");

  life.onStop(async (reason) => {
    const signal = reason.kind === "signal" ? reason.signal : undefined;
    logger.info({ signal, graceMs: config.worker.shutdownMs }, "shutting down");
    const shutdown = new Shutdown({ logger })
      .add("worker", () => worker.close(config.worker.shutdownMs))
      .add("kv store", () => kv.close())
      .add("registry", () => registry.close())
      .add("health server", () => health.close())
      .add("tracing", () => tracing?.close());
    try {
      await shutdown.run();
    } finally {
      logger.info({ ok: shutdown.status === "done" }, "worker stopped");
    }
  });
}

life.run(main);
