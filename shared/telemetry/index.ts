/**
 * What a service reports about itself: Prometheus metrics every service shares (process and
 * runtime, build, DynamoDB calls, Kafka clients) and OpenTelemetry traces whose context
 * travels in Kafka record headers (W3C `traceparent`). Tracing is off unless configured; code
 * handed no {@link Tracing} makes no span.
 */
export { type BuildInfo, buildInfo } from "./build.ts";
export { readTelemetryConfig, SAMPLERS, type SamplerName, type TelemetryConfig, type TracingConfig } from "./config.ts";
export {
  DynamoCallMetrics,
  installProcessMetrics,
  KafkaClientMetrics,
  kafkaClientMetrics,
  type ProcessMetricsOptions,
  type ServiceName,
} from "./metrics.ts";
export {
  endFailed,
  type Span,
  SpanKind,
  startTracing,
  Tracing,
  type TracingOptions,
  traceIdOf,
  traceparentOf,
} from "./tracing.ts";
