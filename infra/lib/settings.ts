import { Duration } from "aws-cdk-lib";
import type { AuthMode as SharedAuthMode } from "../../shared/auth/index.ts";

/** An existing VPC, given by ids so that synth needs no look-up. */
export interface ExistingVpc {
  readonly vpcId: string;
  readonly vpcCidr: string;
  readonly availabilityZones: readonly string[];
  readonly publicSubnetIds: readonly string[];
  readonly privateSubnetIds: readonly string[];
}

/** Where Kafka runs. */
export type KafkaMode =
  | { readonly mode: "msk-serverless" }
  | {
      readonly mode: "external";
      /** host:port,host:port (Confluent Cloud, or an MSK cluster with SASL/SCRAM-style PLAIN). */
      readonly bootstrapServers: string;
      /** Complete ARN of a Secrets Manager secret holding JSON `{"username": ..., "password": ...}`. */
      readonly saslSecretArn: string;
    };

/** The CPU architecture of the Fargate tasks; the image is built for the same platform. */
export type CpuArchitecture = "x86_64" | "arm64";

/** The device auth modes a deployment may use (`none` is for local development only). */
export type AuthMode = Exclude<SharedAuthMode, "none">;

/** Everything that varies between deployments; read from CDK context by `settingsFromContext`. */
export interface TetherSettings {
  /** Short environment name used in resource names (`prod`, `staging`). */
  readonly envName: string;
  /** Production keeps data on delete, protects tables and load balancers, and runs more NAT gateways. */
  readonly production: boolean;
  /** Undefined: the stack creates a VPC. */
  readonly existingVpc: ExistingVpc | undefined;
  /** Address range of the VPC the stack creates. */
  readonly vpcCidr: string;
  /** Availability zones of the VPC the stack creates (3 by default); production runs a NAT gateway in each. */
  readonly maxAzs: number;
  /** `arm64` runs the tasks on Graviton; the image is built for linux/arm64 then. */
  readonly cpuArchitecture: CpuArchitecture;
  readonly kafka: KafkaMode;
  /** Prefix of topic names (TETHER_NAME_PREFIX); empty for a cluster of one's own. */
  readonly namePrefix: string;
  /** Partitions of `replies`, so the most edges that can run at once (deployments included). */
  readonly maxEdges: number;
  /** Partitions of `requests` and `downlink` (the services' default), so the useful worker ceiling. */
  readonly workPartitions: number;
  /** ACM certificate for the TLS device listener on 443; none: TCP on 3000 only. */
  readonly certificateArn: string | undefined;
  /**
   * Whether devices may also connect unencrypted on 3000. Off by default once a certificate is
   * given, so a stack with TLS has no plain listener and no public rule for it.
   */
  readonly devicePlainTcp: boolean;
  /**
   * The NLB starts every connection to the edge with a PROXY protocol v2 header (on by
   * default): with IP targets the edge otherwise sees the NLB's address, not the device's.
   */
  readonly proxyProtocol: boolean;
  /**
   * ACM certificate for HTTPS on the internal admin load balancer; none: HTTP on 80, which only
   * a non-production environment may do.
   */
  readonly adminCertificateArn: string | undefined;
  /** Networks allowed to reach the device listeners. */
  readonly deviceCidrs: readonly string[];
  readonly authMode: AuthMode;
  /** JWKS URL for `jwt` mode; without it, `jwt` uses the generated HS256 secret. */
  readonly jwksUrl: string | undefined;
  readonly drainMs: number;
  readonly edge: { readonly desired: number; readonly min: number; readonly max: number };
  readonly worker: { readonly desired: number; readonly min: number; readonly max: number };
  readonly admin: { readonly desired: number };
  /** Target of the connections-per-task scaling policy. */
  readonly connectionsPerEdge: number;
  /** Target of the lag-per-task scaling policy (MSK only). */
  readonly lagPerWorker: number;
  /** Lag (messages) above which the consumer-lag alarm fires (MSK only). */
  readonly lagAlarmThreshold: number;
  readonly logRetentionDays: number;
  /** Optional e-mail address subscribed to the alarm topic. */
  readonly alarmEmail: string | undefined;
}

