/**
 * The edge process: config, logger, adapters, edge, operations port, signal handlers.
 * SIGTERM/SIGINT drain and exit 0; a failed drain step, a lost slot lease or a crash exits
 * non-zero.
 */
import { backoff, sleep } from "../../shared/async/index.ts";
import { createAuthenticator } from "../../shared/auth/index.ts";
import { ServiceProcess, Shutdown } from "../../shared/lifecycle/index.ts";
import { createLogger, type Logger } from "../../shared/log/index.ts";
import {
  buildInfo,
  DynamoCallMetrics,
  installProcessMetrics,
  kafkaClientMetrics,
  startTracing,
} from "../../shared/telemetry/index.ts";
import { readEdgeConfig } from "./config.ts";
import { createEdge } from "./edge.ts";
import { EdgeHttp } from "./http.ts";
import { EdgeMetrics } from "./metrics.ts";

const life = new ServiceProcess({ name: "tether edge", crashMessage: "edge crashed" });

/** Start-up steps that need a store: while it is away, try again with backoff instead of exiting. */
async function retrying<T>(what: string, step: () => Promise<T>, logger: Logger): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      const waitMs = backoff(attempt, { baseMs: 200, maxMs: 5000, jitter: 0.5 });
      if (attempt === 1 || attempt % 10 === 0)
        logger.warn({ err: error, attempt, waitMs }, `${what} not ready; retrying`);
      await sleep(waitMs);
    }
  }
}

async function main(): Promise<void> {
  const config = life.readConfig(() => readEdgeConfig(process.env));
  const logger = createLogger({ name: "tether-edge", level: config.common.logLevel });
  life.useLogger(logger);
  const { createBroker, tetherTopics } = await import("../../shared/broker/index.ts");
  const { createRegistry } = await import("../../shared/registry/index.ts");
  // One registry for everything the process reports, served on the ops port's /metrics.
  const build = buildInfo(config.telemetry?.commit);
  const metrics = new EdgeMetrics();
  installProcessMetrics(metrics.registry, { service: "edge", build });
  const statistics = kafkaClientMetrics(metrics.registry, config.common.kafka.statisticsIntervalMs);
  const broker = await createBroker(config.common, logger, {
    statistics,
    onFatal: (error) => life.fail(error, "Kafka consumer stalled"),
  });
  if (config.common.registry === "dynamodb" && config.common.dynamodb.endpoint !== undefined) {
    // DynamoDB Local (the local cluster) starts empty; in AWS the stack owns the tables.
    const { ensureTables } = await import("../../shared/registry/dynamodb/index.ts");
    await retrying(
      "DynamoDB tables",
      () => ensureTables({ settings: config.common.dynamodb, names: config.common.names, logger }),
      logger,
    );
  }
  const registry = await createRegistry(config.common, logger, { calls: new DynamoCallMetrics(metrics.registry) });
  const tracing = startTracing(config.telemetry?.tracing, build);
  if (tracing !== undefined) logger.info({ endpoint: config.telemetry?.tracing?.endpoint }, "tracing on (OTLP)");

  // Topics are created here, not only by a deploy step: the reply slot consumer needs `replies`
  // with one partition per possible edge before it can start, and in the local cluster and in
  // fresh environments the first process up is often an edge. ensureTopics only adds what is
  // missing (topics, and partitions when TETHER_MAX_EDGES or TETHER_WORK_PARTITIONS grew), so
  // every process doing it is harmless.
  const admin = broker.admin();
  try {
    await admin.ensureTopics(
      tetherTopics({
        names: config.common.names,
        maxEdges: config.common.maxEdges,
        workPartitions: config.common.workPartitions,
        replicationFactor: config.common.kafka.replicationFactor,
      }),
    );
  } finally {
    await admin.close();
  }

  const authenticator = createAuthenticator(config.auth);
  const edge = createEdge({ config, logger, broker, registry, authenticator, metrics, tracing });
  const http = new EdgeHttp({ edge, port: config.httpPort, logger, proxyProtocol: config.proxyProtocol === "v2" });

  // A signal drains; after a failure the edge closes at once. Either way a step that fails
  // (a drain step included: the drain then rejects) makes the exit non-zero.
  life.onStop((reason) =>
    new Shutdown({ logger })
      .add("edge", () => (reason.kind === "signal" ? edge.drain() : edge.close()), "drain failed")
      .add("ops http", () => http.close().catch(() => {}))
      .add("registry", () => registry.close(), "registry close failed")
      .add("tracing", () => tracing?.close(), "trace export failed")
      .run(),
  );
  edge.failed().then(
    (error) => life.fail(error, "edge failed"),
    () => {},
  );

  await http.listen();
  await edge.start();
}

life.run(main);
