/**
 * Tether's round trip next to Kafka's floor, in one run on one broker:
 *
 * 1. Kafka's own tools (org.apache.kafka:kafka-tools): EndToEndLatency (one hop, acks=all,
 *    128 B) and ProducerPerformance (acks=all, idempotent, 128 B, unthrottled).
 * 2. One edge and one worker process per consume mode (TETHER_KAFKA_CONSUME pull, the default, then stream)
 *    with production settings (hmac devices, acks=all,
 *    idempotence, acks after the delivery report, commits after the answer), driven by a raw
 *    NDJSON load generator in its own process (bench/load.ts), 128 B request frames:
 *    - open loop, 100 devices, 1,000 req/s: p50, p99, ack p50;
 *    - closed loop, 100 devices with 1 and with 8 requests open: round trips/s, and CPU per
 *      round trip of the edge and the worker together (and of the broker).
 * 3. Kafka's EndToEndLatency again, so a broker that warmed up during the run is seen too.
 *
 * Tether's p50 is reported as a ratio to twice Kafka's one-hop average (the lower of the two
 * EndToEndLatency runs). Needs TETHER_KAFKA_BROKERS and TETHER_DYNAMODB_ENDPOINT (scripts/bench.ts
 * starts a local cluster); BENCH_KAFKA_PID names the broker's process for its CPU figure.
 *
 *   tsx bench/floor.ts [seconds=15] [warmupSeconds=10]
 *   BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=prof"   profiles the edge and the worker
 */
import { execFile, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { createKafkaBroker } from "../shared/broker/kafka/index.ts";
import { silentLogger } from "../shared/log/index.ts";
import { localKafkaSettings, uniquePrefix } from "../test/harness/index.ts";
import { ensureKafkaToolsLibs } from "../test/harness/kafka.ts";
import { AUTH_SECRET, Fleet } from "../test/soak/fleet.ts";

const run = promisify(execFile);
const [secondsArg = "15", warmupArg = "10"] = process.argv.slice(2);
const seconds = Number(secondsArg);
const warmupSeconds = Number(warmupArg);
const brokers = process.env.TETHER_KAFKA_BROKERS;
const dynamodb = process.env.TETHER_DYNAMODB_ENDPOINT;
const kafkaPid = javaProcess(
  process.env.BENCH_KAFKA_PID === undefined ? undefined : Number(process.env.BENCH_KAFKA_PID),
);
const FRAME_BYTES = 128;
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** The broker's JVM: the process itself or the first java process under it (a wrapper shell). */
function javaProcess(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    try {
      if (readFileSync(`/proc/${next}/comm`, "utf8").trim() === "java") return next;
      const children = readFileSync(`/proc/${next}/task/${next}/children`, "utf8").trim();
      for (const child of children.split(/\s+/)) if (child !== "") queue.push(Number(child));
    } catch {
      // Gone.
    }
  }
  return undefined;
}

/** CPU seconds (user + system, all threads) a process has used so far. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat; fields[0] here is field 3.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds per thread name (MainThread, rdk:broker1, libuv-worker...) of a process. */
function threadCpu(pid: number | undefined): Map<string, number> {
  const byName = new Map<string, number>();
  if (pid === undefined) return byName;
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        const name = readFileSync(`/proc/${pid}/task/${task}/comm`, "utf8").trim();
        const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        byName.set(name, (byName.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100);
      } catch {
        // The thread ended.
      }
    }
  } catch {
    // Gone.
  }
  return byName;
}

/** Cores per thread name between two samples, largest first, as "name 0.12". */
function threadCores(before: Map<string, number>, after: Map<string, number>, seconds: number): string {
  return [...after]
    .map(([name, cpu]) => [name, (cpu - (before.get(name) ?? 0)) / seconds] as const)
    .filter(([, cores]) => cores >= 0.005)
    .sort((a, b) => b[1] - a[1])
    .map(([name, cores]) => `${name} ${cores.toFixed(2)}`)
    .join(", ");
}

