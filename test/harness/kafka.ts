import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePorts, kafkaMetadataBrokers } from "./net.ts";
import { delay, ManagedProcess, removeTree, within } from "./process.ts";

const run = promisify(execFile);

/** The repository root (this file lives in test/harness). */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

const pomFile = join(repoRoot, "scripts", "kafka", "pom.xml");
const toolsPomFile = join(repoRoot, "scripts", "kafka", "tools-pom.xml");

/** Kafka version pinned in the pom. */
export function kafkaVersion(): string {
  const match = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(pomFile, "utf8"));
  if (match?.[1] === undefined) throw new Error(`no <kafka.version> in ${pomFile}`);
  return match[1];
}

/** Where resolved jars are kept between runs: `$XDG_CACHE_HOME/tether` or `~/.cache/tether`. */
export function cacheRoot(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== "" ? xdg : join(homedir(), ".cache"), "tether");
}

/**
 * The directory of the broker's jars, resolved from Maven Central on first use and reused
 * afterwards without touching the network. Safe when several processes race: each resolves
 * into its own directory and the first rename wins.
 */
export function ensureKafkaLibs(log: (line: string) => void = () => {}): Promise<string> {
  return ensureLibs(pomFile, "kafka", `kafka_2.13-${kafkaVersion()}.jar`, log);
}

/**
 * Kafka's command-line tools (EndToEndLatency, ProducerPerformance) with their dependencies, in
 * a directory of their own so that the broker's classpath stays the broker's.
 */
export function ensureKafkaToolsLibs(log: (line: string) => void = () => {}): Promise<string> {
  return ensureLibs(toolsPomFile, "kafka-tools", `kafka-tools-${kafkaVersion()}.jar`, log);
}

async function ensureLibs(pom: string, name: string, marker: string, log: (line: string) => void): Promise<string> {
  const version = kafkaVersion();
  // Keyed by the pom's content too, so a dependency added to it gets a fresh directory.
  const pomHash = createHash("sha256").update(readFileSync(pom)).digest("hex").slice(0, 8);
  const home = join(cacheRoot(), `${name}-${version}-${pomHash}`);
  const libs = join(home, "libs");
  if (existsSync(join(libs, marker))) return libs;
  mkdirSync(home, { recursive: true });
  const staging = join(home, `libs.${process.pid}.${randomBytes(4).toString("hex")}`);
  const args = [
    "-q",
    "-B",
    "-f",
    pom,
    "dependency:copy-dependencies",
    "-DincludeScope=runtime",
    // The tools follow the broker's version.
    `-Dkafka.version=${version}`,
    `-DoutputDirectory=${staging}`,
  ];
  const started = Date.now();
  try {
    try {
      // Offline first: a warm local Maven repository needs no network.
      await run("mvn", ["-o", ...args], { maxBuffer: 16 * 1024 * 1024 });
    } catch {
      log(`resolving ${name} ${version} from Maven Central`);
      await run("mvn", args, { maxBuffer: 16 * 1024 * 1024 });
    }
    if (!existsSync(join(staging, marker))) throw new Error(`maven did not produce ${marker}`);
    try {
      renameSync(staging, libs);
    } catch (error) {
      if (!existsSync(join(libs, marker))) throw error;
    }
  } finally {
    removeTree(staging);
  }
  log(`${name} ${version} jars ready in ${Date.now() - started} ms (${readdirSync(libs).length} files)`);
  return libs;
}

export interface KafkaNode {
  readonly bootstrap: string;
  /** The SASL/PLAIN listener (no TLS), when asked for. */
  readonly saslBootstrap?: string;
  readonly process: ManagedProcess;
  /** From spawning the storage format to the first good metadata answer. */
  readonly startMs: number;
}

export interface StartKafkaOptions {
  readonly libs: string;
  /** A fresh directory owned by this node (data, config, log). */
  readonly dir: string;
  readonly heap?: string;
  readonly timeoutMs?: number;
  /** Also open a SASL_PLAINTEXT listener that accepts this one PLAIN user. */
  readonly sasl?: { readonly username: string; readonly password: string };
}

interface Listeners {
  readonly broker: number;
  readonly controller: number;
  readonly sasl?: { readonly port: number; readonly username: string; readonly password: string };
}

