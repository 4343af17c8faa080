/**
 * Guarantee: an acked request is answered even when its edge dies with the answer in flight.
 * Production shape (3 edges, 64 reply slots, hmac), raw devices that never resend: the devices
 * of a `kill -9`ed edge reconnect to the other edges and every acked request is answered on
 * the new connection.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { report, startEdgeFleet } from "../harness/edge-fleet.ts";
import { RawLoad, recoveredByResend } from "./raw-load.ts";

const LEASE_MS = Number(process.env.TETHER_GUARANTEE_LEASE_MS ?? 3000);
const DEVICES = 30;
const PER_DEVICE = 3;
const HOLD_MS = 5000;

it("kill -9 of an edge with answers in flight: every acked request answered on the new connection, no resend", {
  timeout: 180_000,
}, async () => {
  const fleet = await startEdgeFleet({ edges: 3, leaseMs: LEASE_MS });
  const [victim, ...survivors] = fleet.edges;
  assert.ok(victim !== undefined);
  const load = new RawLoad({
    fleet,
    devices: DEVICES,
    devicePrefix: "k9-",
    perDeviceRate: 1,
    edges: () => survivors,
    request: (seq) => ({ type: "sleep", body: { ms: HOLD_MS, value: seq } }),
  });
  await load.connect(() => victim.devicePort);
  // Control: the handler answers on an edge nobody harms, so a loss below is the fault's.
  const control = fleet.device("k9-control");
  await control.connect(load.nextPort());
  control.request("c1", "sleep", { ms: 200, value: "control" });
  await control.waitFor(() => control.answeredIds().has("c1"), { timeoutMs: 20_000, what: "control answer" });
  control.close();
  for (const device of load.devices) for (let i = 0; i < PER_DEVICE; i++) load.sendOne(device);
  const expected = DEVICES * PER_DEVICE;
  const ackDeadline = Date.now() + 15_000;
  while (load.tally().acked < expected && Date.now() < ackDeadline) await new Promise((r) => setTimeout(r, 50));
  const ackedBeforeKill = load.tally().acked;
  const answeredBeforeKill = load.tally().answered;
  const killedAt = Date.now();
  await fleet.kill9(victim);
  // The closed connections move to the surviving edges (RawLoad reconnects; nothing is resent).
  const moveDeadline = Date.now() + 30_000;
  while (load.devices.some((d) => d.current?.welcome === undefined || !d.current.isOpen) && Date.now() < moveDeadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const left = await load.settle(HOLD_MS + 3 * LEASE_MS + 30_000);
  const tally = load.tally();
  const onOldConnection = load.devices.reduce(
    (sum, device) =>
      sum + device.frames.filter((f) => f.conn === 0 && (f.frame.t === "res" || f.frame.t === "error")).length,
    0,
  );
  const answerDelays = load.devices
    .flatMap((device) => [...device.ackedIds()].map((id) => device.answerOf(id)?.at))
    .filter((at): at is number => at !== undefined)
    .map((at) => at - killedAt)
    .sort((a, b) => a - b);
  const recovered = await recoveredByResend(load.devices);
  report("kill9-in-flight", {
    acked: ackedBeforeKill,
    expected,
    answeredBeforeKill,
    answered: tally.answered,
    lostAcked: left.length,
    reconnects: tally.reconnects,
    onOldConnection,
    errors: tally.errors,
    firstAnswerAfterKillMs: answerDelays[0],
    lastAnswerAfterKillMs: answerDelays.at(-1),
    sample: left.slice(0, 5),
    recoveredByResend: recovered,
  });
  load.close();
  assert.equal(ackedBeforeKill, expected, "every request acked before the kill");
  assert.deepEqual(left, [], `${left.length} of ${ackedBeforeKill} acked requests never answered`);
});
