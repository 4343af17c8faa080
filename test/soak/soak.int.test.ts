/**
 * The fault-and-load suite, short sizes: edges and workers as separate processes on real Kafka
 * and DynamoDB Local, SDK devices and raw devices that never resend through a round-robin
 * balancer, one fault per test. The full sizes run with `npm run soak`.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { useLocalCluster } from "../harness/index.ts";
import { type ControllableCluster, startControllableCluster } from "./kafka-control.ts";
import { describeResult } from "./report.ts";
import type { ScenarioContext } from "./scenarios.ts";
import { scenarios, violations } from "./sizes.ts";

let controllable: Promise<ControllableCluster> | undefined;
after(async () => {
  if (controllable !== undefined) await (await controllable.catch(() => undefined))?.close();
});

async function context(): Promise<ScenarioContext> {
  return {
    cluster: await useLocalCluster(),
    controllable: () => {
      controllable ??= startControllableCluster();
      return controllable;
    },
  };
}

describe("fault and load scenarios (short)", { concurrency: 1 }, () => {
  for (const spec of scenarios) {
    it(`${spec.title}: loses no acked request, not even without resend${spec.noPushLoss ? ", and no push" : ""}`, {
      timeout: 240_000,
    }, async (t) => {
      const result = await spec.run(await context(), spec.short);
      t.diagnostic(describeResult(result));
      const s = result.stats;
      assert.ok(s.sent > 0 && s.answeredOk > 0, "load went through");
      assert.equal(s.lost, 0, `acked requests lost: ${result.notes.join(" | ")}`);
      assert.ok(result.raw.sent > 0 && result.raw.answered > 0, "raw-device load went through");
      assert.equal(result.raw.lostWithoutResend, 0, `acked requests lost without resend: ${result.notes.join(" | ")}`);
      if (spec.noPushLoss) {
        assert.ok(s.pushesSent > 0, "pushes were sent");
        assert.equal(s.pushesLost, 0, "pushes lost");
      }
      assert.deepEqual(violations(spec, result), []);
    });
  }
});
