import { RemovalPolicy } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import { acknowledgeWildcardResource } from "./nag.ts";

export interface TablesProps {
  readonly production: boolean;
}

/** Name of the GSI on `connections` that lists one edge's devices. */
export const BY_EDGE_INDEX = "byEdge";

/**
 * The registry tables of the design, plus the example handler's key-value table.
 * On demand, TTL on `expiresAt`, point-in-time recovery on; names chosen by CloudFormation and
 * handed to the services as environment variables.
 */
export class Tables extends Construct {
  /** pk `deviceId`; GSI `byEdge` on `edgeId`. */
  readonly connections: dynamodb.TableV2;
  /** Slot leases: pk `slot` (number). */
  readonly edges: dynamodb.TableV2;
  /** Pending replies and pushes: pk `deviceId`, sk `messageId`. */
  readonly outbox: dynamodb.TableV2;
  /** The example `kv` handlers' backend store: pk `deviceId`, sk `key` (services/worker/examples). */
  readonly kv: dynamodb.TableV2;

  constructor(scope: Construct, id: string, props: TablesProps) {
    super(scope, id);
    const common = {
      billing: dynamodb.Billing.onDemand(),
      timeToLiveAttribute: "expiresAt",
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: props.production,
      removalPolicy: props.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    } as const;

    this.connections = new dynamodb.TableV2(this, "Connections", {
      ...common,
      partitionKey: { name: "deviceId", type: dynamodb.AttributeType.STRING },
      globalSecondaryIndexes: [
        {
          indexName: BY_EDGE_INDEX,
          partitionKey: { name: "edgeId", type: dynamodb.AttributeType.STRING },
          projectionType: dynamodb.ProjectionType.ALL,
        },
      ],
    });
    this.edges = new dynamodb.TableV2(this, "Edges", {
      ...common,
      partitionKey: { name: "slot", type: dynamodb.AttributeType.NUMBER },
    });
    this.outbox = new dynamodb.TableV2(this, "Outbox", {
      ...common,
      partitionKey: { name: "deviceId", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "messageId", type: dynamodb.AttributeType.STRING },
    });
    this.kv = new dynamodb.TableV2(this, "KeyValue", {
      ...common,
      partitionKey: { name: "deviceId", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "key", type: dynamodb.AttributeType.STRING },
    });
  }
}

/**
 * CDK's table grants cover the table's indexes as `<table ARN>/index/*`. `connections` has one
 * index, `byEdge`, so that wildcard names exactly it.
 */
export function acknowledgeConnectionsIndex(role: iam.IRole, tables: Tables): void {
  acknowledgeWildcardResource(
    role,
    `${tables.connections.tableArn}/index/*`,
    "CDK's DynamoDB grant adds <connections table ARN>/index/* for the table's indexes; the only index is byEdge (devices of one edge), so the wildcard names exactly it.",
  );
}
