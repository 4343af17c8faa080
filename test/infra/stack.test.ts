import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { App, Stack, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as iam from "aws-cdk-lib/aws-iam";
import * as cxapi from "aws-cdk-lib/cx-api";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { createApp } from "../../infra/lib/app.ts";
import { DEFAULT_COLLECTOR_IMAGE } from "../../infra/lib/collector.ts";
import { InvalidContextError, settingsFromContext } from "../../infra/lib/settings.ts";
import type { TetherStack } from "../../infra/lib/tether-stack.ts";

/** cdk.json's context (the feature flags), as `cdk synth` gives it to the app. */
const cdkJsonContext = (
  JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as { context: Json }
).context;
const baseContext = { ...cdkJsonContext, env: "test", image: "public.ecr.aws/tether/test:1", region: "eu-west-1" };

interface Built {
  readonly stack: TetherStack;
  readonly template: Template;
}

/** Builds once per context; every test of a configuration reads the same template. */
const cache = new Map<string, Built>();
function build(context: Record<string, unknown> = {}): Built {
  const key = JSON.stringify(context);
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  const { stack } = createApp({ context: { ...baseContext, ...context }, builtinValidation: false });
  const built = { stack, template: Template.fromStack(stack) };
  cache.set(key, built);
  return built;
}

const external = {
  kafkaMode: "external",
  bootstrapServers: "pkc-123.eu-west-1.aws.confluent.cloud:9092",
  kafkaSecretArn: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tether/kafka-AbCdEf",
};

type Json = Record<string, unknown>;

/** Renders a CloudFormation value to a readable string: tokens become <Ref>, <Res.Attr>, <select>. */
function render(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  if (Array.isArray(value)) return value.map(render).join(",");
  const object = value as Json;
  if ("Ref" in object) return `<${String(object.Ref)}>`;
  if ("Fn::GetAtt" in object) return `<${(object["Fn::GetAtt"] as string[]).join(".")}>`;
  if ("Fn::Join" in object) {
    const [separator, parts] = object["Fn::Join"] as [string, unknown[]];
    return parts.map(render).join(separator);
  }
  if ("Fn::Select" in object) return "<select>";
  return JSON.stringify(value);
}

function logicalId(stack: Stack, construct: IConstruct): string {
  const resource = construct.node.defaultChild ?? construct;
  return stack.getLogicalId(resource as never);
}

function containerOf(built: Built, name: "edge" | "worker" | "admin"): Json {
  const definitions = built.template.findResources("AWS::ECS::TaskDefinition");
  for (const definition of Object.values(definitions)) {
    const containers = (definition.Properties as Json).ContainerDefinitions as Json[];
    const container = containers.find((c) => c.Name === name);
    if (container !== undefined) return container;
  }
  throw new Error(`no container ${name}`);
}

function environmentOf(built: Built, name: "edge" | "worker" | "admin"): Record<string, string> {
  const entries = (containerOf(built, name).Environment as { Name: string; Value: unknown }[]) ?? [];
  return Object.fromEntries(entries.map((entry) => [entry.Name, render(entry.Value)]));
}

function secretsOf(built: Built, name: "edge" | "worker" | "admin"): Record<string, string> {
  const entries = (containerOf(built, name).Secrets as { Name: string; ValueFrom: unknown }[]) ?? [];
  return Object.fromEntries(entries.map((entry) => [entry.Name, render(entry.ValueFrom)]));
}

interface Statement {
  readonly sid: string | undefined;
  readonly actions: string[];
  readonly resources: string[];
}

function statementsOf(built: Built, role: iam.IRole): Statement[] {
  const policy = role.node.tryFindChild("DefaultPolicy");
  assert.ok(policy, "the role has a policy");
  const resource = built.template.toJSON().Resources[logicalId(built.stack, policy)] as Json;
  const document = (resource.Properties as Json).PolicyDocument as { Statement: Json[] };
  return document.Statement.map((statement) => ({
    sid: statement.Sid as string | undefined,
    actions: [statement.Action].flat() as string[],
    resources: [statement.Resource].flat().map(render),
  }));
}

function kafkaResources(statements: Statement[], action: string): string[] {
  return statements
    .filter((statement) => statement.actions.includes(action))
    .flatMap((statement) => statement.resources)
    .map((arn) => arn.replace(/^.*:(topic|group|cluster)\//, "$1/"))
    .sort();
}

function dynamoActionsOn(statements: Statement[], table: string): string[] {
  return statements
    .filter((statement) => statement.resources.some((resource) => resource === `<${table}.Arn>`))
    .flatMap((statement) => statement.actions)
    .sort();
}

const roles = (stack: TetherStack) => ({
  edge: stack.edge.task.taskDefinition.taskRole,
  worker: stack.worker.task.taskDefinition.taskRole,
  admin: stack.admin.task.taskDefinition.taskRole,
});

/** The device listeners of the NLB: port to protocol. */
function deviceListeners(built: Built): Record<number, string> {
  const listeners = Object.values(built.template.findResources("AWS::ElasticLoadBalancingV2::Listener"))
    .map((listener) => listener.Properties as Json)
    .filter((properties) => properties.Protocol === "TCP" || properties.Protocol === "TLS");
  return Object.fromEntries(listeners.map((properties) => [Number(properties.Port), String(properties.Protocol)]));
}

/** Ports that device networks may reach: the public group's rules and any other rule from an address range. */
function publicPorts(built: Built): number[] {
  const groups = built.template.findResources("AWS::EC2::SecurityGroup", {
    Properties: { GroupDescription: "Tether device listeners (public)" },
  });
  const inline = Object.values(groups).flatMap(
    (group) => ((group.Properties as Json).SecurityGroupIngress as Json[] | undefined) ?? [],
  );
  const separate = Object.values(built.template.findResources("AWS::EC2::SecurityGroupIngress"))
    .map((rule) => rule.Properties as Json)
    .filter((rule) => rule.CidrIp !== undefined || rule.CidrIpv6 !== undefined);
  return [...new Set([...inline, ...separate].map((rule) => Number(rule.FromPort)))].sort((a, b) => a - b);
}

function edgeTargetGroupAttributes(built: Built): Record<string, string> {
  const group = built.template.toJSON().Resources[logicalId(built.stack, built.stack.edge.targetGroup)] as Json;
  const attributes = (group.Properties as Json).TargetGroupAttributes as { Key: string; Value: string }[];
  return Object.fromEntries(attributes.map((attribute) => [attribute.Key, attribute.Value]));
}

function alarmsOf(built: Built): Json[] {
  return Object.values(built.template.findResources("AWS::CloudWatch::Alarm")).map((a) => a.Properties as Json);
}

function alarmDescribed(built: Built, text: RegExp): Json {
  const alarm = alarmsOf(built).find((candidate) => text.test(String(candidate.AlarmDescription)));
  assert.ok(alarm, `an alarm described ${text}`);
  return alarm;
}

/** The CloudWatch metrics an alarm reads: its one metric, or those of its expression. */
function metricsOfAlarm(alarm: Json): Json[] {
  if (alarm.MetricName !== undefined) return [alarm];
  return ((alarm.Metrics as Json[] | undefined) ?? [])
    .filter((query) => query.MetricStat !== undefined)
    .map((query) => (query.MetricStat as Json).Metric as Json);
}

const deviceCertificateArn = "arn:aws:acm:eu-west-1:111122223333:certificate/abc";
const adminCertificateArn = "arn:aws:acm:eu-west-1:111122223333:certificate/def";
/** Production as it can be deployed: certificates for the device TLS listener and the admin ALB. */
const prodContext = { env: "prod", certificateArn: deviceCertificateArn, adminCertificateArn };

describe("device listeners and ports", () => {
  test("the NLB is internet-facing and listens for devices on TCP 3000, forwarding to the edge tasks' port 3000", () => {
    const { template, stack } = build();
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::LoadBalancer", {
      Type: "network",
      Scheme: "internet-facing",
    });
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
      Port: 3000,
      Protocol: "TCP",
      DefaultActions: [{ Type: "forward", TargetGroupArn: { Ref: logicalId(stack, stack.edge.targetGroup) } }],
    });
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      Port: 3000,
      Protocol: "TCP",
      TargetType: "ip",
    });
    template.hasResourceProperties("AWS::ECS::Service", {
      LoadBalancers: [{ ContainerName: "edge", ContainerPort: 3000 }],
    });
  });

  test("without a certificate there is no TLS listener", () => {
    const { template } = build();
    const tls = template.findResources("AWS::ElasticLoadBalancingV2::Listener", {
      Properties: { Protocol: "TLS" },
    });
    assert.deepEqual(Object.keys(tls), []);
  });

  test("a certificate adds a TLS listener on 443 that ends TLS with AWS's restricted TLS 1.2/1.3 policy and forwards to the same edge targets", () => {
    const { template, stack } = build({ certificateArn: deviceCertificateArn });
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
      Port: 443,
      Protocol: "TLS",
      Certificates: [{ CertificateArn: deviceCertificateArn }],
      SslPolicy: "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
      DefaultActions: [{ Type: "forward", TargetGroupArn: { Ref: logicalId(stack, stack.edge.targetGroup) } }],
    });
    template.hasOutput("DeviceTlsEndpoint", {});
  });

  test("a certificate adds MQTT over TLS on 8883 and WebSocket over TLS on 8443, each to its own edge port with the readiness check", () => {
    const { template, stack } = build({ certificateArn: deviceCertificateArn });
    for (const [listenerPort, edgePort] of [
      [8883, 1883],
      [8443, 8083],
    ] as const) {
      const groups = template.findResources("AWS::ElasticLoadBalancingV2::TargetGroup", {
        Properties: { Port: edgePort, Protocol: "TCP", HealthCheckPath: "/readyz", HealthCheckPort: "9090" },
      });
      const [groupId] = Object.keys(groups);
      assert.ok(groupId !== undefined, `a target group for edge port ${edgePort}`);
      template.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
        Port: listenerPort,
        Protocol: "TLS",
        Certificates: [{ CertificateArn: deviceCertificateArn }],
        SslPolicy: "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        DefaultActions: [{ Type: "forward", TargetGroupArn: { Ref: groupId } }],
      });
      template.hasResourceProperties("AWS::EC2::SecurityGroupIngress", {
        FromPort: edgePort,
        GroupId: { "Fn::GetAtt": [logicalId(stack, stack.edge.securityGroup), "GroupId"] },
        SourceSecurityGroupId: Match.anyValue(),
      });
    }
    const environment = environmentOf(build({ certificateArn: deviceCertificateArn }), "edge");
    assert.equal(environment.TETHER_MQTT_PORT, "1883");
    assert.equal(environment.TETHER_WS_PORT, "8083");
  });

  test("with a device certificate, production offers devices TLS only (443, MQTT 8883, WebSocket 8443): no plain TCP listener and no public rule for port 3000", () => {
    const built = build(prodContext);
    assert.deepEqual(deviceListeners(built), { 443: "TLS", 8443: "TLS", 8883: "TLS" });
    assert.deepEqual(publicPorts(built), [443, 8443, 8883]);
    const outputs = built.template.toJSON().Outputs as Record<string, unknown>;
    assert.equal(outputs.DeviceEndpoint, undefined, "no plain endpoint is advertised");
    assert.ok(outputs.DeviceTlsEndpoint);
    // The NLB still hands the decrypted stream to the edge's device port inside the VPC.
    built.template.hasResourceProperties("AWS::EC2::SecurityGroupIngress", {
      FromPort: 3000,
      GroupId: { "Fn::GetAtt": [logicalId(built.stack, built.stack.edge.securityGroup), "GroupId"] },
      SourceSecurityGroupId: Match.anyValue(),
    });
  });

  test("without a certificate, development keeps plain TCP on 3000, and asking for TLS only without one is refused", () => {
    const built = build();
    assert.deepEqual(deviceListeners(built), { 3000: "TCP" });
    assert.deepEqual(publicPorts(built), [3000]);
    const read = (values: Record<string, string>) => (key: string) => values[key];
    assert.equal(settingsFromContext(read({})).devicePlainTcp, true);
    assert.throws(
      () => settingsFromContext(read({ devicePlainTcp: "false" })),
      /devicePlainTcp=false needs certificateArn/,
    );
  });

  test("devicePlainTcp=true brings the plain TCP listener and its public rule back beside TLS", () => {
    const tlsOnly = build({ certificateArn: deviceCertificateArn });
    assert.deepEqual(deviceListeners(tlsOnly), { 443: "TLS", 8443: "TLS", 8883: "TLS" });
    const both = build({ certificateArn: deviceCertificateArn, devicePlainTcp: "true" });
    assert.deepEqual(deviceListeners(both), { 443: "TLS", 3000: "TCP", 8443: "TLS", 8883: "TLS" });
    assert.deepEqual(publicPorts(both), [443, 3000, 8443, 8883]);
    both.template.hasOutput("DeviceEndpoint", {});
  });

  test("the edge's target group sends PROXY protocol v2, and the edge is told to expect it with TETHER_PROXY_PROTOCOL=v2", () => {
    for (const context of [{}, prodContext]) {
      const built = build(context);
      assert.equal(edgeTargetGroupAttributes(built)["proxy_protocol_v2.enabled"], "true", JSON.stringify(context));
      assert.equal(environmentOf(built, "edge").TETHER_PROXY_PROTOCOL, "v2", JSON.stringify(context));
    }
    const off = build({ proxyProtocol: "false" });
    assert.equal(edgeTargetGroupAttributes(off)["proxy_protocol_v2.enabled"], "false");
    assert.equal(environmentOf(off, "edge").TETHER_PROXY_PROTOCOL, "off");
  });

  test("deviceCidrs narrows who may reach the device listener", () => {
    const { template } = build({ deviceCidrs: "203.0.113.0/24,2001:db8::/32" });
    template.hasResourceProperties("AWS::EC2::SecurityGroup", {
      GroupDescription: "Tether device listeners (public)",
      SecurityGroupIngress: [
        Match.objectLike({ CidrIp: "203.0.113.0/24", FromPort: 3000 }),
        Match.objectLike({ CidrIpv6: "2001:db8::/32", FromPort: 3000 }),
      ],
    });
  });

  test("the NLB health check asks the edge's /readyz on its HTTP port 9090, which the NLB may reach", () => {
    const { template, stack } = build();
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      Port: 3000,
      HealthCheckProtocol: "HTTP",
      HealthCheckPort: "9090",
      HealthCheckPath: "/readyz",
    });
    template.hasResourceProperties("AWS::EC2::SecurityGroupIngress", {
      FromPort: 9090,
      ToPort: 9090,
      GroupId: { "Fn::GetAtt": [logicalId(stack, stack.edge.securityGroup), "GroupId"] },
    });
  });

  test("the admin API sits behind an internal ALB on port 80 that forwards to port 8080 and checks /healthz", () => {
    const { template } = build();
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::LoadBalancer", {
      Type: "application",
      Scheme: "internal",
    });
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", { Port: 80, Protocol: "HTTP" });
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      Port: 8080,
      Protocol: "HTTP",
      HealthCheckPath: "/healthz",
    });
    template.hasResourceProperties("AWS::EC2::SecurityGroup", {
      GroupDescription: "Tether admin API load balancer (internal)",
      SecurityGroupIngress: [Match.objectLike({ CidrIp: "10.40.0.0/16", FromPort: 80 })],
    });
  });

  test("the outputs give the NLB's DNS name, the device endpoint and the admin URL", () => {
    const { template } = build();
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    assert.match(render(outputs.NlbDnsName?.Value), /^<EdgeLoadBalancer\w+\.DNSName>$/);
    assert.match(render(outputs.DeviceEndpoint?.Value), /DNSName>:3000$/);
    assert.match(render(outputs.AdminUrl?.Value), /^http:\/\/<AdminLoadBalancer\w+\.DNSName>$/);
  });
});

