import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as s3 from "aws-cdk-lib/aws-s3";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import type { Kafka } from "./kafka.ts";
import { acknowledge, acknowledgeWildcardResource } from "./nag.ts";
import { metricQuery, privateService, scaleOnCpu, tasksSecurityGroup, trackExpression } from "./service-parts.ts";
import { ServiceTask, type TaskRuntime } from "./service-task.ts";
import { type AuthMode, drainTimings } from "./settings.ts";
import { acknowledgeConnectionsIndex, type Tables } from "./tables.ts";

export const DEVICE_PORT = 3000;
export const DEVICE_TLS_PORT = 443;
export const EDGE_HTTP_PORT = 9090;
/** The edge's MQTT port (3.1.1 and 5.0) and the NLB's MQTT over TLS listener. */
export const MQTT_PORT = 1883;
export const MQTT_TLS_PORT = 8883;
/** The edge's WebSocket port (NDJSON, or MQTT with subprotocol mqtt) and the NLB's TLS listener for it. */
export const WS_PORT = 8083;
export const WS_TLS_PORT = 8443;

export interface EdgeServiceProps {
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.ICluster;
  readonly image: ecs.ContainerImage;
  readonly runtime: TaskRuntime;
  readonly kafka: Kafka;
  readonly tables: Tables;
  /** Environment every service shares (registry, tables, Kafka). */
  readonly commonEnvironment: Record<string, string>;
  readonly commonSecrets: Record<string, ecs.Secret>;
  readonly authMode: AuthMode;
  readonly jwksUrl: string | undefined;
  readonly drainMs: number;
  /** TLS listener on 443 with this ACM certificate; TLS ends at the NLB. */
  readonly certificateArn: string | undefined;
  /** Plain TCP listener on 3000, and the public rule for it. */
  readonly plainTcp: boolean;
  /** PROXY protocol v2 on the target group, and TETHER_PROXY_PROTOCOL=v2 for the edge. */
  readonly proxyProtocol: boolean;
  readonly deviceCidrs: readonly string[];
  readonly desiredCount: number;
  readonly minCount: number;
  readonly maxCount: number;
  readonly connectionsPerTask: number;
  readonly production: boolean;
  readonly logRetention: logs.RetentionDays;
  readonly accessLogs: s3.IBucket;
}

/**
 * The edge fleet: Fargate tasks holding device sockets behind an internet-facing NLB.
 *
 * Drain: ECS deregisters a stopping task, waits the deregistration delay, then sends SIGTERM,
 * and the edge sends `bye draining` and spreads reconnects over TETHER_DRAIN_MS. The NLB must
 * not cut those connections first, so connection termination on deregistration and on
 * unhealthy targets is off, and the health check needs longer than the drain to mark a
 * draining task unhealthy. `stopTimeout` covers the drain plus the final flush.
 *
 * Client address: the targets are IPs, so without PROXY protocol the edge would see the NLB's
 * private address on every device socket and a per-address limit would count the whole fleet
 * as one client. With it, the NLB writes a v2 header ahead of each connection's first byte.
 * The NLB also writes one (a LOCAL header, no addresses) at the start of its health checks,
 * the HTTP ones on 9090 included, so with TETHER_PROXY_PROTOCOL=v2 the edge has to accept a
 * header on its HTTP port as well: required on device connections, optional on 9090, where
 * the container's own probe comes without one.
 */
export class EdgeService extends Construct {
  readonly service: ecs.FargateService;
  readonly task: ServiceTask;
  readonly loadBalancer: elbv2.NetworkLoadBalancer;
  readonly targetGroup: elbv2.NetworkTargetGroup;
  readonly authSecret: secretsmanager.Secret | undefined;
  readonly securityGroup: ec2.SecurityGroup;
  /** Device connections through the NLB (every listener). */
  readonly activeConnections: cloudwatch.Metric;
  /** Device connections per healthy edge task (NLB flows / healthy targets). */
  readonly connectionsPerTask: cloudwatch.MathExpression;

