/**
 * Guarantees for MQTT devices, seen through mqtt.js (5.0 and 3.1.1) on the production shape
 * (3 edge processes, 64 reply slots, hmac) over the local Kafka and DynamoDB: a CONNECT on
 * another edge takes the device over, and a `kill -9` of an edge with answers in flight loses
 * none of the PUBACKed requests: their answers reach each device on its new connection. The
 * devices never resend a request.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import mqtt, { type MqttClient } from "mqtt";
import { type EdgeFleet, type FleetProcess, report, startEdgeFleet, until } from "../harness/edge-fleet.ts";
import { freePort } from "../harness/net.ts";
import { PAHO_SCRIPT, pahoPython } from "../harness/paho.ts";

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 30_000, encoding: "utf8" }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr });
    });
  });
}

const LEASE_MS = Number(process.env.TETHER_GUARANTEE_LEASE_MS ?? 3000);
const HOLD_MS = 4000;
const DEVICES_PER_VERSION = 8;
const PER_DEVICE = 2;

interface Answer {
  readonly id: string;
  readonly topic: string;
  readonly payload: string;
  /** Which connection of the device it came on (0 = the first). */
  readonly conn: number;
}

/** An MQTT device that reconnects (to an edge it is told) but never resends a request. */
class MqttDevice {
  readonly deviceId: string;
  readonly version: 4 | 5;
  readonly answers = new Map<string, Answer>();
  readonly acked = new Set<string>();
  readonly pushes: Array<{ topic: string; payload: string; id: string | undefined }> = [];
  client: MqttClient | undefined;
  conn = -1;
  disconnectReasons: number[] = [];
  readonly #token: string | undefined;

  constructor(deviceId: string, version: 4 | 5, token: string | undefined) {
    this.deviceId = deviceId;
    this.version = version;
    this.#token = token;
  }

  async connect(port: number): Promise<void> {
    this.conn += 1;
    const conn = this.conn;
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId: this.deviceId,
      username: this.deviceId,
      ...(this.#token === undefined ? {} : { password: this.#token }),
      protocolVersion: this.version,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      clean: true,
    });
    this.client = client;
    client.on("error", () => {});
    client.on("disconnect", (packet) => this.disconnectReasons.push(packet.reasonCode ?? 0));
    client.on("message", (topic, payload, packet) => {
      if (topic.startsWith("tether/push/")) {
        const userProperties = packet.properties?.userProperties as Record<string, string> | undefined;
        this.pushes.push({ topic, payload: payload.toString(), id: userProperties?.id });
        return;
      }
      const correlation = packet.properties?.correlationData;
      const id = correlation !== undefined ? Buffer.from(correlation).toString() : topic.split("/").at(-1);
      if (id !== undefined && !this.answers.has(id))
        this.answers.set(id, { id, topic, payload: payload.toString(), conn });
    });
    await new Promise<void>((resolve, reject) => {
      client.once("connect", () => resolve());
      client.once("error", reject);
    });
    await client.subscribeAsync("tether/res/#", { qos: 1 });
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  /** Publishes one request; resolves once it is PUBACKed. */
  async request(id: string, type: string, body: unknown): Promise<void> {
    const client = this.client;
    assert.ok(client !== undefined);
    const payload = JSON.stringify(body);
    if (this.version === 5) {
      await client.publishAsync(`tether/req/${type}`, payload, {
        qos: 1,
        properties: { responseTopic: `tether/res/${this.deviceId}`, correlationData: Buffer.from(id) },
      });
    } else {
      await client.publishAsync(`tether/req/${type}/${id}`, payload, { qos: 1 });
    }
    this.acked.add(id);
  }

  close(): void {
    this.client?.end(true);
  }
}

