/**
 * An edge given a certificate ends TLS on its MQTT and WebSocket ports as on the device port:
 * mqtt.js over mqtts:// and wss:// against a self-signed certificate.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import mqtt from "mqtt";
import { selfSignedCert } from "../../harness/tls.ts";
import { EchoWorker, eventually, memoryFleet, startEdge } from "./helpers.ts";

it("ends TLS on the MQTT port and on the WebSocket port (MQTT over wss)", async (t) => {
  const { certFile, keyFile } = selfSignedCert(t);
  const fleet = await memoryFleet(4);
  const worker = new EchoWorker(fleet.broker, fleet.common.names);
  await worker.start();
  t.after(() => worker.close());
  const { edge } = await startEdge(fleet, { tls: { certFile, keyFile } });
  t.after(() => edge.close());
  const ca = readFileSync(certFile);
  for (const url of [`mqtts://localhost:${edge.mqttAddress().port}`, `wss://localhost:${edge.wsAddress().port}/`]) {
    const deviceId = url.startsWith("wss") ? "tls-ws" : "tls-mqtt";
    const client = await mqtt.connectAsync(url, {
      clientId: deviceId,
      protocolVersion: 5,
      reconnectPeriod: 0,
      ca,
      rejectUnauthorized: true,
      servername: "localhost",
    });
    t.after(() => client.endAsync(true));
    const answers: string[] = [];
    client.on("message", (_topic, payload) => answers.push(payload.toString()));
    await client.publishAsync("tether/req/echo", JSON.stringify(url), {
      qos: 1,
      properties: { correlationData: Buffer.from("tls-1") },
    });
    await eventually(() => answers.length === 1, 3000, `the answer over ${url}`);
    assert.equal(JSON.parse(answers[0] ?? "null"), url);
  }
});
