/**
 * Edges against real Kafka and DynamoDB Local (the test harness), with the real worker running
 * the echo handler: answers, a device moving between edges mid-request, takeover across edges,
 * slot lease conflicts and a frozen edge whose slot is adopted.
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
import { TetherError } from "../../../shared/errors/index.ts";
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

/** `target` with some members replaced; the others are its own, bound to it. */
function overriding<T extends object>(target: T, replaced: Partial<T>): T {
  return new Proxy(target, {
    get(object, prop) {
      if (Object.hasOwn(replaced, prop)) return (replaced as Record<string | symbol, unknown>)[prop];
      const value = Reflect.get(object, prop, object) as unknown;
      return typeof value === "function" ? value.bind(object) : value;
    },
  });
}
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
    extra: { firstSlot?: number; broker?: Broker; registry?: Registry } = {},
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

  it("stops delivering while frozen; a janitor adopts its slot and the answer reaches the device's new connection", async () => {
    // Edge C as a frozen process looks to the others: it neither renews its lease row nor
    // beacons. Its own clock and the wall clocks stay as they are.
    let frozen = false;
    const refuse = () => Promise.reject(new TetherError("unavailable", "frozen"));
    const leases = overriding(registry.leases, {
      renewHeld: (...args: Parameters<Registry["leases"]["renewHeld"]>) =>
        frozen ? refuse() : registry.leases.renewHeld(...args),
    });
    const frozenRegistry = overriding(registry, { leases });
    const frozenBroker = overriding(broker, {
      producer: () => {
        const producer = broker.producer();
        return overriding(producer, {
          send: (...args: Parameters<typeof producer.send>) =>
            frozen && args[0].topic === common.names.edgesTopic ? refuse() : producer.send(...args),
        });
      },
    });
    const c = await edge({ leaseMs: 1500 }, { firstSlot: 2, broker: frozenBroker, registry: frozenRegistry });
    assert.equal(c.edge.slot, 2);
    const open = gate("hold-lease");
    const onC = await device(c.port, "int-lease");
    onC.send({ t: "req", id: "l1", type: "echo", body: "hold-lease" });
    await onC.nextOfType("ack", 10_000);
    frozen = true;
    const deadline = Date.now() + 10_000;
    while (c.edge.ready && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(c.edge.ready, false, "C stops proving its lease");
    open();
    // The answer lands on slot 2; a janitor on A or B sees C silent and adopts the slot.
    let holder: string | undefined;
    while (Date.now() < deadline + 10_000) {
      holder = (await registry.leases.get(2))?.edgeId;
      if (holder !== undefined && holder !== c.edge.edgeId) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(holder === a.edge.edgeId || holder === b.edge.edgeId, `slot 2 adopted (held by ${holder})`);
    const again = await device(a.port, "int-lease");
    assert.deepEqual(await again.nextOfType("res", 20_000), { t: "res", id: "l1", body: "hold-lease" });
    // Thawed, C learns that its slot is someone else's and stops; it delivered nothing.
    frozen = false;
    const error = await c.edge.failed();
    assert.equal(error.code, "conflict");
    assert.equal(
      onC.frames.some((frame) => frame.t === "res"),
      false,
    );
  });
});
