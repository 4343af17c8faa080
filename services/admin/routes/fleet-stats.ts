import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { withTimeout } from "../../../shared/async/index.ts";
import { leaseLive } from "../../../shared/registry/index.ts";
import { FleetStats } from "../console-schemas.ts";
import type { RouteDeps } from "../deps.ts";
import { type EdgeCounters, edgeCounters } from "../edge-metrics.ts";
import { bearerSecurity, commonErrors } from "../schemas.ts";

/** Longest wait for one edge's metrics: a slow edge must not hold the fleet page. */
const EDGE_METRICS_TIMEOUT_MS = 2000;
/** How long the workers' lag and the dead letter count are reused. */
const BROKER_FIGURES_MS = 5000;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface BrokerFigures {
  readonly workerLag: number | null;
  readonly deadLetters: number | null;
}

/** The figures of the console's fleet page, in one request. */
export const fleetStatsRoutes: FastifyPluginAsyncTypebox<{ deps: RouteDeps }> = async (app, { deps }) => {
  const { admin, names } = deps;
  const ask = <T>(call: (broker: NonNullable<typeof admin>) => Promise<T>, what: string): Promise<T> =>
    admin === undefined
      ? Promise.reject(new Error("no broker admin"))
      : withTimeout(call(admin), deps.dependencyTimeoutMs, what);
  const readFigures = async (): Promise<BrokerFigures> => {
    const [lag, dlqEnds] = await Promise.allSettled([
      ask((broker) => broker.groupLag(names.workersGroup, names.requestsTopic), "worker lag"),
      ask((broker) => broker.endOffsets(names.dlqTopic), "dead letter count"),
    ]);
    return {
      workerLag: lag.status === "fulfilled" ? Math.max(0, lag.value) : null,
      deadLetters: dlqEnds.status === "fulfilled" ? dlqEnds.value.reduce((sum, end) => sum + end, 0) : null,
    };
  };
  // A lag reading costs Kafka a consumer's worth of calls: however many consoles poll, it is
  // read once per interval and shared.
  let figures: { readonly at: number; readonly value: Promise<BrokerFigures> } | undefined;
  const brokerFigures = (): Promise<BrokerFigures> => {
    const now = deps.now();
    if (figures === undefined || now - figures.at >= BROKER_FIGURES_MS || now < figures.at) {
      figures = { at: now, value: readFigures() };
    }
    return figures.value;
  };

  app.get(
    "/fleet/stats",
    {
      schema: {
        operationId: "getFleetStats",
        summary: "Fleet figures",
        description:
          "Every live edge with its slot, lease expiry and connections, and its own counters read from its `/metrics` " +
          "(requests, acks, ack and round-trip latency totals; a client charts rates from two readings). Also the " +
          "workers' consumer lag on `requests` and how many dead letters were written (both read at most every 5 s). A figure that cannot be read " +
          "is null, so one unreachable edge or broker does not fail the page.",
        tags: ["fleet"],
        security: bearerSecurity,
        response: { 200: FleetStats, ...commonErrors },
      },
    },
    async () => {
      const leases = await deps.registry.leases.list();
      const at = deps.now();
      const live = leases.filter((lease) => leaseLive(lease, at)).sort((a, b) => a.slot - b.slot);
      const reader = deps.console.edgeMetrics;
      const bound = Math.min(EDGE_METRICS_TIMEOUT_MS, deps.dependencyTimeoutMs);
      const edges = await Promise.all(
        live.map(async (lease) => {
          let metrics: EdgeCounters | null = null;
          let metricsError: string | undefined;
          if (reader === undefined) {
            metricsError = "this admin API reads no edge metrics";
          } else {
            try {
              metrics = edgeCounters(await reader.read(lease, bound));
            } catch (error) {
              metricsError = errorText(error);
            }
          }
          return {
            edgeId: lease.edgeId,
            slot: lease.slot,
            host: lease.host,
            startedAt: lease.startedAt,
            leaseUntil: lease.leaseUntil,
            connections: lease.connections ?? null,
            metrics,
            ...(metricsError === undefined ? {} : { metricsError }),
          };
        }),
      );
      return { at, edges, ...(await brokerFigures()) };
    },
  );
};
