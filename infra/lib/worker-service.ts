import { Duration } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as ecs from "aws-cdk-lib/aws-ecs";
import type * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { Kafka } from "./kafka.ts";
import { metricQuery, privateService, scaleOnCpu, tasksSecurityGroup, trackExpression } from "./service-parts.ts";
import { ServiceTask, type TaskRuntime } from "./service-task.ts";
import { acknowledgeConnectionsIndex, type Tables } from "./tables.ts";

export const WORKER_HTTP_PORT = 9091;

export interface WorkerServiceProps {
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.ICluster;
  readonly image: ecs.ContainerImage;
  readonly runtime: TaskRuntime;
  readonly kafka: Kafka;
  readonly tables: Tables;
  readonly commonEnvironment: Record<string, string>;
  readonly commonSecrets: Record<string, ecs.Secret>;
  readonly desiredCount: number;
  readonly minCount: number;
  readonly maxCount: number;
  /** Target backlog per task for lag scaling (MSK only). */
  readonly lagPerTask: number;
  readonly production: boolean;
  readonly logRetention: logs.RetentionDays;
}

/**
 * The worker consumer group: runs handlers for `requests`, routes `downlink` pushes. No load
 * balancer; the container health check restarts a hung task.
 */
export class WorkerService extends Construct {
  readonly service: ecs.FargateService;
  readonly task: ServiceTask;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: WorkerServiceProps) {
    super(scope, id);
    this.task = new ServiceTask(this, "Task", {
      name: "worker",
      image: props.image,
      runtime: props.runtime,
      cpu: 512,
      memoryLimitMiB: 1024,
      environment: {
        ...props.commonEnvironment,
        TETHER_WORKER_HTTP_PORT: String(WORKER_HTTP_PORT),
        TETHER_KV_TABLE: props.tables.kv.tableName,
      },
      secrets: props.commonSecrets,
      ports: [WORKER_HTTP_PORT],
      healthPort: WORKER_HTTP_PORT,
      // The worker finishes in-flight handlers within TETHER_WORKER_SHUTDOWN_MS (25 s), then
      // commits and leaves the group.
      stopTimeout: Duration.seconds(35),
      logRetention: props.logRetention,
      production: props.production,
    });

    const role = this.task.taskDefinition.taskRole;
    // Looks owners up (connections, live leases), parks pushes in the outbox, and backs the kv example.
    props.tables.connections.grantReadData(role);
    props.tables.edges.grantReadData(role);
    props.tables.outbox.grantReadWriteData(role);
    props.tables.kv.grantReadWriteData(role);
    acknowledgeConnectionsIndex(role, props.tables);
    const names = props.kafka.names;
    props.kafka.grant(role, {
      produce: [names.repliesTopic, names.dlqTopic],
      consume: [names.requestsTopic, names.downlinkTopic],
      // `names.workersGroup` consumes `requests`, `names.routerGroup` consumes `downlink`.
      groups: [names.workersGroup, names.routerGroup],
      createTopics: true,
    });

    this.securityGroup = tasksSecurityGroup(this, {
      vpc: props.vpc,
      kafka: props.kafka,
      description: "Tether worker tasks (no inbound)",
      kafkaPeer: "worker tasks",
    });

    this.service = privateService(this, {
      cluster: props.cluster,
      task: this.task,
      desiredCount: props.desiredCount,
      securityGroup: this.securityGroup,
    });

    const scaling = scaleOnCpu(this.service, {
      minCount: props.minCount,
      maxCount: props.maxCount,
      scaleInCooldown: Duration.minutes(5),
    });

    // Backlog per task: MSK's lag of both groups over the running tasks (Container Insights).
    // Lag is only published for stable groups, so a missing point counts as no backlog.
    const kafka = props.kafka;
    if (kafka.clusterName !== undefined) {
      const lagQuery = (id: string, group: string, topic: string) =>
        metricQuery(id, {
          namespace: "AWS/Kafka",
          metricName: "SumOffsetLag",
          dimensions: {
            "Cluster Name": kafka.clusterName ?? "",
            "Consumer Group": group,
            Topic: topic,
          },
          stat: "Maximum",
        });
      trackExpression(this, "LagScaling", scaling, {
        policyName: "lag-per-task",
        targetValue: props.lagPerTask,
        scaleOutCooldownSeconds: 60,
        scaleInCooldownSeconds: 300,
        metrics: [
          lagQuery("requests", names.workersGroup, names.requestsTopic),
          lagQuery("downlink", names.routerGroup, names.downlinkTopic),
          metricQuery("tasks", {
            namespace: "ECS/ContainerInsights",
            metricName: "RunningTaskCount",
            dimensions: { ClusterName: props.cluster.clusterName, ServiceName: this.service.serviceName },
            stat: "Average",
          }),
          {
            id: "backlogPerTask",
            expression: "(FILL(requests, 0) + FILL(downlink, 0)) / IF(tasks > 0, tasks, 1)",
            label: "Kafka backlog per worker task",
            returnData: true,
          },
        ],
      });
    }
  }
}
