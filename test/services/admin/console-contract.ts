/**
 * The console's /v1 routes, held to one behaviour on both adapters: the in-memory broker and
 * registry (console.test.ts) and Kafka with DynamoDB Local (console.int.test.ts).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { describe, type TestContext, test } from "node:test";
import { type AdminApp, buildApp } from "../../../services/admin/app.ts";
import type { EdgeMetricsReader } from "../../../services/admin/edge-metrics.ts";
import { partitionForKey } from "../../../shared/broker/index.ts";
import type { Broker, BrokerAdmin, IncomingMessage, Producer } from "../../../shared/broker/types.ts";
import type { ResourceNames } from "../../../shared/config/index.ts";
import { createLogger } from "../../../shared/log/index.ts";
import {
  deadLetterRecord,
  Header,
  presenceRecord,
  type RequestRecord,
  replyRouteHeaders,
} from "../../../shared/records/index.ts";
import type { Registry } from "../../../shared/registry/types.ts";
import { bearer, firstMessage } from "./helpers.ts";

export const TOKEN = "console-admin-token";
const auth = bearer(TOKEN);

/** What each test gets: adapters under names of its own, closed by the suite. */
export interface ConsoleAdapters {
  readonly broker: Broker;
  readonly admin: BrokerAdmin;
  readonly producer: Producer;
  readonly registry: Registry;
  readonly names: ResourceNames;
  readonly maxEdges: number;
  /** Partitions of `requests` and `events`. */
  readonly workPartitions: number;
  /** How long a record may take to reach a consumer on this broker. */
  readonly deliveryMs: number;
}

export type AdaptersFactory = (t: TestContext) => Promise<ConsoleAdapters>;

interface Fixture extends ConsoleAdapters {
  readonly app: AdminApp;
  readonly logLines: () => Record<string, unknown>[];
}

const EDGE_METRICS = [
  "# HELP tether_edge_connections Open device connections",
  "# TYPE tether_edge_connections gauge",
  "tether_edge_connections 3",
  "tether_edge_requests_total 120",
  "tether_edge_acks_total 118",
  'tether_edge_ack_latency_seconds_bucket{le="0.001"} 100',
  "tether_edge_ack_latency_seconds_sum 0.236",
  "tether_edge_ack_latency_seconds_count 118",
  "tether_edge_reply_latency_seconds_sum 0.6",
  "tether_edge_reply_latency_seconds_count 100",
  "",
].join("\n");

/** Serves canned metrics for edges whose id starts with `edge-ok`, fails for the others. */
const cannedMetrics: EdgeMetricsReader = {
  async read(edge) {
    if (edge.edgeId.startsWith("edge-ok")) return EDGE_METRICS;
    throw new Error(`connect ECONNREFUSED ${edge.host}`);
  },
};

