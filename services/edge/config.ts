import { randomBytes } from "node:crypto";
import { hostname, totalmem } from "node:os";
import { type AuthConfig, defaultAuthConfig, readAuthConfig } from "../../shared/auth/index.ts";
import { type CommonConfig, ConfigReader, type Env, readCommonConfig } from "../../shared/config/index.ts";
import {
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_HELLO_TIMEOUT_MS,
  DEFAULT_MAX_FRAME_BYTES,
} from "../../shared/protocol/frames.ts";
import { readTelemetryConfig, type TelemetryConfig } from "../../shared/telemetry/index.ts";

/** Per-edge limits; each one is configurable because fleets differ in what devices need. */
export interface EdgeLimits {
  /** Open device connections per edge; past it new sockets get `unavailable` and are closed. */
  readonly maxConnections: number;
  /** Requests of one connection awaiting their answer; past it the edge stops reading that socket. */
  readonly maxInflight: number;
  /** Requests per second per connection (token bucket; the burst equals the rate). */
  readonly rateLimit: number;
  /** Bytes queued to a socket that is not reading; past it the connection is cut. */
  readonly maxQueuedBytes: number;
  readonly helloTimeoutMs: number;
  /** Told to devices in `welcome`; a connection silent for twice this long is closed. */
  readonly heartbeatMs: number;
  readonly maxFrameBytes: number;
  /** Longest line accepted before a hello was read (a hello is small; junk is cut early). */
  readonly maxHelloBytes: number;
  /** Sockets not yet welcomed (TLS handshake, hello, claim), edge-wide; past it new ones are refused. */
  readonly maxPendingConnections: number;
  /** Sockets not yet welcomed from one source address; past it that address's new ones are refused. */
  readonly maxPendingPerSource: number;
  /**
   * Requests handed to the producer and still without a delivery report, past which the edge
   * stops reading sockets (until half of them are confirmed). It keeps an overloaded edge
   * confirming what it took: the client library hands the main thread only so many delivery
   * reports per event-loop turn, so an edge that keeps reading everything falls further behind
   * on them until its sends time out.
   */
  readonly maxProducerQueue: number;
}

export interface EdgeConfig {
  readonly common: CommonConfig;
  readonly edgeId: string;
  /** Written to the slot lease row so that operators can find the process. */
  readonly host: string;
  readonly devicePort: number;
  /** MQTT 3.1.1 and 5.0 (`TETHER_MQTT_PORT`), same TLS and PROXY rules as the device port. */
  readonly mqttPort: number;
  /** WebSocket (`TETHER_WS_PORT`): NDJSON text messages, or MQTT with subprotocol `mqtt`. */
  readonly wsPort: number;
  /** Interface the device listener binds; all interfaces by default. */
  readonly deviceHost: string | undefined;
  readonly httpPort: number;
  readonly auth: AuthConfig;
  /**
   * `v2`: every device connection starts with a PROXY protocol v2 header (the NLB's target group
   * setting), which tells the device's own address; `off`: the socket's peer is the device.
   */
  readonly proxyProtocol: "off" | "v2";
  /** PEM files; when both are set the edge terminates TLS itself. */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly drainMs: number;
  /** Slot lease length; renewed every third of it. */
  readonly leaseMs: number;
  /** Upper bound for a request's delivery report before the device gets `unavailable`. */
  readonly produceTimeoutMs: number;
  /** How long a parked answer waits in the outbox for its device. */
  readonly outboxTtlMs: number;
  /** Replies forwarded more often than this are parked instead (bounds forwarding loops). */
  readonly maxHops: number;
  readonly limits: EdgeLimits;
  /** Tracing (OTEL_* variables) and the build's commit; absent in tests. */
  readonly telemetry?: TelemetryConfig;
}

/** A fresh edge id: short, unique enough for a fleet, safe in Kafka headers and DynamoDB keys. */
export function randomEdgeId(): string {
  return `edge-${randomBytes(6).toString("hex")}`;
}

/**
 * Reads the edge's configuration from the environment, reporting every problem at once.
 * Auth mode `none` is refused unless `TETHER_ENV=development` (see readAuthConfig).
 */
/**
 * Default connection cap: what the task's memory holds at a generous budget per connection
 * (buffers of busy devices included), so a 2 GiB task is not promised 100,000 sockets.
 */
export function defaultMaxConnections(memoryBytes: number): number {
  const perConnection = 24 * 1024;
  const usable = memoryBytes * 0.6;
  return Math.max(100, Math.min(1_000_000, Math.floor(usable / perConnection)));
}

/** The memory this process may use: its cgroup limit when it has one, else the machine's. */
export function availableMemory(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  const total = totalmem();
  return constrained > 0 && constrained < total ? constrained : total;
}