describe("drain timings", () => {
  test("the NLB drains a target for 10 seconds and never cuts device connections itself", () => {
    const { template } = build();
    template.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
      Port: 3000,
      TargetGroupAttributes: Match.arrayWith([
        { Key: "deregistration_delay.timeout_seconds", Value: "10" },
        { Key: "deregistration_delay.connection_termination.enabled", Value: "false" },
        { Key: "target_health_state.unhealthy.connection_termination.enabled", Value: "false" },
      ]),
    });
  });

  test("the edge's stopTimeout is the 20 s drain plus 10 s, and the drain reaches the edge as TETHER_DRAIN_MS", () => {
    const built = build();
    assert.equal(containerOf(built, "edge").StopTimeout, 30);
    assert.equal(environmentOf(built, "edge").TETHER_DRAIN_MS, "20000");
  });

  test("a longer drain lengthens stopTimeout to match", () => {
    const built = build({ drainMs: "45000" });
    assert.equal(containerOf(built, "edge").StopTimeout, 55);
    assert.equal(environmentOf(built, "edge").TETHER_DRAIN_MS, "45000");
  });

  test("a drain that cannot fit Fargate's 120 s stopTimeout is refused", () => {
    assert.throws(() => settingsFromContext((key) => (key === "drainMs" ? "115000" : undefined)), /drainMs/);
  });

  test("an unhealthy verdict takes longer than the drain, so a draining edge keeps its devices", () => {
    const { template } = build();
    const groups = template.findResources("AWS::ElasticLoadBalancingV2::TargetGroup", { Properties: { Port: 3000 } });
    const properties = Object.values(groups)[0]?.Properties as Json;
    const verdictSeconds = Number(properties.HealthCheckIntervalSeconds) * Number(properties.UnhealthyThresholdCount);
    assert.ok(verdictSeconds > 20, `unhealthy after ${verdictSeconds} s`);
  });

  test("every service deploys with a circuit breaker that rolls back", () => {
    const { template } = build();
    const services = Object.values(template.findResources("AWS::ECS::Service"));
    assert.equal(services.length, 3);
    for (const service of services) {
      const configuration = (service.Properties as Json).DeploymentConfiguration as Json;
      assert.deepEqual(configuration.DeploymentCircuitBreaker, { Enable: true, Rollback: true });
      assert.equal(configuration.MinimumHealthyPercent, 100);
    }
  });
});

