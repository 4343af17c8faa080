import {
  type Attributes,
  ROOT_CONTEXT,
  type Span,
  type SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { parseTraceParent } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import type { BuildInfo } from "./build.ts";
import type { SamplerName, TracingConfig } from "./config.ts";

export type { Span } from "@opentelemetry/api";
export { SpanKind } from "@opentelemetry/api";

export interface TracingOptions {
  readonly serviceName: string;
  readonly build: BuildInfo;
  /** Where finished spans go (the OTLP exporter in a service, an in-memory one in tests). */
  readonly exporter: SpanExporter;
  readonly sampler?: SamplerName;
  /** For the ratio samplers: the share of new traces kept, 0 to 1. Default 1. */
  readonly ratio?: number;
  /** Longest wait before finished spans are exported, in ms. Default 5000. */
  readonly exportDelayMs?: number;
}

/**
 * The spans of one service and the W3C `traceparent` text that carries them across Kafka.
 * Made only when tracing is on: code that is handed no `Tracing` makes no span and writes no
 * header, so tracing that is off costs a comparison with `undefined`.
 */
export class Tracing {
  readonly #provider: BasicTracerProvider;
  readonly #tracer: Tracer;
  #closing: Promise<void> | undefined;

  constructor(options: TracingOptions) {
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        "service.name": options.serviceName,
        "service.version": options.build.version,
        "process.runtime.version": options.build.node,
        ...(options.build.commit === "unknown" ? {} : { "vcs.ref.head.revision": options.build.commit }),
      }),
      sampler: sampler(options.sampler ?? "parentbased_always_on", options.ratio ?? 1),
      spanProcessors: [
        new BatchSpanProcessor(options.exporter, { scheduledDelayMillis: options.exportDelayMs ?? 5000 }),
      ],
    });
    this.#tracer = this.#provider.getTracer("tether", options.build.version);
  }

  /**
   * Starts a span now. `parent` is a span of this process or the `traceparent` text of a record;
   * without one (or with text that is not a valid traceparent) the span starts a new trace.
   */
  span(name: string, kind: SpanKind, parent?: Span | string, attributes?: Attributes): Span {
    let context = ROOT_CONTEXT;
    if (typeof parent === "string") {
      const remote = parseTraceParent(parent);
      if (remote !== null) context = trace.setSpanContext(ROOT_CONTEXT, { ...remote, isRemote: true });
    } else if (parent !== undefined) {
      context = trace.setSpan(ROOT_CONTEXT, parent);
    }
    return this.#tracer.startSpan(name, attributes === undefined ? { kind } : { kind, attributes }, context);
  }

  /** Exports the spans that finished and wait in the batch. */
  flush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  /** Flushes the spans not exported yet, then stops. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= this.#provider.shutdown();
    return this.#closing;
  }
}

/** The W3C `traceparent` of `span`, for a record's headers (version 00). */
export function traceparentOf(span: Span): string {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

/** The trace id of `span`: 32 lowercase hex digits, as in `traceparent` and the log field `traceId`. */
export function traceIdOf(span: Span): string {
  return span.spanContext().traceId;
}

/** Ends `span` as failed with `error`. */
export function endFailed(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

function sampler(name: SamplerName, ratio: number): Sampler {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

/**
 * The tracing `config` asks for, exporting over OTLP/HTTP; undefined when tracing is off.
 * Nothing connects until the first spans are exported.
 */
export function startTracing(config: TracingConfig | undefined, build: BuildInfo): Tracing | undefined {
  if (config === undefined) return undefined;
  const exporter = new OTLPTraceExporter({
    url: config.endpoint,
    headers: { ...config.headers },
    timeoutMillis: config.timeoutMs,
  });
  return new Tracing({
    serviceName: config.serviceName,
    build,
    exporter,
    sampler: config.sampler,
    ratio: config.ratio,
  });
}
