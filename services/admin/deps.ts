import type { Registry as PromRegistry } from "prom-client";
import type { Broker, BrokerAdmin, Producer } from "../../shared/broker/types.ts";
import type { ResourceNames } from "../../shared/config/index.ts";
import type { Logger } from "../../shared/log/index.ts";
import type { LeaseCache } from "../../shared/registry/index.ts";
import type { Registry } from "../../shared/registry/types.ts";
import type { AuthFailureLimits } from "./auth.ts";
import type { ConsoleSources } from "./console-sources.ts";
import type { EdgeMetricsReader } from "./edge-metrics.ts";

/** What the admin API needs from the outside. `buildApp` owns none of it: the caller closes it. */
export interface AdminDeps {
  readonly registry: Registry;
  /** Connected already; used for pushes (`downlink`) and kicks (`replies`). */
  readonly producer: Producer;
  /** For `/readyz`; without it readiness checks the registry only. */
  readonly admin?: BrokerAdmin;
  readonly names: ResourceNames;
  /** Partitions of `replies`; a record naming a slot outside it is not kicked. */
  readonly maxEdges: number;
  /** The bearer token every `/v1` route requires. */
  readonly adminToken: string;
  readonly logger: Logger;
  /** Clock in milliseconds since the epoch; `Date.now` when omitted. */
  readonly now?: () => number;
  /** Largest push frame an edge accepts (the protocol's `maxFrameBytes`); default 65536. */
  readonly maxFrameBytes?: number;
  /** Bound on each Kafka produce and readiness probe, in ms; default 5000. */
  readonly dependencyTimeoutMs?: number;
  /**
   * How long a slot lease that proves a device online is reused before it is read again;
   * default 1000 ms, 0 reads it on every lookup. Bounds how long a device can look online after
   * its edge gave the slot up.
   */
  readonly leaseCacheMs?: number;
  /** Process metrics (`process_*`, `nodejs_*`) on `/metrics`; default true. */
  readonly defaultMetrics?: boolean;
  /**
   * The process's metrics registry (process, build, DynamoDB and Kafka metrics): the API adds
   * its own to it and serves it on `/metrics`. Without it the app has a registry of its own.
   */
  readonly metrics?: PromRegistry;
  /**
   * Most requests in flight; one more is 429 `overloaded`. Health, readiness and metrics are not
   * counted. Default 256.
   */
  readonly maxConcurrency?: number;
  /** Failed authentications allowed per source address; default 10 at once, one more a second. */
  readonly authFailureLimits?: AuthFailureLimits;
  /**
   * Proxies in front of the API that append the client's address to `X-Forwarded-For` (1 behind a
   * load balancer). 0, the default, takes the address of the TCP peer.
   */
  readonly trustedProxyHops?: number;
  /**
   * For the console: tails of `events` (the live event tail, a device's recent presence) and
   * `requests.dlq` (dead letters). Without it those routes answer 503 `unavailable`.
   */
  readonly broker?: Broker;
  /** How the console's fleet page reads each edge's metrics; without it an edge's metrics are null. */
  readonly edgeMetrics?: EdgeMetricsReader;
  /** Where the console's files are; `console/` next to the admin API's module when omitted. */
  readonly consoleAssetsDir?: string;
}

/** Dependencies as the route plugins see them, with defaults filled in. */
export interface RouteDeps {
  readonly registry: Registry;
  readonly producer: Producer;
  readonly admin: BrokerAdmin | undefined;
  readonly names: ResourceNames;
  readonly maxEdges: number;
  readonly now: () => number;
  readonly leaseCache: LeaseCache;
  readonly maxFrameBytes: number;
  readonly dependencyTimeoutMs: number;
  readonly console: ConsoleSources;
}
