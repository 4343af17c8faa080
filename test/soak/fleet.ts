/**
 * Edge and worker processes (`services/edge/main.ts`, `services/worker/main.ts`) started as
 * separate Node processes on a real Kafka and DynamoDB Local, with the controls a fault test
 * needs: kill -9, SIGTERM, RSS, and a supervisor that starts a replacement when a process dies
 * on its own (as ECS replaces a stopped task).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tetherTopics } from "../../shared/broker/index.ts";
import { createKafkaBroker } from "../../shared/broker/kafka/index.ts";
import { resourceNames } from "../../shared/config/index.ts";
import { silentLogger } from "../../shared/log/index.ts";
import { ensureTables } from "../../shared/registry/dynamodb/index.ts";
import { repoRoot } from "../harness/kafka.ts";
import { freePorts } from "../harness/net.ts";
import { delay, ManagedProcess, removeTree, within } from "../harness/process.ts";
import { localDynamoDbSettings, localKafkaSettings } from "../harness/settings.ts";

export const AUTH_SECRET = "soak-secret-not-for-production";

/** Lines of the AWS SDK's Node version notice, which every process prints at start. */
const NOISE =
  /NodeVersionSupportWarning|versions published after|will require node|continue receiving updates|security updates please|More information can be found|--trace-warnings/;

export type Role = "edge" | "worker";

export interface FleetOptions {
  readonly kafkaBrokers: string;
  readonly dynamodbEndpoint: string;
  readonly prefix: string;
  /** Partitions of `replies` (edge slots). */
  readonly maxEdges: number;
  /** Partitions of `requests`, `downlink`, `events`. */
  readonly workPartitions: number;
  /** Extra environment for every edge. */
  readonly edgeEnv?: Readonly<Record<string, string>>;
  readonly workerEnv?: Readonly<Record<string, string>>;
  /** Start a replacement when a process exits without being told to (default true). */
  readonly supervise?: boolean;
  /** Extra Node flags for every process (a benchmark's --cpu-prof, say). */
  readonly nodeArgs?: readonly string[];
}

/** One edge or worker process. */
export class FleetProcess {
  readonly role: Role;
  readonly name: string;
  readonly devicePort: number;
  readonly httpPort: number;
  readonly managed: ManagedProcess;
  /** Set when the test stopped or killed it on purpose. */
  intended = false;
  /** Set once it answered its readiness check. */
  ready = false;

  constructor(role: Role, name: string, devicePort: number, httpPort: number, managed: ManagedProcess) {
    this.role = role;
    this.name = name;
    this.devicePort = devicePort;
    this.httpPort = httpPort;
    this.managed = managed;
  }

  /** The Node process itself (the managed process is a small shell around it). */
  nodePid(): number | undefined {
    const shell = this.managed.pid;
    if (shell === undefined) return undefined;
    try {
      const children = readFileSync(`/proc/${shell}/task/${shell}/children`, "utf8").trim().split(/\s+/);
      for (const child of children) {
        if (child === "") continue;
        const cmdline = readFileSync(`/proc/${child}/cmdline`, "utf8");
        if (cmdline.includes("main.ts")) return Number(child);
      }
    } catch {
      // Gone.
    }
    return undefined;
  }

  /** Resident set size of the Node process in KiB, or undefined when it is gone. */
  rssKiB(): number | undefined {
    const pid = this.nodePid();
    if (pid === undefined) return undefined;
    try {
      const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return match?.[1] === undefined ? undefined : Number(match[1]);
    } catch {
      return undefined;
    }
  }

  running(): boolean {
    return this.managed.running();
  }

  /** `kill -9` of the Node process. */
  async kill9(): Promise<void> {
    this.intended = true;
    const pid = this.nodePid();
    if (pid !== undefined) process.kill(pid, "SIGKILL");
    else this.managed.killNow();
    await within(this.managed.exited, 10_000);
  }

  /** SIGTERM to the Node process; resolves with its exit code once it is gone. */
  async terminate(timeoutMs = 60_000): Promise<number | null> {
    this.intended = true;
    const pid = this.nodePid();
    if (pid !== undefined) process.kill(pid, "SIGTERM");
    const info = await within(this.managed.exited, timeoutMs);
    if (info === undefined) {
      this.managed.killNow();
      return null;
    }
    return info.code;
  }

