import type { ConfigReader } from "../config/index.ts";

export const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

/** Tracing that is on: where spans go and which are kept. */
export interface TracingConfig {
  /** The OTLP/HTTP traces URL, e.g. `http://collector:4318/v1/traces`. */
  readonly endpoint: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly serviceName: string;
  readonly sampler: SamplerName;
  /** For the ratio samplers, 0 to 1. */
  readonly ratio: number;
}

export interface TelemetryConfig {
  /** Undefined: tracing is off (the default). */
  readonly tracing: TracingConfig | undefined;
  /** The git commit to report in `tether_build_info` instead of the one the build recorded. */
  readonly commit: string | undefined;
}

const DEFAULT_ENDPOINT = "http://localhost:4318";

/**
 * Reads the standard OpenTelemetry variables a service honours. Tracing is on when
 * `OTEL_TRACES_EXPORTER=otlp`, or when it is unset and an OTLP endpoint is; `OTEL_SDK_DISABLED`
 * turns it off whatever else is set. Problems are recorded on `reader`.
 */
export function readTelemetryConfig(reader: ConfigReader, serviceName: string): TelemetryConfig {
  const commit = reader.optionalString("TETHER_GIT_COMMIT");
  if (commit !== undefined && !/^[0-9A-Za-z._-]{1,64}$/.test(commit)) {
    reader.problem("TETHER_GIT_COMMIT", "must be 1 to 64 characters of 0-9 A-Z a-z . _ -");
  }
  const disabled = reader.boolean("OTEL_SDK_DISABLED", false);
  const tracesEndpoint = reader.optionalString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const baseEndpoint = reader.optionalString("OTEL_EXPORTER_OTLP_ENDPOINT");
  const endpointGiven = tracesEndpoint !== undefined || baseEndpoint !== undefined;
  const exporter = reader.oneOf("OTEL_TRACES_EXPORTER", ["otlp", "none"] as const, endpointGiven ? "otlp" : "none");
  const protocol = reader.raw("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? reader.raw("OTEL_EXPORTER_OTLP_PROTOCOL");
  if (protocol !== undefined && protocol !== "http/json" && protocol !== "http/protobuf") {
    reader.problem(
      reader.raw("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") === undefined
        ? "OTEL_EXPORTER_OTLP_PROTOCOL"
        : "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
      `must be http/json or http/protobuf (spans go over OTLP/HTTP), got ${JSON.stringify(protocol)}`,
    );
  }
  const endpoint =
    tracesEndpoint !== undefined
      ? checkUrl(reader, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tracesEndpoint)
      : `${checkUrl(reader, "OTEL_EXPORTER_OTLP_ENDPOINT", baseEndpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "")}/v1/traces`;
  const headers = {
    ...readHeaders(reader, "OTEL_EXPORTER_OTLP_HEADERS"),
    ...readHeaders(reader, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
  };
  const timeoutMs = reader.integer(
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    reader.integer("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, { min: 1, max: 600_000 }),
    { min: 1, max: 600_000 },
  );
  const sampler = reader.oneOf("OTEL_TRACES_SAMPLER", SAMPLERS, "parentbased_always_on");
  const ratio = readRatio(reader);
  const tracing: TracingConfig | undefined =
    exporter === "otlp" && !disabled
      ? {
          endpoint,
          headers,
          timeoutMs,
          serviceName: reader.string("OTEL_SERVICE_NAME", serviceName),
          sampler,
          ratio,
        }
      : undefined;
  return { tracing, commit };
}

function checkUrl(reader: ConfigReader, name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    reader.problem(name, `must be an http or https URL, got ${JSON.stringify(value)}`);
    return DEFAULT_ENDPOINT;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    reader.problem(name, `must be an http or https URL, got ${JSON.stringify(value)}`);
    return DEFAULT_ENDPOINT;
  }
  return value;
}

/** `key=value,key2=value2`, values percent-encoded (the OpenTelemetry convention). */
function readHeaders(reader: ConfigReader, name: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const pair of reader.list(name)) {
    const equals = pair.indexOf("=");
    const key = equals > 0 ? pair.slice(0, equals).trim() : "";
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key)) {
      reader.problem(name, "must be key=value pairs separated by commas");
      return {};
    }
    try {
      headers[key] = decodeURIComponent(pair.slice(equals + 1).trim());
    } catch {
      reader.problem(name, `has a value that is not percent-encoded properly (header ${key})`);
      return {};
    }
  }
  return headers;
}

function readRatio(reader: ConfigReader): number {
  const text = reader.raw("OTEL_TRACES_SAMPLER_ARG");
  if (text === undefined) return 1;
  const value = Number(text);
  if (!/^\d*\.?\d+$/.test(text) || !(value >= 0 && value <= 1)) {
    reader.problem("OTEL_TRACES_SAMPLER_ARG", `must be a number from 0 to 1, got ${JSON.stringify(text)}`);
    return 1;
  }
  return value;
}
