import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { Writable } from "node:stream";
import { describe, type TestContext, test } from "node:test";
import { pino } from "pino";
import { type AdminApp, type AdminDeps, buildApp } from "../../../services/admin/app.ts";
import { type ApiErrorCode, ApiErrorStatus, apiErrorCodes } from "../../../services/admin/errors.ts";
import { MemoryBroker, partitionForKey, tetherTopics } from "../../../shared/broker/index.ts";
import { resourceNames } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { Header } from "../../../shared/records/index.ts";
import { MemoryRegistry } from "../../../shared/registry/index.ts";
import type { Registry } from "../../../shared/registry/types.ts";
import { bearer, firstMessage } from "./helpers.ts";

const TOKEN = "test-admin-token-0123456789";
const auth = bearer(TOKEN);
const MAX_EDGES = 8;
const WORK_PARTITIONS = 12;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Fixture {
  readonly app: AdminApp;
  readonly broker: MemoryBroker;
  readonly registry: MemoryRegistry;
  readonly names: ReturnType<typeof resourceNames>;
  /** The clock both the registry and the app read; tests move it. */
  readonly clock: { now: number };
}

async function setup(t: TestContext, overrides: Partial<AdminDeps> = {}): Promise<Fixture> {
  const clock = { now: 1_700_000_000_000 };
  const names = resourceNames("");
  const broker = new MemoryBroker();
  const admin = broker.admin();
  await admin.ensureTopics(tetherTopics({ names, maxEdges: MAX_EDGES, workPartitions: WORK_PARTITIONS }));
  const registry = new MemoryRegistry({ now: () => clock.now });
  const producer = broker.producer();
  await producer.connect();
  const app = await buildApp({
    registry,
    producer,
    admin,
    names,
    maxEdges: MAX_EDGES,
    adminToken: TOKEN,
    logger: silentLogger(),
    now: () => clock.now,
    defaultMetrics: false,
    ...overrides,
  });
  t.after(async () => {
    await app.close();
    await producer.close();
    await admin.close();
    await registry.close();
  });
  return { app, broker, registry, names, clock };
}

/** An edge holding `slot` with a live lease, and `deviceIds` connected to it. */
async function edgeWithDevices(
  fixture: Fixture,
  edgeId: string,
  slot: number,
  deviceIds: readonly string[],
  leaseMs = 10_000,
): Promise<void> {
  await fixture.registry.leases.acquire({ slot, edgeId, host: `${edgeId}.local:3000`, leaseMs });
  for (const deviceId of deviceIds) {
    await fixture.registry.connections.claim({
      deviceId,
      edgeId,
      slot,
      connId: `${edgeId}-${deviceId}-conn`,
      connectedAt: fixture.clock.now,
    });
  }
}

function assertError(response: { statusCode: number; json(): unknown }, code: ApiErrorCode): void {
  const body = response.json() as Record<string, unknown>;
  assert.equal(response.statusCode, ApiErrorStatus[code], `status for ${code}: ${JSON.stringify(body)}`);
  assert.equal(body.code, code);
  assert.equal(body.statusCode, ApiErrorStatus[code]);
  assert.equal(typeof body.message, "string");
  assert.deepEqual(Object.keys(body).sort(), ["code", "message", "statusCode"]);
}