export function readEdgeConfig(env: Env, memoryBytes: number = availableMemory()): EdgeConfig {
  const reader = new ConfigReader(env);
  const common = readCommonConfig(reader, "tether-edge");
  const auth = readAuthConfig(reader, common.environment);
  const certFile = reader.optionalString("TETHER_TLS_CERT_FILE");
  const keyFile = reader.optionalString("TETHER_TLS_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    reader.problem("TETHER_TLS_CERT_FILE", "and TETHER_TLS_KEY_FILE must be set together");
  }
  const edgeId = reader.string("TETHER_EDGE_ID", randomEdgeId());
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(edgeId)) {
    reader.problem("TETHER_EDGE_ID", "must be 1 to 64 characters of A-Z a-z 0-9 . _ : -");
  }
  const heartbeatMs = reader.integer("TETHER_HEARTBEAT_MS", DEFAULT_HEARTBEAT_MS, { min: 50, max: 3_600_000 });
  const maxConnections = reader.integer("TETHER_MAX_CONNECTIONS", defaultMaxConnections(memoryBytes), { min: 1 });
  const leaseMs = reader.integer("TETHER_EDGE_LEASE_MS", 10_000, { min: 300, max: 600_000 });
  const config: EdgeConfig = {
    common,
    telemetry: readTelemetryConfig(reader, "tether-edge"),
    edgeId,
    host: reader.string("TETHER_EDGE_HOST", hostname()),
    devicePort: reader.port("TETHER_DEVICE_PORT", 3000),
    mqttPort: reader.port("TETHER_MQTT_PORT", 1883),
    wsPort: reader.port("TETHER_WS_PORT", 8083),
    deviceHost: reader.optionalString("TETHER_DEVICE_HOST"),
    httpPort: reader.port("TETHER_EDGE_HTTP_PORT", 9090),
    auth,
    proxyProtocol: reader.oneOf("TETHER_PROXY_PROTOCOL", ["off", "v2"] as const, "off"),
    tls: certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined,
    drainMs: reader.integer("TETHER_DRAIN_MS", 20_000, { min: 0, max: 3_600_000 }),
    leaseMs,
    produceTimeoutMs: reader.integer("TETHER_PRODUCE_TIMEOUT_MS", 5_000, { min: 10, max: 120_000 }),
    outboxTtlMs: reader.integer("TETHER_OUTBOX_TTL_MS", 24 * 60 * 60 * 1000, { min: 1000 }),
    maxHops: reader.integer("TETHER_MAX_HOPS", 3, { min: 0, max: 16 }),
    limits: {
      maxConnections,
      maxInflight: reader.integer("TETHER_MAX_INFLIGHT", 64, { min: 1, max: 100_000 }),
      rateLimit: reader.integer("TETHER_RATE_LIMIT", 100, { min: 1 }),
      maxQueuedBytes: reader.integer("TETHER_MAX_QUEUED_BYTES", 1024 * 1024, { min: 1024 }),
      helloTimeoutMs: reader.integer("TETHER_HELLO_TIMEOUT_MS", DEFAULT_HELLO_TIMEOUT_MS, { min: 10, max: 600_000 }),
      heartbeatMs,
      maxFrameBytes: reader.integer("TETHER_MAX_FRAME_BYTES", DEFAULT_MAX_FRAME_BYTES, {
        min: 256,
        max: 16 * 1024 * 1024,
      }),
      maxProducerQueue: reader.integer("TETHER_MAX_PRODUCER_QUEUE", 5_000, { min: 1 }),
      maxHelloBytes: reader.integer("TETHER_MAX_HELLO_BYTES", 2048, { min: 256, max: 65_536 }),
      maxPendingConnections: reader.integer("TETHER_MAX_PENDING_CONNECTIONS", Math.min(maxConnections, 10_000), {
        min: 1,
      }),
      maxPendingPerSource: reader.integer("TETHER_MAX_PENDING_PER_SOURCE", 1_000, { min: 1 }),
    },
  };
  return reader.finish(config);
}

/** Defaults for tests and the embedded mode: every limit as in production, auth left to the caller. */
export function edgeConfigForTests(
  common: CommonConfig,
  overrides: Partial<Omit<EdgeConfig, "limits" | "common">> & { limits?: Partial<EdgeLimits> } = {},
): EdgeConfig {
  const { limits, ...rest } = overrides;
  return {
    common,
    edgeId: randomEdgeId(),
    host: "localhost",
    devicePort: 0,
    mqttPort: 0,
    wsPort: 0,
    deviceHost: "127.0.0.1",
    httpPort: 0,
    auth: defaultAuthConfig(),
    proxyProtocol: "off",
    tls: undefined,
    drainMs: 1000,
    leaseMs: 10_000,
    produceTimeoutMs: 5_000,
    outboxTtlMs: 24 * 60 * 60 * 1000,
    maxHops: 3,
    ...rest,
    limits: {
      maxConnections: 100_000,
      maxInflight: 64,
      rateLimit: 1000,
      maxQueuedBytes: 1024 * 1024,
      helloTimeoutMs: DEFAULT_HELLO_TIMEOUT_MS,
      heartbeatMs: DEFAULT_HEARTBEAT_MS,
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      maxProducerQueue: 5_000,
      maxHelloBytes: 2048,
      maxPendingConnections: 10_000,
      maxPendingPerSource: 1_000,
      ...limits,
    },
  };
}