describe("MQTT devices on an edge fleet (Kafka, DynamoDB Local)", { timeout: 240_000 }, () => {
  let fleet: EdgeFleet;
  const mqttPorts = new Map<FleetProcess, number>();
  const devices: MqttDevice[] = [];

  async function startEdge(): Promise<FleetProcess> {
    const port = await freePort();
    const edge = await fleet.startEdge({ env: { TETHER_MQTT_PORT: String(port) } });
    mqttPorts.set(edge, port);
    return edge;
  }

  function portOf(edge: FleetProcess | undefined): number {
    const port = edge === undefined ? undefined : mqttPorts.get(edge);
    assert.ok(port !== undefined);
    return port;
  }

  function device(deviceId: string, version: 4 | 5): MqttDevice {
    const made = new MqttDevice(deviceId, version, fleet.token(deviceId));
    devices.push(made);
    return made;
  }

  before(async () => {
    fleet = await startEdgeFleet({ edges: 0, leaseMs: LEASE_MS });
    for (let index = 0; index < 3; index++) await startEdge();
  });
  after(async () => {
    for (const made of devices) made.close();
    await fleet?.close();
  });

  it("takes a device over when it connects to another edge: MQTT 5 DISCONNECT 0x8E, 3.1.1 closed", async () => {
    const [a, b] = fleet.edges;
    for (const version of [5, 4] as const) {
      const first = device(`mq-takeover-${version}`, version);
      await first.connect(portOf(a));
      const second = device(first.deviceId, version);
      await second.connect(portOf(b));
      await until(() => !first.connected, 10_000, "the older connection closed");
      if (version === 5) assert.deepEqual(first.disconnectReasons, [0x8e]);
      assert.equal((await fleet.connection(first.deviceId))?.protocol, version === 5 ? "mqtt5" : "mqtt3.1.1");
      await second.request("t1", "sleep", { ms: 10, value: "after takeover" });
      await until(() => second.answers.has("t1"), 20_000, "the answer on the new connection");
      assert.equal(JSON.parse(second.answers.get("t1")?.payload ?? "null"), "after takeover");
      assert.equal(first.answers.size, 0);
    }
  });

  it("answers mosquitto_rr (5.0 and 3.1.1) and paho-mqtt through the fleet", async () => {
    const [a, b] = fleet.edges;
    for (const [version, edge] of [
      ["5", a],
      ["311", b],
    ] as const) {
      const deviceId = `mq-rr-${version}`;
      const topics =
        version === "5"
          ? ["-t", "tether/req/echo", "-e", `tether/res/${deviceId}`]
          : ["-t", "tether/req/echo/rr-1", "-e", "tether/res/rr-1"];
      const got = await run("mosquitto_rr", [
        ...["-h", "127.0.0.1", "-p", String(portOf(edge)), "-V", version, "-i", deviceId, "-u", deviceId],
        ...["-P", fleet.token(deviceId) ?? "", ...topics, "-m", `{"v":"${version}"}`, "-W", "20"],
      ]);
      assert.equal(got.code, 0, got.stderr);
      assert.deepEqual(JSON.parse(got.stdout), { v: version });
    }
    const deviceId = "mq-paho";
    const paho = await run(pahoPython(), [
      ...[PAHO_SCRIPT, String(portOf(b)), deviceId, fleet.token(deviceId) ?? "", "5", "request"],
    ]);
    assert.equal(paho.code, 0, paho.stderr);
    assert.deepEqual((JSON.parse(paho.stdout) as { payload: unknown }).payload, { from: "paho" });
  });

  it("delivers a push with its PUBACK as the ack, and a push sent while the device was away on its next connection", async () => {
    const [a, b] = fleet.edges;
    const online = device("mq-push-5", 5);
    await online.connect(portOf(a));
    const messageId = await fleet.push(online.deviceId, { live: true });
    await until(() => online.pushes.length === 1, 20_000, "the push");
    assert.equal(online.pushes[0]?.topic, "tether/push/guarantee");
    assert.equal(online.pushes[0]?.id, messageId);
    await until(
      async () => (await fleet.registry.outbox.list(online.deviceId, 10)).length === 0,
      10_000,
      "the PUBACKed push leaving the outbox",
    );
    const away = "mq-push-311";
    await fleet.push(away, { offline: true });
    await until(async () => (await fleet.registry.outbox.list(away, 10)).length === 1, 20_000, "the push parked");
    const later = device(away, 4);
    await later.connect(portOf(b));
    await until(() => later.pushes.length === 1, 20_000, "the parked push on connect");
    assert.deepEqual(JSON.parse(later.pushes[0]?.payload ?? "null"), { offline: true });
  });

  it("kill -9 of an edge with answers in flight: every PUBACKed request answered on the device's new connection", async () => {
    const [victim, ...survivors] = fleet.edges;
    assert.ok(victim !== undefined);
    const load: MqttDevice[] = [];
    for (const version of [5, 4] as const) {
      for (let index = 0; index < DEVICES_PER_VERSION; index++) load.push(device(`mq-k9-${version}-${index}`, version));
    }
    await Promise.all(load.map((made) => made.connect(portOf(victim))));
    const sent: Promise<void>[] = [];
    for (const made of load) {
      for (let index = 0; index < PER_DEVICE; index++) {
        sent.push(made.request(`k${index}`, "sleep", { ms: HOLD_MS, value: `${made.deviceId}/${index}` }));
      }
    }
    await Promise.all(sent);
    const expected = load.length * PER_DEVICE;
    const answeredBeforeKill = load.reduce((sum, made) => sum + made.answers.size, 0);
    const killedAt = Date.now();
    await fleet.kill9(victim);
    // The devices find their connection gone and connect again through the survivors.
    await until(() => load.every((made) => !made.connected), 10_000, "connections to the killed edge closed");
    let next = 0;
    await Promise.all(
      load.map((made) => {
        next += 1;
        return made.connect(portOf(survivors[next % survivors.length]));
      }),
    );
    const settled = () => load.every((made) => [...made.acked].every((id) => made.answers.has(id)));
    await until(settled, HOLD_MS + 4 * LEASE_MS + 30_000, "every acked request answered").catch(() => {});
    const lost = load.flatMap((made) =>
      [...made.acked].filter((id) => !made.answers.has(id)).map((id) => `${made.deviceId}/${id}`),
    );
    const answers = load.flatMap((made) => [...made.answers.values()]);
    report("mqtt-kill9-in-flight", {
      acked: load.reduce((sum, made) => sum + made.acked.size, 0),
      expected,
      answeredBeforeKill,
      answered: answers.length,
      onNewConnection: answers.filter((answer) => answer.conn > 0).length,
      lostAcked: lost.length,
      sample: lost.slice(0, 5),
      tookMs: Date.now() - killedAt,
    });
    assert.deepEqual(lost, [], `${lost.length} of ${expected} PUBACKed requests never answered`);
    for (const made of load) {
      for (const index of [0, 1]) {
        const answer = made.answers.get(`k${index}`);
        assert.equal(JSON.parse(answer?.payload ?? "null"), `${made.deviceId}/${index}`);
        if (answer !== undefined && answer.conn > 0) assert.equal(answer.topic, `tether/res/k${index}`);
      }
    }
  });
});
