/**
 * Round trips (req -> ack -> res, `echo` handler) through one edge and one worker in this
 * process. Adapters come from the environment (memory by default; TETHER_BROKER=kafka and
 * TETHER_KAFKA_BROKERS for a real Kafka, TETHER_REGISTRY=dynamodb and TETHER_DYNAMODB_ENDPOINT).
 *
 *   tsx bench/roundtrip.ts [mode=max|rate] [devices=100] [seconds=10] [rate=1000] [window=32]
 *
 * `max`: every device keeps `window` requests open; reports round trips per second.
 * `rate`: `rate` requests per second spread over the devices; reports latency percentiles.
 * BENCH_PROCESSES=1 runs the edge and the worker as separate processes (needs Kafka and DynamoDB).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import * as hdr from "hdr-histogram-js";
import { edgeConfigForTests } from "../services/edge/config.ts";
import { createEdge } from "../services/edge/edge.ts";
import { createWorker, readWorkerConfig } from "../services/worker/index.ts";
import { createAuthenticator } from "../shared/auth/index.ts";
import { createBroker, tetherTopics } from "../shared/broker/index.ts";
import { ConfigReader, readCommonConfig } from "../shared/config/index.ts";
import { silentLogger } from "../shared/log/index.ts";
import { createRegistry } from "../shared/registry/index.ts";
import { freePort } from "../test/harness/net.ts";

const [mode = "max", devicesArg = "100", secondsArg = "10", rateArg = "1000", windowArg = "32"] = process.argv.slice(2);
const devices = Number(devicesArg);
const seconds = Number(secondsArg);
const rate = Number(rateArg);
const window = Number(windowArg);
const warmupSeconds = Number(process.env.BENCH_WARMUP_S ?? 2);

interface Client {
  socket: Socket;
  buffer: string;
  sentAt: Map<string, number>;
  next: number;
}

interface System {
  readonly port: number;
  /** The edge's Prometheus text, when it runs as its own process. */
  edgeMetrics(): Promise<string>;
  readonly broker: string;
  readonly registry: string;
  close(): Promise<void>;
}

/** Edge and worker in this process (one thread for everything, clients included). */
async function inProcess(env: Record<string, string | undefined>): Promise<System> {
  const logger = silentLogger();
  const common = readCommonConfig(new ConfigReader(env), "tether-bench");
  const broker = await createBroker(common, logger);
  const registry = await createRegistry(common, logger);
  const admin = broker.admin();
  await admin.ensureTopics(tetherTopics({ names: common.names, maxEdges: common.maxEdges }));
  await admin.close();
  const edge = createEdge({
    config: edgeConfigForTests(common, { limits: { rateLimit: 1_000_000, maxInflight: 10_000 } }),
    logger,
    broker,
    registry,
    authenticator: createAuthenticator({ mode: "none" }),
  });
  await edge.start();
  const workerConfig = readWorkerConfig({ ...env, TETHER_WORKER_CONCURRENCY: "256" });
  const worker = createWorker({ config: workerConfig, logger, broker, registry });
  worker.handle("echo", async (request) => request.body);
  await worker.start();
  return {
    port: edge.address().port,
    edgeMetrics: () => edge.metrics.registry.metrics(),
    broker: common.broker,
    registry: common.registry,
    async close() {
      await worker.close();
      await edge.close();
      await registry.close();
    },
  };
}

/**
 * Edge and worker as their own processes (`main.ts` of each), as deployed: needs a real broker
 * and registry shared between processes (TETHER_BROKER=kafka, TETHER_REGISTRY=dynamodb).
 */
async function separateProcesses(env: Record<string, string | undefined>): Promise<System> {
  const port = await freePort();
  const edgeHttp = await freePort();
  const workerHttp = await freePort();
  const childEnv = {
    ...env,
    TETHER_AUTH_MODE: "none",
    TETHER_LOG_LEVEL: "warn",
    TETHER_DEVICE_PORT: String(port),
    TETHER_MQTT_PORT: "0",
    TETHER_WS_PORT: "0",
    TETHER_EDGE_HTTP_PORT: String(edgeHttp),
    TETHER_WORKER_HTTP_PORT: String(workerHttp),
    TETHER_RATE_LIMIT: "1000000",
    TETHER_MAX_INFLIGHT: "10000",
    TETHER_WORKER_CONCURRENCY: env.TETHER_WORKER_CONCURRENCY ?? "256",
  };
  const children: ChildProcess[] = [];
  for (const [script, http] of [
    ["services/edge/main.ts", edgeHttp],
    ["services/worker/main.ts", workerHttp],
  ] as const) {
    // BENCH_NODE_ARGS: extra node flags for the services, e.g. "--cpu-prof --cpu-prof-dir=prof".
    const nodeArgs = (env.BENCH_NODE_ARGS ?? "").split(" ").filter((arg) => arg !== "");
    const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", script], {
      env: childEnv,
      stdio: "inherit",
    });
    children.push(child);
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${http}/readyz`)).status === 200) break;
      } catch {
        // Not listening yet.
      }
      if (i > 300) throw new Error(`${script} did not become ready`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    port,
    edgeMetrics: async () => (await fetch(`http://127.0.0.1:${edgeHttp}/metrics`)).text(),
    broker: env.TETHER_BROKER ?? "memory",
    registry: env.TETHER_REGISTRY ?? "memory",
    async close() {
      for (const child of children) child.kill("SIGTERM");
      await Promise.all(children.map((child) => new Promise((resolve) => child.once("exit", resolve))));
    },
  };
}

