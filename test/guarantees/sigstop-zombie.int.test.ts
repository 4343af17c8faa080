/**
 * Guarantee: two edges never deliver from one slot. An edge frozen (SIGSTOP) for twice its
 * lease under load loses its slot to another edge; after SIGCONT it writes no answer and no
 * ack on its old connections, and no acked answer is lost anywhere. Raw devices, no resend;
 * production shape (3 edges, 64 slots, hmac).
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { report, startEdgeFleet } from "../harness/edge-fleet.ts";
import { delay } from "../harness/process.ts";
import { RawLoad, recoveredByResend } from "./raw-load.ts";

const LEASE_MS = Number(process.env.TETHER_GUARANTEE_LEASE_MS ?? 3000);
const DEVICES = 30;

it("SIGSTOP of an edge for twice its lease while its slot is taken: no answer or ack from it after SIGCONT, nothing acked lost", {
  timeout: 240_000,
}, async () => {
  const fleet = await startEdgeFleet({ edges: 3, leaseMs: LEASE_MS });
  const [frozen, ...others] = fleet.edges;
  assert.ok(frozen !== undefined);
  const frozenSlot = (await fleet.readiness(frozen))?.slot;
  const frozenEdgeId = (await fleet.leases()).find((lease) => lease.slot === frozenSlot)?.edgeId;
  const load = new RawLoad({
    fleet,
    devices: DEVICES,
    devicePrefix: "stop-",
    perDeviceRate: 2,
    // Closed connections come back through the load balancer: the edges that are not frozen.
    edges: () => others,
    request: (seq) => ({ type: "sleep", body: { ms: 300, value: seq } }),
  });
  // A third of the devices on each edge.
  await load.connect((index) => (fleet.edges[index % 3] as typeof frozen).devicePort);
  const onFrozen = load.devices.filter((_, index) => index % 3 === 0);
  load.start();
  await delay(3000);

  const stoppedAt = Date.now();
  fleet.freeze(frozen);
  // While it is frozen, half of its devices give up on it and connect elsewhere (no resend).
  await delay(LEASE_MS / 2);
  for (const [index, device] of onFrozen.entries()) {
    if (index % 2 === 0) await load.move(device, (others[index % others.length] as typeof frozen).devicePort);
  }
  let takenBy: string | undefined;
  let takenAfterMs: number | undefined;
  while (Date.now() - stoppedAt < 2 * LEASE_MS) {
    const lease = (await fleet.leases()).find((row) => row.slot === frozenSlot);
    if (takenBy === undefined && lease !== undefined && lease.edgeId !== frozenEdgeId) {
      takenBy = lease.edgeId;
      takenAfterMs = Date.now() - stoppedAt;
    }
    await delay(200);
  }
  // Adoption is what the guarantee asks for. When no edge adopted the slot, the lease row is
  // taken in the registry as a taker would write it, so that the resumed edge still meets a
  // taken slot and its fencing is measured all the same.
  let registryTake = false;
  if (takenBy === undefined && frozenSlot !== undefined && frozenSlot !== null) {
    await fleet.registry.leases.acquire({ slot: frozenSlot, edgeId: "guarantee-taker", host: "test", leaseMs: 60_000 });
    registryTake = true;
  }
  const contAt = Date.now();
  fleet.thaw(frozen);
  await delay(2 * LEASE_MS);
  await load.stop();
  const left = await load.settle(20_000);
  const tally = load.tally();

  // Every frame that came on a connection to the frozen edge after SIGCONT.
  const late: Record<string, number> = {};
  for (const device of onFrozen) {
    for (const connection of device.connections) {
      if (connection.port !== frozen.devicePort) continue;
      for (const received of connection.frames) {
        if (received.at < contAt) continue;
        const { t, id, reason } = received.frame;
        const kind = t === "bye" ? `bye:${String(reason)}` : t === "error" && id === undefined ? "error-no-id" : t;
        late[kind] = (late[kind] ?? 0) + 1;
      }
    }
  }
  const fromTakenSlot = (late.res ?? 0) + (late.ack ?? 0) + (late.error ?? 0);
  const recovered = await recoveredByResend(load.devices);
  report("sigstop-zombie", {
    frozenSlot,
    takenBy: takenBy ?? "nobody",
    takenAfterMs,
    registryTake,
    framesAfterSigcont: late,
    answersOrAcksAfterSigcont: fromTakenSlot,
    sent: tally.sent,
    acked: tally.acked,
    answered: tally.answered,
    lostAcked: left.length,
    closedByEdge: tally.closedByEdge,
    reconnects: tally.reconnects,
    errors: tally.errors,
    sample: left.slice(0, 5),
    recoveredByResend: recovered,
  });
  load.close();
  assert.ok(takenBy !== undefined, `slot ${frozenSlot} of the frozen edge not taken within ${2 * LEASE_MS} ms`);
  assert.equal(fromTakenSlot, 0, `the resumed edge wrote ${JSON.stringify(late)} after SIGCONT`);
  assert.deepEqual(left, [], `${left.length} of ${tally.acked} acked requests never answered`);
});