function serverProperties(dir: string, ports: Listeners): string {
  const { broker: brokerPort, controller: controllerPort, sasl } = ports;
  const extra: Record<string, string> = {};
  if (sasl !== undefined) {
    extra["sasl.enabled.mechanisms"] = "PLAIN";
    extra["listener.name.sasl_plaintext.plain.sasl.jaas.config"] =
      `org.apache.kafka.common.security.plain.PlainLoginModule required user_${sasl.username}="${sasl.password}";`;
  }
  const saslListener = sasl === undefined ? "" : `,SASL_PLAINTEXT://127.0.0.1:${sasl.port}`;
  const settings: Record<string, string | number | boolean> = {
    ...extra,
    "process.roles": "broker,controller",
    "node.id": 1,
    "controller.quorum.bootstrap.servers": `127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${brokerPort},CONTROLLER://127.0.0.1:${controllerPort}${saslListener}`,
    "advertised.listeners": `PLAINTEXT://127.0.0.1:${brokerPort}${saslListener}`,
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
    "log.dirs": join(dir, "data"),
    // Topics come only from ensureTopics, as in production (MSK does not auto-create either).
    "auto.create.topics.enable": false,
    "num.partitions": 1,
    "offsets.topic.replication.factor": 1,
    "offsets.topic.num.partitions": 4,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "transaction.state.log.num.partitions": 2,
    "share.coordinator.state.topic.replication.factor": 1,
    "share.coordinator.state.topic.min.isr": 1,
    // Tests join and leave groups constantly; no reason to wait for more members.
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
    // Two cores: keep thread counts and preallocated index files small.
    "num.network.threads": 2,
    "num.io.threads": 2,
    "background.threads": 2,
    "num.recovery.threads.per.data.dir": 1,
    "log.index.size.max.bytes": 1048576,
    "log.cleaner.dedupe.buffer.size": 8388608,
  };
  return `${Object.entries(settings)
    .map(([key, value]) => `${key}=${value}`)
    .join("\n")}\n`;
}

const log4j = `status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server
logger.server.level = info
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = info
logger.config.name = org.apache.kafka.common.config
logger.config.level = warn
`;

/**
 * A random KRaft cluster id: 16 bytes, URL-safe base64 without padding. Never one starting with
 * `-`: the storage tool would read it as an option and fail (`-t: expected one argument`).
 */
function clusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

/**
 * The JVM command line of one Kafka tool or broker: `heap` as its maximum heap, the jars in
 * `libs`, the log4j2 settings in `dir`, then `main` and its arguments.
 */
export function javaArgs(libs: string, dir: string, heap: string, main: string, rest: readonly string[]): string[] {
  return [
    `-Xmx${heap}`,
    "-Xms64m",
    "-Xss512k",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
    `-Dlog4j2.configurationFile=${join(dir, "log4j2.properties")}`,
    "-cp",
    `${libs}/*`,
    main,
    ...rest,
  ];
}

/** Formats KRaft storage and starts one combined broker+controller on 127.0.0.1. */
export async function startKafka(options: StartKafkaOptions): Promise<KafkaNode> {
  const { libs, dir, heap = "512m", timeoutMs = 90_000 } = options;
  const started = Date.now();
  const { sasl } = options;
  const [brokerPort, controllerPort, saslPort] = (await freePorts(sasl === undefined ? 2 : 3)) as [
    number,
    number,
    number | undefined,
  ];
  const config = join(dir, "server.properties");
  writeFileSync(
    config,
    serverProperties(dir, {
      broker: brokerPort,
      controller: controllerPort,
      ...(sasl === undefined || saslPort === undefined ? {} : { sasl: { ...sasl, port: saslPort } }),
    }),
  );
  writeFileSync(join(dir, "log4j2.properties"), log4j);
  const logFile = join(dir, "kafka.log");

  const format = new ManagedProcess({
    name: "kafka-storage-format",
    command: "java",
    args: javaArgs(libs, dir, "256m", "kafka.tools.StorageTool", [
      "format",
      "--standalone",
      "--ignore-formatted",
      "-t",
      clusterId(),
      "-c",
      config,
    ]),
    cwd: dir,
    logFile,
  });
  const formatted = await within(format.exited, timeoutMs);
  if (formatted === undefined) {
    await format.stop(1000);
    throw new Error(`Kafka storage format did not finish in ${timeoutMs} ms; see ${logFile}`);
  }
  if (formatted.code !== 0) throw new Error(`Kafka storage format failed (exit ${formatted.code}); see ${logFile}`);

  const server = new ManagedProcess({
    name: "kafka",
    command: "java",
    args: javaArgs(libs, dir, heap, "kafka.Kafka", [config]),
    cwd: dir,
    logFile,
  });
  const deadline = started + timeoutMs;
  for (;;) {
    if (!server.running()) {
      const info = server.exitInfo();
      throw new Error(`Kafka exited during start-up (code ${info?.code}, signal ${info?.signal}); see ${logFile}`);
    }
    try {
      if ((await kafkaMetadataBrokers("127.0.0.1", brokerPort, 1000)) > 0) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await server.stop(1000);
      throw new Error(`Kafka did not answer within ${timeoutMs} ms; see ${logFile}`);
    }
    await delay(100);
  }
  return {
    bootstrap: `127.0.0.1:${brokerPort}`,
    ...(saslPort === undefined ? {} : { saslBootstrap: `127.0.0.1:${saslPort}` }),
    process: server,
    startMs: Date.now() - started,
  };
}
