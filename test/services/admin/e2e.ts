/**
 * End to end through the admin API: real edges on real sockets, the worker's push router, and
 * the admin app, over one broker and one registry. The same suite runs on the in-memory
 * adapters (e2e.test.ts) and on Kafka + DynamoDB Local (e2e.int.test.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type AdminApp, buildApp } from "../../../services/admin/app.ts";
import type { Edge } from "../../../services/edge/edge.ts";
import { readWorkerConfig } from "../../../services/worker/config.ts";
import { createWorker, type Worker } from "../../../services/worker/worker.ts";
import type { Broker, BrokerAdmin, Producer } from "../../../shared/broker/types.ts";
import type { CommonConfig } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import type { Registry } from "../../../shared/registry/types.ts";
import { Device, eventually, startEdge } from "../edge/helpers.ts";
import { bearer } from "./helpers.ts";

/** A broker and registry with the topics and tables in place, and how to dispose of them. */
export interface E2eFleet {
  readonly broker: Broker;
  readonly registry: Registry;
  readonly common: CommonConfig;
  /** Environment for the worker's config reader: names, adapters. */
  readonly workerEnv: Readonly<Record<string, string>>;
  close(): Promise<void>;
}

export interface E2eOptions {
  /** Upper bound for one delivery through the broker. */
  readonly deliveryMs: number;
  readonly suiteTimeoutMs: number;
}

const TOKEN = "e2e-admin-token";
const auth = bearer(TOKEN);

