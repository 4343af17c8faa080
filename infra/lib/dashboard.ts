import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import { Construct } from "constructs";
import type { AdminService } from "./admin-service.ts";
import { serviceMetric } from "./collector.ts";
import type { EdgeService } from "./edge-service.ts";
import type { Kafka } from "./kafka.ts";

export interface DashboardProps {
  readonly envName: string;
  readonly edge: EdgeService;
  readonly admin: AdminService;
  readonly kafka: Kafka;
  readonly alarms: readonly cloudwatch.IAlarm[];
}

const SERVICES = ["edge", "worker", "admin"] as const;

/**
 * The environment's CloudWatch dashboard, `Tether-<env>`: what the load balancers and MSK
 * report next to what the services export themselves (through their collector sidecars, in
 * the `Tether` namespace under their Prometheus names).
 */
export class Dashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: DashboardProps) {
    super(scope, id);
    const env = props.envName;
    const minute = Duration.minutes(1);
    const perMinute = (service: (typeof SERVICES)[number], name: string, label: string) =>
      serviceMetric(env, service, name, { statistic: "Sum", label });

    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      dashboardName: `Tether-${env}`,
      defaultInterval: Duration.hours(3),
    });

    const connections = new cloudwatch.GraphWidget({
      title: "Device connections",
      left: [
        props.edge.activeConnections.with({ statistic: "Average", label: "NLB active flows" }),
        serviceMetric(env, "edge", "tether_edge_connections", { statistic: "Sum", label: "Edge sessions (all tasks)" }),
      ],
      right: [perMinute("edge", "tether_edge_connections_opened_total", "Opened per minute")],
      width: 12,
    });
    const requests = new cloudwatch.GraphWidget({
      title: "Requests per minute",
      left: [
        perMinute("edge", "tether_edge_requests_total", "Requests received (edge)"),
        perMinute("edge", "tether_edge_acks_total", "Acked (edge)"),
        perMinute("worker", "tether_worker_handled_total", "Handled (worker)"),
        perMinute("edge", "tether_edge_replies_total", "Replies delivered (edge)"),
      ],
      right: [perMinute("worker", "tether_worker_failed_total", "Handler failures")],
      width: 12,
    });
    const latency = new cloudwatch.GraphWidget({
      title: "Ack and round-trip latency (seconds)",
      left: [
        serviceMetric(env, "edge", "tether_edge_ack_latency_seconds", { statistic: "Average", label: "Ack, mean" }),
        serviceMetric(env, "edge", "tether_edge_reply_latency_seconds", {
          statistic: "Average",
          label: "Round trip (request to reply), mean",
        }),
        serviceMetric(env, "worker", "tether_worker_handler_duration_seconds", {
          statistic: "Average",
          label: "Handler, mean",
        }),
      ],
      width: 12,
    });
    const lagMetrics: cloudwatch.IMetric[] = [
      serviceMetric(env, "worker", "tether_worker_consumer_lag", { statistic: "Maximum", label: "Worker lag (own)" }),
      serviceMetric(env, "edge", "tether_kafka_consumer_lag", { statistic: "Maximum", label: "Edge reply slots" }),
    ];
    const mskLag = props.kafka.consumerLag(props.kafka.names.workersGroup, props.kafka.names.requestsTopic);
    const mskRouterLag = props.kafka.consumerLag(props.kafka.names.routerGroup, props.kafka.names.downlinkTopic);
    if (mskLag !== undefined) lagMetrics.push(mskLag.with({ label: "MSK: workers on requests" }));
    if (mskRouterLag !== undefined) lagMetrics.push(mskRouterLag.with({ label: "MSK: router on downlink" }));
    const lag = new cloudwatch.GraphWidget({ title: "Consumer lag (messages)", left: lagMetrics, width: 12 });

    const dlqMetrics: cloudwatch.IMetric[] = [
      perMinute("worker", "tether_worker_dead_lettered_total", "Dead-lettered per minute"),
    ];
    const dlqIn = props.kafka.messagesIn(props.kafka.names.dlqTopic);
    if (dlqIn !== undefined) dlqMetrics.push(dlqIn.with({ label: "MSK: records into requests.dlq", period: minute }));
    const dlq = new cloudwatch.GraphWidget({ title: "Dead letters", left: dlqMetrics, width: 12 });

    const leases = new cloudwatch.GraphWidget({
      title: "Reply slot leases",
      left: [perMinute("edge", "tether_edge_lease_renewals_total", "Renewals per minute")],
      right: [perMinute("edge", "tether_edge_lease_losses_total", "Losses")],
      width: 12,
    });
    const eventLoop = new cloudwatch.GraphWidget({
      title: "Event-loop lag p99 (seconds)",
      left: SERVICES.map((service) =>
        serviceMetric(env, service, "nodejs_eventloop_lag_p99_seconds", { statistic: "Maximum", label: service }),
      ),
      width: 12,
    });
    const dynamo = new cloudwatch.GraphWidget({
      title: "DynamoDB calls",
      left: SERVICES.map((service) =>
        serviceMetric(env, service, "tether_dynamodb_call_duration_seconds", {
          statistic: "Average",
          label: `${service}: mean call (s)`,
        }),
      ),
      right: SERVICES.map((service) =>
        perMinute(service, "tether_dynamodb_call_errors_total", `${service}: failed calls (conflicts included)`),
      ),
      width: 12,
    });
    const balancers = new cloudwatch.GraphWidget({
      title: "Load balancers",
      left: [
        props.edge.loadBalancer.metrics.tcpElbResetCount({ period: minute, label: "NLB resets (by the NLB)" }),
        props.edge.loadBalancer.metrics.tcpTargetResetCount({ period: minute, label: "NLB resets (by edges)" }),
      ],
      right: [
        props.admin.loadBalancer.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
          period: minute,
          label: "Admin API 5xx (tasks)",
        }),
        props.admin.loadBalancer.metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, {
          period: minute,
          label: "Admin API 5xx (ALB)",
        }),
      ],
      width: 12,
    });
    const status = new cloudwatch.AlarmStatusWidget({
      title: "Alarms",
      alarms: [...props.alarms],
      width: 24,
      height: 4,
    });

    this.dashboard.addWidgets(status);
    this.dashboard.addWidgets(connections, requests);
    this.dashboard.addWidgets(latency, lag);
    this.dashboard.addWidgets(dlq, leases);
    this.dashboard.addWidgets(eventLoop, dynamo);
    this.dashboard.addWidgets(balancers);
  }
}
