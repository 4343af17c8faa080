import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as ecs from "aws-cdk-lib/aws-ecs";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import type { EdgeService } from "./edge-service.ts";
import type { Kafka } from "./kafka.ts";

export interface AlarmsProps {
  readonly cluster: ecs.ICluster;
  readonly edge: EdgeService;
  /** Services whose running task count is watched against the desired count. */
  readonly services: Readonly<Record<string, ecs.FargateService>>;
  readonly kafka: Kafka;
  readonly lagThreshold: number;
  readonly email: string | undefined;
}

/**
 * Alarms to one SNS topic (KMS-encrypted with a key CloudWatch and EventBridge may use):
 * devices all gone, unhealthy edges, tasks below desired, failed deployments, and, on MSK,
 * consumer lag and dead letters.
 */
export class Alarms extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    const key = new kms.Key(this, "TopicKey", {
      description: "Tether alarm topic",
      enableKeyRotation: true,
    });
    // Alarm and rule deliveries are made by the services themselves, which need the key.
    for (const service of ["cloudwatch.amazonaws.com", "events.amazonaws.com"]) {
      key.addToResourcePolicy(
        new iam.PolicyStatement({
          actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
          principals: [new iam.ServicePrincipal(service)],
          resources: ["*"],
        }),
      );
    }
    this.topic = new sns.Topic(this, "Topic", { masterKey: key, enforceSSL: true });
    if (props.email !== undefined) this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
    const notify = new actions.SnsAction(this.topic);

    const add = (alarm: cloudwatch.Alarm): void => {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
      this.alarms.push(alarm);
    };

    // No device connected anywhere for 5 minutes: the NLB, the edges or the network are down.
    add(
      new cloudwatch.Alarm(this, "EdgeConnectionsZero", {
        alarmDescription: "No device connections through the edge NLB for 5 minutes",
        metric: props.edge.activeConnections.with({ statistic: "Maximum", period: Duration.minutes(1) }),
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        threshold: 1,
        evaluationPeriods: 5,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }),
    );
    add(
      new cloudwatch.Alarm(this, "EdgeUnhealthyTargets", {
        alarmDescription: "An edge task has failed its /readyz check for 5 minutes",
        metric: props.edge.targetGroup.metrics.unHealthyHostCount({
          statistic: "Maximum",
          period: Duration.minutes(1),
        }),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        threshold: 0,
        evaluationPeriods: 5,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    // Crash loops and tasks that cannot start show as running < desired for a while.
    for (const [name, service] of Object.entries(props.services)) {
      const dimensionsMap = { ClusterName: props.cluster.clusterName, ServiceName: service.serviceName };
      const metric = (metricName: string) =>
        new cloudwatch.Metric({
          namespace: "ECS/ContainerInsights",
          metricName,
          dimensionsMap,
          statistic: "Average",
          period: Duration.minutes(1),
        });
      add(
        new cloudwatch.Alarm(this, `${name}TasksBelowDesired`, {
          alarmDescription: `${name}: fewer tasks running than desired for 10 minutes (crash loop or start failures)`,
          metric: new cloudwatch.MathExpression({
            expression: "desired - running",
            usingMetrics: { desired: metric("DesiredTaskCount"), running: metric("RunningTaskCount") },
            period: Duration.minutes(1),
            label: `${name} tasks missing`,
          }),
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          threshold: 0,
          evaluationPeriods: 10,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }

    // A deployment the circuit breaker rolled back.
    const failedDeployments = new events.Rule(this, "DeploymentFailed", {
      description: "Tether: an ECS deployment failed and was rolled back",
      eventPattern: {
        source: ["aws.ecs"],
        detailType: ["ECS Deployment State Change"],
        resources: Object.values(props.services).map((service) => service.serviceArn),
        detail: { eventName: ["SERVICE_DEPLOYMENT_FAILED"] },
      },
    });
    failedDeployments.addTarget(new targets.SnsTopic(this.topic));

    const lag = props.kafka.consumerLag(props.kafka.names.workersGroup, props.kafka.names.requestsTopic);
    if (lag !== undefined) {
      add(
        new cloudwatch.Alarm(this, "WorkerLag", {
          alarmDescription: `Worker backlog on requests above ${props.lagThreshold} messages for 5 minutes`,
          metric: lag,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          threshold: props.lagThreshold,
          evaluationPeriods: 5,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
    const deadLetters = props.kafka.messagesIn(props.kafka.names.dlqTopic);
    if (deadLetters !== undefined) {
      add(
        new cloudwatch.Alarm(this, "DeadLetters", {
          alarmDescription: "Requests went to requests.dlq (handlers failing after all retries)",
          metric: deadLetters,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          threshold: 0,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
  }
}