describe("environment variables", () => {
  test("every service gets Kafka over IAM, the DynamoDB registry, the table names and the edge count", () => {
    const built = build();
    for (const name of ["edge", "worker", "admin"] as const) {
      const env = environmentOf(built, name);
      assert.equal(env.TETHER_ENV, "production", name);
      assert.equal(env.TETHER_BROKER, "kafka", name);
      assert.equal(env.TETHER_KAFKA_AUTH, "aws-iam", name);
      assert.equal(env.TETHER_KAFKA_SSL, "true", name);
      assert.match(env.TETHER_KAFKA_BROKERS ?? "", /^<KafkaBootstrapBrokers\w+\.BootstrapBrokerStringSaslIam>$/, name);
      assert.equal(env.AWS_REGION, "<AWS::Region>", name);
      assert.equal(env.TETHER_REGISTRY, "dynamodb", name);
      assert.match(env.TETHER_CONNECTIONS_TABLE ?? "", /^<TablesConnections\w+>$/, name);
      assert.match(env.TETHER_EDGES_TABLE ?? "", /^<TablesEdges\w+>$/, name);
      assert.match(env.TETHER_OUTBOX_TABLE ?? "", /^<TablesOutbox\w+>$/, name);
      assert.equal(env.TETHER_MAX_EDGES, "64", name);
      assert.equal(env.TETHER_DYNAMODB_ENDPOINT, undefined, name);
      assert.deepEqual(containerOf(built, name).Command, [`dist/${name}.mjs`], name);
    }
  });

  test("the edge gets its ports, hmac auth with the secret from Secrets Manager, and no other secret", () => {
    const built = build();
    const env = environmentOf(built, "edge");
    assert.equal(env.TETHER_DEVICE_PORT, "3000");
    assert.equal(env.TETHER_EDGE_HTTP_PORT, "9090");
    assert.equal(env.TETHER_AUTH_MODE, "hmac");
    assert.equal(env.TETHER_AUTH_SECRET, undefined, "the secret is not a plain variable");
    assert.deepEqual(Object.keys(secretsOf(built, "edge")), ["TETHER_AUTH_SECRET"]);
    assert.match(secretsOf(built, "edge").TETHER_AUTH_SECRET ?? "", /^<EdgeAuthSecret\w+>$/);
  });

  test("jwt with a JWKS URL passes the URL and needs no shared secret", () => {
    const built = build({ authMode: "jwt", jwksUrl: "https://id.example.com/.well-known/jwks.json" });
    const env = environmentOf(built, "edge");
    assert.equal(env.TETHER_AUTH_MODE, "jwt");
    assert.equal(env.TETHER_AUTH_JWKS_URL, "https://id.example.com/.well-known/jwks.json");
    assert.deepEqual(secretsOf(built, "edge"), {});
  });

  test("auth mode none is refused for a deployment", () => {
    assert.throws(() => settingsFromContext((key) => (key === "authMode" ? "none" : undefined)), /authMode/);
  });

  test("the worker gets its HTTP port and the kv example's table", () => {
    const built = build();
    const env = environmentOf(built, "worker");
    assert.equal(env.TETHER_WORKER_HTTP_PORT, "9091");
    assert.match(env.TETHER_KV_TABLE ?? "", /^<TablesKeyValue\w+>$/);
    assert.deepEqual(secretsOf(built, "worker"), {});
  });

  test("the admin gets its port and its bearer token from a generated secret", () => {
    const built = build();
    assert.equal(environmentOf(built, "admin").TETHER_ADMIN_PORT, "8080");
    // Behind the ALB, failed logins are counted by the client address the balancer forwards.
    assert.equal(environmentOf(built, "admin").TETHER_ADMIN_TRUSTED_PROXY_HOPS, "1");
    assert.deepEqual(Object.keys(secretsOf(built, "admin")), ["TETHER_ADMIN_TOKEN"]);
    assert.match(secretsOf(built, "admin").TETHER_ADMIN_TOKEN ?? "", /^<AdminToken\w+>$/);
    built.template.hasResourceProperties("AWS::SecretsManager::Secret", {
      Description: Match.stringLikeRegexp("admin API bearer token"),
      GenerateSecretString: Match.objectLike({ PasswordLength: 48 }),
    });
  });

  test("an external cluster gives SASL/PLAIN over TLS with credentials from its secret, and no MSK cluster", () => {
    const built = build(external);
    built.template.resourceCountIs("AWS::MSK::ServerlessCluster", 0);
    for (const name of ["edge", "worker", "admin"] as const) {
      const env = environmentOf(built, name);
      assert.equal(env.TETHER_KAFKA_BROKERS, external.bootstrapServers, name);
      assert.equal(env.TETHER_KAFKA_AUTH, "plain", name);
      assert.equal(env.TETHER_KAFKA_SSL, "true", name);
      const secrets = secretsOf(built, name);
      assert.equal(secrets.TETHER_KAFKA_USERNAME, `${external.kafkaSecretArn}:username::`, name);
      assert.equal(secrets.TETHER_KAFKA_PASSWORD, `${external.kafkaSecretArn}:password::`, name);
    }
  });

  test("logs go to one log group per service with the configured retention; the collectors' raw metric records are kept a week", () => {
    const { template, stack } = build();
    const metricsLogs = logicalId(stack, stack.node.findChild("MetricsLogs"));
    const groups = template.findResources("AWS::Logs::LogGroup");
    assert.ok(Object.keys(groups).length >= 5, "three services, the flow logs and the metric records");
    for (const [id, group] of Object.entries(groups)) {
      assert.equal((group.Properties as Json).RetentionInDays, id === metricsLogs ? 7 : 30, id);
    }
    for (const name of ["edge", "worker", "admin"] as const) {
      const options = (containerOf(build(), name).LogConfiguration as Json).Options as Json;
      assert.equal(options["awslogs-stream-prefix"], name);
    }
  });
});

