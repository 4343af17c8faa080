/**
 * The MQTT binding (PROTOCOL.md) driven by mqtt.js, a client nobody here wrote, in 5.0 and
 * 3.1.1, against an edge on the in-memory adapters: requests and answers, pushes and their
 * PUBACK, offline pushes, takeover, bad packets and bad tokens, keep-alive.
 */
import assert from "node:assert/strict";
import { connect as tcpConnect } from "node:net";
import { after, before, describe, it } from "node:test";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { generate, type Packet, parser } from "mqtt-packet";
import { buildApp } from "../../../services/admin/app.ts";
import { createAuthenticator, hmacToken } from "../../../shared/auth/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { decodePresence, type PresenceEvent, pushFrame, pushRecord } from "../../../shared/records/index.ts";
import { prng } from "../../harness/random.ts";
import { EchoWorker, eventually, memoryFleet, sleep, startEdge, type TestFleet } from "./helpers.ts";

const SECRET = "mqtt-test-secret";

interface Received {
  readonly topic: string;
  readonly payload: string;
  readonly properties: Record<string, unknown>;
}

/** An mqtt.js client whose messages are collected as they arrive. */
class Client {
  readonly client: MqttClient;
  readonly messages: Received[] = [];

  constructor(client: MqttClient) {
    this.client = client;
    client.on("message", (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString("utf8"), properties: { ...(packet.properties ?? {}) } });
    });
  }

  async next(match: (message: Received) => boolean, timeoutMs = 3000): Promise<Received> {
    let found: Received | undefined;
    await eventually(
      () => {
        const index = this.messages.findIndex(match);
        if (index === -1) return false;
        found = this.messages.splice(index, 1)[0];
        return true;
      },
      timeoutMs,
      "an MQTT message",
    );
    return found as Received;
  }
}

