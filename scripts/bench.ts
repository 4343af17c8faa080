/**
 * `npm run bench`: every benchmark behind a target in the issues, side by side in one run on
 * one local cluster (real Kafka 4 + DynamoDB Local, started here unless TETHER_KAFKA_BROKERS /
 * TETHER_DYNAMODB_ENDPOINT are set). Each benchmark runs as its own process and prints its
 * figures; BENCHMARKS.md records them with the machine they ran on.
 *
 *   npm run bench                    all of them
 *   npm run bench -- floor admin      only the named ones (see the list printed by --list)
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import { type LocalCluster, startLocalCluster } from "../test/harness/index.ts";

const root = resolve(import.meta.dirname, "..");

interface Bench {
  readonly name: string;
  readonly what: string;
  readonly needsCluster: boolean;
  readonly run: (env: NodeJS.ProcessEnv) => Promise<number>;
}

function tsx(args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: root, env, stdio: "inherit" });
  return once(child, "exit").then(([code]) => (typeof code === "number" ? code : 1));
}

/** `tether bench` against `npm start` (embedded mode), as a user would run it. */
async function embedded(env: NodeJS.ProcessEnv, benchArgs: readonly string[]): Promise<number> {
  const port = String(13_000 + Math.floor(Math.random() * 2000));
  const server = spawn(process.execPath, ["--import", "tsx", "services/embedded/main.ts"], {
    cwd: root,
    env: {
      ...env,
      TETHER_DEVICE_PORT: port,
      TETHER_MQTT_PORT: "0",
      TETHER_WS_PORT: "0",
      TETHER_ADMIN_PORT: "0",
      TETHER_EDGE_HTTP_PORT: "0",
      TETHER_RATE_LIMIT: "100000",
      TETHER_MAX_INFLIGHT: "1000",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    let out = "";
    server.stdout.setEncoding("utf8");
    await new Promise<void>((ready, fail) => {
      server.stdout.on("data", (text: string) => {
        out += text;
        if (out.includes("Ctrl-C")) ready();
      });
      server.once("exit", () => fail(new Error(`embedded mode exited:\n${out}`)));
    });
    return await tsx(["services/cli/main.ts", "bench", "--port", port, "--quiet", ...benchArgs], env);
  } finally {
    server.kill("SIGTERM");
    await once(server, "exit");
  }
}

const benches: readonly Bench[] = [
  {
    name: "kafka",
    what: "Kafka adapter: produce->consume round trip, produce throughput, broker RSS",
    needsCluster: true,
    run: (env) => tsx(["bench/kafka.ts", "1000", "20000"], env),
  },
  {
    name: "floor",
    what: "round trips next to Kafka's own EndToEndLatency and ProducerPerformance: 1,000 req/s from 100 devices (target p50 <= 4 ms and <= 1.5x twice Kafka's one-hop average, p99 <= 20 ms), closed loop 1 and 8 open (targets 10,000 and 12,000 rt/s), CPU per round trip (target <= 0.15 ms)",
    needsCluster: true,
    run: (env) => tsx(["bench/floor.ts", env.BENCH_SECONDS ?? "15", env.BENCH_WARMUP_S ?? "10"], env),
  },
  {
    name: "edge-idle",
    what: "idle connections: RSS per connection (target <= 6 KiB) and connect rate with DynamoDB Local ownership writes",
    needsCluster: true,
    run: (env) =>
      tsx(["bench/edge-idle.ts", process.env.BENCH_IDLE_CONNECTIONS ?? "15000"], {
        ...env,
        // Presence events leave the process, as in a fleet: the in-memory broker would keep
        // every `connected` event in the edge and count it as connection state.
        TETHER_BROKER: "kafka",
        TETHER_REGISTRY: "dynamodb",
      }),
  },
  {
    name: "mqtt",
    what: "MQTT 5 devices (mqtt.js) through an edge and a worker process on real Kafka: round trip at 1,000 req/s from 100 devices (PUBACK and answer percentiles), RSS per idle MQTT connection (5,000)",
    needsCluster: true,
    run: (env) =>
      tsx(["bench/mqtt.ts", "1000", "100", "15", process.env.BENCH_IDLE_CONNECTIONS ?? "5000"], {
        ...env,
        TETHER_BROKER: "kafka",
        TETHER_REGISTRY: "dynamodb",
      }),
  },
  {
    name: "edge-junk",
    what: "10,000 sockets that never finish a hello: edge RSS per socket (target <= 4 KiB), median of 3 rounds",
    needsCluster: false,
    run: (env) => tsx(["bench/junk.ts", "10000", "2000", "3"], env),
  },
  {
    name: "worker",
    what: "worker: no-op handler throughput per worker, added latency of the worker hop",
    needsCluster: true,
    run: (env) => tsx(["bench/worker-hop.ts"], env),
  },
  {
    name: "admin",
    what: "admin API: GET /v1/devices/:id requests/s against DynamoDB Local",
    needsCluster: true,
    run: (env) => tsx(["bench/admin.ts", "--seconds", "8", "--runs", "3"], env),
  },
  {
    name: "embedded-rate",
    what: "embedded mode (npm start): tether bench at 5,000 req/s from 100 devices",
    needsCluster: false,
    run: (env) => embedded(env, ["--devices", "100", "--rate", "5000", "--duration", "10", "--warmup", "2"]),
  },
  {
    name: "embedded-max",
    what: "embedded mode (npm start): tether bench, maximum throughput",
    needsCluster: false,
    run: (env) => embedded(env, ["--devices", "100", "--max", "--duration", "10", "--warmup", "2"]),
  },
];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--list")) {
    for (const bench of benches) process.stdout.write(`${bench.name.padEnd(14)} ${bench.what}\n`);
    return;
  }
  const unknown = args.filter((name) => !benches.some((bench) => bench.name === name));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(", ")}; npm run bench -- --list\n`);
    process.exit(2);
  }
  const selected = args.length === 0 ? benches : benches.filter((bench) => args.includes(bench.name));
  let cluster: LocalCluster | undefined;
  const env: NodeJS.ProcessEnv = { ...process.env, TETHER_LOG_LEVEL: process.env.TETHER_LOG_LEVEL ?? "warn" };
  const results: string[] = [];
  try {
    if (selected.some((bench) => bench.needsCluster) && env.TETHER_KAFKA_BROKERS === undefined) {
      cluster = await startLocalCluster({ log: (line) => process.stdout.write(`[cluster] ${line}\n`) });
      env.TETHER_KAFKA_BROKERS = cluster.kafkaBrokers;
      env.TETHER_DYNAMODB_ENDPOINT = cluster.dynamodbEndpoint;
      if (cluster.kafkaPid !== undefined) env.BENCH_KAFKA_PID = String(cluster.kafkaPid);
      process.stdout.write(`[cluster] Kafka started in ${cluster.kafkaStartMs} ms\n`);
    }
    for (const bench of selected) {
      process.stdout.write(`\n=== ${bench.name}: ${bench.what}\n`);
      const started = Date.now();
      const code = await bench.run(env);
      results.push(`${bench.name.padEnd(14)} ${code === 0 ? "ok    " : `exit ${code}`} ${Date.now() - started} ms`);
    }
  } finally {
    await cluster?.stop();
  }
  process.stdout.write(`\n=== summary\n${results.join("\n")}\n`);
  if (results.some((line) => line.includes("exit "))) process.exitCode = 1;
}

await main();