describe("IAM per role", () => {
  test("the edge role produces requests, events, replies and beacons, reads replies and beacons, and uses only edge-slot groups and the beacon readers' group", () => {
    const built = build();
    const statements = statementsOf(built, roles(built.stack).edge);
    assert.deepEqual(kafkaResources(statements, "kafka-cluster:WriteData"), [
      "topic/tether-test/<select>/edges",
      "topic/tether-test/<select>/events",
      "topic/tether-test/<select>/replies",
      "topic/tether-test/<select>/requests",
    ]);
    assert.deepEqual(kafkaResources(statements, "kafka-cluster:ReadData"), [
      "topic/tether-test/<select>/edges",
      "topic/tether-test/<select>/replies",
    ]);
    assert.deepEqual(kafkaResources(statements, "kafka-cluster:AlterGroup"), [
      "group/tether-test/<select>/edge-beacons",
      "group/tether-test/<select>/edge-slot-*",
    ]);
    const created = kafkaResources(statements, "kafka-cluster:CreateTopic");
    assert.equal(created.length, 6);
    assert.ok(created.includes("topic/tether-test/<select>/edges"), "the edge may create the beacon topic");
  });

  test("the worker role reads requests and downlink, writes replies and the DLQ, and commits as workers and router", () => {
    const built = build();
    const statements = statementsOf(built, roles(built.stack).worker);
    assert.deepEqual(kafkaResources(statements, "kafka-cluster:WriteData"), [
      "topic/tether-test/<select>/replies",
      "topic/tether-test/<select>/requests.dlq",
    ]);
    assert.deepEqual(kafkaResources(statements, "kafka-cluster:ReadData"), [
      "topic/tether-test/<select>/downlink",
      "topic/tether-test/<select>/requests",
    ]);
    assert.deepEqual(kafkaResources(statements, "kafka-cluster:AlterGroup"), [
      "group/tether-test/<select>/router",
      "group/tether-test/<select>/workers",
    ]);
  });

  test("the admin role writes downlink and replies and can neither read, join groups nor create topics", () => {
    const built = build();
    const statements = statementsOf(built, roles(built.stack).admin);
    assert.deepEqual(kafkaResources(statements, "kafka-cluster:WriteData"), [
      "topic/tether-test/<select>/downlink",
      "topic/tether-test/<select>/replies",
    ]);
    for (const action of [
      "kafka-cluster:ReadData",
      "kafka-cluster:AlterGroup",
      "kafka-cluster:CreateTopic",
      "kafka-cluster:AlterTopic",
    ]) {
      assert.deepEqual(kafkaResources(statements, action), [], action);
    }
    assert.equal(kafkaResources(statements, "kafka-cluster:DescribeTopic").length, 6);
  });

  test("every producer may write idempotently and connect, on the cluster's ARN only", () => {
    const built = build();
    const clusterId = logicalId(built.stack, built.stack.kafka.cluster!);
    for (const [name, role] of Object.entries(roles(built.stack))) {
      const statements = statementsOf(built, role);
      const cluster = statements.find((statement) => statement.sid === "KafkaCluster");
      assert.ok(cluster, name);
      assert.deepEqual(cluster.resources, [`<${clusterId}.Arn>`], name);
      assert.ok(cluster.actions.includes("kafka-cluster:WriteDataIdempotently"), name);
      assert.ok(cluster.actions.includes("kafka-cluster:Connect"), name);
    }
  });

  test("no task role statement has a bare * resource or a wildcard action", () => {
    const built = build();
    for (const [name, role] of Object.entries(roles(built.stack))) {
      for (const statement of statementsOf(built, role)) {
        assert.ok(!statement.resources.includes("*"), `${name}: ${statement.actions.join(" ")}`);
        assert.ok(!statement.actions.some((action) => action.includes("*")), `${name}: ${statement.actions.join(" ")}`);
      }
    }
  });

  test("DynamoDB access: edge writes its three tables, the worker reads owners and writes outbox and kv, the admin only reads", () => {
    const built = build();
    const { stack } = built;
    const table = (construct: IConstruct) => logicalId(stack, construct);
    const connections = table(stack.tables.connections);
    const edges = table(stack.tables.edges);
    const outbox = table(stack.tables.outbox);
    const kv = table(stack.tables.kv);
    const edge = statementsOf(built, roles(stack).edge);
    const worker = statementsOf(built, roles(stack).worker);
    const admin = statementsOf(built, roles(stack).admin);
    for (const name of [connections, edges, outbox])
      assert.ok(dynamoActionsOn(edge, name).includes("dynamodb:PutItem"));
    assert.deepEqual(dynamoActionsOn(edge, kv), []);
    assert.ok(!dynamoActionsOn(worker, connections).includes("dynamodb:PutItem"));
    assert.ok(dynamoActionsOn(worker, connections).includes("dynamodb:GetItem"));
    assert.ok(!dynamoActionsOn(worker, edges).includes("dynamodb:PutItem"));
    assert.ok(dynamoActionsOn(worker, outbox).includes("dynamodb:PutItem"));
    assert.ok(dynamoActionsOn(worker, kv).includes("dynamodb:PutItem"));
    for (const name of [connections, edges]) {
      assert.ok(dynamoActionsOn(admin, name).includes("dynamodb:Query"));
      assert.ok(!dynamoActionsOn(admin, name).some((action) => /Put|Update|Delete|Write/.test(action)));
    }
    assert.deepEqual(dynamoActionsOn(admin, outbox), []);
    assert.deepEqual(dynamoActionsOn(admin, kv), []);
  });

  test("with an external cluster no role gets kafka-cluster permissions", () => {
    const built = build(external);
    for (const [name, role] of Object.entries(roles(built.stack))) {
      const kafka = statementsOf(built, role).filter((s) => s.actions.some((a) => a.startsWith("kafka-cluster:")));
      assert.deepEqual(kafka, [], name);
    }
  });

  test("the MSK cluster requires IAM authentication and admits only the services on port 9098", () => {
    const built = build();
    built.template.hasResourceProperties("AWS::MSK::ServerlessCluster", {
      ClusterName: "tether-test",
      ClientAuthentication: { Sasl: { Iam: { Enabled: true } } },
    });
    const rules = Object.values(
      built.template.findResources("AWS::EC2::SecurityGroupIngress", { Properties: { FromPort: 9098 } }),
    );
    assert.equal(rules.length, 3, "edge, worker and admin");
    const [bootstrap] = Object.values(built.template.findResources("Custom::AWS"));
    assert.ok(bootstrap, "a custom resource reads the bootstrap brokers");
    const call = JSON.parse(render((bootstrap.Properties as Json).Create).replace(/<[^>]+>/g, "token")) as Json;
    assert.equal(call.service, "Kafka");
    assert.equal(call.action, "GetBootstrapBrokers");
    assert.deepEqual(call.outputPaths, ["BootstrapBrokerStringSaslIam"]);
  });
});

