import { Aws, Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as logs from "aws-cdk-lib/aws-logs";

/** The AWS Distro for OpenTelemetry collector, pinned so a deployment never changes it by itself. */
export const DEFAULT_COLLECTOR_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0";

/** CloudWatch namespace of the metrics the services export (their Prometheus names, unchanged). */
export const METRICS_NAMESPACE = "Tether";

/** Dimensions every collected metric carries: the environment and the service (`edge`, `worker`, `admin`). */
export const METRIC_DIMENSIONS = ["Environment", "Service"] as const;

/** How often the collector scrapes `/metrics`; one scrape per minute makes a minute's Sum one value per task. */
const SCRAPE_SECONDS = 60;

/** What every task's collector shares. */
export interface CollectorOptions {
  readonly image: ecs.ContainerImage;
  /** The EMF log group: CloudWatch extracts the metrics from it. */
  readonly logGroup: logs.ILogGroup;
  readonly envName: string;
}

/**
 * The collector's configuration: scrape the service on loopback once a minute and write each
 * sample as CloudWatch embedded metric format to `logGroup`, dimensioned by environment and
 * service. Counters arrive as per-minute deltas (the EMF exporter converts cumulative
 * Prometheus counters), histograms as sum and count (so Average is the mean latency).
 * Only Tether's own metrics and a few process ones become CloudWatch metrics.
 */
export function collectorConfig(props: {
  service: string;
  port: number;
  envName: string;
  logGroupName: string;
}): Record<string, unknown> {
  const dimensions = [[...METRIC_DIMENSIONS]];
  return {
    extensions: { health_check: { endpoint: "127.0.0.1:13133" } },
    receivers: {
      prometheus: {
        config: {
          global: { scrape_interval: `${SCRAPE_SECONDS}s`, scrape_timeout: "10s" },
          scrape_configs: [
            {
              job_name: `tether-${props.service}`,
              metrics_path: "/metrics",
              static_configs: [
                {
                  targets: [`127.0.0.1:${props.port}`],
                  // Capitalised, so they never clash with the services' own `service` label.
                  labels: { Environment: props.envName, Service: props.service },
                },
              ],
            },
          ],
        },
      },
    },
    processors: {
      "resourcedetection/ecs": { detectors: ["env", "ecs"], timeout: "5s", override: false },
      batch: { timeout: "60s" },
    },
    exporters: {
      awsemf: {
        namespace: METRICS_NAMESPACE,
        region: Aws.REGION,
        log_group_name: props.logGroupName,
        log_stream_name: `${props.service}/{TaskId}`,
        dimension_rollup_option: "NoDimensionRollup",
        metric_declarations: [
          {
            dimensions,
            metric_name_selectors: [
              "^tether_",
              "^nodejs_eventloop_lag_",
              "^process_cpu_seconds_total",
              "^process_resident_memory_bytes",
              "^nodejs_heap_size_used_bytes",
            ],
          },
        ],
      },
    },
    service: {
      extensions: ["health_check"],
      pipelines: {
        metrics: { receivers: ["prometheus"], processors: ["resourcedetection/ecs", "batch"], exporters: ["awsemf"] },
      },
    },
  };
}

/**
 * Adds the collector sidecar to `taskDefinition`: it scrapes the service's `/metrics` on
 * `port` (loopback: tasks use awsvpc networking, so the containers share one address) and may
 * write only to the EMF log group. Not essential: a collector that dies costs metrics, never
 * the service.
 */
export function addCollector(
  taskDefinition: ecs.FargateTaskDefinition,
  props: { service: string; port: number; options: CollectorOptions; appLogGroup: logs.ILogGroup },
): ecs.ContainerDefinition {
  const config = collectorConfig({
    service: props.service,
    port: props.port,
    envName: props.options.envName,
    logGroupName: props.options.logGroup.logGroupName,
  });
  const container = taskDefinition.addContainer("collector", {
    image: props.options.image,
    essential: false,
    cpu: 64,
    memoryReservationMiB: 64,
    memoryLimitMiB: 256,
    // ADOT reads its whole configuration from this variable; JSON is YAML.
    environment: { AOT_CONFIG_CONTENT: JSON.stringify(config) },
    logging: ecs.LogDrivers.awsLogs({
      logGroup: props.appLogGroup,
      streamPrefix: "collector",
      mode: ecs.AwsLogDriverMode.NON_BLOCKING,
    }),
    healthCheck: {
      command: ["CMD", "/healthcheck"],
      interval: Duration.seconds(30),
      timeout: Duration.seconds(5),
      retries: 3,
      startPeriod: Duration.seconds(15),
    },
    readonlyRootFilesystem: true,
  });
  const role = taskDefinition.taskRole;
  props.options.logGroup.grantWrite(role);
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: "EmfStreams",
      actions: ["logs:DescribeLogStreams"],
      resources: [props.options.logGroup.logGroupArn],
    }),
  );
  return container;
}

/**
 * One of a service's own metrics as the collector publishes it: its Prometheus name in the
 * `Tether` namespace, for one environment and service, summed or averaged over every task.
 */
export function serviceMetric(
  envName: string,
  service: "edge" | "worker" | "admin",
  metricName: string,
  options: { statistic: string; label?: string; period?: Duration },
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { Environment: envName, Service: service },
    statistic: options.statistic,
    period: options.period ?? Duration.minutes(1),
    ...(options.label === undefined ? {} : { label: options.label }),
  });
}
