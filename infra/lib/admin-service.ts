import { Duration } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as s3 from "aws-cdk-lib/aws-s3";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import type { Kafka } from "./kafka.ts";
import { acknowledge } from "./nag.ts";
import { privateService, tasksSecurityGroup } from "./service-parts.ts";
import { ServiceTask, type TaskRuntime } from "./service-task.ts";
import { acknowledgeConnectionsIndex, type Tables } from "./tables.ts";

export const ADMIN_PORT = 8080;

export interface AdminServiceProps {
  readonly vpc: ec2.IVpc;
  /** Who may reach the internal load balancer (the VPC's range by default). */
  readonly allowedCidr: string;
  readonly cluster: ecs.ICluster;
  readonly image: ecs.ContainerImage;
  readonly runtime: TaskRuntime;
  readonly kafka: Kafka;
  readonly tables: Tables;
  readonly commonEnvironment: Record<string, string>;
  readonly commonSecrets: Record<string, ecs.Secret>;
  readonly certificateArn: string | undefined;
  readonly desiredCount: number;
  readonly production: boolean;
  readonly logRetention: logs.RetentionDays;
  readonly accessLogs: s3.IBucket;
}

/** The operators' API behind an internal ALB, with its bearer token from Secrets Manager. */
export class AdminService extends Construct {
  readonly service: ecs.FargateService;
  readonly task: ServiceTask;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly token: secretsmanager.Secret;
  readonly url: string;

  constructor(scope: Construct, id: string, props: AdminServiceProps) {
    super(scope, id);
    this.token = new secretsmanager.Secret(this, "Token", {
      description: "Tether admin API bearer token (TETHER_ADMIN_TOKEN)",
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
    });
    acknowledge(
      this.token,
      "AwsSolutions-SMG4",
      "Operators and their tools hold this bearer token, and ECS reads it only at task start; it is rotated deliberately (new value, redeploy, hand it out), not by a scheduled rotation Lambda.",
    );

    this.task = new ServiceTask(this, "Task", {
      name: "admin",
      image: props.image,
      runtime: props.runtime,
      cpu: 256,
      // 512 MiB for the API and up to 256 MiB for the metrics collector beside it.
      memoryLimitMiB: 1024,
      environment: {
        ...props.commonEnvironment,
        TETHER_ADMIN_PORT: String(ADMIN_PORT),
        // Behind the ALB every request comes from the balancer: the client is the address it adds
        // to X-Forwarded-For, which the per-address limit on failed logins must count by.
        TETHER_ADMIN_TRUSTED_PROXY_HOPS: "1",
      },
      secrets: { ...props.commonSecrets, TETHER_ADMIN_TOKEN: ecs.Secret.fromSecretsManager(this.token) },
      ports: [ADMIN_PORT],
      healthPort: ADMIN_PORT,
      stopTimeout: Duration.seconds(15),
      logRetention: props.logRetention,
      production: props.production,
    });

    const role = this.task.taskDefinition.taskRole;
    // Fleet and device views; pushes and kicks go through Kafka, not the tables.
    props.tables.connections.grantReadData(role);
    props.tables.edges.grantReadData(role);
    acknowledgeConnectionsIndex(role, props.tables);
    const names = props.kafka.names;
    props.kafka.grant(role, {
      // Pushes to `downlink`; kicks straight to the owning edge's `replies` slot.
      produce: [names.downlinkTopic, names.repliesTopic],
      consume: [],
      groups: [],
      createTopics: false,
    });

    const lbSecurityGroup = new ec2.SecurityGroup(this, "LoadBalancerSecurityGroup", {
      vpc: props.vpc,
      description: "Tether admin API load balancer (internal)",
      allowAllOutbound: false,
    });
    const listenerPort = props.certificateArn === undefined ? 80 : 443;
    lbSecurityGroup.addIngressRule(
      ec2.Peer.ipv4(props.allowedCidr),
      ec2.Port.tcp(listenerPort),
      "operators in the VPC",
    );
    const securityGroup = tasksSecurityGroup(this, {
      vpc: props.vpc,
      kafka: props.kafka,
      description: "Tether admin API tasks",
      kafkaPeer: "admin tasks",
    });
    securityGroup.connections.allowFrom(lbSecurityGroup, ec2.Port.tcp(ADMIN_PORT), "admin API from its load balancer");

    this.service = privateService(this, {
      cluster: props.cluster,
      task: this.task,
      desiredCount: props.desiredCount,
      securityGroup,
      healthCheckGracePeriod: Duration.seconds(30),
    });

    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, "LoadBalancer", {
      vpc: props.vpc,
      internetFacing: false,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroup: lbSecurityGroup,
      deletionProtection: props.production,
      dropInvalidHeaderFields: true,
    });
    this.loadBalancer.logAccessLogs(props.accessLogs, "admin-alb");
    const listener = this.loadBalancer.addListener("Listener", {
      port: listenerPort,
      open: false,
      ...(props.certificateArn === undefined
        ? { protocol: elbv2.ApplicationProtocol.HTTP }
        : {
            protocol: elbv2.ApplicationProtocol.HTTPS,
            certificates: [elbv2.ListenerCertificate.fromArn(props.certificateArn)],
            sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
          }),
    });
    listener.addTargets("Admin", {
      port: ADMIN_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [this.service.loadBalancerTarget({ containerName: "admin", containerPort: ADMIN_PORT })],
      deregistrationDelay: Duration.seconds(10),
      healthCheck: { path: "/healthz", interval: Duration.seconds(15), healthyThresholdCount: 2 },
    });
    const scheme = props.certificateArn === undefined ? "http" : "https";
    this.url = `${scheme}://${this.loadBalancer.loadBalancerDnsName}`;
  }
}
