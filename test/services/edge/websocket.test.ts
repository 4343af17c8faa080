/**
 * The WebSocket binding (PROTOCOL.md): NDJSON frames as text messages, and MQTT over WebSocket
 * (subprotocol `mqtt`) on the same port, driven by the `ws` client and mqtt.js.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import { WebSocket } from "ws";
import { EchoWorker, eventually, memoryFleet, startEdge, type TestFleet } from "./helpers.ts";

type Frame = Record<string, unknown> & { t: string };

/** A WebSocket device: every text message is one frame. */
async function openDevice(url: string): Promise<{ ws: WebSocket; frames: Frame[]; closed: Promise<void> }> {
  const ws = new WebSocket(url);
  const frames: Frame[] = [];
  ws.on("message", (data, isBinary) => {
    assert.equal(isBinary, false);
    frames.push(JSON.parse(data.toString()) as Frame);
  });
  const closed = new Promise<void>((resolve) => ws.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return { ws, frames, closed };
}

async function take(frames: Frame[], t: string): Promise<Frame> {
  await eventually(() => frames.some((frame) => frame.t === t), 3000, `a ${t} frame`);
  const index = frames.findIndex((frame) => frame.t === t);
  return frames.splice(index, 1)[0] as Frame;
}

describe("WebSocket binding (memory adapters)", () => {
  let url: string;
  let registry: TestFleet["registry"];
  const cleanup: Array<() => Promise<unknown> | unknown> = [];

  before(async () => {
    const fleet = await memoryFleet(4);
    registry = fleet.registry;
    const worker = new EchoWorker(fleet.broker, fleet.common.names);
    await worker.start();
    cleanup.push(() => worker.close());
    const { edge } = await startEdge(fleet);
    cleanup.push(() => edge.close());
    url = `ws://127.0.0.1:${edge.wsAddress().port}/`;
  });
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it("speaks NDJSON with one frame per text message, with or without the newline", async () => {
    const device = await openDevice(url);
    cleanup.push(() => device.ws.terminate());
    device.ws.send(JSON.stringify({ t: "hello", v: 1, deviceId: "ws-1" }));
    const welcome = await take(device.frames, "welcome");
    assert.equal(typeof welcome.connId, "string");
    assert.equal((await registry.connections.get("ws-1"))?.protocol, "ndjson+ws");
    device.ws.send(`${JSON.stringify({ t: "req", id: "a", type: "echo", body: { x: 1 } })}\n`);
    device.ws.send(JSON.stringify({ t: "req", id: "b", type: "echo", body: [2] }));
    const answers = [await take(device.frames, "res"), await take(device.frames, "res")];
    assert.deepEqual(answers.map((frame) => frame.id).sort(), ["a", "b"]);
    assert.deepEqual(answers.find((frame) => frame.id === "a")?.body, { x: 1 });
    device.ws.send(JSON.stringify({ t: "ping" }));
    await take(device.frames, "pong");
  });

  it("answers a bad text message with bad_frame and closes before hello as over TCP", async () => {
    const device = await openDevice(url);
    device.ws.send("not json at all");
    const error = await take(device.frames, "error");
    assert.equal(error.code, "bad_frame");
    await device.closed;
  });

  it("speaks MQTT 5 and 3.1.1 to clients that ask for the mqtt subprotocol", async () => {
    for (const protocolVersion of [5, 4] as const) {
      const deviceId = `ws-mqtt-${protocolVersion}`;
      const client = await mqtt.connectAsync(url, { clientId: deviceId, protocolVersion, reconnectPeriod: 0 });
      cleanup.push(() => client.endAsync(true));
      const messages: Array<{ topic: string; payload: string }> = [];
      client.on("message", (topic, payload) => messages.push({ topic, payload: payload.toString() }));
      await client.subscribeAsync("tether/res/#", { qos: 1 });
      const topic = protocolVersion === 5 ? "tether/req/echo" : "tether/req/echo/w1";
      await client.publishAsync(topic, JSON.stringify({ v: protocolVersion }), {
        qos: 1,
        ...(protocolVersion === 5 ? { properties: { correlationData: Buffer.from("w1") } } : {}),
      });
      await eventually(() => messages.some((m) => m.topic === "tether/res/w1"), 3000, "the answer");
      assert.deepEqual(JSON.parse(messages[0]?.payload ?? "null"), { v: protocolVersion });
      const protocol = (await registry.connections.get(deviceId))?.protocol;
      assert.equal(protocol, protocolVersion === 5 ? "mqtt5+ws" : "mqtt3.1.1+ws");
    }
  });

  it("answers a plain HTTP request with 426", async () => {
    const response = await fetch(url.replace("ws:", "http:"));
    assert.equal(response.status, 426);
  });
});