interface KafkaLatency {
  readonly avgMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

async function endToEndLatency(libs: string, topic: string, records: number): Promise<KafkaLatency> {
  const { stdout } = await run(
    "java",
    [
      "-cp",
      join(libs, "*"),
      "org.apache.kafka.tools.EndToEndLatency",
      "--bootstrap-server",
      brokers!,
      "--topic",
      topic,
      "--num-records",
      String(records),
      "--producer-acks",
      "all",
      "--record-size",
      String(FRAME_BYTES),
    ],
    { maxBuffer: 16 * 1024 * 1024, timeout: 180_000 },
  );
  const avg = /Avg latency: ([\d.]+) ms/.exec(stdout);
  const percentiles = /50th = (\d+), 99th = (\d+)/.exec(stdout);
  if (avg === null || percentiles === null) throw new Error(`EndToEndLatency printed no figures:\n${stdout}`);
  return { avgMs: Number(avg[1]), p50Ms: Number(percentiles[1]), p99Ms: Number(percentiles[2]) };
}

async function producerPerformance(libs: string, topic: string, records: number): Promise<string> {
  const { stdout } = await run(
    "java",
    [
      "-cp",
      join(libs, "*"),
      "org.apache.kafka.tools.ProducerPerformance",
      "--topic",
      topic,
      "--num-records",
      String(records),
      "--record-size",
      String(FRAME_BYTES),
      "--throughput",
      "-1",
      "--bootstrap-server",
      brokers!,
      "--producer-props",
      "acks=all",
      "enable.idempotence=true",
    ],
    { maxBuffer: 16 * 1024 * 1024, timeout: 180_000 },
  );
  const summary = stdout
    .trim()
    .split("\n")
    .findLast((line) => line.includes("records sent"));
  if (summary === undefined) throw new Error(`ProducerPerformance printed no summary:\n${stdout}`);
  return summary.trim();
}

interface LoadResult {
  readonly roundTripsPerSec: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly maxMs: number;
  readonly ackP50ms: number;
  readonly ackP99ms: number;
  readonly sent: number;
  readonly completed: number;
  readonly errors: number;
  readonly loadCpuCores: number;
}

interface Row extends LoadResult {
  readonly name: string;
  /** Edge + worker CPU seconds per round trip, in ms. */
  readonly cpuPerRoundTripMs: number;
  readonly edgeCores: number;
  readonly workerCores: number;
  readonly brokerCores: number;
}

async function load(
  name: string,
  port: number,
  pids: { edge?: number; worker?: number },
  shape: { mode: "rate" | "closed"; rate?: number; window?: number },
  prefix: string,
): Promise<Row> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "bench/load.ts",
      JSON.stringify({
        port,
        devices: 100,
        ...shape,
        warmupSeconds,
        seconds,
        frameBytes: FRAME_BYTES,
        devicePrefix: `${prefix}${name.replace(/\W+/g, "-")}`,
      }),
    ],
    { env: { ...process.env, BENCH_SECRET: AUTH_SECRET }, stdio: ["ignore", "pipe", "inherit"] },
  );
  const sample = () => ({
    at: performance.now(),
    edge: cpuSeconds(pids.edge),
    worker: cpuSeconds(pids.worker),
    broker: cpuSeconds(kafkaPid),
    edgeThreads: threadCpu(pids.edge),
    workerThreads: threadCpu(pids.worker),
  });
  let start: ReturnType<typeof sample> | undefined;
  let result: LoadResult | undefined;
  let end: ReturnType<typeof sample> | undefined;
  for await (const line of createInterface({ input: child.stdout })) {
    if (line === "measuring") start = sample();
    else if (line.startsWith("{")) {
      end = sample();
      result = JSON.parse(line) as LoadResult;
    }
  }
  if (start === undefined || end === undefined || result === undefined) throw new Error(`load ${name} failed`);
  const elapsed = (end.at - start.at) / 1000;
  say(`  ${name}: edge threads (cores): ${threadCores(start.edgeThreads, end.edgeThreads, elapsed)}`);
  say(`  ${name}: worker threads (cores): ${threadCores(start.workerThreads, end.workerThreads, elapsed)}`);
  const edgeCpu = end.edge - start.edge;
  const workerCpu = end.worker - start.worker;
  return {
    name,
    ...result,
    cpuPerRoundTripMs: Number((((edgeCpu + workerCpu) / (result.roundTripsPerSec * elapsed)) * 1000).toFixed(3)),
    edgeCores: Number((edgeCpu / elapsed).toFixed(2)),
    workerCores: Number((workerCpu / elapsed).toFixed(2)),
    brokerCores: Number(((end.broker - start.broker) / elapsed).toFixed(2)),
  };
}