/** Drain-related timings, derived from TETHER_DRAIN_MS. */
export interface DrainTimings {
  /** How long the NLB keeps a deregistering target before ECS sends SIGTERM. */
  readonly deregistrationDelay: Duration;
  /** SIGTERM to SIGKILL: the drain plus room to flush the producer and release the lease. */
  readonly stopTimeout: Duration;
}

/**
 * ECS stops a task behind a load balancer in this order: deregister the target, wait for the
 * deregistration delay, then SIGTERM, then SIGKILL after `stopTimeout`. Device connections
 * never end by themselves, so the delay always runs in full before the edge hears of it.
 * The delay therefore only has to cover the NLB nodes ceasing to send new connections
 * (10 s); the drain itself (`bye draining`, reconnects spread over the window) runs after
 * SIGTERM, and `stopTimeout` gives it the drain plus 10 s for the producer flush and the lease
 * release. Fargate caps `stopTimeout` at 120 s.
 */
export function drainTimings(drainMs: number): DrainTimings {
  const stopSeconds = Math.ceil(drainMs / 1000) + 10;
  if (stopSeconds > 120) {
    throw new Error(`drainMs ${drainMs} leaves no room within Fargate's 120 s stopTimeout; use at most 110000`);
  }
  return { deregistrationDelay: Duration.seconds(10), stopTimeout: Duration.seconds(stopSeconds) };
}

/** Context values that cannot make a deployment; the message names every one. */
export class InvalidContextError extends Error {
  override readonly name = "InvalidContextError";
}

/** Reads context values, as strings from `-c key=value` or as JSON from cdk.json. */
export type ContextReader = (key: string) => unknown;

const DEFAULTS = {
  envName: "dev",
  maxEdges: 64,
  workPartitions: 12,
  maxAzs: 3,
  drainMs: 20_000,
  connectionsPerEdge: 10_000,
  lagPerWorker: 1_000,
  lagAlarmThreshold: 10_000,
} as const;

/**
 * Turns CDK context into settings, reporting every bad value at once.
 *
 * Keys: env, production, vpcId, vpcCidr, availabilityZones, publicSubnetIds, privateSubnetIds,
 * maxAzs, cpuArchitecture, kafkaMode, bootstrapServers, kafkaSecretArn, namePrefix, maxEdges, workPartitions,
 * certificateArn, devicePlainTcp, proxyProtocol, adminCertificateArn, deviceCidrs, authMode,
 * jwksUrl, drainMs, edgeDesiredCount, edgeMinCount, edgeMaxCount, workerDesiredCount,
 * workerMinCount, workerMaxCount, adminDesiredCount, connectionsPerEdge, lagPerWorker,
 * lagAlarmThreshold, logRetentionDays, alarmEmail.
 */
