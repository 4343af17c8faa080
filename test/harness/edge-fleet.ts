/**
 * The production shape for delivery-guarantee tests: N edge processes and worker processes
 * (`services/edge/main.ts`, `services/worker/main.ts` under `node --import tsx`) on the local
 * cluster, with 64 reply slots and hmac auth by default, and the faults a guarantee must
 * survive: kill -9, SIGSTOP/SIGCONT, SIGTERM, a per-edge DynamoDB endpoint (a TcpProxy in
 * front of DynamoDB Local), a per-edge clock offset (faketime).
 *
 * Built on the soak fleet (`test/soak/fleet.ts`), which spawns and supervises the processes;
 * this adds the cluster, a fresh name prefix, proxies, signals, the registry view the tests
 * read (leases, connections), pushes, and cleanup in `after`.
 */
import { execFileSync } from "node:child_process";
import { after } from "node:test";
import { hmacToken } from "../../shared/auth/index.ts";
import { createKafkaBroker } from "../../shared/broker/kafka/index.ts";
import type { Producer } from "../../shared/broker/types.ts";
import { type ResourceNames, resourceNames } from "../../shared/config/index.ts";
import { silentLogger } from "../../shared/log/index.ts";
import { type DownlinkRecord, downlinkRecord } from "../../shared/records/index.ts";
import { createDynamoRegistry } from "../../shared/registry/dynamodb/index.ts";
import type { ConnectionRecord, Registry, SlotLease } from "../../shared/registry/types.ts";
import { AUTH_SECRET, Fleet, type FleetProcess } from "../soak/fleet.ts";
import { type ClusterEnv, localKafkaSettings, uniquePrefix, useLocalCluster } from "./index.ts";
import { delay, within } from "./process.ts";
import { RawDevice, type RawDeviceOptions } from "./raw-device.ts";
import { TcpProxy } from "./tcp-proxy.ts";

export type { FleetProcess } from "../soak/fleet.ts";

export interface EdgeSpec {
  /** Environment on top of the fleet's edge environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** This edge's DynamoDB endpoint, e.g. a proxy's `endpoint`. */
  readonly dynamodbEndpoint?: string;
  /** A faketime offset for this edge's clock (wall and monotonic), e.g. `+5s` or `-5s` (`faketime -f`). */
  readonly faketime?: string;
}

export interface EdgeFleetOptions {
  /** Edges started by `startEdgeFleet` (default 3). */
  readonly edges?: number;
  /** Per-edge settings, by index; edges past the list get none. */
  readonly edgeSpecs?: readonly EdgeSpec[];
  /** Workers started by `startEdgeFleet` (default 1). */
  readonly workers?: number;
  /** Reply slots: partitions of `replies` (default 64, the production shape). */
  readonly maxEdges?: number;
  /** TETHER_EDGE_LEASE_MS (default 3000). */
  readonly leaseMs?: number;
  /** TETHER_AUTH_MODE (default hmac; tokens from `token()`). */
  readonly authMode?: "hmac" | "none";
  /** Environment for every edge. */
  readonly edgeEnv?: Readonly<Record<string, string>>;
  /** Environment for every worker; `dynamodbEndpoint` below wins over its endpoint. */
  readonly workerEnv?: Readonly<Record<string, string>>;
  /** The workers' DynamoDB endpoint (a proxy's, to cut the whole fleet off). */
  readonly workerDynamodbEndpoint?: string;
}

/** What an edge says on `/readyz`. */
export interface EdgeReadiness {
  readonly ready: boolean;
  readonly status: string;
  readonly slot: number | null;
  readonly connections: number;
}

const liveFleets = new Set<EdgeFleet>();
const liveProxies = new Set<TcpProxy>();

after(async () => {
  await Promise.allSettled([...liveFleets].map((fleet) => fleet.close()));
  await Promise.allSettled([...liveProxies].map((proxy) => proxy.close()));
});

const faketimeEnvs = new Map<string, Record<string, string>>();

/**
 * The environment `faketime -m -f <offset>` gives the program it runs (the preloaded library
 * and FAKETIME), taken from faketime itself, so a fleet process runs with the shifted clock
 * while staying the direct child the fleet signals. The shared-memory handle faketime makes
 * for its own child is left out: a fixed offset does not use it. Throws with the install
 * command when the faketime binary is missing.
 */