async function main(): Promise<void> {
  if (!brokers || !dynamodb) throw new Error("set TETHER_KAFKA_BROKERS and TETHER_DYNAMODB_ENDPOINT");
  const libs = await ensureKafkaToolsLibs(say);
  const prefix = uniquePrefix();
  const kafkaRecords = Number(process.env.BENCH_KAFKA_RECORDS ?? 20_000);
  say(`Kafka EndToEndLatency (acks=all, ${FRAME_BYTES} B, one hop), before:`);
  const before = await endToEndLatency(libs, `${prefix}floor-e2e`, kafkaRecords);
  say(`  avg ${before.avgMs} ms, p50 ${before.p50Ms} ms, p99 ${before.p99Ms} ms`);
  say(`Kafka ProducerPerformance (acks=all, idempotent, ${FRAME_BYTES} B, unthrottled):`);
  const admin = createKafkaBroker({
    settings: localKafkaSettings({ kafkaBrokers: brokers }, "floor"),
    logger: silentLogger(),
  }).admin();
  await admin.ensureTopics([{ name: `${prefix}floor-perf`, partitions: 12 }]);
  await admin.close();
  say(`  ${await producerPerformance(libs, `${prefix}floor-perf`, kafkaRecords * 25)}`);

  // BENCH_SERVICE_ENV="K=V K=V": settings for both services, to compare one against the defaults;
  // BENCH_EDGE_ENV and BENCH_WORKER_ENV for one of them (applied last).
  const serviceEnv = envPairs(process.env.BENCH_SERVICE_ENV);
  const edgeOnly = envPairs(process.env.BENCH_EDGE_ENV);
  const workerOnly = envPairs(process.env.BENCH_WORKER_ENV);
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter((arg) => arg !== "");
  // BENCH_CONSUME: the consume modes to run (TETHER_KAFKA_CONSUME), each on its own edge and
  // worker, the default one first; `default` sets nothing, so the services run on their own.
  const modes = (process.env.BENCH_CONSUME ?? "pull,stream").split(",").filter((mode) => mode !== "");
  // BENCH_ROWS=open,closed1,closed8 picks rows (these three by default; `quiet` runs 10 req/s and
  // `busy` 2,500 req/s), e.g. to profile one.
  const picked = (process.env.BENCH_ROWS ?? "open,closed1,closed8").split(",");
  const shapes = [
    ["open", "open loop 1,000 req/s", { mode: "rate", rate: 1000 }],
    ["closed1", "closed loop, 1 open", { mode: "closed", window: 1 }],
    ["closed8", "closed loop, 8 open", { mode: "closed", window: 8 }],
    // Not run by default: what the services and the broker spend with almost nothing to do,
    // and at a steady load short of saturation (CPU per round trip there varies less from run
    // to run than a closed loop's throughput, so it compares two builds better).
    ["quiet", "open loop 10 req/s", { mode: "rate", rate: 10 }],
    ["busy", "open loop 2,500 req/s", { mode: "rate", rate: 2500 }],
  ] as const;
  const rows: Row[] = [];
  for (const consume of modes) {
    const fleetPrefix = uniquePrefix();
    const env = consume === "default" ? serviceEnv : { TETHER_KAFKA_CONSUME: consume, ...serviceEnv };
    const fleet = new Fleet({
      kafkaBrokers: brokers,
      dynamodbEndpoint: dynamodb,
      prefix: fleetPrefix,
      maxEdges: 64,
      workPartitions: 12,
      supervise: false,
      nodeArgs,
      // The per-connection rate limit (default 100/s) would cap a closed loop at 10,000/s.
      edgeEnv: { TETHER_RATE_LIMIT: "100000", ...env, ...edgeOnly },
      workerEnv: { ...env, ...workerOnly },
    });
    try {
      await fleet.setup();
      const edge = await fleet.startEdge();
      const worker = await fleet.startWorker();
      const pids = { edge: edge.nodePid(), worker: worker.nodePid() };
      for (const [key, name, shape] of shapes) {
        if (picked.includes(key)) {
          rows.push(await load(`${name} (${consume})`, edge.devicePort, pids, shape, fleetPrefix));
        }
      }
    } finally {
      await fleet.close();
    }
  }
  say("Kafka EndToEndLatency, after:");
  const after = await endToEndLatency(libs, `${prefix}floor-e2e2`, kafkaRecords);
  say(`  avg ${after.avgMs} ms, p50 ${after.p50Ms} ms, p99 ${after.p99Ms} ms`);
  const floorMs = 2 * Math.min(before.avgMs, after.avgMs);
  say(`\ntwice Kafka's one-hop average (lower run): ${floorMs.toFixed(2)} ms\n`);
  say(
    "| run | rt/s | p50 ms | p50 / (2 x Kafka avg) | p99 ms | ack p50 ms | CPU ms per rt (edge+worker) | edge cores | worker cores | broker cores | load-gen cores | errors |",
  );
  say("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const row of rows) {
    say(
      `| ${row.name} | ${row.roundTripsPerSec} | ${row.p50ms} | ${(row.p50ms / floorMs).toFixed(2)}x | ${row.p99ms} | ` +
        `${row.ackP50ms} | ${row.cpuPerRoundTripMs} | ${row.edgeCores} | ${row.workerCores} | ${row.brokerCores} | ` +
        `${row.loadCpuCores} | ${row.errors} |`,
    );
  }
  say(`\n${JSON.stringify({ kafka: { before, after }, rows })}`);
}

/** "K=V K=V" as an environment. */
function envPairs(text: string | undefined): Record<string, string> {
  return Object.fromEntries(
    (text ?? "")
      .split(" ")
      .filter((pair) => pair.includes("="))
      .map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]),
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