describe("authentication", () => {
  test("a /v1 request without an Authorization header is 401 unauthorized", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({ method: "GET", url: "/v1/edges" });
    assertError(response, "unauthorized");
  });

  test("a /v1 request with the wrong token is 401 unauthorized", async (t) => {
    const { app } = await setup(t);
    for (const authorization of [`Bearer ${TOKEN}x`, "Bearer short", `Basic ${TOKEN}`, TOKEN, "Bearer", ""]) {
      const response = await app.inject({ method: "GET", url: "/v1/edges", headers: { authorization } });
      assertError(response, "unauthorized");
    }
  });

  test("a /v1 request with the right token gets through", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({ method: "GET", url: "/v1/edges", headers: auth });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { edges: [] });
  });

  test("an unauthenticated push is refused before anything reaches the broker", async (t) => {
    const fixture = await setup(t);
    const response = await fixture.app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      payload: { type: "note", body: 1 },
    });
    assertError(response, "unauthorized");
    const lag = await fixture.broker.admin().groupLag("nobody", fixture.names.downlinkTopic);
    assert.equal(lag, 0);
  });

  test("health, readiness, metrics and the API docs need no token", async (t) => {
    const { app } = await setup(t);
    for (const url of ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]) {
      const response = await app.inject({ method: "GET", url });
      assert.equal(response.statusCode, 200, url);
    }
  });

  test("the bearer token never reaches the log", async (t) => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = pino({ level: "trace" }, sink);
    const { app } = await setup(t, { logger });
    await app.inject({ method: "GET", url: "/v1/edges", headers: auth });
    await app.inject({ method: "GET", url: "/v1/devices/nobody", headers: auth });
    assert.ok(lines.length > 0, "requests are logged at trace level");
    const text = lines.join("");
    assert.ok(!text.includes(TOKEN), "token appears in the log");
  });
});

describe("GET /v1/edges", () => {
  test("lists only edges whose lease is live, with their lease fields and connection counts", async (t) => {
    const fixture = await setup(t);
    const { registry, clock, app } = fixture;
    await registry.leases.acquire({ slot: 3, edgeId: "edge-b", host: "10.0.0.2", leaseMs: 60_000 });
    const startedB = clock.now;
    await registry.leases.acquire({ slot: 1, edgeId: "edge-a", host: "10.0.0.1", leaseMs: 60_000 });
    await registry.leases.acquire({ slot: 2, edgeId: "edge-dead", host: "10.0.0.9", leaseMs: 1_000 });
    clock.now += 5_000;
    await registry.leases.renew(1, "edge-a", 60_000, 17);

    const response = await app.inject({ method: "GET", url: "/v1/edges", headers: auth });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), {
      edges: [
        {
          edgeId: "edge-a",
          slot: 1,
          host: "10.0.0.1",
          startedAt: startedB,
          leaseUntil: clock.now + 60_000,
          connections: 17,
        },
        {
          edgeId: "edge-b",
          slot: 3,
          host: "10.0.0.2",
          startedAt: startedB,
          leaseUntil: startedB + 60_000,
          connections: null,
        },
      ],
    });
  });
});

describe("GET /v1/devices/:deviceId", () => {
  test("a device that never connected is 404 device_not_found", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({ method: "GET", url: "/v1/devices/ghost", headers: auth });
    assertError(response, "device_not_found");
  });

  test("a device on an edge with a live lease is online, with its connection", async (t) => {
    const fixture = await setup(t);
    const connectedAt = fixture.clock.now;
    await edgeWithDevices(fixture, "edge-a", 2, ["meter:7"]);
    const response = await fixture.app.inject({ method: "GET", url: "/v1/devices/meter:7", headers: auth });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), {
      deviceId: "meter:7",
      online: true,
      edgeId: "edge-a",
      slot: 2,
      connId: "edge-a-meter:7-conn",
      connectedAt,
      epoch: (await fixture.registry.connections.get("meter:7"))?.epoch,
      protocol: "ndjson",
    });
  });

  test("a device whose edge's lease expired is 200 with online false and the last connection", async (t) => {
    const fixture = await setup(t);
    await edgeWithDevices(fixture, "edge-a", 2, ["d1"], 1_000);
    fixture.clock.now += 1_000;
    const response = await fixture.app.inject({ method: "GET", url: "/v1/devices/d1", headers: auth });
    assert.equal(response.statusCode, 200);
    const body = response.json() as { online: boolean; edgeId: string };
    assert.equal(body.online, false);
    assert.equal(body.edgeId, "edge-a");
  });

  test("a device whose slot was taken over by another edge is offline", async (t) => {
    const fixture = await setup(t);
    await edgeWithDevices(fixture, "edge-a", 2, ["d1"], 1_000);
    fixture.clock.now += 2_000;
    await fixture.registry.leases.acquire({ slot: 2, edgeId: "edge-b", host: "b", leaseMs: 60_000 });
    const response = await fixture.app.inject({ method: "GET", url: "/v1/devices/d1", headers: auth });
    assert.equal((response.json() as { online: boolean }).online, false);
  });

  test("after the device moves to another edge the lookup names the new edge", async (t) => {
    const fixture = await setup(t);
    await edgeWithDevices(fixture, "edge-a", 0, ["d1"]);
    await edgeWithDevices(fixture, "edge-b", 5, ["d1"]);
    const response = await fixture.app.inject({ method: "GET", url: "/v1/devices/d1", headers: auth });
    const body = response.json() as { online: boolean; edgeId: string; slot: number; connId: string };
    assert.equal(body.online, true);
    assert.equal(body.edgeId, "edge-b");
    assert.equal(body.slot, 5);
    assert.equal(body.connId, "edge-b-d1-conn");
  });

  test("device ids outside the protocol's alphabet or length are 400 validation_failed", async (t) => {
    const { app } = await setup(t);
    for (const id of ["has%20space", "slash%2Fin", "x".repeat(129), "%C3%A9t%C3%A9"]) {
      const response = await app.inject({ method: "GET", url: `/v1/devices/${id}`, headers: auth });
      assertError(response, "validation_failed");
    }
  });

  test("a device id of the full 128 characters is accepted", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({ method: "GET", url: `/v1/devices/${"a".repeat(128)}`, headers: auth });
    assertError(response, "device_not_found");
  });
});