  /** The end of its output, without the runtime's deprecation warnings. */
  tail(bytes = 4000): string {
    try {
      const text = readFileSync(this.managed.logFile, "utf8");
      return text
        .split("\n")
        .filter((line) => line.trim() !== "" && !NOISE.test(line))
        .join("\n")
        .slice(-bytes);
    } catch {
      return "";
    }
  }
}

const everyProcess = new Set<ManagedProcess>();
let exitHook = false;

function register(managed: ManagedProcess): void {
  everyProcess.add(managed);
  void managed.exited.then(() => everyProcess.delete(managed));
  if (!exitHook) {
    exitHook = true;
    process.on("exit", () => {
      for (const child of everyProcess) child.killNow();
    });
  }
}

/** A set of edges and workers on one name prefix. */
export class Fleet {
  readonly options: FleetOptions;
  readonly dir: string;
  readonly edges: FleetProcess[] = [];
  readonly workers: FleetProcess[] = [];
  /** Replacements the supervisor started for processes that died on their own. */
  restarts = 0;
  readonly exits: string[] = [];
  /** Processes that died before they were ready (and were started again). */
  readonly startupCrashes: string[] = [];
  #counter = 0;
  #closed = false;

  constructor(options: FleetOptions) {
    this.options = options;
    this.dir = mkdtempSync(join(tmpdir(), `tether-soak-fleet-${process.pid}-`));
  }

  /** Creates the topics and tables up front, so processes starting together do not race. */
  async setup(): Promise<void> {
    const logger = silentLogger();
    const names = resourceNames(this.options.prefix);
    const admin = createKafkaBroker({
      settings: localKafkaSettings(this.options, "soak-setup", { replicationFactor: 1 }),
      logger,
    }).admin();
    try {
      await admin.ensureTopics(
        tetherTopics({
          names,
          maxEdges: this.options.maxEdges,
          workPartitions: this.options.workPartitions,
          replicationFactor: 1,
        }),
      );
    } finally {
      await admin.close();
    }
    await ensureTables({ settings: localDynamoDbSettings(this.options), names, logger });
  }

