/**
 * Guarantee: only the newest connection of a device receives, even when one edge's DynamoDB
 * answers are slow (a proxy delaying them by 400 ms). Raw devices, hmac, 3 edges, 64 slots.
 * - A device welcomed on B starts a new attempt on the slow edge A, gives it up after 150 ms,
 *   and is then welcomed on C: only C's connection stays open and receives.
 * - An older attempt on A that the device left open but ignores, whose claim lands after the
 *   device's newer connection on B was welcomed, does not replace it.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { dynamoProxy, type EdgeFleet, report, startEdgeFleet, until } from "../harness/edge-fleet.ts";
import { useLocalCluster } from "../harness/index.ts";
import { delay } from "../harness/process.ts";
import type { RawConnection, RawDevice } from "../harness/raw-device.ts";

let fleet: EdgeFleet;

before(async () => {
  const proxy = await dynamoProxy(await useLocalCluster());
  proxy.delay(400, "answers");
  fleet = await startEdgeFleet({ edges: 3, leaseMs: 3000, edgeSpecs: [{ dynamodbEndpoint: proxy.endpoint }] });
});
after(() => fleet?.close());

function port(index: number): number {
  return (fleet.edges[index] as (typeof fleet.edges)[number]).devicePort;
}

/** Asks the connection for an answer and a push; true when both arrive on it. */
async function serves(device: RawDevice, connection: RawConnection, deviceId: string, id: string): Promise<boolean> {
  device.request(id, "echo", { id }, connection);
  const answered = await device
    .waitFor(() => connection.frames.some((f) => f.frame.t === "res" && f.frame.id === id), { timeoutMs: 15_000 })
    .then(() => true)
    .catch(() => false);
  const messageId = await fleet.push(deviceId, { id });
  const pushed = await device
    .waitFor(() => connection.frames.some((f) => f.frame.t === "push" && f.frame.id === messageId), {
      timeoutMs: 15_000,
    })
    .then(() => true)
    .catch(() => false);
  return answered && pushed;
}

it("a given-up attempt on a slow edge leaves exactly the newest connection open and receiving", {
  timeout: 90_000,
}, async () => {
  const deviceId = "delay-two-live";
  const device = fleet.device(deviceId);
  const x = await device.connect(port(1));
  assert.ok(x.welcome !== undefined, "X welcomed on B");
  const y = await device.connect(port(0), { timeoutMs: 0 });
  await delay(150);
  y.socket.destroy();
  const z = await device.connect(port(2));
  assert.ok(z.welcome !== undefined, "Z welcomed on C");
  await until(() => device.openConnections().length <= 1, 10_000, "one connection left").catch(() => {});
  await delay(1500);
  const open = device.openConnections();
  const record = await fleet.connection(deviceId);
  const zServes = await serves(device, z, deviceId, "two-live-1");
  const xGotNothing = !x.frames.some((f) => f.frame.t === "res" || f.frame.t === "push");
  report("ownership-delay-two-live", {
    open: open.length,
    zOpen: z.isOpen,
    xOpen: x.isOpen,
    xBye: x.frames.filter((f) => f.frame.t === "bye").map((f) => f.frame.reason),
    tableNamesZ: record?.connId === z.welcome?.connId,
    zServes,
    xGotNothing,
  });
  assert.equal(open.length, 1, "exactly one connection open");
  assert.equal(open[0], z, "the open one is the newest");
  assert.equal(record?.connId, z.welcome?.connId, "the connections table names it");
  assert.ok(zServes, "the newest connection answers requests and receives pushes");
  assert.ok(xGotNothing, "the replaced connection received nothing after the newest was welcomed");
});

it("an ignored older attempt whose claim lands late does not replace the newer welcomed connection", {
  timeout: 90_000,
}, async () => {
  const deviceId = "delay-late-claim";
  const ignored = fleet.device(deviceId, { ackPushes: false });
  const device = fleet.device(deviceId);
  // The older attempt: hello to the slow edge, then ignored (left open, never read by the device).
  const older = await ignored.connect(port(0), { timeoutMs: 0 });
  await delay(20);
  const newer = await device.connect(port(1));
  assert.ok(newer.welcome !== undefined, "the newer attempt is welcomed on B");
  // The older claim lands on the slow edge after this.
  await delay(3000);
  const record = await fleet.connection(deviceId);
  const replaced = newer.frames.some((f) => f.frame.t === "bye");
  const newerServes = await serves(device, newer, deviceId, "late-claim-1");
  report("ownership-delay-late-claim", {
    newerOpen: newer.isOpen,
    newerReplaced: replaced,
    olderOpen: older.isOpen,
    olderFrames: older.frames.map((f) => `${f.frame.t}:${String(f.frame.reason ?? f.frame.code ?? "")}`),
    tableNamesNewer: record?.connId === newer.welcome?.connId,
    newerServes,
  });
  assert.equal(replaced, false, "the newer connection is not replaced");
  assert.ok(newer.isOpen, "the newer connection stays open");
  assert.equal(record?.connId, newer.welcome?.connId, "the connections table names the newer connection");
  assert.ok(newerServes, "the newer connection answers requests and receives pushes");
  assert.ok(
    !older.frames.some((f) => f.frame.t === "welcome" || f.frame.t === "push"),
    "the older attempt is never served",
  );
});