describe("GET /v1/edges/:edgeId/devices", () => {
  test("pages through one edge's devices with the cursor, each device once", async (t) => {
    const fixture = await setup(t);
    const mine = ["d1", "d2", "d3", "d4", "d5"];
    await edgeWithDevices(fixture, "edge-a", 0, mine);
    await edgeWithDevices(fixture, "edge-b", 1, ["other1", "other2"]);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const query = cursor === undefined ? "limit=2" : `limit=2&cursor=${encodeURIComponent(cursor)}`;
      const response = await fixture.app.inject({
        method: "GET",
        url: `/v1/edges/edge-a/devices?${query}`,
        headers: auth,
      });
      assert.equal(response.statusCode, 200);
      const page = response.json() as {
        edgeId: string;
        items: { deviceId: string; connId: string; slot: number; epoch: number; connectedAt: number }[];
        cursor?: string;
      };
      assert.equal(page.edgeId, "edge-a");
      assert.ok(page.items.length <= 2);
      for (const item of page.items) {
        assert.equal(item.slot, 0);
        assert.equal(item.connId, `edge-a-${item.deviceId}-conn`);
        assert.equal(item.epoch, 1);
        assert.equal(item.connectedAt, fixture.clock.now);
        seen.push(item.deviceId);
      }
      cursor = page.cursor;
      pages += 1;
    } while (cursor !== undefined && pages < 10);
    assert.equal(pages, 3);
    assert.deepEqual(seen.sort(), mine);
  });

  test("limit defaults to 100", async (t) => {
    const fixture = await setup(t);
    const ids = Array.from({ length: 130 }, (_, i) => `dev-${String(i).padStart(3, "0")}`);
    await edgeWithDevices(fixture, "edge-a", 0, ids);
    const response = await fixture.app.inject({ method: "GET", url: "/v1/edges/edge-a/devices", headers: auth });
    const page = response.json() as { items: unknown[]; cursor?: string };
    assert.equal(page.items.length, 100);
    assert.equal(typeof page.cursor, "string");
  });

  test("an edge with no devices gives an empty last page", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({ method: "GET", url: "/v1/edges/edge-z/devices", headers: auth });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { edgeId: "edge-z", items: [] });
  });

  test("a limit outside 1..1000, an unknown parameter or a bad edge id is 400 validation_failed", async (t) => {
    const { app } = await setup(t);
    for (const url of [
      "/v1/edges/edge-a/devices?limit=0",
      "/v1/edges/edge-a/devices?limit=1001",
      "/v1/edges/edge-a/devices?limit=ten",
      "/v1/edges/edge-a/devices?limit=2.5",
      "/v1/edges/edge-a/devices?offset=3",
      "/v1/edges/edge%20a/devices",
    ]) {
      const response = await app.inject({ method: "GET", url, headers: auth });
      assertError(response, "validation_failed");
    }
  });

  test("a malformed cursor is 400 bad_request", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({
      method: "GET",
      url: "/v1/edges/edge-a/devices?cursor=not-a-cursor",
      headers: auth,
    });
    assertError(response, "bad_request");
  });
});