describe("DynamoDB tables", () => {
  test("every table is on demand, expires items on expiresAt and has point-in-time recovery", () => {
    const { template } = build();
    const tables = Object.values(template.findResources("AWS::DynamoDB::GlobalTable"));
    assert.equal(tables.length, 4);
    for (const table of tables) {
      const properties = table.Properties as Json;
      assert.equal(properties.BillingMode, "PAY_PER_REQUEST");
      assert.deepEqual(properties.TimeToLiveSpecification, { AttributeName: "expiresAt", Enabled: true });
      const replicas = properties.Replicas as Json[];
      assert.deepEqual(replicas[0]?.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true });
    }
  });

  test("connections has the byEdge index on edgeId, edges is keyed by a numeric slot, outbox by deviceId and messageId", () => {
    const { template } = build();
    template.hasResourceProperties("AWS::DynamoDB::GlobalTable", {
      KeySchema: [{ AttributeName: "deviceId", KeyType: "HASH" }],
      GlobalSecondaryIndexes: [
        Match.objectLike({ IndexName: "byEdge", KeySchema: [{ AttributeName: "edgeId", KeyType: "HASH" }] }),
      ],
    });
    template.hasResourceProperties("AWS::DynamoDB::GlobalTable", {
      KeySchema: [{ AttributeName: "slot", KeyType: "HASH" }],
      AttributeDefinitions: [{ AttributeName: "slot", AttributeType: "N" }],
    });
    template.hasResourceProperties("AWS::DynamoDB::GlobalTable", {
      KeySchema: [
        { AttributeName: "deviceId", KeyType: "HASH" },
        { AttributeName: "messageId", KeyType: "RANGE" },
      ],
    });
  });

  test("development tables are deleted with the stack; production tables are protected and retained", () => {
    const dev = build().template;
    for (const table of Object.values(dev.findResources("AWS::DynamoDB::GlobalTable"))) {
      assert.equal(table.DeletionPolicy, "Delete");
    }
    const prod = build({ env: "prod", adminCertificateArn }).template;
    for (const table of Object.values(prod.findResources("AWS::DynamoDB::GlobalTable"))) {
      assert.equal(table.DeletionPolicy, "Retain");
      const replicas = (table.Properties as Json).Replicas as Json[];
      assert.equal(replicas[0]?.DeletionProtectionEnabled, true);
    }
  });
});

describe("scaling", () => {
  function policiesOf(built: Built, service: "Edge" | "Worker"): Json[] {
    return Object.values(built.template.findResources("AWS::ApplicationAutoScaling::ScalingPolicy"))
      .map((policy) => policy.Properties as Json)
      .filter((properties) => {
        const target = properties.ScalingTargetId as Json | undefined;
        const resourceId = render(properties.ResourceId ?? "");
        return render(target ?? "").includes(`${service}Service`) || resourceId.includes(`${service}Service`);
      });
  }

  test("the edge scales on CPU and on NLB connections per healthy task", () => {
    const built = build();
    const policies = policiesOf(built, "Edge");
    assert.equal(policies.length, 2);
    const cpu = policies.find((p) => JSON.stringify(p).includes("ECSServiceAverageCPUUtilization"));
    assert.ok(cpu, "a CPU policy");
    const connections = policies.find((p) => p.PolicyName === "connections-per-task");
    assert.ok(connections, "a connections policy");
    const configuration = connections.TargetTrackingScalingPolicyConfiguration as Json;
    assert.equal(configuration.TargetValue, 10_000);
    const metrics = (configuration.CustomizedMetricSpecification as Json).Metrics as Json[];
    assert.deepEqual(
      metrics
        .map((m) => (m.MetricStat as Json | undefined)?.Metric ?? m.Expression)
        .map((m) => (typeof m === "string" ? m : (m as Json).MetricName)),
      ["ActiveFlowCount", "HealthyHostCount", "flows / IF(healthy > 0, healthy, 1)"],
    );
    built.template.hasResourceProperties("AWS::ApplicationAutoScaling::ScalableTarget", {
      ResourceId: Match.anyValue(),
      MinCapacity: 2,
      MaxCapacity: 16,
      ScalableDimension: "ecs:service:DesiredCount",
    });
  });

  test("the worker scales on CPU and on MSK consumer lag per running task", () => {
    const built = build();
    const policies = policiesOf(built, "Worker");
    assert.equal(policies.length, 2);
    const lag = policies.find((p) => p.PolicyName === "lag-per-task");
    assert.ok(lag);
    const metrics = ((lag.TargetTrackingScalingPolicyConfiguration as Json).CustomizedMetricSpecification as Json)
      .Metrics as Json[];
    const groups = metrics
      .map((m) => ((m.MetricStat as Json | undefined)?.Metric as Json | undefined)?.Dimensions as Json[] | undefined)
      .flatMap((dimensions) => dimensions ?? [])
      .filter((dimension) => dimension.Name === "Consumer Group")
      .map((dimension) => dimension.Value);
    assert.deepEqual(groups, ["workers", "router"]);
    assert.ok(metrics.some((m) => (m.Expression as string | undefined)?.includes("/ IF(tasks > 0, tasks, 1)")));
  });

  test("with an external cluster the worker scales on CPU only", () => {
    const built = build(external);
    const policies = policiesOf(built, "Worker");
    assert.equal(policies.length, 1);
    assert.ok(JSON.stringify(policies[0]).includes("ECSServiceAverageCPUUtilization"));
  });

  test("the edge fleet may not outgrow the reply slots, counting a deployment's doubled tasks", () => {
    const read = (values: Record<string, string>) => (key: string) => values[key];
    assert.throws(
      () => settingsFromContext(read({ maxEdges: "16", edgeMaxCount: "10" })),
      /edgeMaxCount 10 needs 20 slots/,
    );
    assert.equal(settingsFromContext(read({ maxEdges: "16" })).edge.max, 8);
  });

  test("Container Insights is on, since lag scaling and the task alarms read its task counts", () => {
    build().template.hasResourceProperties("AWS::ECS::Cluster", {
      ClusterSettings: [{ Name: "containerInsights", Value: "enabled" }],
    });
  });
});