  #env(): Record<string, string> {
    return {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      TETHER_ENV: "production",
      TETHER_LOG_LEVEL: process.env.SOAK_LOG_LEVEL ?? "warn",
      TETHER_BROKER: "kafka",
      TETHER_KAFKA_BROKERS: this.options.kafkaBrokers,
      TETHER_KAFKA_REPLICATION_FACTOR: "1",
      TETHER_REGISTRY: "dynamodb",
      TETHER_DYNAMODB_ENDPOINT: this.options.dynamodbEndpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      TETHER_NAME_PREFIX: this.options.prefix,
      TETHER_MAX_EDGES: String(this.options.maxEdges),
      // The counts the topics were made with: a larger one would have the first process grow them.
      TETHER_WORK_PARTITIONS: String(this.options.workPartitions),
    };
  }

  startEdge(extra: Readonly<Record<string, string>> = {}): Promise<FleetProcess> {
    return this.#launch(async () => {
      const [devicePort, httpPort] = (await freePorts(2)) as [number, number];
      const proc = this.#spawn("edge", devicePort, httpPort, extra, {
        TETHER_AUTH_MODE: "hmac",
        TETHER_AUTH_SECRET: AUTH_SECRET,
        TETHER_DEVICE_HOST: "127.0.0.1",
        TETHER_DEVICE_PORT: String(devicePort),
        TETHER_MQTT_PORT: "0",
        TETHER_WS_PORT: "0",
        TETHER_EDGE_HTTP_PORT: String(httpPort),
        ...this.options.edgeEnv,
        ...extra,
      });
      this.edges.push(proc);
      return proc;
    });
  }

  startWorker(extra: Readonly<Record<string, string>> = {}): Promise<FleetProcess> {
    return this.#launch(async () => {
      const [httpPort] = (await freePorts(1)) as [number];
      const proc = this.#spawn("worker", 0, httpPort, extra, {
        TETHER_WORKER_HTTP_PORT: String(httpPort),
        ...this.options.workerEnv,
        ...extra,
      });
      this.workers.push(proc);
      return proc;
    });
  }

  /**
   * Starts a process and waits until it is ready. A process that dies during start-up is
   * counted in `startupCrashes` and started again (twice at most), as an orchestrator would.
   */
  async #launch(spawn: () => Promise<FleetProcess>): Promise<FleetProcess> {
    for (let attempt = 0; ; attempt++) {
      const proc = await spawn();
      try {
        await this.#ready(proc);
        proc.ready = true;
        return proc;
      } catch (error) {
        if (proc.running() || attempt >= 2) throw error;
        proc.intended = true;
        this.startupCrashes.push(`${proc.name}: ${proc.tail(300).trim().split("\n").at(-1)}`);
      }
    }
  }

  /** Edges still running, for the load balancer. */
  liveEdges(): FleetProcess[] {
    return this.edges.filter((edge) => edge.running());
  }

  #spawn(
    role: Role,
    devicePort: number,
    httpPort: number,
    extra: Readonly<Record<string, string>>,
    env: Record<string, string>,
  ): FleetProcess {
    this.#counter += 1;
    const name = `${role}-${this.#counter}`;
    const managed = new ManagedProcess({
      name,
      command: process.execPath,
      args: [...(this.options.nodeArgs ?? []), "--import", "tsx", join("services", role, "main.ts")],
      cwd: repoRoot,
      logFile: join(this.dir, `${name}.log`),
      env: { ...this.#env(), ...env },
    });
    register(managed);
    const proc = new FleetProcess(role, name, devicePort, httpPort, managed);
    void managed.exited.then((info) => {
      const why = proc.intended ? "" : proc.ready ? " (on its own)" : " (during start-up)";
      this.exits.push(`${name} exited code=${info.code} signal=${info.signal}${why}`);
      if (proc.intended || !proc.ready || this.#closed || this.options.supervise === false) return;
      // The orchestrator's part: a task that died is replaced, again and again until one runs.
      this.restarts += 1;
      void (async () => {
        for (let attempt = 0; !this.#closed; attempt++) {
          await delay(Math.min(5000, 1000 * 2 ** Math.min(attempt, 3)));
          if (this.#closed) return;
          try {
            if (role === "edge") await this.startEdge(extra);
            else await this.startWorker(extra);
            return;
          } catch (error) {
            this.exits.push(`replacement of ${name} failed: ${String(error).split("\n")[0]}`);
          }
        }
      })();
    });
    return proc;
  }

  async #ready(proc: FleetProcess): Promise<void> {
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (!proc.running()) {
        throw new Error(`${proc.name} exited during start-up: ${proc.tail()}`);
      }
      try {
        const response = await fetch(`http://127.0.0.1:${proc.httpPort}/readyz`, {
          signal: AbortSignal.timeout(1000),
        });
        await response.arrayBuffer();
        if (response.status === 200) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`${proc.name} not ready in 90 s: ${proc.tail()}`);
      await delay(100);
    }
  }

  /** Counters from an edge's /metrics, by metric line name (with labels), or undefined when down. */
  static async metrics(proc: FleetProcess): Promise<Map<string, number> | undefined> {
    try {
      const response = await fetch(`http://127.0.0.1:${proc.httpPort}/metrics`, { signal: AbortSignal.timeout(3000) });
      const text = await response.text();
      const values = new Map<string, number>();
      for (const line of text.split("\n")) {
        if (line.startsWith("#") || line === "") continue;
        const space = line.lastIndexOf(" ");
        values.set(line.slice(0, space), Number(line.slice(space + 1)));
      }
      return values;
    } catch {
      return undefined;
    }
  }

  /** Kills every process (SIGKILL), keeps the logs only when asked. */
  async close(keepLogs = false): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const all = [...this.edges, ...this.workers];
    for (const proc of all) proc.intended = true;
    if (this.startupCrashes.length > 0) keepLogs = true;
    // A profiled process writes its profile as it exits, after its shutdown: give it the time.
    const profiled = (this.options.nodeArgs ?? []).some((arg) => arg.startsWith("--cpu-prof"));
    await Promise.allSettled(all.map((proc) => proc.managed.stop(profiled ? 20_000 : 500)));
    if (!keepLogs) removeTree(this.dir);
  }
}
