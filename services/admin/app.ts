import type { IncomingMessage, Server, ServerResponse } from "node:http";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { Limiter } from "../../shared/async/index.ts";
import { LeaseCache } from "../../shared/registry/index.ts";
import { admissionControl, DEFAULT_MAX_CONCURRENCY } from "./admission.ts";
import { AuthFailureLimiter, bearerAuth, DEFAULT_AUTH_FAILURE_LIMITS } from "./auth.ts";
import { consoleSources } from "./console-sources.ts";
import type { AdminDeps, RouteDeps } from "./deps.ts";
import { installErrorHandlers } from "./errors.ts";
import { installHttpMetrics } from "./metrics.ts";
import { docsPageOptions, openapiOptions } from "./openapi.ts";
import { RequestLog } from "./request-log.ts";
import { activityRoutes } from "./routes/activity.ts";
import { consoleRoutes } from "./routes/console.ts";
import { deadLetterRoutes } from "./routes/dead-letters.ts";
import { deviceRoutes } from "./routes/devices.ts";
import { edgeRoutes } from "./routes/edges.ts";
import { fleetStatsRoutes } from "./routes/fleet-stats.ts";
import { healthRoutes } from "./routes/health.ts";
import { sharedSchemas } from "./schemas.ts";
import { validatorCompiler } from "./validation.ts";

export type { AdminDeps } from "./deps.ts";

export type AdminApp = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

/** Default body limit for everything but pushes, which set their own. */
const DEFAULT_BODY_LIMIT = 16 * 1024;

/** Routes that answer however loaded the API is: orchestrators and scrapers must get through. */
const UNBOUNDED_ROUTES: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/metrics"]);

/** Headers whose values must never reach a log line, however a request gets logged. */
const redact = ["req.headers.authorization", "headers.authorization", "request.headers.authorization"];

/**
 * Builds the admin API without listening: tests drive it with `inject()`, `main.ts` calls
 * `listen()`. The caller keeps ownership of the registry, producer and broker admin.
 */
export async function buildApp(deps: AdminDeps): Promise<AdminApp> {
  const now = deps.now ?? Date.now;
  const routeDeps: RouteDeps = {
    registry: deps.registry,
    producer: deps.producer,
    admin: deps.admin,
    names: deps.names,
    maxEdges: deps.maxEdges,
    now,
    leaseCache: new LeaseCache(deps.registry.leases, deps.leaseCacheMs ?? 1000, now),
    maxFrameBytes: deps.maxFrameBytes ?? 65536,
    dependencyTimeoutMs: deps.dependencyTimeoutMs ?? 5000,
    console: consoleSources({
      broker: deps.broker,
      admin: deps.admin,
      names: deps.names,
      edgeMetrics: deps.edgeMetrics,
      logger: deps.logger.child({ component: "admin-console" }),
    }),
  };
  const logger = deps.logger.child({ component: "admin-api" }, { redact: { paths: redact, censor: "[redacted]" } });

  const proxyHops = deps.trustedProxyHops ?? 0;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new RequestLog(),
    bodyLimit: DEFAULT_BODY_LIMIT,
    routerOptions: { maxParamLength: 256 },
    // The nearest `proxyHops` hops are proxies; the next address out is the client's.
    trustProxy: proxyHops > 0 ? (_address: string, hop: number) => hop < proxyHops : false,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Unknown fields are an error (400), never silently dropped; bodies are never coerced.
  app.setValidatorCompiler(validatorCompiler);
  installErrorHandlers(app);
  // First of all hooks: a request past the bound costs nothing but its refusal.
  const inFlight = new Limiter({ concurrency: deps.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY, maxQueued: 0 });
  app.addHook("onRequest", admissionControl(inFlight, UNBOUNDED_ROUTES));
  // JSON only: anything else is 415 rather than a string that fails the schema.
  app.removeContentTypeParser("text/plain");
  const metrics = installHttpMetrics(app, { defaultMetrics: deps.defaultMetrics ?? true, registry: deps.metrics });

  // Shared schemas first: routes refer to them by `$ref`, and the document lists them once.
  for (const schema of sharedSchemas) app.addSchema(schema);
  await app.register(swagger, openapiOptions);
  await app.register(swaggerUi, docsPageOptions);
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  // The console's tails stop with the API; the caller owns the broker they read from.
  app.addHook("onClose", () => routeDeps.console.close());
  await app.register(healthRoutes, { deps: routeDeps, metrics: metrics.registry });
  await app.register(consoleRoutes, deps.consoleAssetsDir === undefined ? {} : { assetsDir: deps.consoleAssetsDir });
  await app.register(
    async (v1) => {
      const failures = new AuthFailureLimiter(deps.authFailureLimits ?? DEFAULT_AUTH_FAILURE_LIMITS);
      v1.addHook("onRequest", bearerAuth(deps.adminToken, { failures, now }));
      await v1.register(edgeRoutes, { deps: routeDeps });
      await v1.register(deviceRoutes, { deps: routeDeps });
      await v1.register(fleetStatsRoutes, { deps: routeDeps });
      await v1.register(activityRoutes, { deps: routeDeps });
      await v1.register(deadLetterRoutes, { deps: routeDeps });
    },
    { prefix: "/v1" },
  );
  return app;
}
