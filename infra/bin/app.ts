// The CDK app entry point (cdk.json: `npx tsx infra/bin/app.ts`).
import { createApp } from "../lib/app.ts";
import { InvalidContextError } from "../lib/settings.ts";

try {
  createApp().app.synth();
} catch (error) {
  if (!(error instanceof InvalidContextError)) throw error;
  // The message names every bad value; a stack trace would add nothing.
  process.stderr.write(`${error.message}\n`);
  process.exitCode = 1;
}
