// The CDK app entry point (cdk.json: `npx tsx infra/bin/app.ts`).
import { createApp } from "../lib/app.ts";

createApp().app.synth();
