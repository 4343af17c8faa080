/**
 * Guarantee: only the newest connection of a device receives, anywhere in the fleet. One
 * deviceId connects 200 times over 3 edges, an attempt every 5 ms (then 25 ms), with abandoned
 * attempts among them: hello sent then the socket left open and ignored, or closed after 150 ms.
 * At the end exactly one connection is open, it was welcomed, the connections table names it,
 * and it gets an answer and a push. Raw devices, hmac, 64 slots.
 *
 * "Newest" is the hello the fleet read last: two hellos sent 5 ms apart to different edges may
 * be read in either order (a busy edge reads its socket later). So the final connection, the one
 * that must end up the owner, is opened once the fleet has answered every earlier attempt; the
 * 199 before it race each other freely.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { type EdgeFleet, report, startEdgeFleet, until } from "../harness/edge-fleet.ts";
import { delay } from "../harness/process.ts";
import type { RawConnection, RawDevice } from "../harness/raw-device.ts";

const ATTEMPTS = 200;
let fleet: EdgeFleet;

before(async () => {
  fleet = await startEdgeFleet({ edges: 3, leaseMs: Number(process.env.TETHER_GUARANTEE_LEASE_MS ?? 3000) });
});
after(() => fleet?.close());

/** Until the edge answered each attempt (welcome, refusal, bye) or its socket closed, plus a margin. */
async function settled(attempts: ReadonlyArray<Promise<RawConnection | undefined>>): Promise<void> {
  const connections = await Promise.all(attempts);
  const answered = (c: RawConnection | undefined) =>
    c === undefined ||
    !c.isOpen ||
    c.welcome !== undefined ||
    c.refusal !== undefined ||
    c.frames.some((f) => f.frame.t === "bye");
  await until(() => connections.every(answered), 30_000, "every earlier attempt answered");
  // A socket the device closed may still have its hello in an edge's queue.
  await delay(500);
}

async function flap(intervalMs: number): Promise<void> {
  const deviceId = `flap-${intervalMs}ms`;
  // Same deviceId, three behaviours: kept and read, hello then ignored, closed after 150 ms.
  const kept = fleet.device(deviceId);
  const ignored = fleet.device(deviceId, { ackPushes: false });
  const brief = fleet.device(deviceId);
  const attempts: Array<Promise<RawConnection | undefined>> = [];
  for (let i = 0; i < ATTEMPTS; i++) {
    if (i === ATTEMPTS - 1) await settled(attempts);
    const port = (fleet.edges[i % fleet.edges.length] as (typeof fleet.edges)[number]).devicePort;
    const kind = i === ATTEMPTS - 1 ? "kept" : (["kept", "ignored", "brief", "kept"][i % 4] as string);
    const device: RawDevice = kind === "kept" ? kept : kind === "ignored" ? ignored : brief;
    attempts.push(
      device.connect(port, { timeoutMs: 0 }).then(
        (connection) => {
          if (kind === "brief") setTimeout(() => connection.socket.destroy(), 150);
          return connection;
        },
        () => undefined,
      ),
    );
    await delay(intervalMs);
  }
  const connections = await Promise.all(attempts);
  const last = connections.at(-1);
  const all = [kept, ignored, brief];
  const openNow = () => all.flatMap((device) => device.openConnections());
  await until(() => openNow().length <= 1, 30_000, "one connection left").catch(() => {});
  // The newest connection may still be waiting for its welcome.
  await until(() => last?.welcome !== undefined || last?.isOpen === false, 10_000, "last welcome").catch(() => {});
  await delay(1000);
  const open = openNow();
  const survivor = open.length === 1 ? open[0] : undefined;
  const record = await fleet.connection(deviceId);
  const framesByKind = (t: string) => all.reduce((sum, device) => sum + device.framesOf(t).length, 0);
  const byeReasons: Record<string, number> = {};
  for (const device of all) {
    for (const received of device.framesOf("bye")) {
      const reason = String(received.frame.reason);
      byeReasons[reason] = (byeReasons[reason] ?? 0) + 1;
    }
  }
  let answered = false;
  let pushed = false;
  if (survivor !== undefined && survivor.welcome !== undefined) {
    const owner = [kept, ignored, brief].find((device) => device.connections.includes(survivor)) as RawDevice;
    owner.request(`final-${intervalMs}`, "echo", { n: intervalMs }, survivor);
    answered = await owner
      .waitFor(() => owner.answeredIds().has(`final-${intervalMs}`), { timeoutMs: 15_000 })
      .then(() => true)
      .catch(() => false);
    const messageId = await fleet.push(deviceId, { hi: intervalMs });
    pushed = await owner
      .waitFor(() => survivor.frames.some((f) => f.frame.t === "push" && f.frame.id === messageId), {
        timeoutMs: 15_000,
      })
      .then(() => true)
      .catch(() => false);
  }
  const figures = {
    intervalMs,
    attempts: ATTEMPTS,
    connectFailures: connections.filter((c) => c === undefined).length,
    welcomes: framesByKind("welcome"),
    refusals: all.reduce((sum, device) => sum + device.connections.filter((c) => c.refusal !== undefined).length, 0),
    byes: byeReasons,
    openAtEnd: open.length,
    survivorIsLast: survivor !== undefined && survivor === last,
    survivorWelcomed: survivor?.welcome !== undefined,
    tableNamesSurvivor: record !== null && survivor?.connId !== undefined && record.connId === survivor.connId,
    tableConnIsOpen: open.some((c) => c.connId === record?.connId),
    lastWelcomed: last?.welcome !== undefined,
    lastOpen: last?.isOpen ?? false,
    answered,
    pushed,
  };
  report("ownership-flapping", figures);
  for (const device of all) device.close();
  assert.equal(open.length, 1, `${open.length} connections open at the end`);
  assert.ok(figures.survivorWelcomed, "the open connection was welcomed");
  assert.ok(
    figures.tableNamesSurvivor,
    `the connections table names ${record?.connId}, the open one is ${survivor?.connId}`,
  );
  assert.ok(answered, "the open connection gets an answer");
  assert.ok(pushed, "the open connection gets a push");
}

it(
  "200 connects of one device at 5 ms intervals with abandoned attempts: one welcomed owner",
  { timeout: 120_000 },
  () => flap(5),
);
it(
  "200 connects of one device at 25 ms intervals with abandoned attempts: one welcomed owner",
  { timeout: 120_000 },
  () => flap(25),
);