export function faketimeEnv(offset: string): Record<string, string> {
  const known = faketimeEnvs.get(offset);
  if (known !== undefined) return known;
  let output: string;
  try {
    output = execFileSync("faketime", ["-m", "-f", offset, "env"], { encoding: "utf8", timeout: 10_000 });
  } catch (error) {
    throw new Error(
      `faketime -f ${offset} failed (${String(error).split("\n")[0]}); it comes from the Debian package faketime: apt-get update && apt-get install -y faketime`,
    );
  }
  const env: Record<string, string> = {};
  for (const line of output.split("\n")) {
    const equals = line.indexOf("=");
    const name = line.slice(0, equals);
    if (name === "LD_PRELOAD" || name === "FAKETIME") env[name] = line.slice(equals + 1);
  }
  if (env.LD_PRELOAD === undefined || env.FAKETIME !== offset) {
    throw new Error(`faketime -f ${offset} did not set LD_PRELOAD and FAKETIME: ${output}`);
  }
  faketimeEnvs.set(offset, env);
  return env;
}

/** A proxy in front of the cluster's DynamoDB Local, closed in `after`. */
export async function dynamoProxy(cluster: ClusterEnv): Promise<TcpProxy> {
  const proxy = await TcpProxy.forEndpoint(cluster.dynamodbEndpoint);
  liveProxies.add(proxy);
  return proxy;
}

export class EdgeFleet {
  readonly cluster: ClusterEnv;
  readonly prefix: string;
  readonly names: ResourceNames;
  readonly leaseMs: number;
  readonly maxEdges: number;
  readonly fleet: Fleet;
  /** The test's own view of the registry, on the direct DynamoDB endpoint. */
  readonly registry: Registry;
  readonly #authMode: "hmac" | "none";
  #producer: Producer | undefined;
  #closed = false;
  #pushCounter = 0;

  constructor(cluster: ClusterEnv, options: EdgeFleetOptions) {
    this.cluster = cluster;
    this.prefix = uniquePrefix();
    this.names = resourceNames(this.prefix);
    this.leaseMs = options.leaseMs ?? 3000;
    this.maxEdges = options.maxEdges ?? 64;
    this.#authMode = options.authMode ?? "hmac";
    this.fleet = new Fleet({
      kafkaBrokers: cluster.kafkaBrokers,
      dynamodbEndpoint: cluster.dynamodbEndpoint,
      prefix: this.prefix,
      maxEdges: this.maxEdges,
      workPartitions: 4,
      supervise: false,
      edgeEnv: {
        TETHER_EDGE_LEASE_MS: String(this.leaseMs),
        TETHER_RATE_LIMIT: "1000",
        ...(this.#authMode === "none" ? { TETHER_ENV: "development", TETHER_AUTH_MODE: "none" } : {}),
        ...options.edgeEnv,
      },
      workerEnv: {
        ...options.workerEnv,
        ...(options.workerDynamodbEndpoint === undefined
          ? {}
          : { TETHER_DYNAMODB_ENDPOINT: options.workerDynamodbEndpoint }),
      },
    });
    this.registry = createDynamoRegistry({
      settings: { endpoint: cluster.dynamodbEndpoint, region: "us-east-1" },
      names: this.names,
      logger: silentLogger(),
    });
    liveFleets.add(this);
  }

  get edges(): FleetProcess[] {
    return this.fleet.edges;
  }

  get workers(): FleetProcess[] {
    return this.fleet.workers;
  }

  /** Edges whose process is still running (stopped ones included). */
  liveEdges(): FleetProcess[] {
    return this.fleet.liveEdges();
  }

  startEdge(spec: EdgeSpec = {}): Promise<FleetProcess> {
    const env: Record<string, string> = { ...spec.env };
    if (spec.dynamodbEndpoint !== undefined) env.TETHER_DYNAMODB_ENDPOINT = spec.dynamodbEndpoint;
    if (spec.faketime !== undefined) Object.assign(env, faketimeEnv(spec.faketime));
    return this.fleet.startEdge(env);
  }

  startWorker(env: Readonly<Record<string, string>> = {}): Promise<FleetProcess> {
    return this.fleet.startWorker(env);
  }

  /** The hello token of a device in this fleet's auth mode. */
  token(deviceId: string): string | undefined {
    return this.#authMode === "hmac" ? hmacToken(AUTH_SECRET, deviceId) : undefined;
  }

  /** A raw device with this fleet's token. */
  device(deviceId: string, options: Omit<RawDeviceOptions, "deviceId" | "token"> = {}): RawDevice {
    const token = this.token(deviceId);
    return new RawDevice({ deviceId, ...options, ...(token === undefined ? {} : { token }) });
  }

  /** kill -9 of the edge's (or worker's) Node process. */
  kill9(proc: FleetProcess): Promise<void> {
    return proc.kill9();
  }

  /** SIGTERM; resolves with the exit code. */
  terminate(proc: FleetProcess, timeoutMs?: number): Promise<number | null> {
    return proc.terminate(timeoutMs);
  }

  /** SIGSTOP of the Node process: frozen, sockets open, no timers run. */
  freeze(proc: FleetProcess): void {
    this.#signal(proc, "SIGSTOP");
  }

  /** SIGCONT after `freeze`. */
  thaw(proc: FleetProcess): void {
    this.#signal(proc, "SIGCONT");
  }

  #signal(proc: FleetProcess, signal: NodeJS.Signals): void {
    const pid = proc.nodePid();
    if (pid === undefined) throw new Error(`${proc.name} has no running Node process`);
    process.kill(pid, signal);
  }

