import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger, FastifyInstance, FastifyTypeProvider, RawServerDefault } from "fastify";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";

export interface HttpMetrics {
  readonly registry: Registry;
}

/**
 * Request counts and latency by route and status code, plus the process metrics, in a registry
 * of this app's own so that two apps in one process (tests, embedded mode) never share counters.
 */
export function installHttpMetrics<P extends FastifyTypeProvider>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, P>,
  options: { defaultMetrics: boolean },
): HttpMetrics {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: "tether_admin_" });
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
    registry.clear();
    done();
  });
  return { registry };
}