describe("MQTT binding (mqtt.js, memory adapters)", () => {
  let fleet: TestFleet;
  let port: number;
  let slot: number;
  let worker: EchoWorker;
  const cleanup: Array<() => Promise<unknown> | unknown> = [];

  before(async () => {
    fleet = await memoryFleet(4);
    worker = new EchoWorker(fleet.broker, fleet.common.names);
    await worker.start();
    cleanup.push(() => worker.close());
    const started = await startEdge(
      fleet,
      { limits: { heartbeatMs: 2000 } },
      { authenticator: createAuthenticator({ mode: "hmac", secret: SECRET }) },
    );
    cleanup.push(() => started.edge.close());
    port = started.edge.mqttAddress().port;
    slot = started.edge.slot;
  });
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  async function connect(deviceId: string, options: IClientOptions = {}): Promise<Client> {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId: deviceId,
      username: deviceId,
      password: hmacToken(SECRET, deviceId),
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 3000,
      ...options,
    });
    cleanup.push(() => client.endAsync(true));
    // Listening before CONNACK: messages may come in the same segment.
    const wrapped = new Client(client);
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
    return wrapped;
  }

  async function push(deviceId: string, messageId: string, body: unknown): Promise<void> {
    const frame = pushFrame({ messageId, type: "note", body });
    const now = Date.now();
    const expiresAt = now + 60_000;
    await fleet.registry.outbox.put({ deviceId, messageId, frame, createdAt: now, expiresAt });
    const producer = fleet.broker.producer();
    await producer.connect();
    await producer.send(pushRecord(fleet.common.names.repliesTopic, slot, { deviceId, messageId, expiresAt }, frame));
    await producer.close();
  }

  it("answers an MQTT 5 request on its response topic with its correlation data, after a PUBACK", async () => {
    const device = await connect("mq5-req");
    await device.client.subscribeAsync("tether/res/mq5-req/#", { qos: 1 });
    let acked = false;
    const published = device.client.publishAsync("tether/req/echo", JSON.stringify({ n: 1 }), {
      qos: 1,
      properties: { responseTopic: "tether/res/mq5-req/a", correlationData: Buffer.from("r-1") },
    });
    void published.then(() => {
      acked = true;
    });
    await published;
    assert.equal(acked, true);
    const answer = await device.next((m) => m.topic === "tether/res/mq5-req/a");
    assert.deepEqual(JSON.parse(answer.payload), { n: 1 });
    assert.equal(Buffer.from(answer.properties.correlationData as Buffer).toString(), "r-1");
    assert.equal((await fleet.registry.connections.get("mq5-req"))?.protocol, "mqtt5");
  });

  it("shows the connection's protocol in the admin API's device view", async () => {
    await connect("mq5-admin");
    const producer = fleet.broker.producer();
    await producer.connect();
    const admin = fleet.broker.admin();
    const app = await buildApp({
      ...{ registry: fleet.registry, producer, admin, names: fleet.common.names, maxEdges: 4 },
      ...{ adminToken: "admin-token", logger: silentLogger(), defaultMetrics: false },
    });
    cleanup.push(async () => {
      await app.close();
      await producer.close();
      await admin.close();
    });
    const response = await app.inject({
      method: "GET",
      url: "/v1/devices/mq5-admin",
      headers: { authorization: "Bearer admin-token" },
    });
    assert.equal(response.statusCode, 200);
    assert.equal(response.json().protocol, "mqtt5");
  });

  it("turns the Will of a device that went away without DISCONNECT into its disconnected presence event", async () => {
    const events: PresenceEvent[] = [];
    const consumer = fleet.broker.groupConsumer({ groupId: "will-watch", topics: [fleet.common.names.eventsTopic] });
    await consumer.start(async (message) => {
      const decoded = decodePresence(message);
      if (decoded.ok) events.push(decoded.value);
    });
    cleanup.push(() => consumer.close());
    for (const [deviceId, clean] of [
      ["mq5-will", false],
      ["mq5-will-clean", true],
    ] as const) {
      const device = await connect(deviceId, {
        will: { topic: "status/gone", payload: Buffer.from("offline"), qos: 0, retain: false },
      });
      if (clean) await device.client.endAsync();
      else device.client.stream.destroy();
    }
    await eventually(
      () =>
        events.filter((event) => event.event === "disconnected" && event.deviceId.startsWith("mq5-will")).length === 2,
      3000,
      "both disconnected events",
    );
    const gone = events.find((event) => event.event === "disconnected" && event.deviceId === "mq5-will");
    assert.deepEqual(gone?.will, { topic: "status/gone", payload: "offline" });
    const clean = events.find((event) => event.event === "disconnected" && event.deviceId === "mq5-will-clean");
    assert.equal(clean?.reason, "bye");
    assert.equal(clean?.will, undefined);
  });

  it("answers an MQTT 3.1.1 request tether/req/<type>/<id> on tether/res/<id>", async () => {
    const device = await connect("mq3-req", { protocolVersion: 4 });
    await device.client.subscribeAsync("tether/res/#", { qos: 1 });
    await device.client.publishAsync("tether/req/echo/q-7", JSON.stringify(["x", 2]), { qos: 1 });
    const answer = await device.next((m) => m.topic === "tether/res/q-7");
    assert.deepEqual(JSON.parse(answer.payload), ["x", 2]);
    assert.equal((await fleet.registry.connections.get("mq3-req"))?.protocol, "mqtt3.1.1");
  });

  it("carries an error answer as the error frame with the code and retryable as user properties", async () => {
    const device = await connect("mq5-err");
    await device.client.publishAsync("tether/req/nothing.here", "{}", {
      qos: 1,
      properties: { responseTopic: "tether/res/e", correlationData: Buffer.from("e-1") },
    });
    const answer = await device.next((m) => m.topic === "tether/res/e");
    const userProperties = answer.properties.userProperties as Record<string, string>;
    assert.equal(userProperties.error, "unknown_type");
    assert.equal(userProperties.retryable, "false");
    assert.equal(JSON.parse(answer.payload).code, "unknown_type");
  });

  it("writes a push to tether/push/<type> with its id, and the PUBACK removes it from the outbox", async () => {
    const device = await connect("mq5-push");
    await device.client.subscribeAsync("tether/push/#", { qos: 1 });
    await push("mq5-push", "m-1", { hello: "device" });
    const message = await device.next((m) => m.topic === "tether/push/note");
    assert.deepEqual(JSON.parse(message.payload), { hello: "device" });
    assert.equal((message.properties.userProperties as Record<string, string>).id, "m-1");
    await eventually(
      async () => (await fleet.registry.outbox.list("mq5-push", 10)).length === 0,
      3000,
      "the acked push leaving the outbox",
    );
  });

  it("delivers a push sent while the device was away when it connects again", async () => {
    await push("mq3-offline", "m-off", { later: true });
    const device = await connect("mq3-offline", { protocolVersion: 4 });
    const message = await device.next((m) => m.topic === "tether/push/note");
    assert.deepEqual(JSON.parse(message.payload), { later: true });
    await eventually(async () => (await fleet.registry.outbox.list("mq3-offline", 10)).length === 0, 3000, "ack");
  });

  it("disconnects the older MQTT 5 session with reason 0x8E when the device connects again", async () => {
    const first = await connect("mq5-twice");
    let reason: number | undefined;
    first.client.on("disconnect", (packet) => {
      reason = packet.reasonCode;
    });
    const second = await connect("mq5-twice");
    await eventually(() => reason !== undefined, 3000, "DISCONNECT on the older session");
    assert.equal(reason, 0x8e);
    await second.client.publishAsync("tether/req/echo", "1", {
      qos: 1,
      properties: { responseTopic: "tether/res/t", correlationData: Buffer.from("t1") },
    });
    assert.equal((await second.next((m) => m.topic === "tether/res/t")).payload, "1");
  });

  it("refuses a CONNECT with a bad token: 0x86 in MQTT 5, return code 4 in 3.1.1", async () => {
    await assert.rejects(
      mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: "mq-bad",
        username: "mq-bad",
        password: "not-the-token",
        protocolVersion: 5,
        reconnectPeriod: 0,
      }),
      (error: { code?: number }) => error.code === 0x86,
    );
    await assert.rejects(
      mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: "mq-bad",
        username: "mq-bad",
        password: "not-the-token",
        protocolVersion: 4,
        reconnectPeriod: 0,
      }),
      (error: { code?: number }) => error.code === 4,
    );
  });

  it("answers a payload that is not JSON with PUBACK 0x99 and keeps the connection", async () => {
    const device = await connect("mq5-badjson");
    await assert.rejects(
      device.client.publishAsync("tether/req/echo", "{not json", { qos: 1 }),
      (error: { code?: number }) => error.code === 0x99,
    );
    await assert.rejects(
      device.client.publishAsync("elsewhere/topic", "1", { qos: 1 }),
      (error: { code?: number }) => error.code === 0x90,
    );
    await device.client.publishAsync("tether/req/echo", "2", {
      qos: 1,
      properties: { responseTopic: "tether/res/ok", correlationData: Buffer.from("ok") },
    });
    assert.equal((await device.next((m) => m.topic === "tether/res/ok")).payload, "2");
  });

  it("refuses subscriptions outside tether/res/ and tether/push/", async () => {
    const device = await connect("mq5-sub");
    await assert.rejects(
      device.client.subscribeAsync({ "#": { qos: 1 }, "tether/req/#": { qos: 1 }, "tether/push/#": { qos: 1 } }),
      (error: { packet?: { granted?: number[] } }) => {
        assert.deepEqual(error.packet?.granted, [0x87, 0x87, 1]);
        return true;
      },
    );
    const granted = await device.client.subscribeAsync("tether/res/#", { qos: 1 });
    assert.equal(granted[0]?.qos, 1);
  });

  it("closes a 3.1.1 connection that publishes a body that is not JSON", async () => {
    const device = await connect("mq3-badjson", { protocolVersion: 4 });
    const closed = new Promise<void>((resolve) => device.client.once("close", () => resolve()));
    device.client.publish("tether/req/echo/b1", "{", { qos: 1 });
    await closed;
  });

  it("closes a socket that sends bytes that are not MQTT, and one that publishes before CONNECT", async () => {
    for (const bytes of [Buffer.from("GET / HTTP/1.1\r\n\r\n"), generate({ cmd: "pingreq" })]) {
      const socket = tcpConnect({ port, host: "127.0.0.1" });
      socket.on("error", () => {});
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      const received: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => received.push(chunk));
      socket.write(bytes);
      await new Promise<void>((resolve) => socket.once("close", () => resolve()));
      assert.equal(Buffer.concat(received).length, 0);
    }
  });

  it("reads packets that arrive one byte at a time", async () => {
    const deviceId = "mq5-bytes";
    const socket = tcpConnect({ port, host: "127.0.0.1", noDelay: true });
    socket.on("error", () => {});
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    const reader = parser({ protocolVersion: 5 });
    const received: Packet[] = [];
    reader.on("packet", (packet: Packet) => received.push(packet));
    socket.on("data", (chunk: Buffer) => reader.parse(chunk));
    const bytes = Buffer.concat([
      generate(
        {
          cmd: "connect",
          protocolId: "MQTT",
          protocolVersion: 5,
          clean: true,
          clientId: deviceId,
          keepalive: 30,
          username: deviceId,
          password: Buffer.from(hmacToken(SECRET, deviceId)),
        },
        { protocolVersion: 5 },
      ),
      generate(
        {
          cmd: "publish",
          topic: "tether/req/echo",
          payload: Buffer.from('{"slow":true}'),
          qos: 1,
          dup: false,
          retain: false,
          messageId: 7,
          properties: { correlationData: Buffer.from("b-1") },
        },
        { protocolVersion: 5 },
      ),
    ]);
    for (const byte of bytes) {
      socket.write(Buffer.from([byte]));
      await sleep(1);
    }
    await eventually(() => received.some((packet) => packet.cmd === "publish"), 3000, "the answer");
    assert.deepEqual(
      received.map((packet) => packet.cmd),
      ["connack", "puback", "publish"],
    );
    const answer = received[2] as { payload: Buffer };
    assert.deepEqual(JSON.parse(answer.payload.toString()), { slow: true });
    socket.destroy();
  });

  it("stays up through random bytes after a CONNECT and serves the next device", async () => {
    const random = prng(1883);
    for (let round = 0; round < 60; round++) {
      const deviceId = `mq-fuzz-${round}`;
      const socket = tcpConnect({ port, host: "127.0.0.1" });
      socket.on("error", () => {});
      socket.resume();
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      const junk = Buffer.from(
        Array.from({ length: 1 + Math.floor(random() * 300) }, () => Math.floor(random() * 256)),
      );
      socket.write(
        Buffer.concat([
          generate(
            {
              cmd: "connect",
              protocolId: "MQTT",
              protocolVersion: round % 2 === 0 ? 5 : 4,
              clean: true,
              clientId: deviceId,
              keepalive: 30,
              username: deviceId,
              password: Buffer.from(hmacToken(SECRET, deviceId)),
            },
            { protocolVersion: round % 2 === 0 ? 5 : 4 },
          ),
          junk,
        ]),
      );
      await sleep(5);
      socket.destroy();
    }
    const device = await connect("mq-after-fuzz");
    await device.client.publishAsync("tether/req/echo", "true", {
      qos: 1,
      properties: { responseTopic: "tether/res/fz", correlationData: Buffer.from("fz") },
    });
    assert.equal((await device.next((m) => m.topic === "tether/res/fz")).payload, "true");
  });

  it("cuts a packet larger than the frame limit", async () => {
    const device = await connect("mq5-big");
    const closed = new Promise<void>((resolve) => device.client.once("close", () => resolve()));
    device.client.publish("tether/req/echo", JSON.stringify("x".repeat(70_000)), { qos: 1 });
    await closed;
  });

  it("takes the MQTT keep-alive as the idle bound and is kept alive by PINGREQ", async () => {
    const device = await connect("mq3-keepalive", { protocolVersion: 4, keepalive: 1 });
    await sleep(2500);
    assert.equal(device.client.connected, true);
    const silent = tcpConnect({ port, host: "127.0.0.1" });
    silent.on("error", () => {});
    silent.resume();
    await new Promise<void>((resolve) => silent.once("connect", () => resolve()));
    const deviceId = "mq3-silent";
    silent.write(
      generate({
        cmd: "connect",
        protocolId: "MQTT",
        protocolVersion: 4,
        clean: true,
        clientId: deviceId,
        keepalive: 1,
        username: deviceId,
        password: Buffer.from(hmacToken(SECRET, deviceId)),
      }),
    );
    const started = Date.now();
    await new Promise<void>((resolve) => silent.once("close", () => resolve()));
    const took = Date.now() - started;
    assert.ok(took >= 1000 && took < 3500, `closed after ${took} ms`);
  });
});

