import { Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import type { Construct } from "constructs";
import { AdminService } from "./admin-service.ts";
import { Alarms } from "./alarms.ts";
import { DEFAULT_COLLECTOR_IMAGE } from "./collector.ts";
import { Dashboard } from "./dashboard.ts";
import { DEVICE_PORT, DEVICE_TLS_PORT, EdgeService } from "./edge-service.ts";
import { Kafka } from "./kafka.ts";
import { acknowledge } from "./nag.ts";
import { Network } from "./network.ts";
import type { TaskRuntime } from "./service-task.ts";
import type { TetherSettings } from "./settings.ts";
import { Tables } from "./tables.ts";
import { WorkerService } from "./worker-service.ts";

export interface TetherStackProps extends StackProps {
  readonly settings: TetherSettings;
  /** The image with the service bundles (one image, one command per service), built for `settings.cpuArchitecture`. */
  readonly image: ecs.ContainerImage;
  /** The metrics collector sidecar's image; the pinned ADOT release by default. */
  readonly collectorImage?: ecs.ContainerImage;
}

/** Every AWS resource of one Tether environment. */
export class TetherStack extends Stack {
  readonly network: Network;
  readonly tables: Tables;
  readonly kafka: Kafka;
  readonly edge: EdgeService;
  readonly worker: WorkerService;
  readonly admin: AdminService;
  readonly alarms: Alarms;
  readonly dashboard: Dashboard;
  readonly #zones: number;

  constructor(scope: Construct, id: string, props: TetherStackProps) {
    super(scope, id, props);
    const { settings } = props;
    this.#zones = settings.maxAzs;
    const logRetention = retentionDays(settings.logRetentionDays);

    this.network = new Network(this, "Network", {
      existing: settings.existingVpc,
      cidr: settings.vpcCidr,
      zones: settings.maxAzs,
      production: settings.production,
      logRetention,
    });
    const vpc = this.network.vpc;
    this.tables = new Tables(this, "Tables", { production: settings.production });
    this.kafka = new Kafka(this, "Kafka", {
      vpc,
      envName: settings.envName,
      mode: settings.kafka,
      namePrefix: settings.namePrefix,
      production: settings.production,
      logRetention,
    });

    const cluster = new ecs.Cluster(this, "Cluster", {
      vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });

    // Load balancer access logs. ELB writes with SSE-S3 only, so no KMS key here.
    const accessLogs = new s3.Bucket(this, "AccessLogs", {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(settings.production ? 365 : 30) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledge(
      accessLogs,
      "AwsSolutions-S1",
      "This bucket receives the load balancers' access logs; logging access to the log bucket itself would only log the log writes.",
    );

    const commonEnvironment: Record<string, string> = {
      TETHER_ENV: "production",
      TETHER_LOG_LEVEL: "info",
      AWS_REGION: Aws.REGION,
      ...this.kafka.environment(),
      TETHER_REGISTRY: "dynamodb",
      TETHER_CONNECTIONS_TABLE: this.tables.connections.tableName,
      TETHER_EDGES_TABLE: this.tables.edges.tableName,
      TETHER_OUTBOX_TABLE: this.tables.outbox.tableName,
      // Partition counts: every process that runs ensureTopics grows the topics to these.
      TETHER_MAX_EDGES: String(settings.maxEdges),
      TETHER_WORK_PARTITIONS: String(settings.workPartitions),
    };
    const commonSecrets = this.kafka.secrets();

    // Every task's collector writes embedded-metric-format records here; CloudWatch turns them
    // into the `Tether` namespace's metrics. The records themselves are only kept briefly.
    const metricsLogs = new logs.LogGroup(this, "MetricsLogs", {
      retention: logs.RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const runtime: TaskRuntime = {
      cpuArchitecture: settings.cpuArchitecture,
      collector: {
        image: props.collectorImage ?? ecs.ContainerImage.fromRegistry(DEFAULT_COLLECTOR_IMAGE),
        logGroup: metricsLogs,
        envName: settings.envName,
      },
    };

    this.edge = new EdgeService(this, "Edge", {
      vpc,
      cluster,
      image: props.image,
      runtime,
      kafka: this.kafka,
      tables: this.tables,
      commonEnvironment,
      commonSecrets,
      authMode: settings.authMode,
      jwksUrl: settings.jwksUrl,
      drainMs: settings.drainMs,
      certificateArn: settings.certificateArn,
      plainTcp: settings.devicePlainTcp,
      proxyProtocol: settings.proxyProtocol,
      deviceCidrs: settings.deviceCidrs,
      desiredCount: settings.edge.desired,
      minCount: settings.edge.min,
      maxCount: settings.edge.max,
      connectionsPerTask: settings.connectionsPerEdge,
      production: settings.production,
      logRetention,
      accessLogs,
    });
    this.worker = new WorkerService(this, "Worker", {
      vpc,
      cluster,
      image: props.image,
      runtime,
      kafka: this.kafka,
      tables: this.tables,
      commonEnvironment,
      commonSecrets,
      desiredCount: settings.worker.desired,
      minCount: settings.worker.min,
      maxCount: settings.worker.max,
      lagPerTask: settings.lagPerWorker,
      production: settings.production,
      logRetention,
    });
    this.admin = new AdminService(this, "Admin", {
      vpc,
      allowedCidr: this.network.vpcCidr,
      cluster,
      image: props.image,
      runtime,
      kafka: this.kafka,
      tables: this.tables,
      commonEnvironment,
      commonSecrets,
      certificateArn: settings.adminCertificateArn,
      desiredCount: settings.admin.desired,
      production: settings.production,
      logRetention,
      accessLogs,
    });
    this.alarms = new Alarms(this, "Alarms", {
      envName: settings.envName,
      production: settings.production,
      cluster,
      edge: this.edge,
      admin: this.admin,
      services: { Edge: this.edge.service, Worker: this.worker.service, Admin: this.admin.service },
      kafka: this.kafka,
      tables: this.tables,
      lagThreshold: settings.lagAlarmThreshold,
      email: settings.alarmEmail,
    });

    this.dashboard = new Dashboard(this, "Dashboard", {
      envName: settings.envName,
      edge: this.edge,
      admin: this.admin,
      kafka: this.kafka,
      alarms: this.alarms.alarms,
    });

    const nlbDns = this.edge.loadBalancer.loadBalancerDnsName;
    new CfnOutput(this, "NlbDnsName", { value: nlbDns, description: "Device endpoint host name" });
    if (settings.devicePlainTcp) {
      new CfnOutput(this, "DeviceEndpoint", { value: `${nlbDns}:${DEVICE_PORT}`, description: "Devices, plain TCP" });
    }
    if (settings.certificateArn !== undefined) {
      new CfnOutput(this, "DeviceTlsEndpoint", {
        value: `${nlbDns}:${DEVICE_TLS_PORT}`,
        description: "Devices, TLS (point a DNS name of the certificate at the NLB)",
      });
    }
    new CfnOutput(this, "AdminUrl", {
      value: this.admin.url,
      description: "Admin API (internal: reachable from the VPC)",
    });
    new CfnOutput(this, "AdminTokenSecretArn", {
      value: this.admin.token.secretArn,
      description: "Secrets Manager secret holding the admin API bearer token",
    });
    if (this.edge.authSecret !== undefined) {
      new CfnOutput(this, "DeviceAuthSecretArn", {
        value: this.edge.authSecret.secretArn,
        description: "Secrets Manager secret devices' tokens are signed with",
      });
    }
    new CfnOutput(this, "AlarmTopicArn", { value: this.alarms.topic.topicArn });
    new CfnOutput(this, "DashboardName", {
      value: this.dashboard.dashboard.dashboardName,
      description: "CloudWatch dashboard of this environment",
    });
    if (this.kafka.cluster !== undefined) {
      new CfnOutput(this, "KafkaClusterArn", { value: this.kafka.cluster.attrArn });
    }
    new CfnOutput(this, "KafkaBootstrapServers", { value: this.kafka.bootstrapServers });
  }

  /**
   * The region's first `maxAzs` zones, resolved at deploy time. With the account unresolved CDK
   * offers only two (`Fn::GetAZs` picks 0 and 1) and a look-up would need credentials at synth,
   * so the stack names as many as it was asked for.
   */
  override get availabilityZones(): string[] {
    return Array.from({ length: this.#zones }, (_, index) => Fn.select(index, Fn.getAzs()));
  }
}

/** CloudWatch Logs accepts only these retention periods (days). */
const RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

function retentionDays(days: number): logs.RetentionDays {
  if (!RETENTION_DAYS.includes(days)) {
    throw new Error(`logRetentionDays must be one of ${RETENTION_DAYS.join(", ")}; got ${days}`);
  }
  return days as logs.RetentionDays;
}
