import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { readAdminConfig } from "../../../services/admin/config.ts";
import { readEdgeConfig } from "../../../services/edge/config.ts";
import { readWorkerConfig } from "../../../services/worker/config.ts";
import { ConfigReader } from "../../../shared/config/index.ts";
import { TetherError } from "../../../shared/errors/index.ts";
import {
  buildInfo,
  readTelemetryConfig,
  SpanKind,
  Tracing,
  traceIdOf,
  traceparentOf,
} from "../../../shared/telemetry/index.ts";

function read(env: Record<string, string>) {
  const reader = new ConfigReader(env);
  const config = readTelemetryConfig(reader, "tether-edge");
  return reader.finish(config);
}

function problems(env: Record<string, string>): string {
  try {
    read(env);
  } catch (error) {
    assert.ok(error instanceof TetherError);
    return error.message;
  }
  assert.fail("expected a configuration error");
}

describe("tracing configuration", () => {
  test("is off by default", () => {
    assert.equal(read({}).tracing, undefined);
    assert.equal(
      read({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }).tracing,
      undefined,
    );
    assert.equal(read({ OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "otlp" }).tracing, undefined);
  });

  test("is on with an OTLP endpoint, sending to its /v1/traces", () => {
    const { tracing } = read({
      OTEL_EXPORTER_OTLP_ENDPOINT: "https://collector.example:4318/",
      OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=a%20b,tenant=t1",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
    });
    assert.deepEqual(tracing, {
      endpoint: "https://collector.example:4318/v1/traces",
      headers: { "x-api-key": "a b", tenant: "t1" },
      timeoutMs: 10_000,
      serviceName: "tether-edge",
      sampler: "parentbased_traceidratio",
      ratio: 0.25,
    });
  });

  test("takes the traces endpoint as it is, and the service name given", () => {
    const { tracing } = read({
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:9999/custom",
      OTEL_SERVICE_NAME: "edge-eu-1",
    });
    assert.equal(tracing?.endpoint, "http://127.0.0.1:9999/custom");
    assert.equal(tracing?.serviceName, "edge-eu-1");
    assert.equal(read({ OTEL_TRACES_EXPORTER: "otlp" }).tracing?.endpoint, "http://localhost:4318/v1/traces");
  });

  test("names every bad variable at once", () => {
    const message = problems({
      OTEL_TRACES_EXPORTER: "jaeger",
      OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318",
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_TRACES_SAMPLER: "sometimes",
      OTEL_TRACES_SAMPLER_ARG: "1.5",
      OTEL_EXPORTER_OTLP_HEADERS: "novalue",
      TETHER_GIT_COMMIT: "not a commit",
    });
    for (const name of [
      "OTEL_TRACES_EXPORTER",
      "OTEL_EXPORTER_OTLP_ENDPOINT",
      "OTEL_EXPORTER_OTLP_PROTOCOL",
      "OTEL_TRACES_SAMPLER ",
      "OTEL_TRACES_SAMPLER_ARG",
      "OTEL_EXPORTER_OTLP_HEADERS",
      "TETHER_GIT_COMMIT",
    ]) {
      assert.ok(message.includes(name), `${name} named in: ${message}`);
    }
  });
});

describe("each service's configuration", () => {
  const base = { TETHER_ENV: "development", TETHER_AUTH_MODE: "none" };
  test("reads the tracing variables with its own name as the default service name", () => {
    const env = { ...base, OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", TETHER_GIT_COMMIT: "abc1234" };
    assert.equal(readEdgeConfig(env).telemetry?.tracing?.serviceName, "tether-edge");
    assert.equal(readWorkerConfig(env).telemetry?.tracing?.serviceName, "tether-worker");
    assert.equal(readAdminConfig(env).telemetry?.commit, "abc1234");
    assert.equal(readEdgeConfig(base).telemetry?.tracing, undefined);
  });

  test("refuses to start on a bad tracing variable, naming it with the others", () => {
    const env = { ...base, OTEL_TRACES_SAMPLER: "often", TETHER_DEVICE_PORT: "x" };
    for (const read of [readEdgeConfig, readWorkerConfig, readAdminConfig]) {
      assert.throws(
        () => read(env),
        (error: unknown) => error instanceof TetherError && error.message.includes("OTEL_TRACES_SAMPLER"),
      );
    }
    assert.throws(
      () => readEdgeConfig(env),
      /TETHER_DEVICE_PORT[\s\S]*OTEL_TRACES_SAMPLER|OTEL_TRACES_SAMPLER[\s\S]*TETHER_DEVICE_PORT/,
    );
  });
});

describe("tracing", () => {
  function tracing(exporter: InMemorySpanExporter, sampler: "always_on" | "always_off" = "always_on"): Tracing {
    return new Tracing({ serviceName: "test", build: buildInfo(), exporter, sampler, exportDelayMs: 10 });
  }

  test("a span started from a record's traceparent continues its trace", async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = tracing(exporter);
    const incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const span = tracer.span("tether.handle", SpanKind.CONSUMER, incoming);
    assert.equal(traceIdOf(span), "0af7651916cd43dd8448eb211c80319c");
    const outgoing = traceparentOf(span);
    assert.match(outgoing, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    assert.notEqual(outgoing, incoming);
    span.end();
    await tracer.flush();
    const [finished] = exporter.getFinishedSpans();
    assert.equal(finished?.name, "tether.handle");
    assert.equal(finished?.parentSpanContext?.spanId, "b7ad6b7169203331");
    await tracer.close();
  });

  test("a child of a span of this process shares its trace; junk starts a new one", async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = tracing(exporter);
    const root = tracer.span("tether.receive", SpanKind.SERVER);
    const child = tracer.span("tether.produce", SpanKind.PRODUCER, root);
    assert.equal(traceIdOf(child), traceIdOf(root));
    const fresh = tracer.span("tether.handle", SpanKind.CONSUMER, "00-not-a-trace");
    assert.notEqual(traceIdOf(fresh), traceIdOf(root));
    assert.match(traceIdOf(fresh), /^[0-9a-f]{32}$/);
    for (const span of [child, root, fresh]) span.end();
    await tracer.flush();
    assert.equal(exporter.getFinishedSpans().length, 3);
    await tracer.close();
  });

  test("a trace the sampler drops still carries its context, marked not sampled", async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = tracing(exporter, "always_off");
    const span = tracer.span("tether.receive", SpanKind.SERVER);
    assert.match(traceparentOf(span), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    span.end();
    await tracer.flush();
    assert.equal(exporter.getFinishedSpans().length, 0);
    await tracer.close();
    await tracer.close();
  });
});
