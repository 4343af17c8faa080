/**
 * The worker process: reads its configuration, wires adapters, example handlers and the
 * health server by hand, and shuts down in order on SIGTERM/SIGINT.
 */
import { createBroker, tetherTopics } from "../../shared/broker/index.ts";
import { createLogger, type Logger } from "../../shared/log/index.ts";
import { createRegistry } from "../../shared/registry/index.ts";
import { readWorkerConfig, type WorkerConfig } from "./config.ts";
import { registerEcho } from "./examples/echo.ts";
import { type KvStore, MemoryKvStore, registerKv } from "./examples/kv.ts";
import { registerSleep } from "./examples/sleep.ts";
import { startHealthServer } from "./http.ts";
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

async function main(): Promise<void> {
  let config: WorkerConfig;
  try {
    config = readWorkerConfig(process.env);
  } catch (error) {
    createLogger({ name: "tether-worker" }).fatal({ err: error }, "invalid configuration");
    process.exitCode = 2;
    return;
  }
  const logger = createLogger({ name: "tether-worker", level: config.logLevel });
  const fail = (error: unknown, what: string): void => {
    logger.fatal({ err: error }, what);
    process.exit(1);
  };
  process.on("uncaughtException", (error) => fail(error, "uncaught exception"));
  process.on("unhandledRejection", (error) => fail(error, "unhandled rejection"));

  const broker = await createBroker(config, logger);
  const admin = broker.admin();
  try {
    await admin.ensureTopics(
      tetherTopics({
        names: config.names,
        maxEdges: config.maxEdges,
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
  const registry = await createRegistry(config, logger);
  const kv = await openKvStore(config, logger);
  const worker = createWorker({ config, logger, broker, registry });
  registerSleep(registerKv(registerEcho(worker), kv));
  const health = await startHealthServer({ worker, port: config.worker.httpPort, logger });
  await worker.start();
  logger.info({ httpPort: health.port }, "worker ready");

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    // Repeats are ignored: a process group and its supervisor often both forward the same
    // signal, and the orchestrator sends SIGKILL anyway once its grace period is over.
    if (stopping) {
      logger.info({ signal }, "already shutting down");
      return;
    }
    stopping = true;
    logger.info({ signal, graceMs: config.worker.shutdownMs }, "shutting down");
    let ok = true;
    const step = async (name: string, run: () => Promise<void>): Promise<void> => {
      try {
        await run();
      } catch (error) {
        ok = false;
        logger.error({ err: error, step: name }, "shutdown step failed");
      }
    };
    await step("worker", () => worker.close(config.worker.shutdownMs));
    await step("kv store", () => kv.close());
    await step("registry", () => registry.close());
    await step("health server", () => health.close());
    logger.info({ ok }, "worker stopped");
    logger.flush();
    process.exit(ok ? 0 : 1);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((error: unknown) => {
  createLogger({ name: "tether-worker" }).fatal({ err: error }, "worker failed to start");
  process.exit(1);
});