describe("POST /v1/devices/:deviceId/messages", () => {
  test("writes a DownlinkRecord keyed by the device id to the downlink topic and answers 202", async (t) => {
    const fixture = await setup(t);
    const deviceId = "thermo-1";
    const createdAt = fixture.clock.now;
    const response = await fixture.app.inject({
      method: "POST",
      url: `/v1/devices/${deviceId}/messages`,
      headers: auth,
      payload: { type: "config.update", body: { setpoint: 21.5, modes: ["eco", null] }, ttlSeconds: 600 },
    });
    assert.equal(response.statusCode, 202);
    const answer = response.json() as { messageId: string; online: boolean; expiresAt: number };
    assert.match(answer.messageId, UUID);
    assert.equal(answer.online, false);
    assert.equal(answer.expiresAt, createdAt + 600_000);

    const partition = partitionForKey(deviceId, WORK_PARTITIONS);
    const message = await firstMessage(t, fixture.broker, fixture.names.downlinkTopic, partition);
    assert.equal(message.key, deviceId);
    const record = JSON.parse(message.value.toString("utf8")) as Record<string, unknown>;
    assert.equal(record.deviceId, deviceId);
    assert.equal(record.messageId, answer.messageId);
    assert.equal(record.type, "config.update");
    assert.deepEqual(record.body, { setpoint: 21.5, modes: ["eco", null] });
    assert.equal(record.createdAt, createdAt);
    assert.equal(record.expiresAt, createdAt + 600_000);
    assert.deepEqual(Object.keys(record).sort(), ["body", "createdAt", "deviceId", "expiresAt", "messageId", "type"]);
    assert.equal(message.headers[Header.Device], deviceId);
    assert.equal(message.headers[Header.MessageId], answer.messageId);
  });

  test("the push expires after a day when no ttl is given, and reports an online device", async (t) => {
    const fixture = await setup(t);
    await edgeWithDevices(fixture, "edge-a", 1, ["d1"]);
    const response = await fixture.app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      headers: auth,
      payload: { type: "hello", body: null },
    });
    assert.equal(response.statusCode, 202);
    const answer = response.json() as { online: boolean; expiresAt: number };
    assert.equal(answer.online, true);
    assert.equal(answer.expiresAt, fixture.clock.now + 86_400_000);
  });

  test("each push gets its own message id", async (t) => {
    const { app } = await setup(t);
    const ids = new Set<string>();
    for (let i = 0; i < 5; i += 1) {
      const response = await app.inject({
        method: "POST",
        url: "/v1/devices/d1/messages",
        headers: auth,
        payload: { type: "n", body: i },
      });
      ids.add((response.json() as { messageId: string }).messageId);
    }
    assert.equal(ids.size, 5);
  });

  test("unknown, missing or out-of-range fields are 400 validation_failed", async (t) => {
    const { app } = await setup(t);
    for (const payload of [
      { type: "a", body: 1, priority: "high" },
      { type: "a" },
      { body: 1 },
      { type: "has space", body: 1 },
      { type: "", body: 1 },
      { type: "a", body: 1, ttlSeconds: 0 },
      { type: "a", body: 1, ttlSeconds: 7 * 24 * 3600 + 1 },
      { type: "a", body: 1, ttlSeconds: 1.5 },
      { type: "a", body: 1, ttlSeconds: "60" },
      [],
    ]) {
      const response = await app.inject({ method: "POST", url: "/v1/devices/d1/messages", headers: auth, payload });
      assertError(response, "validation_failed");
    }
  });

  test("a ttl of exactly seven days is accepted", async (t) => {
    const fixture = await setup(t);
    const response = await fixture.app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      headers: auth,
      payload: { type: "a", body: 1, ttlSeconds: 7 * 24 * 3600 },
    });
    assert.equal(response.statusCode, 202);
    assert.equal((response.json() as { expiresAt: number }).expiresAt, fixture.clock.now + 7 * 24 * 3600 * 1000);
  });

  test("malformed JSON is 400 bad_request", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      headers: { ...auth, "content-type": "application/json" },
      payload: '{"type": "a", "body": ',
    });
    assertError(response, "bad_request");
  });

  test("a body that is not JSON is 415 unsupported_media_type", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      headers: { ...auth, "content-type": "text/plain" },
      payload: "hello",
    });
    assertError(response, "unsupported_media_type");
  });

  test("a body over 64 KiB is 413 payload_too_large", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      headers: auth,
      payload: { type: "blob", body: "x".repeat(64 * 1024) },
    });
    assertError(response, "payload_too_large");
  });

  test("a push whose frame would exceed the devices' frame limit is 413 payload_too_large", async (t) => {
    const fixture = await setup(t, { maxFrameBytes: 1024 });
    const response = await fixture.app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      headers: auth,
      payload: { type: "blob", body: "x".repeat(1000) },
    });
    assertError(response, "payload_too_large");
    const small = await fixture.app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      headers: auth,
      payload: { type: "blob", body: "x".repeat(900) },
    });
    assert.equal(small.statusCode, 202);
  });

  test("a broker that cannot take the push is 503 unavailable", async (t) => {
    const fixture = await setup(t);
    fixture.broker.fail(true);
    const response = await fixture.app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      headers: auth,
      payload: { type: "a", body: 1 },
    });
    assertError(response, "unavailable");
  });

  test("a registry that cannot answer is 503 unavailable and nothing is produced", async (t) => {
    const fixture = await setup(t);
    await fixture.registry.close();
    const response = await fixture.app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      headers: auth,
      payload: { type: "a", body: 1 },
    });
    assertError(response, "unavailable");
    assert.equal(await fixture.broker.admin().groupLag("nobody", fixture.names.downlinkTopic), 0);
  });
});

