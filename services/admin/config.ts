import { randomBytes } from "node:crypto";
import { type CommonConfig, ConfigReader, type Env, readCommonConfig } from "../../shared/config/index.ts";
import { readTelemetryConfig, type TelemetryConfig } from "../../shared/telemetry/index.ts";

export interface AdminConfig {
  readonly common: CommonConfig;
  readonly port: number;
  readonly host: string;
  /** The bearer token every /v1 route requires. */
  readonly adminToken: string;
  /** True when the token was made up at start-up (development only); main prints it. */
  readonly adminTokenGenerated: boolean;
  /** Most requests in flight; more are 429 `overloaded`. */
  readonly maxConcurrency: number;
  /** Proxies in front of the API whose `X-Forwarded-For` entries are believed. */
  readonly trustedProxyHops: number;
  /** The edges' ops port, where the console's fleet page reads each edge's `/metrics`. */
  readonly edgeMetricsPort: number;
  /** Tracing (OTEL_* variables) and the build's commit. */
  readonly telemetry?: TelemetryConfig;
}

/** Reads the admin API's configuration; throws one `invalid_config` error naming every problem. */
export function readAdminConfig(env: Env): Readonly<AdminConfig> {
  const reader = new ConfigReader(env);
  const common = readCommonConfig(reader, "tether-admin");
  const development = common.environment === "development";
  const port = reader.port("TETHER_ADMIN_PORT", 8080);
  // Loopback by default on a developer's machine; every interface in a container.
  const host = reader.string("TETHER_ADMIN_HOST", development ? "127.0.0.1" : "0.0.0.0");
  const given = reader.optionalString("TETHER_ADMIN_TOKEN");
  let adminToken = given ?? "";
  let adminTokenGenerated = false;
  if (given === undefined) {
    if (development) {
      adminToken = randomBytes(24).toString("base64url");
      adminTokenGenerated = true;
    } else {
      reader.problem("TETHER_ADMIN_TOKEN", "is required unless TETHER_ENV=development (the bearer token of /v1)");
    }
  } else if (/\s/.test(given)) {
    reader.problem("TETHER_ADMIN_TOKEN", "must not contain whitespace");
  }
  const maxConcurrency = reader.integer("TETHER_ADMIN_MAX_CONCURRENCY", 256, { min: 1, max: 100_000 });
  const trustedProxyHops = reader.integer("TETHER_ADMIN_TRUSTED_PROXY_HOPS", 0, { min: 0, max: 10 });
  const edgeMetricsPort = reader.port("TETHER_EDGE_HTTP_PORT", 9090);
  const telemetry = readTelemetryConfig(reader, "tether-admin");
  return reader.finish({
    common,
    port,
    host,
    adminToken,
    adminTokenGenerated,
    maxConcurrency,
    trustedProxyHops,
    edgeMetricsPort,
    telemetry,
  });
}