describe("MQTT refusals and draining (mqtt.js, memory adapters)", () => {
  it("answers requests over the rate limit with PUBACK 0x97, and a draining edge with DISCONNECT 0x8B", async () => {
    const fleet = await memoryFleet(4);
    const worker = new EchoWorker(fleet.broker, fleet.common.names);
    await worker.start();
    const { edge } = await startEdge(fleet, { drainMs: 300, limits: { rateLimit: 2 } });
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${edge.mqttAddress().port}`, {
      clientId: "mq5-limited",
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    try {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 6 }, (_, index) =>
          client.publishAsync("tether/req/echo", String(index), {
            qos: 1,
            properties: { correlationData: Buffer.from(`r${index}`) },
          }),
        ),
      );
      const refused = outcomes.filter((outcome) => outcome.status === "rejected");
      assert.ok(refused.length >= 3, `${refused.length} of 6 refused`);
      for (const outcome of refused) assert.equal((outcome.reason as { code?: number }).code, 0x97);
      let reason: number | undefined;
      client.on("disconnect", (packet) => {
        reason = packet.reasonCode;
      });
      await edge.drain();
      await eventually(() => reason !== undefined, 3000, "DISCONNECT from the draining edge");
      assert.equal(reason, 0x8b);
    } finally {
      await client.endAsync(true);
      await edge.close();
      await worker.close();
    }
  });
});
