/**
 * Guarantee: the fleet rides out DynamoDB being unreachable for every edge and worker at once
 * (a proxy in front of DynamoDB Local for all of them, in blackhole mode; 8 s by default, 30 s
 * with TETHER_GUARANTEE_FULL=1): no device disconnected, no acked answer lost, answers resume
 * within one lease of the heal. Raw devices, no resend; 3 edges, 64 slots.
 */
import { it } from "node:test";
import { dynamoProxy, report, startEdgeFleet } from "../harness/edge-fleet.ts";
import { useLocalCluster } from "../harness/index.ts";
import { measureOutage } from "./outage.ts";

const SHORT = process.env.TETHER_GUARANTEE_FULL !== "1";
const OUTAGE_MS = Number(process.env.TETHER_GUARANTEE_OUTAGE_MS ?? (SHORT ? 8000 : 30_000));
const LEASE_MS = Number(process.env.TETHER_GUARANTEE_LEASE_MS ?? 3000);

it(`DynamoDB unreachable for the whole fleet for ${OUTAGE_MS} ms: devices stay, nothing acked lost, answers back within a lease`, {
  timeout: OUTAGE_MS + 180_000,
}, async () => {
  const proxy = await dynamoProxy(await useLocalCluster());
  const fleet = await startEdgeFleet({
    edges: 3,
    leaseMs: LEASE_MS,
    edgeSpecs: [0, 1, 2].map(() => ({ dynamodbEndpoint: proxy.endpoint })),
    workerDynamodbEndpoint: proxy.endpoint,
  });
  const result = await measureOutage({
    fleet,
    watched: fleet.edges,
    devicePrefix: "ddb-all-",
    outageMs: OUTAGE_MS,
    fault: () => proxy.blackhole(),
    heal: () => proxy.pass(),
  });
  report("dynamodb-down-fleet", { outageMs: OUTAGE_MS, ...result.figures, proxy: proxy.counts() });
  result.assertAll(LEASE_MS);
});
