import { Duration } from "aws-cdk-lib";
import * as appscaling from "aws-cdk-lib/aws-applicationautoscaling";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import type * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { Kafka } from "./kafka.ts";
import { ServiceTask } from "./service-task.ts";
import { acknowledgeConnectionsIndex, type Tables } from "./tables.ts";

export const WORKER_HTTP_PORT = 9091;
/** services/worker/config.ts: `<prefix>workers` consumes `requests`, `<prefix>router` consumes `downlink`. */
export const WORKER_GROUP = "workers";
export const ROUTER_GROUP = "router";

export interface WorkerServiceProps {
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.ICluster;
  readonly image: ecs.ContainerImage;
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
      groups: [props.kafka.group(WORKER_GROUP), props.kafka.group(ROUTER_GROUP)],
      createTopics: true,
    });

    this.securityGroup = new ec2.SecurityGroup(this, "SecurityGroup", {
      vpc: props.vpc,
      description: "Tether worker tasks (no inbound)",
      allowAllOutbound: true,
    });
    props.kafka.allowFrom(this.securityGroup, "worker tasks");

    this.service = new ecs.FargateService(this, "Service", {
      cluster: props.cluster,
      taskDefinition: this.task.taskDefinition,
      desiredCount: props.desiredCount,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      securityGroups: [this.securityGroup],
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false,
      propagateTags: ecs.PropagatedTagSource.SERVICE,
    });

    const scaling = this.service.autoScaleTaskCount({ minCapacity: props.minCount, maxCapacity: props.maxCount });
    scaling.scaleOnCpuUtilization("Cpu", {
      targetUtilizationPercent: 60,
      scaleOutCooldown: Duration.minutes(1),
      scaleInCooldown: Duration.minutes(5),
    });

    // Backlog per task: MSK's lag of both groups over the running tasks (Container Insights).
    // Lag is only published for stable groups, so a missing point counts as no backlog.
    const kafka = props.kafka;
    if (kafka.clusterName !== undefined) {
      const lagQuery = (id: string, group: string, topic: string) => ({
        id,
        returnData: false,
        metricStat: {
          metric: {
            namespace: "AWS/Kafka",
            metricName: "SumOffsetLag",
            dimensions: [
              { name: "Cluster Name", value: kafka.clusterName ?? "" },
              { name: "Consumer Group", value: kafka.group(group) },
              { name: "Topic", value: topic },
            ],
          },
          stat: "Maximum",
        },
      });
      const target = scaling.node.findChild("Target") as appscaling.ScalableTarget;
      new appscaling.CfnScalingPolicy(this, "LagScaling", {
        policyName: "lag-per-task",
        policyType: "TargetTrackingScaling",
        scalingTargetId: target.scalableTargetId,
        targetTrackingScalingPolicyConfiguration: {
          targetValue: props.lagPerTask,
          scaleOutCooldown: 60,
          scaleInCooldown: 300,
          customizedMetricSpecification: {
            metrics: [
              lagQuery("requests", WORKER_GROUP, names.requestsTopic),
              lagQuery("downlink", ROUTER_GROUP, names.downlinkTopic),
              {
                id: "tasks",
                returnData: false,
                metricStat: {
                  metric: {
                    namespace: "ECS/ContainerInsights",
                    metricName: "RunningTaskCount",
                    dimensions: [
                      { name: "ClusterName", value: props.cluster.clusterName },
                      { name: "ServiceName", value: this.service.serviceName },
                    ],
                  },
                  stat: "Average",
                },
              },
              {
                id: "backlogPerTask",
                expression: "(FILL(requests, 0) + FILL(downlink, 0)) / IF(tasks > 0, tasks, 1)",
                label: "Kafka backlog per worker task",
                returnData: true,
              },
            ],
          },
        },
      });
    }
  }
}
