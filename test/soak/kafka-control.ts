/**
 * A private Kafka + DynamoDB Local pair whose nodes can be stopped and started again on the same
 * ports and data, for the broker and database outage scenarios. The shared test cluster stays
 * untouched: other test files use it at the same time.
 *
 * Kafka keeps its log directory across restarts. DynamoDB Local runs with `-dbPath` (not
 * `-inMemory`) so that connections, leases and the outbox survive a restart, as they survive an
 * outage of the real service.
 */
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dynamoJar } from "../harness/dynamodb.ts";
import { ensureKafkaLibs, javaArgs, startKafka } from "../harness/kafka.ts";
import { freePort, httpAnswers, kafkaMetadataBrokers } from "../harness/net.ts";
import { delay, ManagedProcess, removeTree } from "../harness/process.ts";

export interface ControllableCluster {
  readonly kafkaBrokers: string;
  readonly dynamodbEndpoint: string;
  /** Stops the broker (SIGTERM, SIGKILL after a grace) and waits until it is gone. */
  stopKafka(): Promise<void>;
  /** Starts the broker again on the same port and log directory; resolves once it serves metadata. */
  startKafka(): Promise<number>;
  stopDynamo(): Promise<void>;
  /** Starts DynamoDB Local again on the same port and data directory. */
  startDynamo(): Promise<number>;
  /** Stops both nodes and removes the data. Safe to call twice. */
  close(): Promise<void>;
}

const live = new Set<ManagedProcess>();
let exitHook = false;

function track(process_: ManagedProcess): ManagedProcess {
  live.add(process_);
  void process_.exited.then(() => live.delete(process_));
  if (!exitHook) {
    exitHook = true;
    process.on("exit", () => {
      for (const node of live) node.killNow();
    });
  }
  return process_;
}

async function waitFor(what: string, node: ManagedProcess, check: () => Promise<boolean>, timeoutMs: number) {
  const started = Date.now();
  for (;;) {
    if (!node.running()) throw new Error(`${what} exited while starting; see ${node.logFile}`);
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what} did not answer within ${timeoutMs} ms`);
    await delay(100);
  }
}

/** Starts a private single-node Kafka (KRaft) and a file-backed DynamoDB Local on loopback. */
export async function startControllableCluster(log: (line: string) => void = () => {}): Promise<ControllableCluster> {
  const libs = await ensureKafkaLibs(log);
  const dir = mkdtempSync(join(tmpdir(), `tether-soak-${process.pid}-`));
  const kafkaDir = join(dir, "kafka");
  const dynamoDir = join(dir, "dynamodb");
  mkdirSync(kafkaDir);
  mkdirSync(dynamoDir);

  const first = await startKafka({ libs, dir: kafkaDir });
  let kafka = track(first.process);
  const brokerPort = Number(first.bootstrap.split(":")[1]);

  const { jar, nativeLibs } = dynamoJar();
  const dynamoPort = await freePort();
  const endpoint = `http://127.0.0.1:${dynamoPort}`;
  const spawnDynamo = (): ManagedProcess =>
    track(
      new ManagedProcess({
        name: "dynamodb-local",
        command: "java",
        args: [
          "-Xmx256m",
          "-Xms32m",
          "-XX:+UseSerialGC",
          "-XX:+ExitOnOutOfMemoryError",
          `-Djava.library.path=${nativeLibs}`,
          "-jar",
          jar,
          "-dbPath",
          dynamoDir,
          "-sharedDb",
          "-disableTelemetry",
          "-port",
          String(dynamoPort),
        ],
        cwd: dynamoDir,
        logFile: join(dir, "dynamodb.log"),
      }),
    );
  let dynamo = spawnDynamo();
  try {
    await waitFor("DynamoDB Local", dynamo, () => httpAnswers(endpoint, 1000), 60_000);
  } catch (error) {
    await Promise.allSettled([kafka.stop(3000), dynamo.stop(3000)]);
    removeTree(dir);
    throw error;
  }
  log(`soak cluster up: Kafka ${first.bootstrap}, DynamoDB Local ${endpoint} (file-backed)`);

  let closed: Promise<void> | undefined;
  return {
    kafkaBrokers: first.bootstrap,
    dynamodbEndpoint: endpoint,
    async stopKafka() {
      await kafka.stop(10_000);
    },
    async startKafka() {
      if (kafka.running()) return 0;
      kafka = track(
        new ManagedProcess({
          name: "kafka",
          command: "java",
          args: javaArgs(libs, kafkaDir, "512m", "kafka.Kafka", [join(kafkaDir, "server.properties")]),
          cwd: kafkaDir,
          logFile: join(kafkaDir, "kafka.log"),
        }),
      );
      return waitFor(
        "Kafka",
        kafka,
        async () => {
          try {
            return (await kafkaMetadataBrokers("127.0.0.1", brokerPort, 1000)) > 0;
          } catch {
            return false;
          }
        },
        90_000,
      );
    },
    async stopDynamo() {
      await dynamo.stop(5000);
    },
    async startDynamo() {
      if (dynamo.running()) return 0;
      dynamo = spawnDynamo();
      return waitFor("DynamoDB Local", dynamo, () => httpAnswers(endpoint, 1000), 60_000);
    },
    close() {
      closed ??= (async () => {
        await Promise.allSettled([kafka.stop(5000), dynamo.stop(3000)]);
        removeTree(dir);
      })();
      return closed;
    },
  };
}
