import { Duration } from "aws-cdk-lib";
import * as appscaling from "aws-cdk-lib/aws-applicationautoscaling";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import type { Construct } from "constructs";
import type { Kafka } from "./kafka.ts";
import type { ServiceTask } from "./service-task.ts";

/**
 * The security group of a service's tasks: all outbound, Kafka reachable from it. Callers add
 * inbound rules.
 */
export function tasksSecurityGroup(
  scope: Construct,
  props: { vpc: ec2.IVpc; kafka: Kafka; description: string; kafkaPeer: string },
): ec2.SecurityGroup {
  const securityGroup = new ec2.SecurityGroup(scope, "SecurityGroup", {
    vpc: props.vpc,
    description: props.description,
    allowAllOutbound: true,
  });
  props.kafka.allowFrom(securityGroup, props.kafkaPeer);
  return securityGroup;
}

/**
 * The Fargate service of one task in the private subnets: rolling deploys that never drop
 * below the desired count, rolled back by the circuit breaker.
 */
export function privateService(
  scope: Construct,
  props: {
    cluster: ecs.ICluster;
    task: ServiceTask;
    desiredCount: number;
    securityGroup: ec2.ISecurityGroup;
    /** Only for services behind a load balancer. */
    healthCheckGracePeriod?: Duration;
  },
): ecs.FargateService {
  return new ecs.FargateService(scope, "Service", {
    cluster: props.cluster,
    taskDefinition: props.task.taskDefinition,
    desiredCount: props.desiredCount,
    minHealthyPercent: 100,
    maxHealthyPercent: 200,
    circuitBreaker: { enable: true, rollback: true },
    ...(props.healthCheckGracePeriod === undefined ? {} : { healthCheckGracePeriod: props.healthCheckGracePeriod }),
    securityGroups: [props.securityGroup],
    vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
    assignPublicIp: false,
    propagateTags: ecs.PropagatedTagSource.SERVICE,
  });
}

/** Task-count scaling between `min` and `max`, with a CPU target of 60 %. */
export function scaleOnCpu(
  service: ecs.FargateService,
  props: { minCount: number; maxCount: number; scaleInCooldown: Duration },
): ecs.ScalableTaskCount {
  const scaling = service.autoScaleTaskCount({ minCapacity: props.minCount, maxCapacity: props.maxCount });
  scaling.scaleOnCpuUtilization("Cpu", {
    targetUtilizationPercent: 60,
    scaleOutCooldown: Duration.minutes(1),
    scaleInCooldown: props.scaleInCooldown,
  });
  return scaling;
}

/** One CloudWatch metric of a metric-math scaling policy; only the expression returns data. */
export function metricQuery(
  id: string,
  metric: { namespace: string; metricName: string; dimensions: Record<string, string>; stat: string },
): appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty {
  return {
    id,
    returnData: false,
    metricStat: {
      metric: {
        namespace: metric.namespace,
        metricName: metric.metricName,
        dimensions: Object.entries(metric.dimensions).map(([name, value]) => ({ name, value })),
      },
      stat: metric.stat,
    },
  };
}

/**
 * A target-tracking policy on a metric-math expression. The L2 target-tracking policy takes
 * one metric only; metric math needs the L1 resource.
 */
export function trackExpression(
  scope: Construct,
  id: string,
  scaling: ecs.ScalableTaskCount,
  props: {
    policyName: string;
    targetValue: number;
    scaleOutCooldownSeconds: number;
    scaleInCooldownSeconds: number;
    metrics: appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty[];
  },
): appscaling.CfnScalingPolicy {
  const target = scaling.node.findChild("Target") as appscaling.ScalableTarget;
  return new appscaling.CfnScalingPolicy(scope, id, {
    policyName: props.policyName,
    policyType: "TargetTrackingScaling",
    scalingTargetId: target.scalableTargetId,
    targetTrackingScalingPolicyConfiguration: {
      targetValue: props.targetValue,
      scaleOutCooldown: props.scaleOutCooldownSeconds,
      scaleInCooldown: props.scaleInCooldownSeconds,
      customizedMetricSpecification: { metrics: props.metrics },
    },
  });
}
