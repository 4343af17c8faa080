import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { Registry as MetricsRegistry } from "prom-client";
import { Type } from "typebox";
import type { RouteDeps } from "../deps.ts";

const CheckResult = Type.Union([Type.Literal("ok"), Type.Literal("failed"), Type.Literal("skipped")]);

const Readiness = Type.Object({
  ready: Type.Boolean(),
  checks: Type.Object({ registry: CheckResult, broker: CheckResult }),
});

type Check = "ok" | "failed" | "skipped";

async function probe(run: (() => Promise<void>) | undefined, timeoutMs: number): Promise<Check> {
  if (run === undefined) return "skipped";
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([run(), timeout]);
    return "ok";
  } finally {
    clearTimeout(timer);
  }
}

/** Liveness, readiness and Prometheus metrics; none of them needs the token. */
export const healthRoutes: FastifyPluginAsyncTypebox<{ deps: RouteDeps; metrics: MetricsRegistry }> = async (
  app,
  { deps, metrics },
) => {
  app.get(
    "/healthz",
    {
      schema: {
        operationId: "getLiveness",
        summary: "Liveness",
        description: "200 while the process serves HTTP.",
        tags: ["operations"],
        response: {
          200: Type.Object({ status: Type.Literal("ok") }, { description: "The process serves HTTP." }),
        },
      },
    },
    async () => ({ status: "ok" as const }),
  );

  app.get(
    "/readyz",
    {
      schema: {
        operationId: "getReadiness",
        summary: "Readiness",
        description: "Pings DynamoDB (the registry) and Kafka (the broker admin client). 503 names what failed.",
        tags: ["operations"],
        response: {
          200: Type.Object(Readiness.properties, { description: "DynamoDB and Kafka both answered." }),
          503: Type.Object(Readiness.properties, {
            description: "DynamoDB or Kafka did not answer; `checks` says which (`failed`).",
          }),
        },
      },
    },
    async (request, reply) => {
      const admin = deps.admin;
      const [registry, broker] = await Promise.all(
        [
          { name: "registry", run: () => deps.registry.ping() },
          { name: "broker", run: admin === undefined ? undefined : () => admin.ping() },
        ].map(async ({ name, run }): Promise<Check> => {
          try {
            return await probe(run, deps.dependencyTimeoutMs);
          } catch (error) {
            request.log.warn({ err: error, dependency: name }, "readiness check failed");
            return "failed";
          }
        }),
      );
      const checks = { registry: registry ?? "failed", broker: broker ?? "failed" };
      const ready = checks.registry !== "failed" && checks.broker !== "failed";
      reply.code(ready ? 200 : 503);
      return { ready, checks };
    },
  );

  app.get("/metrics", { schema: { hide: true } }, async (_request, reply) => {
    const text = await metrics.metrics();
    reply.type(metrics.contentType);
    return text;
  });
};
