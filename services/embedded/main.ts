/**
 * The embedded mode: edge, worker (with the example handlers) and admin API in one process,
 * on the in-memory broker and registry. Same protocol, handler API and admin API as the fleet;
 * nothing to install or start first. For trying Tether out and for development.
 */

import { Registry } from "prom-client";
import { createAuthenticator } from "../../shared/auth/index.ts";
import { MemoryBroker, tetherTopics } from "../../shared/broker/index.ts";
import type { Env } from "../../shared/config/index.ts";
import { ServiceProcess, Shutdown } from "../../shared/lifecycle/index.ts";
import { createLogger } from "../../shared/log/index.ts";
import { MemoryRegistry } from "../../shared/registry/index.ts";
import { buildInfo, installProcessMetrics, startTracing } from "../../shared/telemetry/index.ts";
import { buildApp } from "../admin/app.ts";
import { readAdminConfig } from "../admin/config.ts";
import { readEdgeConfig } from "../edge/config.ts";
import { createEdge } from "../edge/edge.ts";
import { EdgeHttp } from "../edge/http.ts";
import { EdgeMetrics } from "../edge/metrics.ts";
import { readWorkerConfig } from "../worker/config.ts";
import { registerEcho } from "../worker/examples/echo.ts";
import { MemoryKvStore, registerKv } from "../worker/examples/kv.ts";
import { WorkerMetrics } from "../worker/metrics.ts";
import { createWorker } from "../worker/worker.ts";

/**
 * The embedded mode always runs on the in-memory adapters and, unless the environment says
 * otherwise, as development (auth mode `none`). Everything else reads the same variables as
 * the separate services.
 */
export function embeddedEnv(env: Env): Env {
  return {
    TETHER_ENV: "development",
    TETHER_AUTH_MODE: "none",
    TETHER_LOG_LEVEL: "warn",
    ...env,
    TETHER_BROKER: "memory",
    TETHER_REGISTRY: "memory",
  };
}

// The logger is not handed over: failures here are told on stderr, in words, to a person
// at a terminal.
const life = new ServiceProcess({ name: "tether", crashMessage: "crashed", startFailedMessage: "failed to start" });