describe("alarms", () => {
  const expectedAlarms = [
    /^No device connections/,
    /dropped well below their usual level/,
    /failed its \/readyz/,
    /reset more than 5% of new device connections/,
    /^Edge: fewer tasks running/,
    /^Worker: fewer tasks running/,
    /^Admin: fewer tasks running/,
    /DynamoDB throttled/,
    /on the connections or edges \(lease\) table/,
    /on the outbox table/,
    /admin API answered more than 5 server errors/,
    /lost its reply slot lease/,
    /event loop lagged/,
    /Worker backlog on requests/,
    /Push backlog on downlink/,
    /requests.dlq/,
  ];

  test("the default deployment has at least 12 alarms, among them every one of the list, each notifying SNS on alarm and OK (the zero-connection one only in production)", () => {
    const built = build();
    const topic = { Ref: logicalId(built.stack, built.stack.alarms.topic) };
    const all = alarmsOf(built);
    assert.ok(all.length >= 12, `${all.length} alarms`);
    for (const text of expectedAlarms) {
      const alarm = alarmDescribed(built, text);
      if (text.source.startsWith("^No device connections")) continue;
      assert.deepEqual(alarm.AlarmActions, [topic], String(text));
      assert.deepEqual(alarm.OKActions, [topic], String(text));
    }
    const prod = build(prodContext);
    assert.deepEqual(alarmDescribed(prod, /^No device connections/).AlarmActions, [
      { Ref: logicalId(prod.stack, prod.stack.alarms.topic) },
    ]);
  });

  test("an empty development environment pages nobody: no alarm counts missing data as breaching, and the zero-connection alarm has no actions", () => {
    const built = build();
    for (const alarm of alarmsOf(built)) {
      assert.equal(alarm.TreatMissingData, "notBreaching", String(alarm.AlarmDescription));
    }
    const zero = alarmDescribed(built, /^No device connections/);
    assert.equal(zero.MetricName, "ActiveFlowCount");
    assert.equal(zero.ComparisonOperator, "LessThanThreshold");
    assert.equal(zero.AlarmActions, undefined);
    assert.equal(zero.OKActions, undefined);
  });

  test("production counts a missing connection or task count as breaching, and missing error counts as fine", () => {
    const built = build(prodContext);
    assert.equal(alarmDescribed(built, /^No device connections/).TreatMissingData, "breaching");
    for (const name of ["Edge", "Worker", "Admin"]) {
      assert.equal(alarmDescribed(built, new RegExp(`^${name}: fewer tasks`)).TreatMissingData, "breaching", name);
    }
    for (const text of [/DynamoDB throttled/, /lost its reply slot lease/, /requests.dlq/, /server errors/]) {
      assert.equal(alarmDescribed(built, text).TreatMissingData, "notBreaching", String(text));
    }
  });

  test("a sudden drop in connections is an anomaly band under the NLB's active flows", () => {
    const built = build();
    const drop = alarmDescribed(built, /dropped well below/);
    assert.equal(drop.ComparisonOperator, "LessThanLowerThreshold");
    const queries = drop.Metrics as Json[];
    const band = queries.find((query) => /ANOMALY_DETECTION_BAND\(\w+, 3\)/.test(String(query.Expression)));
    assert.ok(band, JSON.stringify(queries));
    const flows = queries.find((query) => query.MetricStat !== undefined)?.MetricStat as Json;
    assert.equal((flows.Metric as Json).MetricName, "ActiveFlowCount");
  });

  test("DynamoDB alarms sum throttles of every table and system errors per operation, at most ten metrics each", () => {
    const built = build();
    const throttles = alarmDescribed(built, /DynamoDB throttled/);
    const names = metricsOfAlarm(throttles).map((metric) => `${metric.MetricName} ${render(metric.Dimensions)}`);
    for (const table of ["Connections", "Edges", "Outbox", "KeyValue"]) {
      for (const kind of ["Read", "Write"]) {
        assert.ok(
          names.some((name) => name.startsWith(`${kind}ThrottleEvents`) && name.includes(`Tables${table}`)),
          `${kind} throttles of ${table}`,
        );
      }
    }
    const registry = metricsOfAlarm(alarmDescribed(built, /lease\) table/));
    assert.ok(registry.every((metric) => metric.MetricName === "SystemErrors"));
    assert.ok(
      registry.some((metric) => render(metric.Dimensions).includes("Scan")),
      "the lease scan",
    );
    for (const alarm of alarmsOf(built)) {
      assert.ok(metricsOfAlarm(alarm).length <= 10, String(alarm.AlarmDescription));
    }
  });

  test("lease losses and event-loop lag are read from the services' own metrics in the Tether namespace", () => {
    const built = build();
    const losses = metricsOfAlarm(alarmDescribed(built, /lost its reply slot lease/));
    assert.deepEqual(
      losses.map((metric) => [metric.Namespace, metric.MetricName, render(metric.Dimensions)]),
      [
        [
          "Tether",
          "tether_edge_lease_losses_total",
          JSON.stringify({ Name: "Environment", Value: "test" }) +
            "," +
            JSON.stringify({ Name: "Service", Value: "edge" }),
        ],
      ],
    );
    const lag = metricsOfAlarm(alarmDescribed(built, /event loop lagged/));
    assert.deepEqual(
      lag.map((metric) => metric.MetricName),
      Array(3).fill("nodejs_eventloop_lag_p99_seconds"),
    );
  });

  test("with an external cluster the MSK alarms are gone and at least 12 remain", () => {
    const built = build(external);
    const descriptions = alarmsOf(built).map((alarm) => String(alarm.AlarmDescription));
    assert.ok(descriptions.length >= 12, descriptions.join("\n"));
    assert.ok(!descriptions.some((text) => /backlog|requests.dlq/.test(text)));
  });

  test("failed deployments reach the same topic through EventBridge", () => {
    const { template, stack } = build();
    template.hasResourceProperties("AWS::Events::Rule", {
      EventPattern: Match.objectLike({
        "detail-type": ["ECS Deployment State Change"],
        detail: { eventName: ["SERVICE_DEPLOYMENT_FAILED"] },
      }),
      Targets: [Match.objectLike({ Arn: { Ref: logicalId(stack, stack.alarms.topic) } })],
    });
  });

  test("the alarm topic is encrypted with a rotating key that CloudWatch may use", () => {
    const { template } = build();
    template.hasResourceProperties("AWS::SNS::Topic", { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties("AWS::KMS::Key", {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          // minimizePolicies merges the two services' statements into one.
          Match.objectLike({
            Principal: { Service: Match.arrayWith(["cloudwatch.amazonaws.com", "events.amazonaws.com"]) },
            Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
          }),
        ]),
      },
    });
  });
});

describe("network", () => {
  test("an existing VPC is imported from ids in context, with no VPC created and nothing looked up", () => {
    const built = build({
      vpcId: "vpc-0123",
      vpcCidr: "10.9.0.0/16",
      availabilityZones: "eu-west-1a,eu-west-1b",
      publicSubnetIds: "subnet-pa,subnet-pb",
      privateSubnetIds: "subnet-a,subnet-b",
    });
    built.template.resourceCountIs("AWS::EC2::VPC", 0);
    built.template.hasResourceProperties("AWS::MSK::ServerlessCluster", {
      VpcConfigs: [Match.objectLike({ SubnetIds: ["subnet-a", "subnet-b"] })],
    });
    built.template.hasResourceProperties("AWS::ECS::Service", {
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ Subnets: ["subnet-a", "subnet-b"] }) },
    });
    assert.equal((built.stack.node.root as App).synth().manifest.missing, undefined);
  });

  test("nothing is looked up at synth, so no credentials are needed", () => {
    for (const context of [{}, external, prodContext]) {
      const { stack } = build(context);
      assert.equal((stack.node.root as App).synth().manifest.missing, undefined, JSON.stringify(context));
    }
  });

  test("a new VPC has flow logs and a DynamoDB gateway endpoint", () => {
    const { template } = build();
    template.hasResourceProperties("AWS::EC2::FlowLog", { TrafficType: "ALL" });
    template.hasResourceProperties("AWS::EC2::VPCEndpoint", {
      ServiceName: Match.objectLike({ "Fn::Join": Match.anyValue() }),
      VpcEndpointType: "Gateway",
    });
  });
});

describe("cdk-nag", () => {
  const configurations: Record<string, Record<string, unknown>> = {
    "the default MSK deployment": {},
    "production with TLS and an existing VPC": {
      env: "prod",
      certificateArn: "arn:aws:acm:eu-west-1:111122223333:certificate/abc",
      adminCertificateArn: "arn:aws:acm:eu-west-1:111122223333:certificate/def",
      vpcId: "vpc-0123",
      vpcCidr: "10.9.0.0/16",
      availabilityZones: "eu-west-1a,eu-west-1b",
      publicSubnetIds: "subnet-pa,subnet-pb",
      privateSubnetIds: "subnet-a,subnet-b",
    },
    "an external Kafka cluster": external,
    "Graviton tasks in two zones with HTTPS for the admin API": {
      cpuArchitecture: "arm64",
      maxAzs: "2",
      adminCertificateArn,
    },
  };
  for (const [name, context] of Object.entries(configurations)) {
    test(`the AwsSolutions pack finds nothing unacknowledged in ${name}`, () => {
      const built = build(context);
      const report = new AwsSolutionsChecks().validateScope(built.stack);
      const findings = report.violations.flatMap((violation) =>
        violation.violatingResources.map((resource) => `${violation.ruleName} at ${resource.constructPath}`),
      );
      assert.deepEqual(findings, []);
    });
  }

  test("the pack does report what is not acknowledged, such as a security group open to the world", () => {
    const app = new App();
    const stack = new Stack(app, "Probe", { env: { region: "eu-west-1" } });
    const vpc = new ec2.Vpc(stack, "Vpc", { maxAzs: 2, natGateways: 0 });
    const group = new ec2.SecurityGroup(stack, "Open", { vpc });
    group.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(3000));
    const rules = new AwsSolutionsChecks().validateScope(stack).violations.map((violation) => violation.ruleName);
    assert.ok(rules.includes("AwsSolutions-EC23"), rules.join(", "));
  });

  test("every acknowledgement gives a reason of at least one full sentence", () => {
    const built = build(configurations["production with TLS and an existing VPC"]);
    const reasons: Record<string, string> = {};
    const visit = (construct: IConstruct): void => {
      for (const entry of construct.node.metadata) {
        if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
        for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
          reasons[`${construct.node.path} ${id}`] = reason;
        }
      }
      for (const child of construct.node.children) visit(child);
    };
    visit(built.stack);
    assert.ok(Object.keys(reasons).length >= 8, Object.keys(reasons).join("\n"));
    for (const [where, reason] of Object.entries(reasons)) {
      assert.ok(reason.length >= 60 && /[.)]$/.test(reason.trim()), `${where}: ${reason}`);
    }
  });
});

