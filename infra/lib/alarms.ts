import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as ecs from "aws-cdk-lib/aws-ecs";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import type { AdminService } from "./admin-service.ts";
import { serviceMetric } from "./collector.ts";
import type { EdgeService } from "./edge-service.ts";
import type { Kafka } from "./kafka.ts";
import type { Tables } from "./tables.ts";

export interface AlarmsProps {
  readonly envName: string;
  /**
   * Production pages when a signal that should always be there goes missing (no connections,
   * no task counts); elsewhere missing data is fine, and an environment with no devices pages
   * nobody.
   */
  readonly production: boolean;
  readonly cluster: ecs.ICluster;
  readonly edge: EdgeService;
  readonly admin: AdminService;
  /** Services whose running task count is watched against the desired count. */
  readonly services: Readonly<Record<string, ecs.FargateService>>;
  readonly kafka: Kafka;
  readonly tables: Tables;
  readonly lagThreshold: number;
  readonly email: string | undefined;
}

/** How an alarm reads missing data. */
type Missing =
  /** The metric should always be there (running tasks, connections): missing is bad, in production. */
  | "presence"
  /** The metric counts events (errors, throttles, losses): missing means none happened. */
  | "events";

/** DynamoDB operations the services call, per table (for the tables' SystemErrors metrics). */
const TABLE_OPERATIONS = {
  connections: ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"],
  edges: ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Scan"],
  outbox: ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"],
} as const;

