/**
 * The admin API against real Kafka and DynamoDB Local: what it writes lands where the worker
 * and the edges read it, and lookups follow ownership as edges claim devices.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type AdminApp, buildApp } from "../../../services/admin/app.ts";
import { partitionForKey, tetherTopics } from "../../../shared/broker/index.ts";
import { createKafkaBroker } from "../../../shared/broker/kafka/index.ts";
import type { Broker, BrokerAdmin, Producer } from "../../../shared/broker/types.ts";
import { type ResourceNames, resourceNames } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { Header } from "../../../shared/records/index.ts";
import { createDynamoRegistry, ensureTables } from "../../../shared/registry/dynamodb/index.ts";
import type { Registry } from "../../../shared/registry/types.ts";
import { localDynamoDbSettings, localKafkaSettings, uniquePrefix, useLocalCluster } from "../../harness/index.ts";
import { bearer, firstMessage } from "./helpers.ts";

const TOKEN = "integration-admin-token";
const auth = bearer(TOKEN);
const MAX_EDGES = 4;
const WORK_PARTITIONS = 3;

describe("admin API on Kafka and DynamoDB Local", { timeout: 180_000 }, () => {
  let app: AdminApp;
  let broker: Broker;
  let admin: BrokerAdmin;
  let producer: Producer;
  let registry: Registry;
  let names: ResourceNames;

  before(async () => {
    const env = await useLocalCluster();
    const logger = silentLogger();
    names = resourceNames(uniquePrefix());
    const kafka = localKafkaSettings(env, "tether-admin-int", { replicationFactor: 1 });
    const dynamodb = localDynamoDbSettings(env);
    broker = createKafkaBroker({ settings: kafka, logger });
    admin = broker.admin();
    await admin.ensureTopics(
      tetherTopics({ names, maxEdges: MAX_EDGES, workPartitions: WORK_PARTITIONS, replicationFactor: 1 }),
    );
    await ensureTables({ settings: dynamodb, names, logger });
    registry = await createDynamoRegistry({ settings: dynamodb, names, logger });
    producer = broker.producer();
    await producer.connect();
    app = await buildApp({
      registry,
      producer,
      admin,
      names,
      maxEdges: MAX_EDGES,
      adminToken: TOKEN,
      logger,
      defaultMetrics: false,
    });
  });

  after(async () => {
    await app?.close();
    await producer?.close();
    await admin?.close();
    await registry?.close();
  });

  test("readiness pings DynamoDB and Kafka and answers 200", async () => {
    const response = await app.inject({ method: "GET", url: "/readyz" });
    assert.equal(response.statusCode, 200, response.body);
    assert.deepEqual(response.json(), { ready: true, checks: { registry: "ok", broker: "ok" } });
  });

  test("a push lands on the downlink partition of its device, as a DownlinkRecord", async (t) => {
    const deviceId = "int-push-device";
    const before = Date.now();
    const response = await app.inject({
      method: "POST",
      url: `/v1/devices/${deviceId}/messages`,
      headers: auth,
      payload: { type: "firmware.available", body: { version: "2.4.1", size: 183_422 }, ttlSeconds: 120 },
    });
    assert.equal(response.statusCode, 202, response.body);
    const answer = response.json() as { messageId: string; online: boolean; expiresAt: number };
    assert.equal(answer.online, false);

    const partition = partitionForKey(deviceId, WORK_PARTITIONS);
    const message = await firstMessage(
      t,
      broker,
      names.downlinkTopic,
      partition,
      (m) => m.headers[Header.MessageId] === answer.messageId,
      60_000,
    );
    assert.equal(message.key, deviceId);
    const record = JSON.parse(message.value.toString("utf8")) as Record<string, unknown>;
    assert.equal(record.deviceId, deviceId);
    assert.equal(record.messageId, answer.messageId);
    assert.equal(record.type, "firmware.available");
    assert.deepEqual(record.body, { version: "2.4.1", size: 183_422 });
    assert.equal(record.expiresAt, answer.expiresAt);
    assert.equal(typeof record.createdAt, "number");
    assert.ok((record.createdAt as number) >= before);
    assert.equal(record.expiresAt, (record.createdAt as number) + 120_000);
    assert.equal(message.headers[Header.Device], deviceId);
  });

  test("a kick lands on the replies partition of the owning edge's slot", async (t) => {
    const deviceId = "int-kick-device";
    await registry.leases.acquire({ slot: 2, edgeId: "int-edge-k", host: "127.0.0.1:3000", leaseMs: 60_000 });
    const { record } = await registry.connections.claim({
      deviceId,
      edgeId: "int-edge-k",
      slot: 2,
      connId: "conn-k-1",
      connectedAt: Date.now(),
    });

    const response = await app.inject({ method: "DELETE", url: `/v1/devices/${deviceId}/connection`, headers: auth });
    assert.equal(response.statusCode, 202, response.body);
    assert.deepEqual(response.json(), { deviceId, edgeId: "int-edge-k", connId: record.connId });

    const message = await firstMessage(t, broker, names.repliesTopic, 2, (m) => m.key === deviceId, 60_000);
    assert.equal(message.partition, 2);
    assert.deepEqual(JSON.parse(message.value.toString("utf8")), {
      op: "close",
      deviceId,
      connId: "conn-k-1",
      reason: "kicked",
    });
    assert.equal(message.headers[Header.Kind], "control");
    assert.equal(message.headers[Header.Device], deviceId);
    assert.equal(message.headers[Header.Conn], "conn-k-1");
    // Nothing went anywhere else: the fresh topic holds exactly this one record.
    assert.equal(await admin.groupLag(`nobody-${names.repliesTopic}`, names.repliesTopic), 1);
  });

  test("a lookup follows the device when a second edge claims it", async () => {
    const deviceId = "int-moving-device";
    await registry.leases.acquire({ slot: 0, edgeId: "int-edge-a", host: "10.0.0.1:3000", leaseMs: 60_000 });
    await registry.leases.acquire({ slot: 1, edgeId: "int-edge-b", host: "10.0.0.2:3000", leaseMs: 60_000 });

    await registry.connections.claim({ deviceId, edgeId: "int-edge-a", slot: 0, connId: "a-1", connectedAt: 1000 });
    const first = await app.inject({ method: "GET", url: `/v1/devices/${deviceId}`, headers: auth });
    assert.deepEqual(first.json(), {
      deviceId,
      online: true,
      edgeId: "int-edge-a",
      slot: 0,
      connId: "a-1",
      connectedAt: 1000,
      epoch: (await registry.connections.get(deviceId))?.epoch,
      protocol: "ndjson",
    });

    await registry.connections.claim({ deviceId, edgeId: "int-edge-b", slot: 1, connId: "b-1", connectedAt: 2000 });
    const second = await app.inject({ method: "GET", url: `/v1/devices/${deviceId}`, headers: auth });
    assert.deepEqual(second.json(), {
      deviceId,
      online: true,
      edgeId: "int-edge-b",
      slot: 1,
      connId: "b-1",
      connectedAt: 2000,
      epoch: (await registry.connections.get(deviceId))?.epoch,
      protocol: "ndjson",
    });
    assert.ok((second.json() as { epoch: number }).epoch > (first.json() as { epoch: number }).epoch);

    const listB = await app.inject({ method: "GET", url: "/v1/edges/int-edge-b/devices", headers: auth });
    const itemsB = (listB.json() as { items: { deviceId: string; epoch: number }[] }).items;
    assert.deepEqual(
      itemsB.map((item) => item.deviceId),
      [deviceId],
    );
    assert.equal(itemsB[0]?.epoch, 2);
    const listA = await app.inject({ method: "GET", url: "/v1/edges/int-edge-a/devices", headers: auth });
    assert.deepEqual((listA.json() as { items: unknown[] }).items, []);

    const edges = await app.inject({ method: "GET", url: "/v1/edges", headers: auth });
    const edgeIds = (edges.json() as { edges: { edgeId: string }[] }).edges.map((edge) => edge.edgeId);
    assert.ok(edgeIds.includes("int-edge-a") && edgeIds.includes("int-edge-b"), edgeIds.join(","));
  });

  test("a record whose edge released its slot reads as offline and cannot be kicked", async () => {
    const deviceId = "int-orphan-device";
    await registry.leases.acquire({ slot: 3, edgeId: "int-edge-gone", host: "10.0.0.3:3000", leaseMs: 60_000 });
    await registry.connections.claim({ deviceId, edgeId: "int-edge-gone", slot: 3, connId: "g-1", connectedAt: 5 });
    await registry.leases.release(3, "int-edge-gone");

    const lookup = await app.inject({ method: "GET", url: `/v1/devices/${deviceId}`, headers: auth });
    assert.equal(lookup.statusCode, 200);
    assert.equal((lookup.json() as { online: boolean }).online, false);
    const kick = await app.inject({ method: "DELETE", url: `/v1/devices/${deviceId}/connection`, headers: auth });
    assert.equal(kick.statusCode, 404);
    assert.equal((kick.json() as { code: string }).code, "device_offline");
  });
});