describe("feature flags", () => {
  test("cdk.json turns on every feature flag the installed aws-cdk-lib recommends, with the recommended value", () => {
    const recommended = cxapi.CURRENTLY_RECOMMENDED_FLAGS as Record<string, unknown>;
    assert.ok(Object.keys(recommended).length > 50);
    for (const [flag, value] of Object.entries(recommended)) {
      assert.deepEqual(cdkJsonContext[flag], value, flag);
    }
    const { stack } = build();
    for (const flag of ["@aws-cdk/aws-ec2:restrictDefaultSecurityGroup", "@aws-cdk/aws-iam:minimizePolicies"]) {
      assert.equal(stack.node.tryGetContext(flag), true, flag);
    }
  });

  test("with the flags on, the VPC's default security group is stripped of its rules", () => {
    build().template.resourceCountIs("Custom::VpcRestrictDefaultSG", 1);
  });
});

describe("zones and architecture", () => {
  const subnets = (built: Built) => Object.values(built.template.findResources("AWS::EC2::Subnet"));
  const zonesOf = (built: Built) =>
    [...new Set(subnets(built).map((subnet) => JSON.stringify((subnet.Properties as Json).AvailabilityZone)))].sort();

  test("a new VPC spans three availability zones by default: public and private subnets in each, resolved at deploy time", () => {
    const built = build();
    assert.equal(subnets(built).length, 6);
    assert.deepEqual(
      zonesOf(built),
      [0, 1, 2].map((index) => JSON.stringify({ "Fn::Select": [index, { "Fn::GetAZs": "" }] })).sort(),
    );
    built.template.resourceCountIs("AWS::EC2::NatGateway", 1);
    const msk = Object.values(built.template.findResources("AWS::MSK::ServerlessCluster"))[0]?.Properties as Json;
    const mskSubnets = ((msk.VpcConfigs as Json[])[0]?.SubnetIds as unknown[]) ?? [];
    assert.equal(mskSubnets.length, 3, "MSK reaches into the three private subnets");
  });

  test("production runs a NAT gateway in each of the three zones, and maxAzs=2 builds two zones", () => {
    build(prodContext).template.resourceCountIs("AWS::EC2::NatGateway", 3);
    const two = build({ maxAzs: "2" });
    assert.equal(subnets(two).length, 4);
    assert.throws(() => settingsFromContext((key) => (key === "maxAzs" ? "1" : undefined)), /maxAzs/);
  });

  test("every task runs on x86_64 by default, and on Graviton (ARM64) with cpuArchitecture=arm64", () => {
    const architectures = (built: Built) =>
      Object.values(built.template.findResources("AWS::ECS::TaskDefinition")).map(
        (definition) => ((definition.Properties as Json).RuntimePlatform as Json).CpuArchitecture,
      );
    assert.deepEqual(architectures(build()), ["X86_64", "X86_64", "X86_64"]);
    assert.deepEqual(architectures(build({ cpuArchitecture: "arm64" })), ["ARM64", "ARM64", "ARM64"]);
    assert.throws(
      () => settingsFromContext((key) => (key === "cpuArchitecture" ? "sparc" : undefined)),
      /cpuArchitecture must be x86_64 or arm64/,
    );
  });

  test("the image is built for the tasks' platform: linux/arm64 for Graviton, linux/amd64 otherwise", () => {
    const platformOf = (context: Record<string, unknown>): string[] => {
      const outdir = mkdtempSync(join(tmpdir(), "tether-cdk-"));
      try {
        const { app, stack } = createApp({
          context: { ...cdkJsonContext, region: "eu-west-1", ...context },
          outdir,
          builtinValidation: false,
        });
        app.synth();
        const assets = JSON.parse(readFileSync(join(outdir, `${stack.stackName}.assets.json`), "utf8")) as {
          dockerImages: Record<string, { source: { platform?: string } }>;
        };
        return Object.values(assets.dockerImages).map((image) => image.source.platform ?? "none");
      } finally {
        rmSync(outdir, { recursive: true, force: true });
      }
    };
    assert.deepEqual(platformOf({ env: "graviton", cpuArchitecture: "arm64" }), ["linux/arm64"]);
    assert.deepEqual(platformOf({ env: "intel" }), ["linux/amd64"]);
  });
});

describe("topics and partitions", () => {
  test("maxEdges and workPartitions reach every service as TETHER_MAX_EDGES and TETHER_WORK_PARTITIONS", () => {
    const defaults = build();
    const raised = build({ maxEdges: "128", workPartitions: "24" });
    for (const name of ["edge", "worker", "admin"] as const) {
      assert.equal(environmentOf(defaults, name).TETHER_WORK_PARTITIONS, "12", name);
      assert.equal(environmentOf(raised, name).TETHER_MAX_EDGES, "128", name);
      assert.equal(environmentOf(raised, name).TETHER_WORK_PARTITIONS, "24", name);
    }
  });

  test("the edge and worker roles may create and grow (alter) exactly the Tether topics", () => {
    const built = build();
    for (const role of [roles(built.stack).edge, roles(built.stack).worker]) {
      const statements = statementsOf(built, role);
      const created = kafkaResources(statements, "kafka-cluster:CreateTopic");
      assert.equal(created.length, 6);
      assert.deepEqual(kafkaResources(statements, "kafka-cluster:AlterTopic"), created);
    }
  });
});

describe("admin HTTPS", () => {
  test("with adminCertificateArn the admin ALB serves HTTPS on 443 with it and no plain HTTP, and the URL says https", () => {
    const built = build({ adminCertificateArn });
    built.template.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
      Port: 443,
      Protocol: "HTTPS",
      Certificates: [{ CertificateArn: adminCertificateArn }],
      SslPolicy: Match.stringLikeRegexp("^ELBSecurityPolicy-TLS13"),
    });
    const http = built.template.findResources("AWS::ElasticLoadBalancingV2::Listener", {
      Properties: { Protocol: "HTTP" },
    });
    assert.deepEqual(Object.keys(http), []);
    built.template.hasResourceProperties("AWS::EC2::SecurityGroup", {
      GroupDescription: "Tether admin API load balancer (internal)",
      SecurityGroupIngress: [Match.objectLike({ FromPort: 443, ToPort: 443 })],
    });
    const outputs = built.template.toJSON().Outputs as Record<string, { Value: unknown }>;
    assert.match(render(outputs.AdminUrl?.Value), /^https:\/\/<AdminLoadBalancer\w+\.DNSName>$/);
  });

  test("a production deploy without adminCertificateArn is refused at synth, with a message that names the context key", () => {
    assert.throws(
      () => createApp({ context: { ...baseContext, env: "prod", certificateArn: deviceCertificateArn } }),
      (error: unknown) =>
        error instanceof InvalidContextError &&
        /production \(env=prod\) needs adminCertificateArn/.test(error.message) &&
        /-c adminCertificateArn=arn:aws:acm:/.test(error.message),
    );
    assert.throws(
      () => settingsFromContext((key) => ({ env: "staging", production: "true" })[key]),
      /needs adminCertificateArn/,
    );
    assert.throws(
      () => settingsFromContext((key) => (key === "adminCertificateArn" ? "not-an-arn" : undefined)),
      /adminCertificateArn must be the ARN of an ACM certificate/,
    );
    assert.doesNotThrow(() => settingsFromContext((key) => ({ env: "staging" })[key]));
  });
});