async function main(): Promise<void> {
  const env = embeddedEnv(process.env);
  const configs = life.readConfig(() => ({
    edge: readEdgeConfig(env),
    worker: readWorkerConfig(env),
    admin: readAdminConfig(env),
  }));
  const { edge: edgeConfig, worker: workerConfig, admin: adminConfig } = configs;
  const logger = createLogger({ name: "tether", level: edgeConfig.common.logLevel });
  const broker = new MemoryBroker({ logger: logger.child({ component: "broker" }) });
  const registry = new MemoryRegistry();
  const admin = broker.admin();
  await admin.ensureTopics(
    tetherTopics({
      names: edgeConfig.common.names,
      maxEdges: edgeConfig.common.maxEdges,
      workPartitions: edgeConfig.common.workPartitions,
    }),
  );

  // One registry for the whole process, served on the edge's ops port and the admin API alike.
  const edgeMetrics = new EdgeMetrics();
  const workerMetrics = new WorkerMetrics();
  const metrics = Registry.merge([edgeMetrics.registry, workerMetrics.registry]);
  const build = buildInfo(edgeConfig.telemetry?.commit);
  installProcessMetrics(metrics, { service: "embedded", build });
  // Off unless the OTEL_* variables ask for it; one trace exporter for the edge and the worker.
  const tracing = startTracing(edgeConfig.telemetry?.tracing, build);
  const worker = createWorker({
    config: workerConfig,
    logger: logger.child({ component: "worker" }),
    broker,
    registry,
    metrics: workerMetrics,
    tracing,
  });
  registerKv(registerEcho(worker), new MemoryKvStore());
  await worker.start();

  const edge = createEdge({
    config: edgeConfig,
    logger: logger.child({ component: "edge" }),
    broker,
    registry,
    authenticator: createAuthenticator(edgeConfig.auth),
    metrics: edgeMetrics,
    tracing,
  });
  const edgeHttp = new EdgeHttp({ edge, port: edgeConfig.httpPort, logger, metrics });

  const producer = broker.producer();
  await producer.connect();
  const app = await buildApp({
    registry,
    producer,
    admin,
    names: adminConfig.common.names,
    maxEdges: adminConfig.common.maxEdges,
    adminToken: adminConfig.adminToken,
    logger: logger.child({ component: "admin" }),
    metrics,
    broker,
    // The edge is in this process: its metrics are read without a round trip.
    edgeMetrics: { read: () => edge.metrics.registry.metrics() },
  });

  life.onStop(async (reason) => {
    const shutdown = new Shutdown({ logger, what: "embedded shutdown" })
      .add("admin", () => app.close())
      .add("edge", () => (reason.kind === "signal" ? edge.drain() : edge.close()))
      .add("edge http", () => edgeHttp.close())
      .add("worker", () => worker.close(workerConfig.worker.shutdownMs))
      .add("producer", () => producer.close())
      .add("broker admin", () => admin.close())
      .add("registry", () => registry.close())
      .add("tracing", () => tracing?.close());
    process.stdout.write("\ntether: draining...\n");
    try {
      await shutdown.run();
    } finally {
      const failed = reason.kind === "failure" || shutdown.status === "failed";
      process.stdout.write(`tether: stopped${failed ? " with errors" : ""}\n`);
      logger.flush();
    }
  });
  edge.failed().then(
    (error) => {
      logger.fatal({ err: error }, "edge failed");
      life.stop({ kind: "failure", error });
    },
    () => {},
  );

  await edge.start();
  const opsAddress = await edgeHttp.listen();
  await app.listen({ port: adminConfig.port, host: adminConfig.host });

  const devicePort = edge.address().port;
  const mqttPort = edge.mqttAddress().port;
  const wsPort = edge.wsAddress().port;
  const auth = edgeConfig.auth.mode;
  const lines = [
    "Tether is running (embedded mode: in-memory broker and registry).",
    "",
    `  devices    tcp://127.0.0.1:${devicePort}   auth: ${auth}`,
    `  MQTT       mqtt://127.0.0.1:${mqttPort}   (3.1.1 and 5.0)`,
    `  WebSocket  ws://127.0.0.1:${wsPort}   (NDJSON text messages, or MQTT with subprotocol mqtt)`,
    `  admin API  http://${adminConfig.host}:${adminConfig.port}/v1   docs: http://${adminConfig.host}:${adminConfig.port}/docs`,
    `  console    http://${adminConfig.host}:${adminConfig.port}/console   (sign in with the admin token)`,
    `  admin token  ${adminConfig.adminToken}`,
    `  edge ops   http://127.0.0.1:${opsAddress.port}/metrics`,
    "",
    "Try it with nc (type the lines after the prompt):",
    `  nc 127.0.0.1 ${devicePort}`,
    `  {"t":"hello","v":1,"deviceId":"dev-1"${auth === "none" ? "" : ',"token":"<token>"'}}`,
    '  {"t":"req","id":"1","type":"echo","body":{"hello":"world"}}',
    "",
    `or: npx tether connect --port ${devicePort} --device dev-1`,
    `or MQTT: mosquitto_rr -V 5 -p ${mqttPort} -i dev-1 -u dev-1${auth === "none" ? "" : " -P <token>"} -t tether/req/echo -e tether/res/dev-1 -m '{"hello":"world"}'`,
    `push: curl -X POST -H 'authorization: Bearer ${adminConfig.adminToken}' -H 'content-type: application/json' \\`,
    `        -d '{"type":"note","body":"hi"}' http://${adminConfig.host}:${adminConfig.port}/v1/devices/dev-1/messages`,
    "",
    "Ctrl-C drains and stops.",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

life.run(main);