export function settingsFromContext(read: ContextReader): TetherSettings {
  const problems: string[] = [];

  const str = (key: string): string | undefined => {
    const value = read(key);
    if (value === undefined || value === null) return undefined;
    const text = String(value).trim();
    return text === "" ? undefined : text;
  };
  const list = (key: string): string[] | undefined => {
    const value = read(key);
    if (Array.isArray(value)) return value.map(String);
    const text = str(key);
    return text === undefined
      ? undefined
      : text
          .split(",")
          .map((part) => part.trim())
          .filter(Boolean);
  };
  const int = (key: string, fallback: number, min: number, max: number): number => {
    const text = str(key);
    if (text === undefined) return fallback;
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
      problems.push(`${key} must be a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
      return fallback;
    }
    return Number(text);
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const text = str(key);
    if (text === undefined) return fallback;
    if (text === "true") return true;
    if (text === "false") return false;
    problems.push(`${key} must be true or false, got ${JSON.stringify(text)}`);
    return fallback;
  };

  const envName = str("env") ?? DEFAULTS.envName;
  if (!/^[a-z][a-z0-9-]{0,15}$/.test(envName)) {
    problems.push(`env must be 1-16 lower-case letters, digits or dashes, starting with a letter; got ${envName}`);
  }
  const production = bool("production", envName === "prod" || envName === "production");

  let existingVpc: ExistingVpc | undefined;
  const vpcId = str("vpcId");
  if (vpcId !== undefined) {
    const vpcCidr = str("vpcCidr");
    const availabilityZones = list("availabilityZones") ?? [];
    const publicSubnetIds = list("publicSubnetIds") ?? [];
    const privateSubnetIds = list("privateSubnetIds") ?? [];
    if (vpcCidr === undefined) problems.push("vpcCidr is required with vpcId");
    if (availabilityZones.length < 2) problems.push("availabilityZones needs at least two zones with vpcId");
    if (publicSubnetIds.length !== availabilityZones.length || privateSubnetIds.length !== availabilityZones.length) {
      problems.push("publicSubnetIds and privateSubnetIds need one subnet per availability zone");
    }
    existingVpc = { vpcId, vpcCidr: vpcCidr ?? "", availabilityZones, publicSubnetIds, privateSubnetIds };
  }

  const maxAzs = int("maxAzs", DEFAULTS.maxAzs, 2, 6);
  const cpuArchitecture = str("cpuArchitecture") ?? "x86_64";
  if (cpuArchitecture !== "x86_64" && cpuArchitecture !== "arm64") {
    problems.push(`cpuArchitecture must be x86_64 or arm64, got ${cpuArchitecture}`);
  }

  const kafkaModeName = str("kafkaMode") ?? "msk-serverless";
  let kafka: KafkaMode = { mode: "msk-serverless" };
  if (kafkaModeName === "external") {
    const bootstrapServers = str("bootstrapServers");
    const saslSecretArn = str("kafkaSecretArn");
    if (bootstrapServers === undefined) problems.push("bootstrapServers is required with kafkaMode=external");
    if (saslSecretArn === undefined || !/^arn:aws[a-z-]*:secretsmanager:/.test(saslSecretArn)) {
      problems.push(
        "kafkaSecretArn (the complete ARN of a Secrets Manager secret) is required with kafkaMode=external",
      );
    }
    kafka = { mode: "external", bootstrapServers: bootstrapServers ?? "", saslSecretArn: saslSecretArn ?? "" };
  } else if (kafkaModeName !== "msk-serverless") {
    problems.push(`kafkaMode must be msk-serverless or external, got ${kafkaModeName}`);
  }

  const namePrefix = str("namePrefix") ?? "";
  if (!/^[A-Za-z0-9._-]*$/.test(namePrefix)) problems.push("namePrefix may only hold A-Z a-z 0-9 . _ -");

  const maxEdges = int("maxEdges", DEFAULTS.maxEdges, 2, 4096);
  const workPartitions = int("workPartitions", DEFAULTS.workPartitions, 1, 1000);

  const authMode = str("authMode") ?? "hmac";
  if (authMode !== "hmac" && authMode !== "jwt") {
    problems.push(`authMode must be hmac or jwt (none is for development only), got ${authMode}`);
  }

  const certificateArn = str("certificateArn");
  const devicePlainTcp = bool("devicePlainTcp", certificateArn === undefined);
  if (!devicePlainTcp && certificateArn === undefined) {
    problems.push(
      "devicePlainTcp=false needs certificateArn; without the TLS listener devices could not connect at all",
    );
  }

  // The admin API takes the bearer token on every request: in production it never goes over plain HTTP.
  const adminCertificateArn = str("adminCertificateArn");
  if (adminCertificateArn !== undefined && !/^arn:aws[a-z-]*:acm:/.test(adminCertificateArn)) {
    problems.push(`adminCertificateArn must be the ARN of an ACM certificate, got ${adminCertificateArn}`);
  }
  if (production && adminCertificateArn === undefined) {
    problems.push(
      `production (env=${envName}) needs adminCertificateArn: the admin API's bearer token must not cross the network in the clear, so the admin load balancer serves HTTPS only; pass -c adminCertificateArn=arn:aws:acm:<region>:<account>:certificate/<id>`,
    );
  }

  const drainMs = int("drainMs", DEFAULTS.drainMs, 0, 110_000);

  // Each edge needs a slot, and a rolling deployment runs up to twice the tasks for a while.
  const edgeMaxDefault = Math.max(1, Math.min(16, Math.floor(maxEdges / 2)));
  const edgeMin = int("edgeMinCount", 2, 1, 4096);
  const edgeMax = int("edgeMaxCount", Math.max(edgeMaxDefault, edgeMin), 1, 4096);
  const edgeDesired = int("edgeDesiredCount", edgeMin, 1, 4096);
  if (edgeMax * 2 > maxEdges) {
    problems.push(
      `edgeMaxCount ${edgeMax} needs ${edgeMax * 2} slots during a deployment (200% maximum healthy); raise maxEdges from ${maxEdges} to at least ${edgeMax * 2} or lower edgeMaxCount`,
    );
  }
  if (!(edgeMin <= edgeDesired && edgeDesired <= edgeMax)) {
    problems.push(`edge counts must satisfy min <= desired <= max, got ${edgeMin}, ${edgeDesired}, ${edgeMax}`);
  }

  const workerMin = int("workerMinCount", 2, 1, 1000);
  const workerMax = int("workerMaxCount", Math.max(workPartitions, workerMin), 1, 1000);
  const workerDesired = int("workerDesiredCount", workerMin, 1, 1000);
  if (!(workerMin <= workerDesired && workerDesired <= workerMax)) {
    problems.push(`worker counts must satisfy min <= desired <= max, got ${workerMin}, ${workerDesired}, ${workerMax}`);
  }

  const settings: TetherSettings = {
    envName,
    production,
    existingVpc,
    vpcCidr: existingVpc?.vpcCidr ?? str("vpcCidr") ?? "10.40.0.0/16",
    maxAzs,
    cpuArchitecture: cpuArchitecture === "arm64" ? "arm64" : "x86_64",
    kafka,
    namePrefix,
    maxEdges,
    workPartitions,
    certificateArn,
    devicePlainTcp,
    proxyProtocol: bool("proxyProtocol", true),
    adminCertificateArn,
    deviceCidrs: list("deviceCidrs") ?? ["0.0.0.0/0"],
    authMode: authMode === "jwt" ? "jwt" : "hmac",
    jwksUrl: str("jwksUrl"),
    drainMs,
    edge: { desired: edgeDesired, min: edgeMin, max: edgeMax },
    worker: { desired: workerDesired, min: workerMin, max: workerMax },
    admin: { desired: int("adminDesiredCount", production ? 2 : 1, 1, 10) },
    connectionsPerEdge: int("connectionsPerEdge", DEFAULTS.connectionsPerEdge, 100, 1_000_000),
    lagPerWorker: int("lagPerWorker", DEFAULTS.lagPerWorker, 1, 100_000_000),
    lagAlarmThreshold: int("lagAlarmThreshold", DEFAULTS.lagAlarmThreshold, 1, 1_000_000_000),
    logRetentionDays: int("logRetentionDays", production ? 90 : 30, 1, 3653),
    alarmEmail: str("alarmEmail"),
  };
  if (problems.length > 0) {
    throw new InvalidContextError(`invalid context:\n  - ${problems.join("\n  - ")}`);
  }
  return settings;
}
