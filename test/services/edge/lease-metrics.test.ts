import assert from "node:assert/strict";
import { test } from "node:test";
import { HeldLease } from "../../../services/edge/lease.ts";
import { EdgeMetrics } from "../../../services/edge/metrics.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { MemoryRegistry } from "../../../shared/registry/index.ts";
import { eventually } from "./helpers.ts";

async function count(metrics: EdgeMetrics, series: string): Promise<number> {
  const line = (await metrics.registry.metrics()).split("\n").find((l) => l.startsWith(series));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

test("the edge counts its slot lease's renewals and its loss to another edge", async (t) => {
  const registry = new MemoryRegistry();
  t.after(() => registry.close());
  const metrics = new EdgeMetrics();
  const leaseMs = 300;
  const row = await registry.leases.acquireFree({ slot: 0, edgeId: "edge-a", host: "a", leaseMs });
  let taken = false;
  const lease = new HeldLease(
    {
      leases: registry.leases,
      edgeId: "edge-a",
      leaseMs,
      logger: silentLogger(),
      clock: () => performance.now(),
      onTaken: () => {
        taken = true;
      },
      metrics: metrics.lease,
    },
    row,
    performance.now(),
  );
  t.after(() => lease.release());

  assert.equal(await count(metrics, 'tether_edge_lease_renewals_total{outcome="ok"}'), 0);
  await eventually(async () => (await count(metrics, 'tether_edge_lease_renewals_total{outcome="ok"}')) >= 2, 3000);
  assert.equal(await count(metrics, "tether_edge_lease_losses_total"), 0);

  // Another edge takes the slot over: the next renewal is refused and the lease is lost.
  const current = (await registry.leases.list()).find((l) => l.slot === 0);
  assert.ok(current !== undefined);
  await registry.leases.takeOver({ slot: 0, edgeId: "edge-b", host: "b", leaseMs }, current.version);
  await eventually(() => taken, 3000, "lease lost");
  assert.equal(await count(metrics, "tether_edge_lease_losses_total"), 1);
  assert.equal(await count(metrics, 'tether_edge_lease_renewals_total{outcome="failed"}'), 1);
});
