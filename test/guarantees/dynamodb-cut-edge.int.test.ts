/**
 * Guarantee: an edge that cannot reach DynamoDB degrades instead of failing its devices. One
 * edge of three is cut off from DynamoDB (a proxy in blackhole mode) for 8 s (the short form
 * that CI runs), or 30 s with TETHER_GUARANTEE_FULL=1 (`npm run soak`): none of its devices is
 * disconnected, no acked answer is lost, and answers on its connections resume within one lease
 * of the heal. Raw devices, no resend.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { dynamoProxy, report, startEdgeFleet } from "../harness/edge-fleet.ts";
import { useLocalCluster } from "../harness/index.ts";
import { delay } from "../harness/process.ts";
import { measureOutage } from "./outage.ts";

const SHORT = process.env.TETHER_GUARANTEE_FULL !== "1";
const OUTAGE_MS = Number(process.env.TETHER_GUARANTEE_OUTAGE_MS ?? (SHORT ? 8000 : 30_000));
const LEASE_MS = Number(process.env.TETHER_GUARANTEE_LEASE_MS ?? 3000);

it(`one edge cut off from DynamoDB for ${OUTAGE_MS} ms: its devices stay, nothing acked lost, answers back within a lease`, {
  timeout: OUTAGE_MS + 180_000,
}, async () => {
  const proxy = await dynamoProxy(await useLocalCluster());
  const fleet = await startEdgeFleet({
    edges: 3,
    leaseMs: LEASE_MS,
    edgeSpecs: [{ dynamodbEndpoint: proxy.endpoint }],
  });
  const cut = fleet.edges[0];
  assert.ok(cut !== undefined);
  const result = await measureOutage({
    fleet,
    watched: [cut],
    devicePrefix: "ddb-edge-",
    outageMs: OUTAGE_MS,
    fault: () => proxy.blackhole(),
    heal: () => proxy.pass(),
  });
  report("dynamodb-cut-edge", { outageMs: OUTAGE_MS, ...result.figures, proxy: proxy.counts() });
  await delay(0);
  result.assertAll(LEASE_MS);
});
