import { RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { ExistingVpc } from "./settings.ts";

export interface NetworkProps {
  /** Undefined: create a VPC with public and private subnets in `zones` zones. */
  readonly existing: ExistingVpc | undefined;
  /** Address range of a VPC this construct creates. */
  readonly cidr: string;
  /** Availability zones of a VPC this construct creates (the stack must offer as many). */
  readonly zones: number;
  readonly production: boolean;
  readonly logRetention: logs.RetentionDays;
}

/**
 * The VPC the services run in. An existing VPC is imported from ids in context rather than
 * looked up, so `cdk synth` needs no AWS credentials.
 */
export class Network extends Construct {
  readonly vpc: ec2.IVpc;
  /** The VPC's address range, for rules that admit the whole VPC (the internal admin API). */
  readonly vpcCidr: string;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    if (props.existing !== undefined) {
      const existing = props.existing;
      this.vpc = ec2.Vpc.fromVpcAttributes(this, "Vpc", {
        vpcId: existing.vpcId,
        vpcCidrBlock: existing.vpcCidr,
        availabilityZones: [...existing.availabilityZones],
        publicSubnetIds: [...existing.publicSubnetIds],
        privateSubnetIds: [...existing.privateSubnetIds],
      });
      this.vpcCidr = existing.vpcCidr;
      return;
    }

    const flowLogs = new logs.LogGroup(this, "FlowLogs", {
      retention: props.logRetention,
      removalPolicy: props.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    const vpc = new ec2.Vpc(this, "Vpc", {
      ipAddresses: ec2.IpAddresses.cidr(props.cidr),
      maxAzs: props.zones,
      // One NAT gateway per zone in production, so losing a zone does not cut the others' egress.
      natGateways: props.production ? props.zones : 1,
      subnetConfiguration: [
        { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 22 },
        { name: "private", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      flowLogs: {
        all: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
          trafficType: ec2.FlowLogTrafficType.ALL,
        },
      },
    });
    // DynamoDB traffic stays on the AWS network and skips the NAT gateways (and their charges).
    vpc.addGatewayEndpoint("DynamoDb", { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });
    this.vpc = vpc;
    // The literal, not the VPC's CidrBlock attribute: rules built from it stay checkable at synth.
    this.vpcCidr = props.cidr;
  }
}