describe("DELETE /v1/devices/:deviceId/connection", () => {
  test("writes a close control record to the owning edge's replies partition and answers 202", async (t) => {
    const fixture = await setup(t);
    await edgeWithDevices(fixture, "edge-a", 6, ["pump-3"]);
    const response = await fixture.app.inject({
      method: "DELETE",
      url: "/v1/devices/pump-3/connection",
      headers: auth,
    });
    assert.equal(response.statusCode, 202);
    assert.deepEqual(response.json(), { deviceId: "pump-3", edgeId: "edge-a", connId: "edge-a-pump-3-conn" });

    const message = await firstMessage(t, fixture.broker, fixture.names.repliesTopic, 6);
    assert.equal(message.partition, 6);
    assert.equal(message.key, "pump-3");
    assert.deepEqual(JSON.parse(message.value.toString("utf8")), {
      op: "close",
      deviceId: "pump-3",
      connId: "edge-a-pump-3-conn",
      reason: "kicked",
    });
    assert.equal(message.headers[Header.Kind], "control");
    assert.equal(message.headers[Header.Device], "pump-3");
    assert.equal(message.headers[Header.Conn], "edge-a-pump-3-conn");
  });

  test("a device with no record is 404 device_not_found", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({ method: "DELETE", url: "/v1/devices/ghost/connection", headers: auth });
    assertError(response, "device_not_found");
  });

  test("a device whose edge is gone is 404 device_offline and nothing is produced", async (t) => {
    const fixture = await setup(t);
    await edgeWithDevices(fixture, "edge-a", 6, ["d1"], 1_000);
    fixture.clock.now += 5_000;
    const response = await fixture.app.inject({ method: "DELETE", url: "/v1/devices/d1/connection", headers: auth });
    assertError(response, "device_offline");
    assert.equal(await fixture.broker.admin().groupLag("nobody", fixture.names.repliesTopic), 0);
  });

  test("a broker that cannot take the kick is 503 unavailable", async (t) => {
    const fixture = await setup(t);
    await edgeWithDevices(fixture, "edge-a", 6, ["d1"]);
    fixture.broker.fail(true);
    const response = await fixture.app.inject({ method: "DELETE", url: "/v1/devices/d1/connection", headers: auth });
    assertError(response, "unavailable");
  });
});

