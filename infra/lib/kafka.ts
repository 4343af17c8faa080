import { ArnFormat, Duration, Fn, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import * as msk from "aws-cdk-lib/aws-msk";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import * as cr from "aws-cdk-lib/custom-resources";
import { Construct } from "constructs";
import { type ResourceNames, resourceNames } from "../../shared/config/index.ts";
import { acknowledge } from "./nag.ts";
import type { KafkaMode } from "./settings.ts";

/** Construct id of the singleton function behind every AwsCustomResource in a stack. */
const AWS_CUSTOM_RESOURCE_HANDLER_ID = "AWS679f53fac002430cb0da5b7982bd2287";

/** MSK's port for SASL/IAM clients. */
const MSK_IAM_PORT = 9098;

export interface KafkaProps {
  readonly vpc: ec2.IVpc;
  readonly envName: string;
  readonly mode: KafkaMode;
  /** TETHER_NAME_PREFIX: prefixes topic names (and the consumer groups granted below). */
  readonly namePrefix: string;
  readonly production: boolean;
  readonly logRetention: logs.RetentionDays;
}

/** What one service does with Kafka; becomes its IAM statements on MSK. */
export interface KafkaAccess {
  /** Topic names the service writes to. */
  readonly produce: readonly string[];
  /** Topic names the service reads from. */
  readonly consume: readonly string[];
  /** Consumer group ids it commits under; a trailing `*` matches a family (`edge-slot-*`). */
  readonly groups: readonly string[];
  /**
   * Whether the service runs `ensureTopics` at start, creating and growing topics (edge and
   * worker do; admin only in development).
   */
  readonly createTopics: boolean;
}

/**
 * The broker: an MSK Serverless cluster with IAM authentication, or an external cluster
 * (Confluent Cloud, another MSK) reached with SASL/PLAIN over TLS.
 *
 * Topics are not created here: MSK Serverless has no CloudFormation topic resource, and the
 * edge and the worker run the idempotent `ensureTopics(tetherTopics(...))` when they start,
 * which keeps the partition counts in one place (shared/broker/topics.ts), and grows topics
 * when TETHER_MAX_EDGES or TETHER_WORK_PARTITIONS was raised. Those two roles may therefore
 * create and alter the six Tether topics (and no others); every role may describe them.
 */
export class Kafka extends Construct {
  readonly mode: KafkaMode["mode"];
  /** Topic and consumer group names, with the prefix. */
  readonly names: ResourceNames;
  /** TETHER_KAFKA_BROKERS; a deploy-time token for MSK. */
  readonly bootstrapServers: string;
  /** MSK only. */
  readonly cluster: msk.CfnServerlessCluster | undefined;
  readonly clusterName: string | undefined;

  readonly #securityGroup: ec2.SecurityGroup | undefined;
  readonly #saslSecret: secretsmanager.ISecret | undefined;
  readonly #prefix: string;

  constructor(scope: Construct, id: string, props: KafkaProps) {
    super(scope, id);
    this.mode = props.mode.mode;
    this.#prefix = props.namePrefix;
    this.names = resourceNames(props.namePrefix);

    if (props.mode.mode === "external") {
      this.bootstrapServers = props.mode.bootstrapServers;
      this.#saslSecret = secretsmanager.Secret.fromSecretCompleteArn(this, "SaslSecret", props.mode.saslSecretArn);
      this.cluster = undefined;
      this.clusterName = undefined;
      this.#securityGroup = undefined;
      return;
    }

    this.#saslSecret = undefined;
    this.clusterName = `tether-${props.envName}`;
    this.#securityGroup = new ec2.SecurityGroup(this, "SecurityGroup", {
      vpc: props.vpc,
      description: "MSK Serverless: IAM-authenticated Kafka clients of the Tether services only",
      allowAllOutbound: false,
    });
    this.cluster = new msk.CfnServerlessCluster(this, "Cluster", {
      clusterName: this.clusterName,
      clientAuthentication: { sasl: { iam: { enabled: true } } },
      vpcConfigs: [
        {
          subnetIds: props.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds,
          securityGroups: [this.#securityGroup.securityGroupId],
        },
      ],
    });
    this.cluster.applyRemovalPolicy(props.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY);

    // Serverless clusters expose their bootstrap string only through the API; read it at deploy
    // time (no look-up at synth).
    const bootstrap = new cr.AwsCustomResource(this, "BootstrapBrokers", {
      onUpdate: {
        service: "Kafka",
        action: "GetBootstrapBrokers",
        parameters: { ClusterArn: this.cluster.attrArn },
        physicalResourceId: cr.PhysicalResourceId.of(this.cluster.attrArn),
        outputPaths: ["BootstrapBrokerStringSaslIam"],
      },
      policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: [this.cluster.attrArn] }),
      installLatestAwsSdk: false,
      logGroup: new logs.LogGroup(this, "BootstrapBrokersLogs", {
        retention: props.logRetention,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
      timeout: Duration.minutes(2),
    });
    this.bootstrapServers = bootstrap.getResponseField("BootstrapBrokerStringSaslIam");
    // The custom resource's handler is one CDK-provided function per stack, created at the root.
    const handler = Stack.of(this).node.tryFindChild(AWS_CUSTOM_RESOURCE_HANDLER_ID);
    if (handler !== undefined) {
      acknowledge(
        handler,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK's AwsCustomResource handler (reads the MSK bootstrap brokers at deploy time) uses the AWS-managed basic execution policy, which only lets it write its own CloudWatch logs.",
      );
    }
  }

  /** Lets `peer` reach the brokers (MSK; an external cluster is reached through the NAT). */
  allowFrom(peer: ec2.IConnectable, description: string): void {
    this.#securityGroup?.connections.allowFrom(peer, ec2.Port.tcp(MSK_IAM_PORT), description);
  }

  /** The Kafka part of a service's environment. */
  environment(): Record<string, string> {
    return {
      TETHER_BROKER: "kafka",
      TETHER_KAFKA_BROKERS: this.bootstrapServers,
      TETHER_KAFKA_AUTH: this.mode === "external" ? "plain" : "aws-iam",
      TETHER_KAFKA_SSL: "true",
      TETHER_NAME_PREFIX: this.#prefix,
    };
  }

  /** Secrets injected by ECS (SASL/PLAIN credentials of an external cluster). */
  secrets(): Record<string, ecs.Secret> {
    if (this.#saslSecret === undefined) return {};
    return {
      TETHER_KAFKA_USERNAME: ecs.Secret.fromSecretsManager(this.#saslSecret, "username"),
      TETHER_KAFKA_PASSWORD: ecs.Secret.fromSecretsManager(this.#saslSecret, "password"),
    };
  }

  /**
   * Grants `role` exactly what `access` needs on MSK: connect; describe the Tether topics, and
   * create them if the service runs `ensureTopics`; write to its produce topics (idempotently: the producers run with
   * enable.idempotence); read its consume topics; join and commit in its groups.
   * An external cluster authorises with its own ACLs; nothing is granted in IAM.
   */
  grant(role: iam.IRole, access: KafkaAccess): void {
    if (this.cluster === undefined) return;
    const clusterActions = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"];
    if (access.produce.length > 0) clusterActions.push("kafka-cluster:WriteDataIdempotently");
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: "KafkaCluster", actions: clusterActions, resources: [this.cluster.attrArn] }),
    );
    const all = [
      this.names.requestsTopic,
      this.names.repliesTopic,
      this.names.downlinkTopic,
      this.names.eventsTopic,
      this.names.edgesTopic,
      this.names.dlqTopic,
    ];
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "KafkaTopics",
        // AlterTopic: ensureTopics adds partitions when maxEdges or workPartitions grew.
        actions: access.createTopics
          ? ["kafka-cluster:CreateTopic", "kafka-cluster:AlterTopic", "kafka-cluster:DescribeTopic"]
          : ["kafka-cluster:DescribeTopic"],
        resources: all.map((topic) => this.topicArn(topic)),
      }),
    );
    if (access.produce.length > 0) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: "KafkaProduce",
          actions: ["kafka-cluster:WriteData"],
          resources: access.produce.map((topic) => this.topicArn(topic)),
        }),
      );
    }
    if (access.consume.length > 0) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: "KafkaConsume",
          actions: ["kafka-cluster:ReadData"],
          resources: access.consume.map((topic) => this.topicArn(topic)),
        }),
      );
    }
    if (access.groups.length > 0) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: "KafkaGroups",
          actions: ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
          resources: access.groups.map((group) => this.groupArn(group)),
        }),
      );
    }
  }

  /** arn:...:topic/<cluster name>/<cluster uuid>/<topic> */
  topicArn(topic: string): string {
    return this.#childArn("topic", topic);
  }

  /** arn:...:group/<cluster name>/<cluster uuid>/<group> */
  groupArn(group: string): string {
    return this.#childArn("group", group);
  }

  #childArn(kind: "topic" | "group", name: string): string {
    if (this.cluster === undefined || this.clusterName === undefined) {
      throw new Error("Kafka ARNs exist only for the MSK cluster");
    }
    // The cluster ARN ends in cluster/<name>/<uuid>; topics and groups live under the same pair.
    const uuid = Fn.select(2, Fn.split("/", this.cluster.attrArn));
    return Stack.of(this).formatArn({
      service: "kafka",
      resource: kind,
      resourceName: `${this.clusterName}/${uuid}/${name}`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  }

  /** MSK's consumer lag for one group and topic (messages, summed over partitions). */
  consumerLag(groupId: string, topic: string): cloudwatch.Metric | undefined {
    if (this.clusterName === undefined) return undefined;
    return new cloudwatch.Metric({
      namespace: "AWS/Kafka",
      metricName: "SumOffsetLag",
      dimensionsMap: { "Cluster Name": this.clusterName, "Consumer Group": groupId, Topic: topic },
      statistic: "Maximum",
      period: Duration.minutes(1),
    });
  }

  /** Messages written to a topic per second, from MSK's topic metrics. */
  messagesIn(topic: string): cloudwatch.Metric | undefined {
    if (this.clusterName === undefined) return undefined;
    return new cloudwatch.Metric({
      namespace: "AWS/Kafka",
      metricName: "MessagesInPerSec",
      dimensionsMap: { "Cluster Name": this.clusterName, Topic: topic },
      statistic: "Sum",
      period: Duration.minutes(5),
    });
  }
}
