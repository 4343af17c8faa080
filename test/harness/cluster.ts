import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DynamoNode, startDynamo } from "./dynamodb.ts";
import { ensureKafkaLibs, type KafkaNode, repoRoot, startKafka } from "./kafka.ts";
import { removeTree } from "./process.ts";

export interface LocalClusterOptions {
  /** Progress and log-location lines; silent when omitted. */
  readonly log?: (line: string) => void;
  /** JVM heap of the broker. Default 512m. */
  readonly kafkaHeap?: string;
  /** Where kept logs go. Default `.tether/logs` in the repository. */
  readonly logsDir?: string;
  /**
   * Stop the cluster on SIGINT/SIGTERM and exit 130/143. Default true; a caller with its own
   * signal handling (the test runner script) turns it off and calls stop() itself.
   */
  readonly handleSignals?: boolean;
}

export interface StopOptions {
  /** Copy the nodes' logs to a kept directory (because something failed). */
  readonly keepLogs?: boolean;
}

export interface LocalCluster {
  /** Bootstrap servers, `127.0.0.1:port`. */
  readonly kafkaBrokers: string;
  /** `http://127.0.0.1:port` of DynamoDB Local. */
  readonly dynamodbEndpoint: string;
  /** Storage format plus broker start until it answered a metadata request. */
  readonly kafkaStartMs: number;
  readonly dynamodbStartMs: number;
  readonly kafkaPid: number | undefined;
  readonly dynamodbPid: number | undefined;
  /** The temporary directory that stop() removes. */
  readonly dir: string;
  /** Stops both nodes (SIGTERM, then SIGKILL), removes the temp dir; resolves with the kept-logs path if any. */
  stop(options?: StopOptions): Promise<string | undefined>;
}

const live = new Set<ClusterHandle>();
let exitHookInstalled = false;
let signalHookInstalled = false;

interface ClusterHandle {
  readonly dir: string;
  kafka: KafkaNode | undefined;
  dynamo: DynamoNode | undefined;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const handle of live) {
      handle.kafka?.process.killNow();
      handle.dynamo?.process.killNow();
      removeTree(handle.dir);
    }
    live.clear();
  });
}

function installSignalHook(): void {
  if (signalHookInstalled) return;
  signalHookInstalled = true;
  const onSignal = (signal: NodeJS.Signals): void => {
    const code = signal === "SIGINT" ? 130 : 143;
    void Promise.allSettled([...live].map((handle) => stopHandle(handle, {}, undefined))).finally(() =>
      process.exit(code),
    );
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
}

async function stopHandle(
  handle: ClusterHandle,
  options: StopOptions,
  logsDir: string | undefined,
  log?: (line: string) => void,
): Promise<string | undefined> {
  await Promise.allSettled([handle.kafka?.process.stop(5000), handle.dynamo?.process.stop(3000)]);
  let kept: string | undefined;
  if (options.keepLogs === true) {
    try {
      kept = keepLogs(handle.dir, logsDir ?? join(repoRoot, ".tether", "logs"));
      log?.(`local cluster logs kept in ${kept}`);
    } catch (error) {
      log?.(`could not keep the cluster logs: ${String(error)}`);
    }
  }
  removeTree(handle.dir);
  live.delete(handle);
  return kept;
}

function keepLogs(dir: string, logsDir: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const target = join(logsDir, `cluster-${stamp}-${process.pid}`);
  mkdirSync(target, { recursive: true });
  for (const name of ["kafka.log", "dynamodb.log", "server.properties"]) {
    if (existsSync(join(dir, name))) copyFileSync(join(dir, name), join(target, name));
  }
  return target;
}

/**
 * Removes temp dirs named `tether-<kind>-<pid>-<random>` (this harness's clusters, and any
 * other test helper that follows the convention) whose owning process is gone: one that died
 * without cleaning up, e.g. by SIGKILL. Returns how many it removed.
 */
export function sweepOrphans(): number {
  let removed = 0;
  for (const name of readdirSync(tmpdir())) {
    const owner = /^tether-[a-z-]+?-(\d+)-[A-Za-z0-9]{6}$/.exec(name)?.[1];
    if (owner === undefined || alive(Number(owner))) continue;
    removeTree(join(tmpdir(), name));
    removed += 1;
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Starts a single-node Kafka 4 (KRaft) and DynamoDB Local in memory, each on free loopback
 * ports, and waits until both answer. Nothing outlives the calling process: exit handlers kill
 * both process groups, and a watchdog ends them if this process dies without running handlers.
 */
export async function startLocalCluster(options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const log = options.log;
  installExitHook();
  if (options.handleSignals !== false) installSignalHook();
  const libs = await ensureKafkaLibs(log);
  sweepOrphans();
  const dir = mkdtempSync(join(tmpdir(), `tether-cluster-${process.pid}-`));
  const handle: ClusterHandle = { dir, kafka: undefined, dynamo: undefined };
  live.add(handle);
  const kafkaStart = startKafka({ libs, dir, heap: options.kafkaHeap ?? "512m" }).then((node) => {
    handle.kafka = node;
    return node;
  });
  const dynamoStart = startDynamo({ dir }).then((node) => {
    handle.dynamo = node;
    return node;
  });
  const [kafka, dynamo] = await Promise.allSettled([kafkaStart, dynamoStart]);
  if (kafka.status === "rejected" || dynamo.status === "rejected") {
    const kept = await stopHandle(handle, { keepLogs: true }, options.logsDir, log);
    const reason = kafka.status === "rejected" ? kafka.reason : (dynamo as PromiseRejectedResult).reason;
    throw new Error(`local cluster did not start: ${String(reason)}${kept === undefined ? "" : ` (logs: ${kept})`}`, {
      cause: reason,
    });
  }
  log?.(
    `local cluster up: Kafka ${kafka.value.bootstrap} in ${kafka.value.startMs} ms, ` +
      `DynamoDB Local ${dynamo.value.endpoint} in ${dynamo.value.startMs} ms`,
  );
  let stopping: Promise<string | undefined> | undefined;
  return {
    kafkaBrokers: kafka.value.bootstrap,
    dynamodbEndpoint: dynamo.value.endpoint,
    kafkaStartMs: kafka.value.startMs,
    dynamodbStartMs: dynamo.value.startMs,
    kafkaPid: kafka.value.process.pid,
    dynamodbPid: dynamo.value.process.pid,
    dir,
    stop(stopOptions: StopOptions = {}) {
      stopping ??= stopHandle(handle, stopOptions, options.logsDir, log);
      return stopping;
    },
  };
}
