/**
 * The admin API as its own process: config, logger, adapters, app, signals.
 */
import { describeError, isTetherError } from "../../shared/errors/index.ts";
import { createLogger, type Logger } from "../../shared/log/index.ts";
import { buildApp } from "./app.ts";
import { readAdminConfig } from "./config.ts";

const SHUTDOWN_DEADLINE_MS = 10_000;

async function main(): Promise<void> {
  let config: ReturnType<typeof readAdminConfig>;
  try {
    config = readAdminConfig(process.env);
  } catch (error) {
    process.stderr.write(`tether-admin: ${isTetherError(error) ? error.message : describeError(error)}\n`);
    process.exit(1);
  }
  const { common } = config;
  const logger = createLogger({ name: "tether-admin", level: common.logLevel });
  if (config.adminTokenGenerated) {
    // Development only: the operator needs the token to call the API, and nobody else set one.
    process.stderr.write(
      `tether-admin: TETHER_ADMIN_TOKEN not set; generated one for this run: ${config.adminToken}\n`,
    );
  }

  const { createBroker, tetherTopics } = await import("../../shared/broker/index.ts");
  const { createRegistry } = await import("../../shared/registry/index.ts");
  const closers: { name: string; close: () => Promise<void> }[] = [];
  const shutdown = async (): Promise<boolean> => {
    let ok = true;
    for (const { name, close } of closers.reverse()) {
      try {
        await close();
      } catch (error) {
        ok = false;
        logger.error({ err: error, component: name }, "close failed");
      }
    }
    closers.length = 0;
    return ok;
  };

  try {
    if (common.registry === "dynamodb" && common.dynamodb.endpoint !== undefined) {
      // DynamoDB Local starts empty; in AWS the stack owns the tables.
      const { ensureTables } = await import("../../shared/registry/dynamodb/index.ts");
      await ensureTables({ settings: common.dynamodb, names: common.names, logger });
    }
    const registry = await createRegistry(common, logger);
    closers.push({ name: "registry", close: () => registry.close() });
    const broker = await createBroker(common, logger);
    const admin = broker.admin();
    closers.push({ name: "broker-admin", close: () => admin.close() });
    // Pushes and kicks need `downlink` and `replies`; like the edge and the worker, whichever
    // process comes up first creates what is missing and leaves existing topics alone.
    await admin.ensureTopics(
      tetherTopics({
        names: common.names,
        maxEdges: common.maxEdges,
        replicationFactor: common.kafka.replicationFactor,
      }),
    );
    const producer = broker.producer();
    closers.push({ name: "producer", close: () => producer.close() });
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
    });
    closers.push({ name: "http", close: () => app.close() });
    await app.listen({ port: config.port, host: config.host });
    logger.info(
      { port: config.port, host: config.host, broker: common.broker, registry: common.registry },
      "admin API listening",
    );
  } catch (error) {
    logger.fatal({ err: error }, "admin API failed to start");
    await shutdown();
    process.exit(1);
  }

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "admin API stopping");
    const deadline = setTimeout(() => {
      logger.error({ deadlineMs: SHUTDOWN_DEADLINE_MS }, "shutdown deadline passed");
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    void shutdown().then((ok) => process.exit(ok ? 0 : 1));
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  installCrashHandlers(logger);
}

function installCrashHandlers(logger: Logger): void {
  const crash = (error: unknown): void => {
    logger.fatal({ err: error }, "admin API crashed");
    process.exit(1);
  };
  process.on("uncaughtException", crash);
  process.on("unhandledRejection", crash);
}

await main();
