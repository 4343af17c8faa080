/**
 * The edge process: config, logger, adapters, edge, operations port, signal handlers.
 * SIGTERM/SIGINT drain and exit 0; a lost slot lease or a crash exits non-zero.
 */
import { createAuthenticator } from "../../shared/auth/index.ts";
import { describeError } from "../../shared/errors/index.ts";
import { createLogger, type Logger } from "../../shared/log/index.ts";
import { readEdgeConfig } from "./config.ts";
import { createEdge } from "./edge.ts";
import { EdgeHttp } from "./http.ts";

async function main(): Promise<void> {
  let config: ReturnType<typeof readEdgeConfig>;
  try {
    config = readEdgeConfig(process.env);
  } catch (error) {
    process.stderr.write(`tether edge: ${describeError(error)}\n`);
    process.exit(2);
  }
  const logger = createLogger({ name: "tether-edge", level: config.common.logLevel });
  const { createBroker, tetherTopics } = await import("../../shared/broker/index.ts");
  const { createRegistry } = await import("../../shared/registry/index.ts");
  const broker = await createBroker(config.common, logger);
  if (config.common.registry === "dynamodb" && config.common.dynamodb.endpoint !== undefined) {
    // DynamoDB Local (the local cluster) starts empty; in AWS the stack owns the tables.
    const { ensureTables } = await import("../../shared/registry/dynamodb/index.ts");
    await ensureTables({ settings: config.common.dynamodb, names: config.common.names, logger });
  }
  const registry = await createRegistry(config.common, logger);

  // Topics are created here, not only by a deploy step: the reply slot consumer needs `replies`
  // with one partition per possible edge before it can start, and in the local cluster and in
  // fresh environments the first process up is often an edge. ensureTopics leaves existing topics
  // alone, so every process doing it is harmless.
  const admin = broker.admin();
  try {
    await admin.ensureTopics(
      tetherTopics({
        names: config.common.names,
        maxEdges: config.common.maxEdges,
        replicationFactor: config.common.kafka.replicationFactor,
      }),
    );
  } finally {
    await admin.close();
  }

  const authenticator = createAuthenticator(config.auth);
  let exiting = false;
  const edge = createEdge({ config, logger, broker, registry, authenticator });
  const http = new EdgeHttp({ edge, port: config.httpPort, logger, proxyProtocol: config.proxyProtocol === "v2" });

  const stop = async (code: number): Promise<void> => {
    if (exiting) return;
    exiting = true;
    let failed = code !== 0;
    try {
      if (code === 0) await edge.drain();
      else await edge.close();
    } catch (error) {
      failed = true;
      logger.error({ err: error }, "drain failed");
    }
    await http.close().catch(() => {});
    await registry.close().catch((error: unknown) => {
      failed = true;
      logger.error({ err: error }, "registry close failed");
    });
    logger.flush();
    process.exit(failed ? 1 : 0);
  };

  process.once("SIGTERM", () => void stop(0));
  process.once("SIGINT", () => void stop(0));
  edge.failed().then(
    (error) => {
      logger.fatal({ err: error }, "edge failed");
      void stop(1);
    },
    () => {},
  );

  await http.listen();
  await edge.start();
}

function crash(logger: Logger | undefined, error: unknown): never {
  if (logger !== undefined) logger.fatal({ err: error }, "edge crashed");
  else process.stderr.write(`tether edge crashed: ${describeError(error)}\n`);
  process.exit(1);
}

process.on("uncaughtException", (error) => crash(undefined, error));
process.on("unhandledRejection", (error) => crash(undefined, error));

main().catch((error: unknown) => crash(undefined, error));