  /** `/readyz` of an edge, or undefined when it does not answer within `timeoutMs`. */
  async readiness(proc: FleetProcess, timeoutMs = 1000): Promise<EdgeReadiness | undefined> {
    try {
      const response = await fetch(`http://127.0.0.1:${proc.httpPort}/readyz`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
      return (await response.json()) as EdgeReadiness;
    } catch {
      return undefined;
    }
  }

  /** Every lease row. */
  leases(): Promise<readonly SlotLease[]> {
    return this.registry.leases.list();
  }

  /** The device's connection record, or null. */
  connection(deviceId: string): Promise<ConnectionRecord | null> {
    return this.registry.connections.get(deviceId);
  }

  /** Sends a push to `deviceId` through topic `downlink`; resolves with its messageId. */
  async push(deviceId: string, body: unknown, type = "guarantee"): Promise<string> {
    if (this.#producer === undefined) {
      this.#producer = createKafkaBroker({
        settings: { ...localKafkaSettings(this.cluster, "guarantee-pusher"), replicationFactor: 1 },
        logger: silentLogger(),
      }).producer();
      await this.#producer.connect();
    }
    this.#pushCounter += 1;
    const messageId = `push-${this.#pushCounter}-${Date.now().toString(36)}`;
    const now = Date.now();
    const record: DownlinkRecord = { deviceId, messageId, type, body, expiresAt: now + 10 * 60_000, createdAt: now };
    await this.#producer.send(downlinkRecord(this.names.downlinkTopic, record), { timeoutMs: 10_000 });
    return messageId;
  }

  /** Every edge and worker killed (a frozen one is thawed first so the kill lands). */
  async close(keepLogs = false): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    liveFleets.delete(this);
    for (const proc of [...this.edges, ...this.workers]) {
      const pid = proc.nodePid();
      if (pid === undefined) continue;
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // Gone.
      }
    }
    await this.fleet.close(keepLogs);
    await within(this.#producer?.close() ?? Promise.resolve(), 5000);
    await within(this.registry.close(), 5000);
  }
}

/**
 * Creates the topics and tables under a fresh prefix, then starts the edges (one after the
 * other, so each leases its slot) and the workers.
 */
export async function startEdgeFleet(options: EdgeFleetOptions = {}): Promise<EdgeFleet> {
  const cluster = await useLocalCluster();
  const fleet = new EdgeFleet(cluster, options);
  await fleet.fleet.setup();
  const edges = options.edges ?? 3;
  for (let index = 0; index < edges; index++) await fleet.startEdge(options.edgeSpecs?.[index] ?? {});
  for (let index = 0; index < (options.workers ?? 1); index++) await fleet.startWorker();
  return fleet;
}

/** Round-robin over the given edges, as the load balancer spreads new connections. */
export class RoundRobin {
  readonly #edges: () => readonly FleetProcess[];
  #next = 0;

  constructor(edges: () => readonly FleetProcess[]) {
    this.#edges = edges;
  }

  port(): number {
    const edges = this.#edges();
    if (edges.length === 0) throw new Error("no edge to connect to");
    const edge = edges[this.#next % edges.length] as FleetProcess;
    this.#next += 1;
    return edge.devicePort;
  }
}

/** Polls until `check` holds; throws with `what` after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(50);
  }
}

/** A guarantee test's figures on stderr, as `# name: key=value ...`. */
export function report(name: string, figures: Readonly<Record<string, unknown>>): void {
  const text = Object.entries(figures)
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ");
  process.stderr.write(`# ${name}: ${text}\n`);
}