describe("health and readiness", () => {
  test("healthz answers ok", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({ method: "GET", url: "/healthz" });
    assert.deepEqual(response.json(), { status: "ok" });
  });

  test("readyz is 200 when the registry and the broker answer", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({ method: "GET", url: "/readyz" });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { ready: true, checks: { registry: "ok", broker: "ok" } });
  });

  test("readyz is 503 naming the registry when its ping fails", async (t) => {
    const fixture = await setup(t);
    await fixture.registry.close();
    const response = await fixture.app.inject({ method: "GET", url: "/readyz" });
    assert.equal(response.statusCode, 503);
    assert.deepEqual(response.json(), { ready: false, checks: { registry: "failed", broker: "ok" } });
  });

  test("readyz is 503 naming the broker when its ping fails", async (t) => {
    const fixture = await setup(t);
    fixture.broker.fail(true);
    const response = await fixture.app.inject({ method: "GET", url: "/readyz" });
    assert.equal(response.statusCode, 503);
    assert.deepEqual(response.json(), { ready: false, checks: { registry: "ok", broker: "failed" } });
  });

  test("readyz fails a ping that hangs past the dependency timeout", async (t) => {
    const registry = new MemoryRegistry();
    const hanging: Registry = {
      kind: "memory",
      connections: registry.connections,
      leases: registry.leases,
      outbox: registry.outbox,
      ping: () => new Promise<void>(() => {}),
      close: () => registry.close(),
    };
    const { app } = await setup(t, { registry: hanging, dependencyTimeoutMs: 50 });
    const response = await app.inject({ method: "GET", url: "/readyz" });
    assert.equal(response.statusCode, 503);
    assert.equal((response.json() as { checks: { registry: string } }).checks.registry, "failed");
  });

  test("readyz skips the broker check when no broker admin is given", async (t) => {
    const { app } = await setup(t, { admin: undefined });
    const response = await app.inject({ method: "GET", url: "/readyz" });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { ready: true, checks: { registry: "ok", broker: "skipped" } });
  });
});

