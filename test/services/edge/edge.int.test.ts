/**
 * Edges against real Kafka and DynamoDB Local (the test harness), with the real worker running
 * the echo handler: answers, a device moving between edges mid-request, takeover across edges,
 * slot lease conflicts and a lost lease.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { edgeConfigForTests } from "../../../services/edge/config.ts";
import { createEdge, type Edge } from "../../../services/edge/edge.ts";
import { createWorker, readWorkerConfig, type Worker } from "../../../services/worker/index.ts";
import { createAuthenticator } from "../../../shared/auth/index.ts";
import { tetherTopics } from "../../../shared/broker/index.ts";
import { createKafkaBroker } from "../../../shared/broker/kafka/index.ts";
import type { Broker } from "../../../shared/broker/types.ts";
import { type CommonConfig, resourceNames } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { createDynamoRegistry, ensureTables } from "../../../shared/registry/dynamodb/index.ts";
import type { Registry } from "../../../shared/registry/types.ts";
import {
  localDynamoDbSettings,
  localKafkaSettings,
  testCommonConfig,
  uniquePrefix,
  useLocalCluster,
} from "../../harness/index.ts";
import { Device } from "./helpers.ts";

const MAX_EDGES = 4;
const logger = silentLogger();

describe("edges on real Kafka and DynamoDB", () => {
  let common: CommonConfig;
  let broker: Broker;
  let registry: Registry;
  let worker: Worker;
  const gates = new Map<string, Promise<void>>();
  const cleanup: Array<() => Promise<void> | void> = [];

  before(async () => {
    const env = await useLocalCluster();
    const prefix = uniquePrefix();
    const names = resourceNames(prefix);
    const kafka = localKafkaSettings(env, "edge-int", { replicationFactor: 1 });
    const dynamodb = localDynamoDbSettings(env);
    common = testCommonConfig({ names, maxEdges: MAX_EDGES, kafka, dynamodb });
    broker = createKafkaBroker({ settings: kafka, logger });
    const admin = broker.admin();
    await admin.ensureTopics(tetherTopics({ names, maxEdges: MAX_EDGES, workPartitions: 2, replicationFactor: 1 }));
    await admin.close();
    await ensureTables({ settings: dynamodb, names, logger });
    registry = await createDynamoRegistry({ settings: dynamodb, names, logger });

    const workerConfig = readWorkerConfig({
      TETHER_ENV: "development",
      TETHER_BROKER: "kafka",
      TETHER_KAFKA_BROKERS: env.kafkaBrokers,
      TETHER_REGISTRY: "dynamodb",
      TETHER_DYNAMODB_ENDPOINT: env.dynamodbEndpoint,
      TETHER_NAME_PREFIX: prefix,
    });
    worker = createWorker({ config: workerConfig, logger, broker, registry });
    worker.handle("echo", async (request) => {
      // A body naming a gate holds the answer until the test opens it.
      const gate = typeof request.body === "string" ? gates.get(request.body) : undefined;
      if (gate !== undefined) await gate;
      return request.body;
    });
    await worker.start();
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step();
    await worker?.close();
    await registry?.close();
  });

  async function edge(
    overrides: Parameters<typeof edgeConfigForTests>[1] = {},
    extra: { firstSlot?: number; now?: () => number } = {},
  ): Promise<{ edge: Edge; port: number }> {
    const instance = createEdge({
      config: edgeConfigForTests(common, overrides),
      logger,
      broker,
      registry,
      authenticator: createAuthenticator({ mode: "none" }),
      ...extra,
    });
    cleanup.push(() => instance.close());
    await instance.start();
    return { edge: instance, port: instance.address().port };
  }

  async function device(port: number, deviceId: string): Promise<Device> {
    const d = await Device.connect(port);
    cleanup.push(() => d.close());
    const welcome = await d.hello(deviceId);
    assert.equal(welcome.t, "welcome", JSON.stringify(welcome));
    return d;
  }

  function gate(name: string): () => void {
    let open!: () => void;
    gates.set(
      name,
      new Promise((resolve) => {
        open = resolve;
      }),
    );
    return open;
  }

  let a: { edge: Edge; port: number };
  let b: { edge: Edge; port: number };

  it("gives a second edge starting on a held slot the next free one", async () => {
    a = await edge({}, { firstSlot: 0 });
    b = await edge({}, { firstSlot: 0 });
    assert.equal(a.edge.slot, 0);
    assert.equal(b.edge.slot, 1);
    const leases = await registry.leases.list();
    assert.deepEqual(
      leases
        .filter((lease) => lease.leaseUntil > Date.now())
        .map((lease) => [lease.slot, lease.edgeId])
        .sort(),
      [
        [0, a.edge.edgeId],
        [1, b.edge.edgeId],
      ],
    );
  });

  it("delivers the answer to a device on edge A", async () => {
    const d = await device(a.port, "int-a");
    d.send({ t: "req", id: "1", type: "echo", body: { hello: "kafka" } });
    assert.deepEqual(await d.nextOfType("ack", 10_000), { t: "ack", id: "1" });
    assert.deepEqual(await d.nextOfType("res", 20_000), { t: "res", id: "1", body: { hello: "kafka" } });
  });

  it("delivers on edge B the answer to a request a device sent on edge A before it moved", async () => {
    const open = gate("hold-move");
    const onA = await device(a.port, "int-mover");
    onA.send({ t: "req", id: "m1", type: "echo", body: "hold-move" });
    await onA.nextOfType("ack", 10_000);
    const onB = await device(b.port, "int-mover");
    assert.equal((await onA.nextOfType("bye", 10_000)).reason, "replaced");
    open();
    assert.deepEqual(await onB.nextOfType("res", 20_000), { t: "res", id: "m1", body: "hold-move" });
  });

  it("closes the older connection on the other edge when a device connects again", async () => {
    const first = await device(b.port, "int-takeover");
    const second = await device(a.port, "int-takeover");
    assert.equal((await first.nextOfType("bye", 10_000)).reason, "replaced");
    await first.waitClosed(5000);
    const record = await registry.connections.get("int-takeover");
    assert.equal(record?.edgeId, a.edge.edgeId);
    second.send({ t: "ping" });
    assert.deepEqual(await second.nextOfType("pong"), { t: "pong" });
  });

  it("stops delivering when its lease lapses; the successor on the slot delivers the answer", async () => {
    let skew = 0;
    const c = await edge({ leaseMs: 1500 }, { firstSlot: 2, now: () => Date.now() + skew });
    assert.equal(c.edge.slot, 2);
    const open = gate("hold-lease");
    const onC = await device(c.port, "int-lease");
    onC.send({ t: "req", id: "l1", type: "echo", body: "hold-lease" });
    await onC.nextOfType("ack", 10_000);
    skew = 60_000;
    await c.edge.failed();
    assert.equal((await onC.nextOfType("bye", 5000)).reason, "draining");
    // The lease really expires 1.5 s after its last renewal; then a new edge may take slot 2.
    await new Promise((resolve) => setTimeout(resolve, 1600));
    const successor = await edge({ leaseMs: 1500 }, { firstSlot: 2 });
    assert.equal(successor.edge.slot, 2);
    const again = await device(successor.port, "int-lease");
    open();
    assert.deepEqual(await again.nextOfType("res", 20_000), { t: "res", id: "l1", body: "hold-lease" });
  });
});
