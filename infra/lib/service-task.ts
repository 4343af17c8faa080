import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { addCollector, type CollectorOptions } from "./collector.ts";
import { acknowledge } from "./nag.ts";
import type { CpuArchitecture } from "./settings.ts";

/** What every task of a deployment shares: the CPU architecture and the metrics collector. */
export interface TaskRuntime {
  /** Must match the image's platform (the stack builds the image for it). */
  readonly cpuArchitecture: CpuArchitecture;
  readonly collector: CollectorOptions;
}

export interface ServiceTaskProps {
  /** `edge`, `worker` or `admin`: the bundle `dist/<name>.mjs` and the container's name. */
  readonly name: string;
  readonly image: ecs.ContainerImage;
  readonly runtime: TaskRuntime;
  readonly cpu: number;
  readonly memoryLimitMiB: number;
  readonly environment: Record<string, string>;
  readonly secrets: Record<string, ecs.Secret>;
  readonly ports: readonly number[];
  /** Port of the service's `/healthz` (probed by the container health check) and `/metrics` (scraped by the collector). */
  readonly healthPort: number;
  readonly stopTimeout: Duration;
  readonly logRetention: logs.RetentionDays;
  readonly production: boolean;
  /** Raise the open-files limit (the edge holds one socket per device). */
  readonly openFiles?: number;
}

/**
 * A Fargate task definition with one container running one bundle of the shared image,
 * its own log group (with retention) and a liveness probe that needs nothing but node, plus
 * the metrics collector sidecar that turns its `/metrics` into CloudWatch metrics.
 */
export class ServiceTask extends Construct {
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly container: ecs.ContainerDefinition;
  readonly collector: ecs.ContainerDefinition;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ServiceTaskProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.logRetention,
      removalPolicy: props.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    this.taskDefinition = new ecs.FargateTaskDefinition(this, "TaskDefinition", {
      cpu: props.cpu,
      memoryLimitMiB: props.memoryLimitMiB,
      runtimePlatform: {
        cpuArchitecture:
          props.runtime.cpuArchitecture === "arm64" ? ecs.CpuArchitecture.ARM64 : ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    // The slim image has no curl; node's fetch is enough for a liveness probe.
    const probe = `fetch('http://127.0.0.1:${props.healthPort}/healthz').then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))`;
    this.container = this.taskDefinition.addContainer(props.name, {
      image: props.image,
      command: [`dist/${props.name}.mjs`],
      environment: props.environment,
      secrets: props.secrets,
      portMappings: props.ports.map((containerPort) => ({ containerPort, protocol: ecs.Protocol.TCP })),
      logging: ecs.LogDrivers.awsLogs({
        logGroup: this.logGroup,
        streamPrefix: props.name,
        // A slow log pipe must never stall the event loop that serves devices.
        mode: ecs.AwsLogDriverMode.NON_BLOCKING,
      }),
      stopTimeout: props.stopTimeout,
      healthCheck: {
        command: ["CMD", "node", "-e", probe],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
      readonlyRootFilesystem: true,
      essential: true,
    });
    acknowledge(
      this.taskDefinition,
      "AwsSolutions-ECS2",
      "Plain environment variables carry only non-secret configuration (ports, table names, bootstrap servers, limits); the admin token, the device auth secret and SASL credentials reach the container as ECS secrets from Secrets Manager.",
    );
    acknowledge(
      this.taskDefinition.obtainExecutionRole(),
      "AwsSolutions-IAM5[Resource::*]",
      "ecr:GetAuthorizationToken, which ECS needs to pull the image from ECR, has no resource-level permissions; the repository actions themselves are scoped to the image's repository.",
    );
    this.collector = addCollector(this.taskDefinition, {
      service: props.name,
      port: props.healthPort,
      options: props.runtime.collector,
      appLogGroup: this.logGroup,
    });
    if (props.openFiles !== undefined) {
      this.container.addUlimits({
        name: ecs.UlimitName.NOFILE,
        softLimit: props.openFiles,
        hardLimit: props.openFiles,
      });
    }
  }
}