/**
 * Alarms to one SNS topic (KMS-encrypted with a key CloudWatch and EventBridge may use), alarm
 * and OK: devices all gone or suddenly fewer, unhealthy edges, NLB resets, tasks below
 * desired, failed deployments, DynamoDB throttles and system errors, admin ALB 5xx, lease
 * losses and event-loop lag (from the services' own metrics), and, on MSK, consumer lag and
 * dead letters. MSK Serverless publishes no broker CPU, disk or replication metrics (AWS
 * runs the brokers), so Kafka is watched through lag and the DLQ.
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

    const missing = (kind: Missing): cloudwatch.TreatMissingData =>
      kind === "presence" && props.production
        ? cloudwatch.TreatMissingData.BREACHING
        : cloudwatch.TreatMissingData.NOT_BREACHING;
    const add = (alarm: cloudwatch.Alarm, pages = true): void => {
      if (pages) {
        alarm.addAlarmAction(notify);
        alarm.addOkAction(notify);
      }
      this.alarms.push(alarm);
    };
    const minute = Duration.minutes(1);
    const fiveMinutes = Duration.minutes(5);

    // No device connected anywhere for 5 minutes: the NLB, the edges or the network are down.
    // Only production expects devices at all hours; elsewhere the alarm shows on the dashboard
    // but pages nobody, since an empty environment is normal there.
    add(
      new cloudwatch.Alarm(this, "EdgeConnectionsZero", {
        alarmDescription: props.production
          ? "No device connections through the edge NLB for 5 minutes"
          : "No device connections through the edge NLB for 5 minutes (outside production this pages nobody)",
        metric: props.edge.activeConnections.with({ statistic: "Maximum", period: minute }),
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        threshold: 1,
        evaluationPeriods: 5,
        treatMissingData: missing("presence"),
      }),
      props.production,
    );
    // Many devices gone at once (an edge crashed, a zone or a network path failed) while the
    // rest stay: below the band CloudWatch learns from the last two weeks of connections.
    add(
      new cloudwatch.AnomalyDetectionAlarm(this, "EdgeConnectionsDrop", {
        alarmDescription: "Device connections dropped well below their usual level for 10 minutes",
        metric: props.edge.activeConnections.with({ statistic: "Average", period: fiveMinutes }),
        stdDevs: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_LOWER_THRESHOLD,
        evaluationPeriods: 2,
        treatMissingData: missing("events"),
      }),
    );
    add(
      new cloudwatch.Alarm(this, "EdgeUnhealthyTargets", {
        alarmDescription: "An edge task has failed its /readyz check for 5 minutes",
        metric: props.edge.targetGroup.metrics.unHealthyHostCount({
          statistic: "Maximum",
          period: minute,
        }),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        threshold: 0,
        evaluationPeriods: 5,
        treatMissingData: missing("events"),
      }),
    );
    // Resets sent by the NLB itself or by the edge tasks, as a share of new connections: a
    // broken target or listener shows as many of them; a few are devices' own doing.
    const nlbMetric = (metricName: string) =>
      new cloudwatch.Metric({
        namespace: "AWS/NetworkELB",
        metricName,
        dimensionsMap: { LoadBalancer: props.edge.loadBalancer.loadBalancerFullName },
        statistic: "Sum",
        period: fiveMinutes,
      });
    add(
      new cloudwatch.Alarm(this, "EdgeNlbResets", {
        alarmDescription:
          "The edge NLB or its targets reset more than 5% of new device connections (and over 50) for 10 minutes",
        metric: new cloudwatch.MathExpression({
          expression: "IF(elb + target > 50, 100 * (elb + target) / IF(flows > 0, flows, 1), 0)",
          usingMetrics: {
            elb: nlbMetric("TCP_ELB_Reset_Count"),
            target: nlbMetric("TCP_Target_Reset_Count"),
            flows: nlbMetric("NewFlowCount"),
          },
          period: fiveMinutes,
          label: "Resets per 100 new connections",
        }),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        threshold: 5,
        evaluationPeriods: 2,
        treatMissingData: missing("events"),
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
          period: minute,
        });
      add(
        new cloudwatch.Alarm(this, `${name}TasksBelowDesired`, {
          alarmDescription: `${name}: fewer tasks running than desired for 10 minutes (crash loop or start failures)`,
          metric: new cloudwatch.MathExpression({
            expression: "desired - running",
            usingMetrics: { desired: metric("DesiredTaskCount"), running: metric("RunningTaskCount") },
            period: minute,
            label: `${name} tasks missing`,
          }),
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          threshold: 0,
          evaluationPeriods: 10,
          treatMissingData: missing("presence"),
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

    // DynamoDB: throttled reads and writes on any table (on-demand tables throttle when traffic
    // jumps past twice its recent peak), and DynamoDB's own failures on the registry tables.
    const tables = {
      connections: props.tables.connections,
      edges: props.tables.edges,
      outbox: props.tables.outbox,
      kv: props.tables.kv,
    };
    const throttles: Record<string, cloudwatch.IMetric> = {};
    for (const [name, table] of Object.entries(tables)) {
      for (const kind of ["Read", "Write"] as const) {
        throttles[`${name}${kind}`] = new cloudwatch.Metric({
          namespace: "AWS/DynamoDB",
          metricName: `${kind}ThrottleEvents`,
          dimensionsMap: { TableName: table.tableName },
          statistic: "Sum",
          period: fiveMinutes,
        });
      }
    }
    add(
      new cloudwatch.Alarm(this, "DynamoDbThrottles", {
        alarmDescription: "DynamoDB throttled reads or writes on a Tether table in two 5-minute periods running",
        metric: sumOf(throttles, fiveMinutes, "Throttled DynamoDB requests"),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        threshold: 0,
        evaluationPeriods: 2,
        treatMissingData: missing("events"),
      }),
    );
    const systemErrors = (tableNames: readonly (keyof typeof TABLE_OPERATIONS)[]): Record<string, cloudwatch.IMetric> =>
      Object.fromEntries(
        tableNames.flatMap((name) =>
          TABLE_OPERATIONS[name].map((operation) => [
            `${name}${operation}`,
            new cloudwatch.Metric({
              namespace: "AWS/DynamoDB",
              metricName: "SystemErrors",
              dimensionsMap: { TableName: tables[name].tableName, Operation: operation },
              statistic: "Sum",
              period: fiveMinutes,
            }),
          ]),
        ),
      );
    // An alarm's expression may use at most ten metrics: leases and ownership in one, the outbox in another.
    add(
      new cloudwatch.Alarm(this, "DynamoDbRegistryErrors", {
        alarmDescription: "DynamoDB failed requests (5xx) on the connections or edges (lease) table",
        metric: sumOf(systemErrors(["connections", "edges"]), fiveMinutes, "DynamoDB system errors (registry)"),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        threshold: 0,
        evaluationPeriods: 1,
        treatMissingData: missing("events"),
      }),
    );
    add(
      new cloudwatch.Alarm(this, "DynamoDbOutboxErrors", {
        alarmDescription: "DynamoDB failed requests (5xx) on the outbox table",
        metric: sumOf(systemErrors(["outbox"]), fiveMinutes, "DynamoDB system errors (outbox)"),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        threshold: 0,
        evaluationPeriods: 1,
        treatMissingData: missing("events"),
      }),
    );

    // The admin API failing (its own 5xx, or the ALB finding no healthy target).
    const alb = props.admin.loadBalancer.metrics;
    add(
      new cloudwatch.Alarm(this, "AdminAlb5xx", {
        alarmDescription:
          "The admin API answered more than 5 server errors (5xx from the tasks or the ALB) in 5 minutes",
        metric: sumOf(
          {
            target: alb.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
              statistic: "Sum",
              period: fiveMinutes,
            }),
            elb: alb.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, { statistic: "Sum", period: fiveMinutes }),
          },
          fiveMinutes,
          "Admin API 5xx",
        ),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        threshold: 5,
        evaluationPeriods: 1,
        treatMissingData: missing("events"),
      }),
    );

    // From the services' own metrics (the collector sidecars).
    add(
      new cloudwatch.Alarm(this, "EdgeLeaseLosses", {
        alarmDescription:
          "An edge lost its reply slot lease to another edge (it stops; its devices reconnect elsewhere)",
        metric: serviceMetric(props.envName, "edge", "tether_edge_lease_losses_total", {
          statistic: "Sum",
          period: fiveMinutes,
        }),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        threshold: 0,
        evaluationPeriods: 1,
        treatMissingData: missing("events"),
      }),
    );
    add(
      new cloudwatch.Alarm(this, "EventLoopLag", {
        alarmDescription: "A service's event loop lagged over 500 ms (p99) for 5 minutes: its tasks are overloaded",
        metric: new cloudwatch.MathExpression({
          expression: "MAX([edge, worker, admin])",
          usingMetrics: Object.fromEntries(
            (["edge", "worker", "admin"] as const).map((service) => [
              service,
              serviceMetric(props.envName, service, "nodejs_eventloop_lag_p99_seconds", { statistic: "Maximum" }),
            ]),
          ),
          period: minute,
          label: "Event-loop lag p99 (s), worst service",
        }),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        threshold: 0.5,
        evaluationPeriods: 5,
        treatMissingData: missing("events"),
      }),
    );

    const lag = props.kafka.consumerLag(props.kafka.names.workersGroup, props.kafka.names.requestsTopic);
    if (lag !== undefined) {
      add(
        new cloudwatch.Alarm(this, "WorkerLag", {
          alarmDescription: `Worker backlog on requests above ${props.lagThreshold} messages for 5 minutes`,
          metric: lag,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          threshold: props.lagThreshold,
          evaluationPeriods: 5,
          treatMissingData: missing("events"),
        }),
      );
    }
    const routerLag = props.kafka.consumerLag(props.kafka.names.routerGroup, props.kafka.names.downlinkTopic);
    if (routerLag !== undefined) {
      add(
        new cloudwatch.Alarm(this, "RouterLag", {
          alarmDescription: `Push backlog on downlink above ${props.lagThreshold} messages for 5 minutes`,
          metric: routerLag,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          threshold: props.lagThreshold,
          evaluationPeriods: 5,
          treatMissingData: missing("events"),
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
          treatMissingData: missing("events"),
        }),
      );
    }
  }
}

/** One expression adding up `metrics`, a missing series counting as zero. */
function sumOf(
  metrics: Record<string, cloudwatch.IMetric>,
  period: Duration,
  label: string,
): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({
    expression: Object.keys(metrics)
      .map((id) => `FILL(${id}, 0)`)
      .join(" + "),
    usingMetrics: metrics,
    period,
    label,
  });
}
