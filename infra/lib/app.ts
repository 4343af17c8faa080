import { fileURLToPath } from "node:url";
import { App, Validations } from "aws-cdk-lib";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import * as ecs from "aws-cdk-lib/aws-ecs";
import { AwsSolutionsChecks } from "cdk-nag";
import { settingsFromContext } from "./settings.ts";
import { TetherStack } from "./tether-stack.ts";

/** The repository root: the Docker build context of the services' image. */
export const REPOSITORY_ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface CreateAppOptions {
  /** Context values, as `-c key=value` would give them (tests). */
  readonly context?: Record<string, unknown>;
  readonly outdir?: string;
  /**
   * CDK's built-in CloudFormation validation (on by default). Tests turn it off: starting its
   * engine costs about ten seconds per process, and `cdk synth` runs it anyway.
   */
  readonly builtinValidation?: boolean;
}

/**
 * Builds the CDK app: one `TetherStack` named `Tether-<env>`, checked by the cdk-nag
 * AwsSolutions pack at synth (an unacknowledged finding fails the synth).
 *
 * Context `image` (a registry reference) skips the Docker build; otherwise the image is built
 * from the repository's Dockerfile at deploy time (synth only hashes the build context, which
 * .dockerignore keeps small), for the platform of `cpuArchitecture`. Context `collectorImage`
 * replaces the pinned ADOT collector image of the metrics sidecars.
 */
export function createApp(options: CreateAppOptions = {}): { app: App; stack: TetherStack } {
  const app = new App({
    context: options.context,
    outdir: options.outdir,
    builtinCloudFormationValidation: options.builtinValidation ?? true,
  });
  const settings = settingsFromContext((key) => app.node.tryGetContext(key));
  const imageRef = app.node.tryGetContext("image") as string | undefined;
  // The image is built for the tasks' architecture; a prebuilt one must have been built for it too.
  const platform = settings.cpuArchitecture === "arm64" ? Platform.LINUX_ARM64 : Platform.LINUX_AMD64;
  const image =
    imageRef !== undefined && imageRef !== ""
      ? ecs.ContainerImage.fromRegistry(imageRef)
      : ecs.ContainerImage.fromAsset(REPOSITORY_ROOT, { platform });
  const collectorRef = app.node.tryGetContext("collectorImage") as string | undefined;

  // Region-bound (load balancer access logs need the region's log-delivery principal) but
  // account-agnostic: with the account unresolved, CDK reads availability zones with
  // Fn::GetAZs instead of a look-up, so synth needs no credentials. The CLI passes the
  // configured region as CDK_DEFAULT_REGION; `us-east-1` only stands in for offline synth.
  const region =
    (app.node.tryGetContext("region") as string | undefined) ?? process.env.CDK_DEFAULT_REGION ?? "us-east-1";
  const stack = new TetherStack(app, `Tether-${settings.envName}`, {
    settings,
    image,
    ...(collectorRef !== undefined && collectorRef !== ""
      ? { collectorImage: ecs.ContainerImage.fromRegistry(collectorRef) }
      : {}),
    env: { region },
    description: `Tether (${settings.envName}): device edge fleet, workers and admin API on ECS, MSK and DynamoDB`,
    terminationProtection: settings.production,
    tags: { application: "tether", environment: settings.envName },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}
