/**
 * Several edges in one process over the in-memory broker and registry: slot leases, replies
 * following a device from edge to edge, takeover across edges, a lost lease.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { Edge } from "../../../services/edge/edge.ts";
import { MemoryBroker, tetherTopics } from "../../../shared/broker/index.ts";
import { resourceNames } from "../../../shared/config/index.ts";
import { hasErrorCode, TetherError } from "../../../shared/errors/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { pushFrame, pushRecord } from "../../../shared/records/index.ts";
import { MemoryRegistry } from "../../../shared/registry/index.ts";
import { Device, EchoWorker, eventually, memoryCommon, memoryFleet, sleep, startEdge } from "./helpers.ts";

const cleanup: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

async function replies(edge: Edge, outcome: string): Promise<number> {
  const metric = await edge.metrics.replies.get();
  return metric.values.find((value) => value.labels.outcome === outcome)?.value ?? 0;
}

async function connectDevice(port: number, deviceId: string): Promise<{ device: Device; connId: string }> {
  const device = await Device.connect(port);
  cleanup.push(() => device.close());
  const welcome = await device.hello(deviceId);
  assert.equal(welcome.t, "welcome");
  return { device, connId: String(welcome.connId) };
}

describe("edge fleet routing (memory adapters)", () => {
  it("gives two edges that start on the same slot different slots", async () => {
    const fleet = await memoryFleet(4);
    const a = await startEdge(fleet, {}, { firstSlot: 2 });
    cleanup.push(() => a.edge.close());
    const b = await startEdge(fleet, {}, { firstSlot: 2 });
    cleanup.push(() => b.edge.close());
    assert.equal(a.edge.slot, 2);
    assert.equal(b.edge.slot, 3);
    const lease = await fleet.registry.leases.get(2);
    assert.equal(lease?.edgeId, a.edge.edgeId);
  });

  it("refuses to start when every slot is held by a live edge", async () => {
    const fleet = await memoryFleet(1);
    const a = await startEdge(fleet, { leaseMs: 600 });
    cleanup.push(() => a.edge.close());
    await assert.rejects(startEdge(fleet, { leaseMs: 600 }), (error) => hasErrorCode(error, "conflict"));
  });

  it("delivers an answer on edge B to a device that moved from edge A while its request was in flight", async () => {
    const fleet = await memoryFleet(4);
    const worker = new EchoWorker(fleet.broker, fleet.common.names);
    let release!: () => void;
    worker.gate = new Promise((resolve) => {
      release = resolve;
    });
    await worker.start();
    cleanup.push(() => worker.close());
    const a = await startEdge(fleet, {}, { firstSlot: 0 });
    cleanup.push(() => a.edge.close());
    const b = await startEdge(fleet, {}, { firstSlot: 1 });
    cleanup.push(() => b.edge.close());

    const onA = await connectDevice(a.port, "mover");
    onA.device.send({ t: "req", id: "r1", type: "echo", body: "follow me" });
    await onA.device.nextOfType("ack");
    const onB = await connectDevice(b.port, "mover");
    assert.equal((await onA.device.nextOfType("bye")).reason, "replaced");
    release();
    assert.deepEqual(await onB.device.nextOfType("res"), { t: "res", id: "r1", body: "follow me" });
    assert.equal(await replies(a.edge, "forwarded"), 1);
  });

  it("closes the older connection on another edge with bye replaced", async () => {
    const fleet = await memoryFleet(4);
    const a = await startEdge(fleet, {}, { firstSlot: 0 });
    cleanup.push(() => a.edge.close());
    const b = await startEdge(fleet, {}, { firstSlot: 1 });
    cleanup.push(() => b.edge.close());
    const first = await connectDevice(a.port, "twice");
    const second = await connectDevice(b.port, "twice");
    assert.equal((await first.device.nextOfType("bye")).reason, "replaced");
    await first.device.waitClosed();
    const record = await fleet.registry.connections.get("twice");
    assert.equal(record?.connId, second.connId);
    assert.equal(record?.edgeId, b.edge.edgeId);
  });

  it("forwards a push that reached an edge the device left", async () => {
    const fleet = await memoryFleet(4);
    const a = await startEdge(fleet, {}, { firstSlot: 0 });
    cleanup.push(() => a.edge.close());
    const b = await startEdge(fleet, {}, { firstSlot: 1 });
    cleanup.push(() => b.edge.close());
    const onB = await connectDevice(b.port, "pushed");
    const frame = pushFrame({ messageId: "p1", type: "t", body: 1 });
    const producer = fleet.broker.producer();
    cleanup.push(() => producer.close());
    const push = { deviceId: "pushed", messageId: "p1", expiresAt: Date.now() + 60_000 };
    await producer.send(pushRecord(fleet.common.names.repliesTopic, a.edge.slot, push, frame));
    assert.deepEqual(await onB.device.nextOfType("push"), { t: "push", id: "p1", type: "t", body: 1 });
  });

  it("reports its connection count when it renews the lease", async () => {
    const fleet = await memoryFleet(2);
    const a = await startEdge(fleet, { leaseMs: 600 });
    cleanup.push(() => a.edge.close());
    await connectDevice(a.port, "counted-1");
    await connectDevice(a.port, "counted-2");
    await eventually(async () => (await fleet.registry.leases.get(a.edge.slot))?.connections === 2, 3000, "count");
  });

  it("stops at once with a conflict when another edge took its slot", async () => {
    let skew = 0;
    const broker = new MemoryBroker({ logger: silentLogger() });
    // Only the registry's clock jumps: to it the lease has expired, to the edge it has not.
    const registry = new MemoryRegistry({ now: () => Date.now() + skew });
    const common = memoryCommon(resourceNames(""), 1);
    const admin = broker.admin();
    await admin.ensureTopics(tetherTopics({ names: common.names, maxEdges: 1, workPartitions: 1 }));
    const a = await startEdge({ broker, registry, common }, { leaseMs: 900 });
    cleanup.push(() => a.edge.close());
    const device = await connectDevice(a.port, "conflicted");
    skew = 5_000;
    await registry.leases.acquire({ slot: 0, edgeId: "usurper", host: "elsewhere", leaseMs: 60_000 });
    const error = await a.edge.failed();
    assert.equal(error.code, "conflict");
    assert.equal((await device.device.nextOfType("bye")).reason, "draining");
    assert.equal((await registry.leases.get(0))?.edgeId, "usurper");
  });

  it("stops delivering once its lease cannot be proven, and a successor that watched the row for a lease takes the slot", async () => {
    const broker = new MemoryBroker({ logger: silentLogger() });
    const registry = new MemoryRegistry();
    const common = memoryCommon(resourceNames(""), 1);
    const admin = broker.admin();
    await admin.ensureTopics(tetherTopics({ names: common.names, maxEdges: 1, workPartitions: 2 }));
    const worker = new EchoWorker(broker, common.names);
    let release!: () => void;
    worker.gate = new Promise((resolve) => {
      release = resolve;
    });
    await worker.start();
    cleanup.push(() => worker.close());

    // Edge A's renewals stop reaching the registry (a frozen or cut-off process, as the
    // registry sees it); wall clocks are never compared.
    const leases = registry.leases;
    const renewHeld = leases.renewHeld.bind(leases);
    let cut = false;
    let aEdgeId = "";
    leases.renewHeld = (slot, edgeId, generation, leaseMs, extra) =>
      cut && edgeId === aEdgeId
        ? Promise.reject(new TetherError("unavailable", "registry unreachable"))
        : renewHeld(slot, edgeId, generation, leaseMs, extra);
    let fatal: unknown;
    const a = await startEdge({ broker, registry, common }, { leaseMs: 600 }, { onFatal: (error) => (fatal = error) });
    aEdgeId = a.edge.edgeId;
    cleanup.push(() => a.edge.close());
    const first = await connectDevice(a.port, "orphan");
    first.device.send({ t: "req", id: "lost-1", type: "echo", body: "still delivered" });
    await first.device.nextOfType("ack");

    cut = true;
    await eventually(() => !a.edge.ready, 3000, "A to stop proving its lease");
    const b = await startEdge({ broker, registry, common }, { leaseMs: 600 });
    cleanup.push(() => b.edge.close());
    assert.equal(b.edge.slot, 0);
    release();
    // The answer lands on slot 0, now B's: the device's record names A, whose lease is gone, so
    // B parks it. A writes nothing from the slot it lost.
    await eventually(async () => (await registry.outbox.list("orphan")).length === 1, 3000, "answer parked");
    assert.equal(await replies(a.edge, "delivered"), 0);
    assert.equal(
      first.device.frames.some((frame) => frame.t === "res"),
      false,
    );
    // Once A reaches the registry again it learns the slot is B's, and stops.
    cut = false;
    const error = await a.edge.failed();
    assert.equal(error, fatal);
    assert.equal(error.code, "conflict");
    assert.equal((await first.device.nextOfType("bye")).reason, "draining");
    const again = await connectDevice(b.port, "orphan");
    assert.deepEqual(await again.device.nextOfType("res"), { t: "res", id: "lost-1", body: "still delivered" });
    await sleep(10);
  });

  it("gives the record back to the live connection when an abandoned hello's claim finishes after it", async () => {
    const fleet = await memoryFleet(4);
    const connections = fleet.registry.connections;
    const claim = connections.claim.bind(connections);
    let release = (): void => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let calls = 0;
    let lateClaimDone = false;
    // The first hello's ownership write is slow (a store under a storm); the second is not.
    connections.claim = async (request) => {
      calls += 1;
      if (calls !== 1) return claim(request);
      await held;
      try {
        return await claim(request);
      } finally {
        // Done either way: refused as older than the live hello, or landed and given back.
        lateClaimDone = true;
      }
    };
    const { edge, port } = await startEdge(fleet);
    cleanup.push(() => edge.close());
    const abandoned = await Device.connect(port);
    abandoned.socket.write('{"t":"hello","v":1,"deviceId":"racer"}\n');
    await eventually(() => calls === 1, 3000, "the first claim to start");
    const live = await connectDevice(port, "racer");
    abandoned.socket.destroy();
    await abandoned.closedPromise;
    await sleep(20);
    release();
    await eventually(
      async () => lateClaimDone && (await connections.get("racer"))?.connId === live.connId,
      3000,
      "the record to name the live connection again",
    );
    const record = await connections.get("racer");
    assert.equal(record?.connId, live.connId);
    await sleep(50);
    assert.equal(live.device.closed, false, "the live connection is not replaced");
    assert.deepEqual(
      live.device.frames.filter((frame) => frame.t === "bye"),
      [],
    );
  });
});
