/**
 * Guarantee: two edges never hold one slot, whatever their wall clocks say. Three edges, two of
 * them with clocks shifted +5 s and -5 s (faketime), 64 slots, a lease shorter than the skew:
 * polling every edge's /readyz slot and the lease table over time, no slot is ever held by two
 * edges at once. 15 s of polling (the default), 60 s with TETHER_GUARANTEE_FULL=1.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { type EdgeReadiness, report, startEdgeFleet } from "../harness/edge-fleet.ts";
import { delay } from "../harness/process.ts";

const SHORT = process.env.TETHER_GUARANTEE_FULL !== "1";
const WATCH_MS = Number(process.env.TETHER_GUARANTEE_WATCH_MS ?? (SHORT ? 15_000 : 60_000));
const LEASE_MS = Number(process.env.TETHER_GUARANTEE_LEASE_MS ?? 3000);

it("edges with clocks +5 s and -5 s apart: no slot held by two edges at once", {
  timeout: WATCH_MS + 120_000,
}, async () => {
  const fleet = await startEdgeFleet({
    edges: 3,
    leaseMs: LEASE_MS,
    edgeSpecs: [{}, { faketime: "+5s" }, { faketime: "-5s" }],
  });
  const names = ["normal", "+5s", "-5s"];
  const edgeIds = new Map<string, string>();
  const overlaps: string[] = [];
  const takeovers: string[] = [];
  const lastHolder = new Map<number, string>();
  const held = new Map<string, Set<number>>();
  let rounds = 0;
  const started = Date.now();
  while (Date.now() - started < WATCH_MS) {
    rounds += 1;
    const [readiness, leases] = await Promise.all([
      Promise.all(fleet.edges.map((edge) => fleet.readiness(edge, 500))),
      fleet.leases(),
    ]);
    const at = Date.now() - started;
    // Which edge says it holds which slot (a frozen or dead edge says nothing).
    const claims = new Map<number, string[]>();
    readiness.forEach((ready: EdgeReadiness | undefined, index) => {
      if (ready?.slot === null || ready?.slot === undefined || ready.status !== "running") return;
      const name = names[index] as string;
      claims.set(ready.slot, [...(claims.get(ready.slot) ?? []), name]);
      held.set(name, (held.get(name) ?? new Set()).add(ready.slot));
    });
    for (const [slot, claimants] of claims) {
      if (claimants.length > 1) overlaps.push(`${at}ms slot ${slot}: readyz of ${claimants.join(" and ")}`);
    }
    for (const lease of leases) {
      const previous = lastHolder.get(lease.slot);
      if (previous !== undefined && previous !== lease.edgeId) takeovers.push(`${at}ms slot ${lease.slot}`);
      lastHolder.set(lease.slot, lease.edgeId);
      // The table names a live holder while another edge still says the slot is its own.
      const holderName =
        names[fleet.edges.findIndex((_, index) => edgeIds.get(names[index] as string) === lease.edgeId)];
      for (const claimant of claims.get(lease.slot) ?? []) {
        if (edgeIds.get(claimant) === undefined) {
          const ready = readiness[names.indexOf(claimant)];
          if (ready !== undefined) edgeIds.set(claimant, lease.edgeId);
          continue;
        }
        if (edgeIds.get(claimant) !== lease.edgeId && lease.leaseUntil > Date.now()) {
          overlaps.push(`${at}ms slot ${lease.slot}: table names ${holderName ?? lease.edgeId}, readyz of ${claimant}`);
        }
      }
    }
    await delay(100);
  }
  const running = fleet.edges.map((edge, index) => `${names[index]}:${edge.running() ? "up" : "exited"}`);
  report("clock-skew", {
    watchMs: WATCH_MS,
    rounds,
    overlaps: overlaps.length,
    firstOverlaps: overlaps.slice(0, 5),
    takeovers: takeovers.length,
    firstTakeovers: takeovers.slice(0, 5),
    slotsHeld: Object.fromEntries([...held].map(([name, slots]) => [name, [...slots]])),
    edges: running,
    exits: fleet.fleet.exits,
  });
  assert.deepEqual(overlaps, [], `${overlaps.length} observations of a slot held by two edges`);
});