describe("metrics collector", () => {
  const ports = { edge: 9090, worker: 9091, admin: 8080 } as const;

  function collectorOf(built: Built, service: keyof typeof ports): Json {
    const definitions = built.template.findResources("AWS::ECS::TaskDefinition");
    for (const definition of Object.values(definitions)) {
      const containers = (definition.Properties as Json).ContainerDefinitions as Json[];
      if (!containers.some((container) => container.Name === service)) continue;
      const collector = containers.find((container) => container.Name === "collector");
      assert.ok(collector, `${service} has a collector`);
      return collector;
    }
    throw new Error(`no task of ${service}`);
  }

  function configOf(collector: Json): Json {
    const entries = collector.Environment as { Name: string; Value: unknown }[];
    const content = entries.find((entry) => entry.Name === "AOT_CONFIG_CONTENT");
    assert.ok(content, "the configuration is passed in AOT_CONFIG_CONTENT");
    return JSON.parse(render(content.Value)) as Json;
  }

  test("every task runs the pinned ADOT collector beside the service, not essential, with its own health check and logs", () => {
    const built = build();
    for (const service of ["edge", "worker", "admin"] as const) {
      const collector = collectorOf(built, service);
      assert.equal(collector.Image, DEFAULT_COLLECTOR_IMAGE, service);
      assert.match(String(collector.Image), /^public\.ecr\.aws\/aws-observability\/aws-otel-collector:v\d+\.\d+\.\d+$/);
      assert.equal(collector.Essential, false, service);
      assert.deepEqual((collector.HealthCheck as Json).Command, ["CMD", "/healthcheck"], service);
      const logs = (collector.LogConfiguration as Json).Options as Json;
      assert.equal(logs["awslogs-stream-prefix"], "collector", service);
    }
    const custom = build({ collectorImage: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/otel:1" });
    assert.equal(collectorOf(custom, "edge").Image, "123456789012.dkr.ecr.eu-west-1.amazonaws.com/otel:1");
  });

  test("the collector scrapes its own service's /metrics on loopback and writes EMF to the metrics log group in the Tether namespace", () => {
    const built = build();
    const metricsLogs = logicalId(built.stack, built.stack.node.findChild("MetricsLogs"));
    for (const service of ["edge", "worker", "admin"] as const) {
      const config = configOf(collectorOf(built, service));
      const scrape = ((((config.receivers as Json).prometheus as Json).config as Json).scrape_configs as Json[])[0]!;
      assert.equal(scrape.metrics_path, "/metrics");
      const target = (scrape.static_configs as Json[])[0]!;
      assert.deepEqual(target.targets, [`127.0.0.1:${ports[service]}`]);
      assert.deepEqual(target.labels, { Environment: "test", Service: service });
      const emf = (config.exporters as Json).awsemf as Json;
      assert.equal(emf.namespace, "Tether");
      assert.equal(emf.log_group_name, `<${metricsLogs}>`);
      const declarations = emf.metric_declarations as Json[];
      assert.deepEqual(declarations[0]?.dimensions, [["Environment", "Service"]]);
      const pipeline = ((config.service as Json).pipelines as Json).metrics as Json;
      assert.deepEqual(pipeline.receivers, ["prometheus"]);
      assert.deepEqual(pipeline.exporters, ["awsemf"]);
    }
  });

  test("each task role may write to the metrics log group and nowhere else in CloudWatch Logs", () => {
    const built = build();
    const metricsLogs = logicalId(built.stack, built.stack.node.findChild("MetricsLogs"));
    for (const [name, role] of Object.entries(roles(built.stack))) {
      const statements = statementsOf(built, role).filter((statement) =>
        statement.actions.some((action) => action.startsWith("logs:")),
      );
      const actions = statements.flatMap((statement) => statement.actions).sort();
      assert.deepEqual(actions, ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"], name);
      for (const resource of statements.flatMap((statement) => statement.resources)) {
        assert.equal(resource, `<${metricsLogs}.Arn>`, name);
      }
    }
  });
});

describe("dashboard", () => {
  function widgetsOf(built: Built): Json[] {
    const dashboards = Object.values(built.template.findResources("AWS::CloudWatch::Dashboard"));
    assert.equal(dashboards.length, 1);
    const properties = dashboards[0]!.Properties as Json;
    assert.equal(properties.DashboardName, "Tether-test");
    return (JSON.parse(render(properties.DashboardBody)) as { widgets: Json[] }).widgets;
  }
  const metricNames = (widget: Json): string[] =>
    (((widget.properties as Json).metrics as unknown[][] | undefined) ?? []).map((metric) =>
      metric.filter((part) => typeof part === "string").join(" "),
    );

  test("the dashboard shows connections, request rate, ack and round-trip latency, consumer lag, dead letters, lease events and event-loop lag", () => {
    const widgets = widgetsOf(build());
    const byTitle = (title: RegExp): string[] => {
      const widget = widgets.find((candidate) => title.test(String((candidate.properties as Json).title)));
      assert.ok(widget, String(title));
      return metricNames(widget);
    };
    const has = (names: string[], part: string) =>
      assert.ok(
        names.some((name) => name.includes(part)),
        part,
      );
    has(byTitle(/^Device connections/), "ActiveFlowCount");
    has(byTitle(/^Device connections/), "tether_edge_connections");
    has(byTitle(/^Requests per minute/), "tether_edge_requests_total");
    has(byTitle(/^Requests per minute/), "tether_worker_handled_total");
    has(byTitle(/^Ack and round-trip latency/), "tether_edge_ack_latency_seconds");
    has(byTitle(/^Ack and round-trip latency/), "tether_edge_reply_latency_seconds");
    has(byTitle(/^Consumer lag/), "SumOffsetLag");
    has(byTitle(/^Consumer lag/), "tether_worker_consumer_lag");
    has(byTitle(/^Dead letters/), "tether_worker_dead_lettered_total");
    has(byTitle(/^Reply slot leases/), "tether_edge_lease_losses_total");
    has(byTitle(/^Reply slot leases/), "tether_edge_lease_renewals_total");
    has(byTitle(/^Event-loop lag/), "nodejs_eventloop_lag_p99_seconds");
    const status = widgets.find((widget) => widget.type === "alarm");
    assert.ok(status, "an alarm status widget");
    assert.equal(((status.properties as Json).alarms as unknown[]).length, alarmsOf(build()).length);
  });

  test("every metric the dashboard and the alarms read from the Tether namespace is one the services export", () => {
    const sources = [
      "services/edge/metrics.ts",
      "services/worker/metrics.ts",
      "services/admin/metrics.ts",
      "shared/telemetry/metrics.ts",
      "node_modules/prom-client/lib/metrics/eventLoopLag.js",
    ]
      .map((path) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8"))
      .join("\n");
    const built = build();
    const fromDashboard = widgetsOf(built)
      .flatMap((widget) => ((widget.properties as Json).metrics as unknown[][] | undefined) ?? [])
      .filter((metric) => metric[0] === "Tether")
      .map((metric) => String(metric[1]));
    const fromAlarms = alarmsOf(built)
      .flatMap(metricsOfAlarm)
      .filter((metric) => metric.Namespace === "Tether")
      .map((metric) => String(metric.MetricName));
    const names = [...new Set([...fromDashboard, ...fromAlarms])];
    assert.ok(names.length >= 10, names.join(", "));
    for (const name of names) assert.ok(sources.includes(`"${name}"`) || sources.includes(`'${name}'`), name);
  });
});

describe("synth", () => {
  test("the default app builds the image from the repository, staging a context without node_modules or .git", () => {
    const outdir = mkdtempSync(join(tmpdir(), "tether-cdk-"));
    try {
      const { app } = createApp({ context: { env: "assets", region: "eu-west-1" }, outdir, builtinValidation: false });
      const started = Date.now();
      app.synth();
      const elapsed = Date.now() - started;
      const staged = readdirSync(outdir).filter((name) => name.startsWith("asset."));
      const image = staged.find((name) => existsSync(join(outdir, name, "Dockerfile")));
      assert.ok(image, `an image asset among ${staged.join(", ")}`);
      const entries = readdirSync(join(outdir, image));
      for (const absent of ["node_modules", ".git", "cdk.out", "dist", "test", "infra"]) {
        assert.ok(!entries.includes(absent), `${absent} is not in the build context`);
      }
      for (const present of ["package.json", "package-lock.json", "shared", "services", "scripts"]) {
        assert.ok(entries.includes(present), `${present} is in the build context`);
      }
      assert.ok(elapsed < 30_000, `synth took ${elapsed} ms`);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
