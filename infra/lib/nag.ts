import { Stack, Validations } from "aws-cdk-lib";
// The same flattening cdk-nag applies when it names an IAM5 finding (not re-exported at the top).
import { flattenCfnReference } from "cdk-nag/lib/utils/flatten-cfn-reference.js";
import type { IConstruct } from "constructs";

/**
 * Acknowledges one cdk-nag finding on `scope` (and everything under it). Every acknowledgement
 * in the stack goes through here with its reason; infra/README.md lists them all, and a test
 * checks each has a reason worth reading.
 */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * Acknowledges AwsSolutions-IAM5 for one wildcard resource ARN (which may hold tokens) on the
 * policy under `scope`. cdk-nag 3 matches findings exactly, so the id is derived from the ARN
 * the way cdk-nag derives it, rather than copied from its output.
 */
export function acknowledgeWildcardResource(scope: IConstruct, arn: string, reason: string): void {
  const flattened = flattenCfnReference(Stack.of(scope).resolve(arn));
  acknowledge(scope, `AwsSolutions-IAM5[Resource::${flattened}]`, reason);
}