  constructor(scope: Construct, id: string, props: EdgeServiceProps) {
    super(scope, id);
    const timings = drainTimings(props.drainMs);

    // HMAC tokens, or HS256 JWTs when no JWKS URL is given, are checked against this secret;
    // device makers read it from Secrets Manager to sign their tokens.
    const needsSecret = props.authMode === "hmac" || props.jwksUrl === undefined;
    this.authSecret = needsSecret
      ? new secretsmanager.Secret(this, "AuthSecret", {
          description: "Tether edge: HMAC / HS256 secret for device tokens",
          generateSecretString: { passwordLength: 64, excludePunctuation: true },
        })
      : undefined;
    if (this.authSecret !== undefined) {
      acknowledge(
        this.authSecret,
        "AwsSolutions-SMG4",
        "Device makers sign tokens with this secret, so rotating it is a coordinated change (new tokens, then a redeploy, since ECS reads secrets at task start), not a scheduled Lambda rotation.",
      );
    }

    const environment: Record<string, string> = {
      ...props.commonEnvironment,
      TETHER_DEVICE_PORT: String(DEVICE_PORT),
      TETHER_MQTT_PORT: String(MQTT_PORT),
      TETHER_WS_PORT: String(WS_PORT),
      TETHER_EDGE_HTTP_PORT: String(EDGE_HTTP_PORT),
      TETHER_AUTH_MODE: props.authMode,
      TETHER_DRAIN_MS: String(props.drainMs),
      TETHER_PROXY_PROTOCOL: props.proxyProtocol ? "v2" : "off",
    };
    if (props.jwksUrl !== undefined) environment.TETHER_AUTH_JWKS_URL = props.jwksUrl;
    const secrets: Record<string, ecs.Secret> = { ...props.commonSecrets };
    if (this.authSecret !== undefined) secrets.TETHER_AUTH_SECRET = ecs.Secret.fromSecretsManager(this.authSecret);

    this.task = new ServiceTask(this, "Task", {
      name: "edge",
      image: props.image,
      runtime: props.runtime,
      cpu: 1024,
      memoryLimitMiB: 2048,
      environment,
      secrets,
      ports: [DEVICE_PORT, MQTT_PORT, WS_PORT, EDGE_HTTP_PORT],
      healthPort: EDGE_HTTP_PORT,
      stopTimeout: timings.stopTimeout,
      logRetention: props.logRetention,
      production: props.production,
      openFiles: 1_048_576,
    });

    // Registry: ownership records, slot leases, the outbox.
    props.tables.connections.grantReadWriteData(this.task.taskDefinition.taskRole);
    props.tables.edges.grantReadWriteData(this.task.taskDefinition.taskRole);
    props.tables.outbox.grantReadWriteData(this.task.taskDefinition.taskRole);
    // Requests and presence events out; replies in on its slot, and forwarded to another slot;
    // liveness beacons both ways.
    const names = props.kafka.names;
    // Each slot's consumer commits under `slotGroup(names, slot)`; the wildcard matches them all.
    const slotGroups = `${names.slotGroupPrefix}*`;
    props.kafka.grant(this.task.taskDefinition.taskRole, {
      produce: [names.requestsTopic, names.eventsTopic, names.repliesTopic, names.edgesTopic],
      consume: [names.repliesTopic, names.edgesTopic],
      groups: [slotGroups, names.beaconsGroup],
      createTopics: true,
    });
    if (props.kafka.cluster !== undefined) {
      acknowledgeWildcardResource(
        this.task.taskDefinition.taskRole,
        props.kafka.groupArn(slotGroups),
        "An edge commits its reply-slot offsets under the group of whichever slot it leases (edge-slot-0 to edge-slot-<maxEdges-1>); the wildcard covers only those groups of this cluster.",
      );
    }
    acknowledgeConnectionsIndex(this.task.taskDefinition.taskRole, props.tables);

    const lbSecurityGroup = new ec2.SecurityGroup(this, "LoadBalancerSecurityGroup", {
      vpc: props.vpc,
      description: "Tether device listeners (public)",
      allowAllOutbound: false,
    });
    if (props.deviceCidrs.includes("0.0.0.0/0") || props.deviceCidrs.includes("::/0")) {
      acknowledge(
        lbSecurityGroup,
        "AwsSolutions-EC23",
        "The device listeners are the product's public endpoint: devices connect from anywhere and authenticate in the protocol (hello token). Narrow with the deviceCidrs context when devices come from known networks.",
      );
    }
    for (const cidr of props.deviceCidrs) {
      const peer = cidr.includes(":") ? ec2.Peer.ipv6(cidr) : ec2.Peer.ipv4(cidr);
      if (props.plainTcp) {
        lbSecurityGroup.addIngressRule(peer, ec2.Port.tcp(DEVICE_PORT), "devices, TCP");
      }
      if (props.certificateArn !== undefined) {
        lbSecurityGroup.addIngressRule(peer, ec2.Port.tcp(DEVICE_TLS_PORT), "devices, TLS");
        lbSecurityGroup.addIngressRule(peer, ec2.Port.tcp(MQTT_TLS_PORT), "devices, MQTT over TLS");
        lbSecurityGroup.addIngressRule(peer, ec2.Port.tcp(WS_TLS_PORT), "devices, WebSocket over TLS");
      }
    }
    this.securityGroup = tasksSecurityGroup(this, {
      vpc: props.vpc,
      kafka: props.kafka,
      description: "Tether edge tasks",
      kafkaPeer: "edge tasks",
    });
    // Needed with TLS only too: the TLS listener hands the decrypted stream to this port.
    this.securityGroup.connections.allowFrom(lbSecurityGroup, ec2.Port.tcp(DEVICE_PORT), "device traffic from the NLB");
    this.securityGroup.connections.allowFrom(lbSecurityGroup, ec2.Port.tcp(EDGE_HTTP_PORT), "NLB health checks");
    if (props.certificateArn !== undefined) {
      this.securityGroup.connections.allowFrom(lbSecurityGroup, ec2.Port.tcp(MQTT_PORT), "MQTT traffic from the NLB");
      this.securityGroup.connections.allowFrom(
        lbSecurityGroup,
        ec2.Port.tcp(WS_PORT),
        "WebSocket traffic from the NLB",
      );
    }

    this.service = privateService(this, {
      cluster: props.cluster,
      task: this.task,
      desiredCount: props.desiredCount,
      securityGroup: this.securityGroup,
      healthCheckGracePeriod: Duration.seconds(60),
    });

    this.loadBalancer = new elbv2.NetworkLoadBalancer(this, "LoadBalancer", {
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroups: [lbSecurityGroup],
      crossZoneEnabled: true,
      deletionProtection: props.production,
    });
    this.loadBalancer.logAccessLogs(props.accessLogs, "edge-nlb");

    this.targetGroup = this.#deviceTargets("Targets", DEVICE_PORT, props, timings.deregistrationDelay);

    if (props.plainTcp) {
      this.loadBalancer.addListener("Tcp", {
        port: DEVICE_PORT,
        protocol: elbv2.Protocol.TCP,
        defaultTargetGroups: [this.targetGroup],
      });
    }
    if (props.certificateArn !== undefined) {
      // MQTT and WebSocket devices: TLS ends at the NLB as for NDJSON devices, each port with a
      // target group of its own (same readiness check, drain and PROXY header settings).
      for (const [name, listenerPort, containerPort] of [
        ["Mqtt", MQTT_TLS_PORT, MQTT_PORT],
        ["WebSocket", WS_TLS_PORT, WS_PORT],
      ] as const) {
        const targets = this.#deviceTargets(`${name}Targets`, containerPort, props, timings.deregistrationDelay);
        this.loadBalancer.addListener(`${name}Tls`, {
          port: listenerPort,
          protocol: elbv2.Protocol.TLS,
          certificates: [elbv2.ListenerCertificate.fromArn(props.certificateArn)],
          sslPolicy: elbv2.SslPolicy.TLS13_12_RES_PQ,
          defaultTargetGroups: [targets],
        });
      }
      // TLS ends at the NLB; the edge sees plain TCP on the device port. The policy is AWS's
      // current recommendation: TLS 1.3 (hybrid post-quantum key exchange for clients that
      // offer it) and TLS 1.2 restricted to ECDHE with AES-GCM, so no CBC or RSA key exchange.
      this.loadBalancer.addListener("Tls", {
        port: DEVICE_TLS_PORT,
        protocol: elbv2.Protocol.TLS,
        certificates: [elbv2.ListenerCertificate.fromArn(props.certificateArn)],
        sslPolicy: elbv2.SslPolicy.TLS13_12_RES_PQ,
        defaultTargetGroups: [this.targetGroup],
      });
    }

    // Connections per task: the NLB's active flows over its healthy targets. Both metrics come
    // from the NLB itself, so scaling works before and whatever the edge's own metrics do.
    const flows = new cloudwatch.Metric({
      namespace: "AWS/NetworkELB",
      metricName: "ActiveFlowCount",
      dimensionsMap: { LoadBalancer: this.loadBalancer.loadBalancerFullName },
      statistic: "Average",
      period: Duration.minutes(1),
    });
    const healthy = new cloudwatch.Metric({
      namespace: "AWS/NetworkELB",
      metricName: "HealthyHostCount",
      dimensionsMap: {
        LoadBalancer: this.loadBalancer.loadBalancerFullName,
        TargetGroup: this.targetGroup.targetGroupFullName,
      },
      statistic: "Minimum",
      period: Duration.minutes(1),
    });
    this.activeConnections = flows;
    this.connectionsPerTask = new cloudwatch.MathExpression({
      expression: "flows / IF(healthy > 0, healthy, 1)",
      usingMetrics: { flows, healthy },
      label: "Device connections per edge task",
      period: Duration.minutes(1),
    });

    // Scaling in disconnects devices (they reconnect elsewhere), so it waits longer than scaling out.
    const scaling = scaleOnCpu(this.service, {
      minCount: props.minCount,
      maxCount: props.maxCount,
      scaleInCooldown: Duration.minutes(10),
    });
    trackExpression(this, "ConnectionsScaling", scaling, {
      policyName: "connections-per-task",
      targetValue: props.connectionsPerTask,
      scaleOutCooldownSeconds: 60,
      scaleInCooldownSeconds: 600,
      metrics: [
        metricQuery("flows", {
          namespace: "AWS/NetworkELB",
          metricName: "ActiveFlowCount",
          dimensions: { LoadBalancer: this.loadBalancer.loadBalancerFullName },
          stat: "Average",
        }),
        metricQuery("healthy", {
          namespace: "AWS/NetworkELB",
          metricName: "HealthyHostCount",
          dimensions: {
            LoadBalancer: this.loadBalancer.loadBalancerFullName,
            TargetGroup: this.targetGroup.targetGroupFullName,
          },
          stat: "Minimum",
        }),
        {
          id: "perTask",
          expression: "flows / IF(healthy > 0, healthy, 1)",
          label: "Device connections per edge task",
          returnData: true,
        },
      ],
    });
  }
  /**
   * Device targets on `containerPort`: the readiness check, drain and PROXY header settings every
   * device listener shares.
   */
  #deviceTargets(
    id: string,
    containerPort: number,
    props: EdgeServiceProps,
    deregistrationDelay: Duration,
  ): elbv2.NetworkTargetGroup {
    const targets = new elbv2.NetworkTargetGroup(this, id, {
      vpc: props.vpc,
      port: containerPort,
      protocol: elbv2.Protocol.TCP,
      targetType: elbv2.TargetType.IP,
      deregistrationDelay,
      connectionTermination: false,
      proxyProtocolV2: props.proxyProtocol,
      healthCheck: {
        protocol: elbv2.Protocol.HTTP,
        port: String(EDGE_HTTP_PORT),
        path: "/readyz",
        interval: Duration.seconds(10),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        // 3 x 10 s > the default 20 s drain: a draining edge is not declared unhealthy mid-drain.
        unhealthyThresholdCount: 3,
      },
    });
    // Do not reset the devices of a target that turns unhealthy; the edge closes them itself.
    targets.setAttribute("target_health_state.unhealthy.connection_termination.enabled", "false");
    targets.addTarget(this.service.loadBalancerTarget({ containerName: "edge", containerPort }));
    return targets;
  }
}
