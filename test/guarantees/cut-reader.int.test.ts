/**
 * Guarantee (protocol 1.1 answer acknowledgements): a device that asked for `ackAnswers` and is
 * cut mid-stream, with answers the edge wrote still unread in its socket buffers (a slow
 * reader), gets every acked request answered on its next connection, without resending.
 * Production shape: 3 edges, 64 slots, hmac.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { report, startEdgeFleet } from "../harness/edge-fleet.ts";
import { delay } from "../harness/process.ts";
import { recoveredByResend } from "./raw-load.ts";

/** Below the edge's per-device in-flight bound; one device's requests are handled in order. */
const REQUESTS = 40;
const HOLD_MS = 100;
/** Each answer carries this much, so that the unread answers fill the socket buffers. */
const VALUE_BYTES = 16 * 1024;

it("a slow reader with ackAnswers cut mid-stream gets every acked answer on its next connection", {
  timeout: 120_000,
}, async () => {
  const fleet = await startEdgeFleet({ edges: 3, leaseMs: Number(process.env.TETHER_GUARANTEE_LEASE_MS ?? 3000) });
  const device = fleet.device("cut-reader", { ackAnswers: true });
  const first = await device.connect((fleet.edges[0] as (typeof fleet.edges)[number]).devicePort);
  assert.ok(first.welcome !== undefined, `not welcomed: ${JSON.stringify(first.refusal)}`);
  const value = "v".repeat(VALUE_BYTES);
  for (let i = 0; i < REQUESTS; i++) device.request(`s${i}`, "sleep", { ms: HOLD_MS, value: `${i}:${value}` });
  await device
    .waitFor(() => device.ackedIds().size === REQUESTS, { timeoutMs: 20_000, what: "every ack" })
    .catch(() => {});
  const acked = device.ackedIds().size;
  // Acks read; the answers come one by one into buffers nobody reads.
  first.pauseReading();
  await delay(REQUESTS * HOLD_MS + 3000);
  const closedByEdgeWhilePaused = !first.isOpen;
  // Mid-stream: read one chunk (its answers are acknowledged), then cut with the rest unread.
  let readChunk = false;
  first.socket.once("data", () => {
    readChunk = true;
    setImmediate(() => first.cut());
  });
  first.resumeReading();
  await Promise.race([first.closed, delay(3000)]);
  if (first.isOpen) first.cut();
  await first.closed;
  const answeredOnFirst = device.answeredIds().size;
  const ackedAnswersOnFirst = first.acksSent.length;
  // The next connection, on another edge; nothing is sent again.
  const second = await device.reconnect((fleet.edges[1] as (typeof fleet.edges)[number]).devicePort);
  await device
    .waitFor(() => device.lostAcked().length === 0, { timeoutMs: 30_000, what: "every acked answer" })
    .catch(() => {});
  const lost = device.lostAcked();
  const onSecond = device.framesOf("res", second).length;
  const recovered = await recoveredByResend([device]);
  report("cut-reader", {
    requests: REQUESTS,
    acked,
    welcomeAckAnswers: first.welcome?.ackAnswers === true,
    closedByEdgeWhilePaused,
    readChunk,
    answeredOnFirst,
    ackedAnswersOnFirst,
    answeredOnSecond: onSecond,
    lostAcked: lost.length,
    sample: lost.slice(0, 5),
    recoveredByResend: recovered,
  });
  device.close();
  assert.equal(acked, REQUESTS, "every request acked");
  assert.deepEqual(lost, [], `${lost.length} of ${acked} acked requests never answered`);
});