describe("metrics", () => {
  test("counts requests by route template and status code, in a registry of the app's own", async (t) => {
    const first = await setup(t);
    const second = await setup(t);
    await first.app.inject({ method: "GET", url: "/v1/devices/d1", headers: auth });
    await first.app.inject({ method: "GET", url: "/v1/devices/d2", headers: auth });
    await first.app.inject({ method: "GET", url: "/v1/edges" });
    const text = (await first.app.inject({ method: "GET", url: "/metrics" })).body;
    assert.match(
      text,
      /tether_admin_http_requests_total\{method="GET",route="\/v1\/devices\/:deviceId",status_code="404"\} 2/,
    );
    assert.match(text, /tether_admin_http_requests_total\{method="GET",route="\/v1\/edges",status_code="401"\} 1/);
    assert.match(text, /tether_admin_http_request_duration_seconds_bucket\{/);
    assert.ok(!text.includes("d1"), "raw device ids must not become labels");
    const other = (await second.app.inject({ method: "GET", url: "/metrics" })).body;
    assert.ok(!other.includes('route="/v1/devices/:deviceId"'), "apps share no counters");
  });

  test("includes the process metrics by default, unprefixed and labelled with the service", async (t) => {
    const { app } = await setup(t, { defaultMetrics: true });
    const response = await app.inject({ method: "GET", url: "/metrics" });
    assert.match(String(response.headers["content-type"]), /^text\/plain/);
    assert.match(response.body, /^process_cpu_user_seconds_total\{service="admin"\} /m);
    assert.match(response.body, /^nodejs_heap_size_used_bytes\{service="admin"\} /m);
    assert.match(response.body, /^nodejs_eventloop_lag_p99_seconds\{service="admin"\} /m);
    assert.ok(!response.body.includes("tether_admin_process_"), "stock dashboards expect no prefix");
    assert.ok(!response.body.includes("tether_admin_nodejs_"), "stock dashboards expect no prefix");
    assert.match(
      response.body,
      /^tether_build_info\{service="admin",version="\d+\.\d+\.\d+[^"]*",commit="[^"]+",node="v\d+[^"]*"\} 1$/m,
    );
  });

  test("adds its metrics to the process's registry when given one", async (t) => {
    const { Registry } = await import("prom-client");
    const shared = new Registry();
    const { app } = await setup(t, { metrics: shared });
    await app.inject({ method: "GET", url: "/healthz" });
    const text = await shared.metrics();
    assert.match(text, /tether_admin_http_requests_total\{method="GET",route="\/healthz",status_code="200"\} 1/);
  });
});

describe("errors", () => {
  test("an unknown route is 404 not_found", async (t) => {
    const { app } = await setup(t);
    assertError(await app.inject({ method: "GET", url: "/v2/edges", headers: auth }), "not_found");
    assertError(await app.inject({ method: "PUT", url: "/v1/edges", headers: auth }), "not_found");
  });

  test("an unexpected failure is 500 internal without its details", async (t) => {
    const registry = new MemoryRegistry();
    const broken: Registry = {
      kind: "memory",
      connections: {
        ...registry.connections,
        claim: (claim) => registry.connections.claim(claim),
        release: (deviceId, connId) => registry.connections.release(deviceId, connId),
        listByEdge: (edgeId, options) => registry.connections.listByEdge(edgeId, options),
        get: async () => {
          throw new Error("secret internal detail");
        },
      },
      leases: registry.leases,
      outbox: registry.outbox,
      ping: () => registry.ping(),
      close: () => registry.close(),
    };
    const { app } = await setup(t, { registry: broken });
    const response = await app.inject({ method: "GET", url: "/v1/devices/d1", headers: auth });
    assertError(response, "internal");
    assert.ok(!response.body.includes("secret internal detail"));
  });

  test("every error code is documented in docs/admin-api.md with its status", async () => {
    const docs = await readFile(new URL("../../../docs/admin-api.md", import.meta.url), "utf8");
    const rows = docs
      .split("\n")
      .filter((line) => line.startsWith("|"))
      .map((line) => line.split("|").map((cell) => cell.trim()));
    for (const code of apiErrorCodes) {
      const row = rows.find((cells) => cells[1] === `\`${code}\``);
      assert.ok(row !== undefined, `${code} has a row in the error table`);
      assert.equal(row[2], String(ApiErrorStatus[code]), `${code} is documented with ${ApiErrorStatus[code]}`);
    }
  });
});

describe("OpenAPI", () => {
  test("documents every /v1 route with the bearer scheme, and the error shape", async (t) => {
    const { app } = await setup(t);
    const response = await app.inject({ method: "GET", url: "/openapi.json" });
    assert.equal(response.statusCode, 200);
    const spec = response.json() as {
      openapi: string;
      paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>>;
      components: { securitySchemes: Record<string, { scheme: string }> };
    };
    assert.match(spec.openapi, /^3\./);
    assert.equal(spec.components.securitySchemes.bearerAuth?.scheme, "bearer");
    const expected: [string, string][] = [
      ["/v1/edges", "get"],
      ["/v1/edges/{edgeId}/devices", "get"],
      ["/v1/devices/{deviceId}", "get"],
      ["/v1/devices/{deviceId}/messages", "post"],
      ["/v1/devices/{deviceId}/connection", "delete"],
    ];
    for (const [path, method] of expected) {
      const operation = spec.paths[path]?.[method];
      assert.ok(operation !== undefined, `${method} ${path} is documented`);
      assert.deepEqual(operation.security, [{ bearerAuth: [] }]);
      assert.ok("401" in operation.responses);
    }
    assert.ok(spec.paths["/readyz"]?.get !== undefined);
  });

  test("serves the browsable docs at /docs", async (t) => {
    const { app } = await setup(t);
    const page = await app.inject({ method: "GET", url: "/docs/" });
    const landing = page.statusCode === 200 ? page : await app.inject({ method: "GET", url: "/docs" });
    assert.equal(landing.statusCode, 200);
    assert.match(landing.body, /swagger-ui/i);
  });
});

describe("error codes", () => {
  test("the list of codes is closed and each maps to a 4xx or 5xx status", () => {
    assert.ok(apiErrorCodes.length >= 10);
    for (const code of apiErrorCodes) {
      assert.match(code, /^[a-z_]+$/);
      assert.ok(ApiErrorStatus[code] >= 400 && ApiErrorStatus[code] < 600);
    }
  });
});
