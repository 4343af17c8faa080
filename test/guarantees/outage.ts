/**
 * The measure shared by the DynamoDB outage guarantees: raw devices on every edge under steady
 * load, a fault for `outageMs`, the heal, then what the devices on the watched edges saw.
 */
import assert from "node:assert/strict";
import type { EdgeFleet, FleetProcess } from "../harness/edge-fleet.ts";
import { delay } from "../harness/process.ts";
import { RawLoad, recoveredByResend } from "./raw-load.ts";

export interface OutageOptions {
  readonly fleet: EdgeFleet;
  /** Edges whose devices must not be disconnected. */
  readonly watched: readonly FleetProcess[];
  readonly devicePrefix: string;
  readonly outageMs: number;
  readonly fault: () => void;
  readonly heal: () => void;
  /** Devices per edge (default 10). */
  readonly devicesPerEdge?: number;
}

export interface OutageResult {
  readonly figures: Record<string, unknown>;
  assertAll(leaseMs: number): void;
}

export async function measureOutage(options: OutageOptions): Promise<OutageResult> {
  const { fleet } = options;
  const edges = fleet.edges;
  const load = new RawLoad({
    fleet,
    devices: (options.devicesPerEdge ?? 10) * edges.length,
    devicePrefix: options.devicePrefix,
    perDeviceRate: 2,
  });
  await load.connect((index) => (edges[index % edges.length] as FleetProcess).devicePort);
  const watchedPorts = new Set(options.watched.map((edge) => edge.devicePort));
  const watchedDevices = load.devices.filter((device) => watchedPorts.has(device.connections[0]?.port ?? -1));
  load.start();
  await delay(3000);
  const faultAt = Date.now();
  options.fault();
  await delay(options.outageMs);
  const healAt = Date.now();
  options.heal();
  // Load goes on for a while after the heal, so that resumed answers can be seen.
  await delay(15_000);
  await load.stop();
  const left = await load.settle(20_000);
  const tally = load.tally();

  const disconnected = watchedDevices.filter((device) => device.connections[0]?.closedAt !== undefined);
  const byes: Record<string, number> = {};
  for (const device of watchedDevices) {
    for (const received of device.framesOf("bye")) {
      const reason = String(received.frame.reason);
      byes[reason] = (byes[reason] ?? 0) + 1;
    }
  }
  // First answer after the heal on a watched device's first connection.
  const firstAnswers = watchedDevices
    .map(
      (device) =>
        device.frames.find(
          (received) =>
            received.conn === 0 &&
            received.at >= healAt &&
            (received.frame.t === "res" || received.frame.t === "error"),
        )?.at,
    )
    .filter((at): at is number => at !== undefined)
    .sort((a, b) => a - b);
  // Answers received on the watched connections during the outage (deliveries it kept up).
  const duringOutage = watchedDevices.reduce(
    (sum, device) =>
      sum +
      device.frames.filter(
        (received) =>
          received.conn === 0 && received.at >= faultAt && received.at < healAt && received.frame.t === "res",
      ).length,
    0,
  );
  const ackedDuringOutage = watchedDevices.reduce(
    (sum, device) =>
      sum +
      device.frames.filter((received) => received.at >= faultAt && received.at < healAt && received.frame.t === "ack")
        .length,
    0,
  );
  const resumeMs = firstAnswers.length === 0 ? undefined : (firstAnswers[0] as number) - healAt;
  const allResumedMs = firstAnswers.length === 0 ? undefined : (firstAnswers.at(-1) as number) - healAt;
  const closedAts = disconnected.map((device) => device.connections[0]?.closedAt as number).sort((a, b) => a - b);
  const figures = {
    watchedDevices: watchedDevices.length,
    disconnected: disconnected.length,
    firstDisconnectAfterFaultMs: closedAts.length === 0 ? undefined : (closedAts[0] as number) - faultAt,
    watchedEdgesRunning: options.watched.filter((edge) => edge.running()).length,
    byes,
    sent: tally.sent,
    acked: tally.acked,
    answered: tally.answered,
    lostAcked: left.length,
    ackedDuringOutage,
    answeredDuringOutage: duringOutage,
    devicesAnsweredAfterHeal: firstAnswers.length,
    firstAnswerAfterHealMs: resumeMs,
    lastDeviceResumedAfterHealMs: allResumedMs,
    errors: tally.errors,
    reconnects: tally.reconnects,
    sample: left.slice(0, 5),
  };
  const recovered = await recoveredByResend(load.devices);
  load.close();
  return {
    figures: { ...figures, recoveredByResend: recovered },
    assertAll(leaseMs: number): void {
      assert.equal(disconnected.length, 0, `${disconnected.length} of ${watchedDevices.length} devices disconnected`);
      assert.deepEqual(left, [], `${left.length} of ${tally.acked} acked requests never answered`);
      assert.ok(
        allResumedMs !== undefined && firstAnswers.length === watchedDevices.length && allResumedMs <= leaseMs,
        `answers resumed on ${firstAnswers.length} of ${watchedDevices.length} connections, the last ${allResumedMs} ms after the heal (lease ${leaseMs} ms)`,
      );
    },
  };
}
