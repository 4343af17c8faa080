/**
 * Hostile input: what a device (or anyone who can open a socket) sends must never end the edge
 * process, cost more than a small budget before it is authenticated, or be re-serialised.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { describe, it, type TestContext } from "node:test";
import { availableMemory, defaultMaxConnections, readEdgeConfig } from "../../../services/edge/config.ts";
import { proxyHeaderV4 } from "../../../services/edge/proxy-protocol.ts";
import type { Broker, OutgoingMessage, Producer, SendOptions } from "../../../shared/broker/types.ts";
import { selfSignedCert } from "../../harness/tls.ts";
import { Device, EchoWorker, eventually, memoryFleet, sleep, startEdge } from "./helpers.ts";

function nested(depth: number): string {
  return `${"[".repeat(depth)}${"]".repeat(depth)}`;
}

async function welcomed(port: number, deviceId: string): Promise<Device> {
  const device = await Device.connect(port);
  const welcome = await device.hello(deviceId);
  assert.equal(welcome.t, "welcome", JSON.stringify(welcome));
  return device;
}

/** The broker, with a producer whose send throws synchronously for records that contain `poison`. */
function poisonedBroker(broker: Broker): Broker {
  const wrapProducer = (producer: Producer): Producer =>
    new Proxy(producer, {
      get(target, prop) {
        if (prop === "send") {
          return (message: OutgoingMessage, options?: SendOptions) => {
            if (String(message.value).includes("poison")) throw new Error("a bug the frame path never saw before");
            return target.send(message, options);
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  return new Proxy(broker, {
    get(target, prop) {
      if (prop === "producer") return () => wrapProducer(target.producer());
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** An edge on in-memory adapters with an echo worker, both closed after the test. */
async function echoEdge(t: TestContext): Promise<Awaited<ReturnType<typeof startEdge>>> {
  const fleet = await memoryFleet();
  const worker = new EchoWorker(fleet.broker, fleet.common.names);
  await worker.start();
  const started = await startEdge(fleet);
  t.after(async () => {
    await started.edge.close();
    await worker.close();
  });
  return started;
}

describe("hostile device input", () => {
  it("answers a request nested 6,000 deep with bad_frame, keeps the connection and the edge serving", async (t) => {
    const { edge, port } = await echoEdge(t);
    const attacker = await welcomed(port, "dev-deep");
    t.after(() => attacker.close());
    attacker.send(`{"t":"req","id":"deep","type":"echo","body":${nested(6000)}}\n`);
    const error = await attacker.nextOfType("error");
    assert.equal(error.code, "bad_frame");
    assert.equal(error.id, "deep");
    assert.match(String(error.message), /deeper than 64/);
    // The same rule for a hello, and at exactly 65 levels.
    attacker.send(`{"t":"req","id":"d65","type":"echo","body":${nested(64)}}\n`);
    assert.equal((await attacker.nextOfType("error")).code, "bad_frame");
    attacker.send(`{"t":"req","id":"d63","type":"echo","body":${nested(63)}}\n`);
    const answer = await attacker.nextOfType("res");
    assert.equal(answer.id, "d63");
    attacker.send({ t: "ping" });
    assert.deepEqual(await attacker.nextOfType("pong"), { t: "pong" });
    const other = await welcomed(port, "dev-bystander");
    t.after(() => other.close());
    other.send({ t: "req", id: "1", type: "echo", body: { ok: true } });
    assert.deepEqual(await other.nextOfType("res"), { t: "res", id: "1", body: { ok: true } });
    assert.equal(edge.status, "running");
  });

  it("carries the body's own JSON text into the request record, byte for byte", async (t) => {
    const fleet = await memoryFleet();
    const { edge, port } = await startEdge(fleet);
    const consumer = fleet.broker.groupConsumer({ groupId: "raw", topics: [fleet.common.names.requestsTopic] });
    const values: string[] = [];
    await consumer.start(async (message) => {
      values.push(message.value.toString("utf8"));
    });
    t.after(async () => {
      await consumer.close();
      await edge.close();
    });
    const device = await welcomed(port, "dev-raw");
    t.after(() => device.close());
    // Spacing, number spelling, escapes and key order a re-serialisation would change.
    const body = '{ "b" : 1.50 , "a" : [ 1e2 , "\\u00e9\\/" ] , "__proto__" : { "x" : -0 } }';
    device.send(`{"t":"req","id":"raw-1","type":"echo","body":${body}}\n`);
    await device.nextOfType("ack");
    await eventually(() => values.length === 1, 3000, "the request record");
    const value = values[0] as string;
    assert.ok(value.endsWith(`"body":${body}}`), value);
    const record = JSON.parse(value) as { deviceId: string; id: string; type: string; body: unknown };
    assert.equal(record.deviceId, "dev-raw");
    assert.equal(record.id, "raw-1");
    assert.equal(record.type, "echo");
    assert.equal(Object.getPrototypeOf(record.body), Object.prototype, "__proto__ stays a plain key");
  });

  it("closes only the connection whose frame hit an unexpected error, counting it", async (t) => {
    const fleet = await memoryFleet();
    const worker = new EchoWorker(fleet.broker, fleet.common.names);
    await worker.start();
    const { edge, port } = await startEdge({ ...fleet, broker: poisonedBroker(fleet.broker) });
    t.after(async () => {
      await edge.close();
      await worker.close();
    });
    const victim = await welcomed(port, "dev-poison");
    const bystander = await welcomed(port, "dev-fine");
    t.after(() => {
      victim.close();
      bystander.close();
    });
    victim.send({ t: "req", id: "p", type: "echo", body: "poison" });
    const error = await victim.nextOfType("error");
    assert.equal(error.code, "internal");
    await victim.waitClosed();
    bystander.send({ t: "req", id: "1", type: "echo", body: "still here" });
    assert.deepEqual(await bystander.nextOfType("res"), { t: "res", id: "1", body: "still here" });
    const metrics = await edge.metrics.registry.getSingleMetricAsString("tether_edge_connection_faults_total");
    assert.match(metrics, /tether_edge_connection_faults_total 1\b/);
  });

  it("closes the connection after a hello with an invalid deviceId", async (t) => {
    const fleet = await memoryFleet();
    const { edge, port } = await startEdge(fleet);
    t.after(() => edge.close());
    for (const hello of [
      { t: "hello", v: 1, deviceId: "bad id!" },
      { t: "hello", v: 2, deviceId: "dev" },
      { t: "hello", v: 1, deviceId: "dev", token: 7 },
    ]) {
      const device = await Device.connect(port);
      t.after(() => device.close());
      device.send(hello);
      assert.equal((await device.nextOfType("error")).code, "bad_frame");
      await device.waitClosed();
      assert.equal(device.frames.length, 0, "one error frame, then the close");
    }
  });
});

describe("the budget of sockets that have not said hello", () => {
  it("cuts a line longer than the hello limit before hello, while welcomed devices keep the full limit", async (t) => {
    const { port } = await echoEdge(t);
    const long = await Device.connect(port);
    t.after(() => long.close());
    long.send(`{"t":"hello","v":1,"deviceId":"d","token":"${"x".repeat(65_000)}`);
    const error = await long.nextOfType("error");
    assert.equal(error.code, "frame_too_large");
    assert.match(String(error.message), /2048/);
    await long.waitClosed();
    // Bytes that cannot start a hello are refused at the first one, not held until a newline.
    const junk = await Device.connect(port);
    t.after(() => junk.close());
    junk.send("x".repeat(65_000));
    assert.equal((await junk.nextOfType("error")).code, "bad_frame");
    await junk.waitClosed();
    // A hello followed at once by a 30 KB request in the same segment is fine.
    const device = await Device.connect(port);
    t.after(() => device.close());
    const big = "y".repeat(30_000);
    device.send(`{"t":"hello","v":1,"deviceId":"dev-big"}\n{"t":"req","id":"1","type":"echo","body":"${big}"}\n`);
    assert.equal((await device.nextOfType("welcome")).t, "welcome");
    assert.equal((await device.nextOfType("res")).body, big);
  });

  it("refuses sockets past the edge-wide cap on unwelcomed ones, and frees a place on welcome", async (t) => {
    const fleet = await memoryFleet();
    const { edge, port } = await startEdge(fleet, { limits: { maxPendingConnections: 3 } });
    t.after(() => edge.close());
    const idle = await Promise.all([1, 2, 3].map(() => Device.connect(port)));
    t.after(() => {
      for (const device of idle) device.close();
    });
    await eventually(() => edge.pendingConnections === 3, 2000, "three pending sockets");
    const refused = await Device.connect(port);
    t.after(() => refused.close());
    const error = await refused.nextOfType("error");
    assert.equal(error.code, "unavailable");
    assert.equal(error.retryable, true);
    await refused.waitClosed();
    assert.equal((await (idle[0] as Device).hello("dev-ok")).t, "welcome");
    assert.equal(edge.pendingConnections, 2);
    const next = await welcomed(port, "dev-next");
    t.after(() => next.close());
  });

  it("caps unwelcomed sockets per source address, read from the PROXY v2 header", async (t) => {
    const fleet = await memoryFleet();
    const { edge, port } = await startEdge(fleet, { proxyProtocol: "v2", limits: { maxPendingPerSource: 2 } });
    t.after(() => edge.close());
    const from = async (address: string): Promise<Device> => {
      const device = await Device.connect(port);
      t.after(() => device.close());
      device.socket.write(proxyHeaderV4(address, 40_000));
      return device;
    };
    await from("203.0.113.7");
    await from("203.0.113.7");
    await eventually(() => edge.pendingConnections === 2, 2000, "two pending sockets");
    const third = await from("203.0.113.7");
    assert.equal((await third.nextOfType("error")).code, "unavailable");
    await third.waitClosed();
    const elsewhere = await from("198.51.100.1");
    assert.equal((await elsewhere.hello("dev-elsewhere")).t, "welcome");
    // A socket without the header is not a device behind the balancer: dropped without a frame.
    const bare = await Device.connect(port);
    t.after(() => bare.close());
    bare.send({ t: "hello", v: 1, deviceId: "dev-bare" });
    await bare.waitClosed();
    assert.equal(bare.frames.length, 0);
  });

  it("counts sockets still in their TLS handshake and cuts them at the hello timeout", async (t) => {
    const { certFile, keyFile } = selfSignedCert(t);
    const fleet = await memoryFleet();
    const { edge, port } = await startEdge(fleet, { tls: { certFile, keyFile }, limits: { helloTimeoutMs: 300 } });
    t.after(() => edge.close());
    const silent = connect({ port, host: "127.0.0.1" });
    silent.on("error", () => {});
    t.after(() => silent.destroy());
    const closed = new Promise<number>((resolve) => {
      const opened = Date.now();
      silent.once("close", () => resolve(Date.now() - opened));
    });
    await eventually(() => edge.connectionCount === 1 && edge.pendingConnections === 1, 2000, "a counted handshake");
    const lasted = await closed;
    assert.ok(lasted < 2000, `a silent TLS socket lasted ${lasted} ms`);
    await eventually(() => edge.connectionCount === 0, 2000, "the handshake swept");
    await sleep(10);
  });

  it("derives the default connection cap from the task's memory", () => {
    const gib = 1024 ** 3;
    assert.equal(defaultMaxConnections(2 * gib), 52_428);
    assert.ok(defaultMaxConnections(512 * 1024 ** 2) < 20_000);
    assert.equal(defaultMaxConnections(1024 ** 2), 100);
    const env = { TETHER_ENV: "development" };
    assert.equal(readEdgeConfig(env, 2 * gib).limits.maxConnections, 52_428);
    assert.equal(readEdgeConfig({ ...env, TETHER_MAX_CONNECTIONS: "500" }, 2 * gib).limits.maxConnections, 500);
    assert.ok(availableMemory() > 0);
  });
});