async function setup(t: TestContext, factory: AdaptersFactory): Promise<Fixture> {
  const adapters = await factory(t);
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(
        ...chunk
          .toString("utf8")
          .split("\n")
          .filter((line) => line !== ""),
      );
      done();
    },
  });
  // Level warn, as the embedded mode runs: the audit line must be written all the same.
  const logger = createLogger({ name: "console-test", level: "warn", destination });
  const app = await buildApp({
    registry: adapters.registry,
    producer: adapters.producer,
    admin: adapters.admin,
    broker: adapters.broker,
    names: adapters.names,
    maxEdges: adapters.maxEdges,
    adminToken: TOKEN,
    logger,
    defaultMetrics: false,
    edgeMetrics: cannedMetrics,
  });
  t.after(() => app.close());
  return { ...adapters, app, logLines: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

async function eventually<T>(what: string, within: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + within;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${within} ms`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

function request(deviceId: string, id: string, type = "echo"): RequestRecord {
  return { deviceId, id, type, body: { n: 1 }, receivedAt: 1_700_000_000_000 };
}

/** A `requests` record as the edge writes it, consumed from `partition` at `offset`. */
function consumedRequest(
  names: ResourceNames,
  record: RequestRecord,
  partition: number,
  offset: string,
): IncomingMessage {
  const headers = {
    ...replyRouteHeaders({ slot: 1, edgeId: "edge-ok-a", connId: "conn-7" }),
    [Header.Device]: record.deviceId,
    [Header.RequestId]: record.id,
  };
  return {
    topic: names.requestsTopic,
    partition,
    offset,
    key: record.deviceId,
    value: Buffer.from(JSON.stringify(record)),
    headers,
    timestamp: 1_700_000_000_000,
  };
}

interface StreamReader {
  readonly events: () => Record<string, unknown>[];
  readonly status: number;
  close(): void;
}

/** Opens the SSE stream over a real socket and collects its `presence` events. */
async function openStream(
  t: TestContext,
  app: AdminApp,
  path: string,
  headers: Record<string, string>,
): Promise<StreamReader> {
  if (app.server.address() === null) await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address() as AddressInfo;
  return await new Promise<StreamReader>((resolve, reject) => {
    const events: Record<string, unknown>[] = [];
    const outgoing = httpRequest({ host: "127.0.0.1", port: address.port, path, headers }, (response) => {
      let buffer = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        buffer += chunk;
        for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").find((line) => line.startsWith("data: "));
          if (block.includes("event: presence") && data !== undefined) events.push(JSON.parse(data.slice(6)));
        }
      });
      response.on("error", () => {});
      resolve({ events: () => events, status: response.statusCode ?? 0, close: () => outgoing.destroy() });
    });
    outgoing.on("error", reject);
    outgoing.end();
    t.after(() => outgoing.destroy());
  });
}

export function consoleContract(label: string, factory: AdaptersFactory): void {
  describe(`console routes (${label})`, () => {
    test("fleet stats list each live edge with its own counters, and null metrics with the reason for an unreachable one", async (t) => {
      const fixture = await setup(t, factory);
      await fixture.registry.leases.acquire({ slot: 0, edgeId: "edge-ok-a", host: "10.0.0.1", leaseMs: 60_000 });
      await fixture.registry.leases.acquire({ slot: 1, edgeId: "edge-down", host: "10.0.0.2", leaseMs: 60_000 });
      const response = await fixture.app.inject({ url: "/v1/fleet/stats", headers: auth });
      assert.equal(response.statusCode, 200, response.body);
      const stats = response.json() as {
        edges: { edgeId: string; slot: number; metrics: unknown; metricsError?: string }[];
        workerLag: number | null;
        deadLetters: number | null;
      };
      assert.deepEqual(
        stats.edges.map((edge) => [edge.edgeId, edge.slot]),
        [
          ["edge-ok-a", 0],
          ["edge-down", 1],
        ],
      );
      assert.deepEqual(stats.edges[0]?.metrics, {
        connections: 3,
        requests: 120,
        acks: 118,
        ackLatencySeconds: { sum: 0.236, count: 118 },
        roundTripSeconds: { sum: 0.6, count: 100 },
      });
      assert.equal(stats.edges[1]?.metrics, null);
      assert.match(stats.edges[1]?.metricsError ?? "", /ECONNREFUSED/);
      // A cold broker may miss the first reading's bound (null); the next reading has the figures.
      const figures = await eventually("the broker figures", fixture.deliveryMs, async () => {
        const again = await fixture.app.inject({ url: "/v1/fleet/stats", headers: auth });
        const body = again.json() as { workerLag: number | null; deadLetters: number | null };
        return body.workerLag === null || body.deadLetters === null ? undefined : body;
      });
      assert.equal(figures.workerLag, 0);
      assert.equal(figures.deadLetters, 0);
    });

    test("fleet stats need the admin token", async (t) => {
      const fixture = await setup(t, factory);
      const response = await fixture.app.inject({ url: "/v1/fleet/stats" });
      assert.equal(response.statusCode, 401);
    });

    test("a device's events are its own, newest first, with the reason of a disconnect, also for events written after the first look", async (t) => {
      const fixture = await setup(t, factory);
      const { names, producer } = fixture;
      const base = { edgeId: "edge-ok-a", at: 1000 };
      await producer.send(
        presenceRecord(names.eventsTopic, { ...base, event: "connected", deviceId: "pump-1", connId: "c1", epoch: 1 }),
      );
      await producer.send(
        presenceRecord(names.eventsTopic, { ...base, event: "connected", deviceId: "pump-2", connId: "c2" }),
      );
      const first = await eventually("pump-1's connect", fixture.deliveryMs, async () => {
        const response = await fixture.app.inject({ url: "/v1/devices/pump-1/events", headers: auth });
        assert.equal(response.statusCode, 200, response.body);
        const body = response.json() as { events: Record<string, unknown>[] };
        return body.events.length === 1 ? body.events : undefined;
      });
      assert.equal(first[0]?.event, "connected");
      assert.equal(first[0]?.epoch, 1);
      assert.match(String(first[0]?.id), /^\d+-\d+$/);
      await producer.send(
        presenceRecord(names.eventsTopic, {
          ...base,
          event: "disconnected",
          deviceId: "pump-1",
          connId: "c1",
          at: 2000,
          reason: "kicked",
        }),
      );
      const both = await eventually("pump-1's disconnect", fixture.deliveryMs, async () => {
        const response = await fixture.app.inject({ url: "/v1/devices/pump-1/events", headers: auth });
        const body = response.json() as { events: Record<string, unknown>[] };
        return body.events.length === 2 ? body.events : undefined;
      });
      assert.deepEqual(
        both.map((event) => [event.event, event.reason, event.deviceId]),
        [
          ["disconnected", "kicked", "pump-1"],
          ["connected", undefined, "pump-1"],
        ],
      );
    });

    test("a device's outbox lists its parked frames with their kind; another device's are not shown", async (t) => {
      const fixture = await setup(t, factory);
      const now = Date.now();
      const frame = JSON.stringify({ t: "push", id: "m-1", type: "note", body: { text: "hi" } });
      await fixture.registry.outbox.put({
        deviceId: "valve-1",
        messageId: "m-1",
        frame,
        createdAt: now,
        expiresAt: now + 60_000,
      });
      await fixture.registry.outbox.put({
        deviceId: "valve-2",
        messageId: "m-2",
        frame,
        createdAt: now,
        expiresAt: now + 60_000,
      });
      const response = await fixture.app.inject({ url: "/v1/devices/valve-1/outbox", headers: auth });
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(response.json(), {
        deviceId: "valve-1",
        items: [
          {
            messageId: "m-1",
            kind: "push",
            frame: { t: "push", id: "m-1", type: "note", body: { text: "hi" } },
            createdAt: now,
            expiresAt: now + 60_000,
          },
        ],
      });
      const bad = await fixture.app.inject({ url: "/v1/devices/no%20spaces/outbox", headers: auth });
      assert.equal(bad.statusCode, 400);
    });

    test("the event stream sends the chosen device's events as they happen, and none of the others", async (t) => {
      const fixture = await setup(t, factory);
      const { names, producer } = fixture;
      const refused = await openStream(t, fixture.app, "/v1/events/stream", {});
      assert.equal(refused.status, 401);
      const stream = await openStream(t, fixture.app, "/v1/events/stream?deviceId=meter-9&backlog=0", auth);
      assert.equal(stream.status, 200);
      const base = { edgeId: "edge-ok-a", at: 1000 };
      await producer.send(
        presenceRecord(names.eventsTopic, { ...base, event: "connected", deviceId: "meter-8", connId: "c8" }),
      );
      await producer.send(
        presenceRecord(names.eventsTopic, { ...base, event: "connected", deviceId: "meter-9", connId: "c9" }),
      );
      await producer.send(
        presenceRecord(names.eventsTopic, {
          ...base,
          event: "disconnected",
          deviceId: "meter-9",
          connId: "c9",
          reason: "kicked",
        }),
      );
      const events = await eventually("two events of meter-9", fixture.deliveryMs, async () =>
        stream.events().length >= 2 ? stream.events() : undefined,
      );
      assert.deepEqual(
        events.map((event) => [event.deviceId, event.event, event.reason]),
        [
          ["meter-9", "connected", undefined],
          ["meter-9", "disconnected", "kicked"],
        ],
      );
      // The backlog of a new stream has them too, oldest first.
      const later = await openStream(t, fixture.app, "/v1/events/stream?deviceId=meter-9&backlog=5", auth);
      const backlog = await eventually("the backlog", fixture.deliveryMs, async () =>
        later.events().length >= 2 ? later.events() : undefined,
      );
      assert.deepEqual(
        backlog.map((event) => event.event),
        ["connected", "disconnected"],
      );
      stream.close();
      later.close();
    });

    test("closing the API ends the open event streams instead of waiting for them", async (t) => {
      const fixture = await setup(t, factory);
      const stream = await openStream(t, fixture.app, "/v1/events/stream", auth);
      assert.equal(stream.status, 200);
      const started = Date.now();
      await fixture.app.close();
      assert.ok(Date.now() - started < 5000, `close took ${Date.now() - started} ms`);
      stream.close();
    });

    test("dead letters are listed newest first with their error, and a replay writes the request back to requests with its key and headers, logged as an audit record", async (t) => {
      const fixture = await setup(t, factory);
      const { names, producer } = fixture;
      const good = request("sensor-5", `r-${randomUUID()}`);
      await producer.send(
        deadLetterRecord(names.dlqTopic, {
          message: consumedRequest(names, good, 0, "17"),
          request: good,
          error: new Error("handler exploded"),
          attempts: 4,
          failedAt: 5000,
        }),
      );
      const listed = await eventually("the first dead letter", fixture.deliveryMs, async () => {
        const response = await fixture.app.inject({ url: "/v1/dead-letters", headers: auth });
        assert.equal(response.statusCode, 200, response.body);
        const body = response.json() as { written: number; items: Record<string, unknown>[] };
        return body.items.length === 1 ? body : undefined;
      });
      assert.equal(listed.written, 1);
      const letter = listed.items[0] as {
        id: string;
        deviceId: string;
        error: { message: string };
        attempts: number;
        replayable: boolean;
        request: unknown;
      };
      assert.equal(letter.deviceId, "sensor-5");
      assert.equal(letter.error.message, "handler exploded");
      assert.equal(letter.attempts, 4);
      assert.equal(letter.replayable, true);
      assert.deepEqual(letter.request, good);

      // One that was never a valid request: listed, but there is nothing to replay.
      const garbled = consumedRequest(names, good, 0, "18");
      await producer.send(
        deadLetterRecord(names.dlqTopic, {
          message: { ...garbled, value: Buffer.from("not json") },
          request: null,
          error: new Error("invalid request"),
          attempts: 0,
          failedAt: 6000,
        }),
      );
      const both = await eventually("the second dead letter", fixture.deliveryMs, async () => {
        const response = await fixture.app.inject({ url: "/v1/dead-letters", headers: auth });
        const body = response.json() as {
          written: number;
          items: { id: string; replayable: boolean; rawValue?: string }[];
        };
        return body.items.length === 2 ? body : undefined;
      });
      assert.equal(both.written, 2);
      assert.equal(both.items[0]?.replayable, false);
      assert.equal(both.items[0]?.rawValue, "not json");
      assert.equal(both.items[1]?.id, letter.id);

      const replay = await fixture.app.inject({
        method: "POST",
        url: "/v1/dead-letters/replay",
        headers: auth,
        payload: { ids: [letter.id, both.items[0]?.id, "0-999999"] },
      });
      assert.equal(replay.statusCode, 202, replay.body);
      const result = replay.json() as {
        replayed: { id: string; partition: number }[];
        refused: { id: string; reason: string }[];
      };
      assert.deepEqual(
        result.replayed.map((item) => item.id),
        [letter.id],
      );
      assert.deepEqual(result.refused, [
        { id: both.items[0]?.id, reason: "not_replayable" },
        { id: "0-999999", reason: "unknown" },
      ]);
      const partition = partitionForKey("sensor-5", fixture.workPartitions);
      assert.equal(result.replayed[0]?.partition, partition);
      const written = await firstMessage(
        t,
        fixture.broker,
        names.requestsTopic,
        partition,
        (message) => message.key === "sensor-5",
        fixture.deliveryMs + 10_000,
      );
      assert.deepEqual(JSON.parse(written.value.toString("utf8")), good);
      assert.equal(written.headers[Header.RequestId], good.id);
      assert.equal(written.headers[Header.ReplyConn], "conn-7");

      const audit = fixture.logLines().filter((line) => line.audit === "dead_letter_replay");
      assert.equal(audit.length, 1);
      assert.equal(audit[0]?.deadLetter, letter.id);
      assert.equal(audit[0]?.deviceId, "sensor-5");
      assert.equal(audit[0]?.requestId, good.id);

      const stats = await fixture.app.inject({ url: "/v1/fleet/stats", headers: auth });
      assert.equal((stats.json() as { deadLetters: number }).deadLetters, 2);
    });

    test("a replay names 1 to 100 dead letter ids; anything else is 400 validation_failed", async (t) => {
      const fixture = await setup(t, factory);
      for (const payload of [{ ids: [] }, { ids: ["../etc"] }, { ids: ["1-2"], extra: true }, {}]) {
        const response = await fixture.app.inject({
          method: "POST",
          url: "/v1/dead-letters/replay",
          headers: auth,
          payload,
        });
        assert.equal(response.statusCode, 400, JSON.stringify(payload));
        assert.equal((response.json() as { code: string }).code, "validation_failed");
      }
      const tooMany = await fixture.app.inject({ url: "/v1/dead-letters?limit=5000", headers: auth });
      assert.equal(tooMany.statusCode, 400);
    });
  });
}

/** A broker that is not given: the console's tails answer 503 instead of failing. */
export async function buildWithoutBroker(adapters: Omit<ConsoleAdapters, "broker">): Promise<AdminApp> {
  return buildApp({
    registry: adapters.registry,
    producer: adapters.producer,
    admin: adapters.admin,
    names: adapters.names,
    maxEdges: adapters.maxEdges,
    adminToken: TOKEN,
    logger: createLogger({ name: "console-test", level: "silent" }),
    defaultMetrics: false,
  });
}