export function adminEndToEnd(name: string, makeFleet: () => Promise<E2eFleet>, options: E2eOptions): void {
  const { deliveryMs } = options;

  describe(`admin API end to end (${name})`, { timeout: options.suiteTimeoutMs }, () => {
    let fleet: E2eFleet;
    let worker: Worker;
    let edgeA: { edge: Edge; port: number };
    let edgeB: { edge: Edge; port: number };
    let app: AdminApp;
    let producer: Producer;
    let admin: BrokerAdmin;
    const devices: Device[] = [];

    async function connectDevice(port: number, deviceId: string): Promise<Device> {
      const device = await Device.connect(port);
      devices.push(device);
      const welcome = await device.hello(deviceId);
      assert.equal(welcome.t, "welcome", JSON.stringify(welcome));
      return device;
    }

    async function push(deviceId: string, type: string, body: unknown) {
      const response = await app.inject({
        method: "POST",
        url: `/v1/devices/${deviceId}/messages`,
        headers: auth,
        payload: { type, body, ttlSeconds: 600 },
      });
      assert.equal(response.statusCode, 202, response.body);
      return response.json() as { messageId: string; online: boolean; expiresAt: number };
    }

    async function lookup(deviceId: string) {
      const response = await app.inject({ method: "GET", url: `/v1/devices/${deviceId}`, headers: auth });
      return { statusCode: response.statusCode, body: response.json() as Record<string, unknown> };
    }

    before(async () => {
      fleet = await makeFleet();
      const logger = silentLogger();
      worker = createWorker({
        config: readWorkerConfig({ TETHER_LOG_LEVEL: "silent", ...fleet.workerEnv }),
        logger,
        broker: fleet.broker,
        registry: fleet.registry,
      });
      await worker.start();
      edgeA = await startEdge(fleet, { edgeId: "e2e-edge-a" }, { firstSlot: 0 });
      edgeB = await startEdge(fleet, { edgeId: "e2e-edge-b" }, { firstSlot: 1 });
      producer = fleet.broker.producer();
      await producer.connect();
      admin = fleet.broker.admin();
      app = await buildApp({
        registry: fleet.registry,
        producer,
        admin,
        names: fleet.common.names,
        maxEdges: fleet.common.maxEdges,
        adminToken: TOKEN,
        logger,
        defaultMetrics: false,
      });
    });

    after(async () => {
      for (const device of devices) device.close();
      await app?.close();
      await edgeA?.edge.close();
      await edgeB?.edge.close();
      await worker?.close(2000);
      await producer?.close();
      await admin?.close();
      await fleet?.close();
    });

    test("both edges are listed as live", async () => {
      const response = await app.inject({ method: "GET", url: "/v1/edges", headers: auth });
      const edges = (response.json() as { edges: { edgeId: string; slot: number }[] }).edges;
      const byId = new Map(edges.map((edge) => [edge.edgeId, edge.slot]));
      assert.equal(byId.get("e2e-edge-a"), 0);
      assert.equal(byId.get("e2e-edge-b"), 1);
    });

    test("a push reaches a connected device as a push frame", async () => {
      const device = await connectDevice(edgeA.port, "e2e-online");
      const accepted = await push("e2e-online", "note", { text: "hello", n: 1 });
      assert.equal(accepted.online, true);
      const frame = await device.next((f) => f.t === "push", deliveryMs);
      assert.deepEqual(frame, { t: "push", id: accepted.messageId, type: "note", body: { text: "hello", n: 1 } });
      device.send({ t: "ack", id: accepted.messageId });
    });

    test("a push to an offline device is delivered when it connects", async () => {
      const accepted = await push("e2e-late", "reminder", ["a", 2]);
      assert.equal(accepted.online, false);
      // Let the router park it in the outbox before the device shows up.
      await eventually(
        async () => (await fleet.registry.outbox.list("e2e-late")).length > 0,
        deliveryMs,
        "push parked in the outbox",
      );
      const device = await connectDevice(edgeB.port, "e2e-late");
      const frame = await device.next((f) => f.t === "push", deliveryMs);
      assert.deepEqual(frame, { t: "push", id: accepted.messageId, type: "reminder", body: ["a", 2] });
      device.send({ t: "ack", id: accepted.messageId });
    });

    test("a kick closes the device's connection with bye kicked", async () => {
      const device = await connectDevice(edgeA.port, "e2e-kick");
      const response = await app.inject({ method: "DELETE", url: "/v1/devices/e2e-kick/connection", headers: auth });
      assert.equal(response.statusCode, 202, response.body);
      assert.equal((response.json() as { edgeId: string }).edgeId, "e2e-edge-a");
      const bye = await device.next((f) => f.t === "bye", deliveryMs);
      assert.equal(bye.reason, "kicked");
      await device.waitClosed(deliveryMs);
      await eventually(async () => (await lookup("e2e-kick")).statusCode === 404, deliveryMs, "record released");
      const again = await app.inject({ method: "DELETE", url: "/v1/devices/e2e-kick/connection", headers: auth });
      assert.equal((again.json() as { code: string }).code, "device_not_found");
    });

    test("the lookup names the new edge after the device moves", async () => {
      const first = await connectDevice(edgeA.port, "e2e-mover");
      const before = await lookup("e2e-mover");
      assert.equal(before.body.edgeId, "e2e-edge-a");
      assert.equal(before.body.online, true);

      const second = await connectDevice(edgeB.port, "e2e-mover");
      const bye = await first.next((f) => f.t === "bye", deliveryMs);
      assert.equal(bye.reason, "replaced");
      const moved = await lookup("e2e-mover");
      assert.equal(moved.statusCode, 200);
      assert.equal(moved.body.edgeId, "e2e-edge-b");
      assert.equal(moved.body.slot, 1);
      assert.equal(moved.body.online, true);

      const accepted = await push("e2e-mover", "moved", true);
      const frame = await second.next((f) => f.t === "push", deliveryMs);
      assert.equal(frame.id, accepted.messageId);
      const listA = await app.inject({ method: "GET", url: "/v1/edges/e2e-edge-a/devices", headers: auth });
      const idsA = (listA.json() as { items: { deviceId: string }[] }).items.map((item) => item.deviceId);
      assert.ok(!idsA.includes("e2e-mover"), idsA.join(","));
    });
  });
}
