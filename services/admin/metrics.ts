import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger, FastifyInstance, FastifyTypeProvider, RawServerDefault } from "fastify";
import { Counter, Histogram, Registry } from "prom-client";
import { buildInfo, installProcessMetrics } from "../../shared/telemetry/index.ts";

export interface HttpMetrics {
  readonly registry: Registry;
}

/**
 * Request counts and latency by route and status code. They go to `options.registry` when given
 * (the process's, which has the process, DynamoDB and Kafka metrics already); otherwise to a
 * registry of this app's own, with the `service="admin"` label, `tether_build_info` and, with
 * `defaultMetrics`, the process metrics, so that two apps in one process (tests, embedded mode)
 * never share counters.
 */
export function installHttpMetrics<P extends FastifyTypeProvider>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, P>,
  options: { defaultMetrics: boolean; registry?: Registry | undefined },
): HttpMetrics {
  const owned = options.registry === undefined;
  const registry = options.registry ?? new Registry();
  if (owned)
    installProcessMetrics(registry, { service: "admin", build: buildInfo(), defaults: options.defaultMetrics });
  const labelNames = ["method", "route", "status_code"] as const;
  const requests = new Counter({
    name: "tether_admin_http_requests_total",
    help: "HTTP requests answered, by route template and status code",
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "tether_admin_http_request_duration_seconds",
    help: "Time from receiving a request to sending the response",
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  app.addHook("onResponse", (request, reply, done) => {
    // The route template, never the raw URL: device ids would make the label set unbounded.
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? "unmatched",
      status_code: String(reply.statusCode),
    };
    requests.inc(labels);
    duration.observe(labels, reply.elapsedTime / 1000);
    done();
  });
  app.addHook("onClose", (_instance, done) => {
    if (owned) registry.clear();
    done();
  });
  return { registry };
}