async function main(): Promise<void> {
  const env = { TETHER_ENV: "development", ...process.env };
  const system = process.env.BENCH_PROCESSES === "1" ? await separateProcesses(env) : await inProcess(env);
  const port = system.port;
  const histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const ackHistogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let completed = 0;
  let measuring = false;
  const clients: Client[] = [];
  for (let i = 0; i < devices; i++) {
    const socket = connect({ port, host: "127.0.0.1", noDelay: true });
    const client: Client = { socket, buffer: "", sentAt: new Map(), next: 0 };
    await new Promise<void>((resolve) => {
      socket.once("connect", () => {
        socket.write(`{"t":"hello","v":1,"deviceId":"bench-${i}"}\n`);
      });
      const onWelcome = (chunk: Buffer) => {
        if (chunk.toString().includes("welcome")) {
          socket.off("data", onWelcome);
          resolve();
        }
      };
      socket.on("data", onWelcome);
    });
    socket.on("data", (chunk: Buffer) => {
      client.buffer += chunk.toString("utf8");
      let index = client.buffer.indexOf("\n");
      while (index !== -1) {
        const line = client.buffer.slice(0, index);
        client.buffer = client.buffer.slice(index + 1);
        if (measuring && line.startsWith('{"t":"ack"')) {
          const sentAt = client.sentAt.get(line.slice(17, line.indexOf('"', 17)));
          if (sentAt !== undefined)
            ackHistogram.recordValue(Math.max(1, Math.round((performance.now() - sentAt) * 1000)));
        }
        if (line.startsWith('{"t":"res"')) {
          const id = line.slice(17, line.indexOf('"', 17));
          const sentAt = client.sentAt.get(id);
          if (sentAt !== undefined) {
            client.sentAt.delete(id);
            if (measuring) {
              completed += 1;
              histogram.recordValue(Math.max(1, Math.round((performance.now() - sentAt) * 1000)));
            }
            if (mode === "max") send(client);
          }
        }
        index = client.buffer.indexOf("\n");
      }
    });
    clients.push(client);
  }

  function send(client: Client): void {
    const id = String(client.next++);
    client.sentAt.set(id, performance.now());
    client.socket.write(`{"t":"req","id":"${id}","type":"echo","body":{"n":${id},"pad":"0123456789abcdef"}}\n`);
  }

  let ticker: NodeJS.Timeout | undefined;
  if (mode === "max") {
    for (const client of clients) for (let i = 0; i < window; i++) send(client);
  } else {
    const perTick = rate / 100;
    let owed = 0;
    let turn = 0;
    ticker = setInterval(() => {
      owed += perTick;
      while (owed >= 1) {
        owed -= 1;
        send(clients[turn++ % clients.length]!);
      }
    }, 10);
  }
  // Warm up at the measured load (the JITs of the broker, the edge and the worker settle on a
  // fresh cluster first), then measure.
  await new Promise((resolve) => setTimeout(resolve, warmupSeconds * 1000));
  measuring = true;
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  if (ticker !== undefined) clearInterval(ticker);
  const ms = (p: number, h = histogram) => Number((h.getValueAtPercentile(p) / 1000).toFixed(2));
  process.stdout.write(
    `${JSON.stringify({
      mode,
      processes: process.env.BENCH_PROCESSES === "1",
      broker: system.broker,
      registry: system.registry,
      devices,
      roundTripsPerSec: Math.round(completed / elapsed),
      p50ms: ms(50),
      p99ms: ms(99),
      maxMs: ms(100),
      ackP50ms: ms(50, ackHistogram),
      ackP99ms: ms(99, ackHistogram),
      cpuCores: Number(((cpu.user + cpu.system) / 1e6 / elapsed).toFixed(2)),
      replies: replyOutcomes(await system.edgeMetrics()),
    })}\n`,
  );
  for (const client of clients) client.socket.destroy();
  await system.close();
}

/** The edge's reply counters by outcome: anything but `delivered` means a detour. */
function replyOutcomes(metrics: string): Record<string, number> {
  const outcomes: Record<string, number> = {};
  for (const match of metrics.matchAll(/^tether_edge_replies_total\{outcome="(\w+)"\} (\d+)/gm)) {
    outcomes[match[1]!] = Number(match[2]);
  }
  return outcomes;
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  },
);
