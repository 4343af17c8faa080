/**
 * The MQTT binding against the embedded mode (`npm start`), driven by clients nobody here wrote:
 * Debian's mosquitto_rr, mosquitto_pub and mosquitto_sub, and Python's paho-mqtt.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { hmacToken } from "../../../shared/auth/index.ts";
import { PAHO_SCRIPT, pahoPython } from "../../harness/paho.ts";
import { type Embedded, freePort, startEmbedded } from "../../shared/sdk/embedded-process.ts";

const SECRET = "mqtt-clients-secret";

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(command: string, args: readonly string[], timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe("MQTT with mosquitto and paho-mqtt (embedded mode)", () => {
  let embedded: Embedded;
  let mqttPort: number;

  before(async () => {
    mqttPort = await freePort();
    embedded = await startEmbedded({
      env: { TETHER_MQTT_PORT: String(mqttPort), TETHER_AUTH_MODE: "hmac", TETHER_AUTH_SECRET: SECRET },
    });
  });
  after(async () => {
    await embedded?.stop();
  });

  /** mosquitto's connection options for a device (the user name is ignored by the edge). */
  function as(deviceId: string, version: "5" | "311", token = hmacToken(SECRET, deviceId)): string[] {
    return ["-h", "127.0.0.1", "-p", String(mqttPort), "-V", version, "-i", deviceId, "-u", deviceId, "-P", token];
  }

  async function push(deviceId: string, body: unknown): Promise<void> {
    const response = await fetch(`${embedded.adminUrl}/v1/devices/${deviceId}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${embedded.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "note", body }),
    });
    assert.equal(response.status, 202);
  }

  it("answers mosquitto_rr in MQTT 5 on its response topic, and in 3.1.1 on tether/res/<id>", async () => {
    const v5 = await run("mosquitto_rr", [
      ...as("rr-5", "5"),
      ...["-t", "tether/req/echo", "-e", "tether/res/rr-5", "-m", '{"via":"mosquitto_rr"}', "-W", "10"],
    ]);
    assert.equal(v5.code, 0, v5.stderr);
    assert.deepEqual(JSON.parse(v5.stdout), { via: "mosquitto_rr" });
    const v311 = await run("mosquitto_rr", [
      ...as("rr-311", "311"),
      ...["-t", "tether/req/echo/rr-1", "-e", "tether/res/rr-1", "-m", "[3,1,1]", "-W", "10"],
    ]);
    assert.equal(v311.code, 0, v311.stderr);
    assert.deepEqual(JSON.parse(v311.stdout), [3, 1, 1]);
  });

  it("gives mosquitto_sub a push on tether/push/<type>; once PUBACKed it is not sent again", async () => {
    const sub = run("mosquitto_sub", [
      ...as("sub-5", "5"),
      ...["-t", "tether/push/#", "-q", "1", "-C", "1", "-W", "10", "-F", "%t %p"],
    ]);
    // mosquitto_sub subscribes right after CONNACK; the push goes to its connection or its outbox.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await push("sub-5", { n: 1 });
    const got = await sub;
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout.trim(), 'tether/push/note {"n":1}');
    const again = await run("mosquitto_sub", [
      ...as("sub-5", "5"),
      ...["-t", "tether/push/#", "-q", "1", "-C", "1", "-W", "2", "-F", "%t %p"],
    ]);
    assert.equal(again.stdout.trim(), "", "an acked push came back");
  });

  it("delivers a push sent while the device was offline when mosquitto_sub connects in 3.1.1", async () => {
    await push("sub-offline", { while: "away" });
    const got = await run("mosquitto_sub", [
      ...as("sub-offline", "311"),
      ...["-t", "tether/push/#", "-q", "1", "-C", "1", "-W", "10", "-F", "%t %p"],
    ]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout.trim(), 'tether/push/note {"while":"away"}');
  });

  it("takes a request from mosquitto_pub and refuses it a bad token", async () => {
    const ok = await run("mosquitto_pub", [
      ...as("pub-5", "5"),
      ...["-t", "tether/req/echo", "-q", "1", "-m", '{"fire":"and forget"}'],
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const bad = await run("mosquitto_pub", [
      ...as("pub-5", "5", "wrong-token"),
      ...["-t", "tether/req/echo", "-q", "1", "-m", "{}"],
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /bad user ?name or password/i);
    const bad311 = await run("mosquitto_pub", [
      ...as("pub-311", "311", "wrong-token"),
      ...["-t", "tether/req/echo/x", "-q", "1", "-m", "{}"],
    ]);
    assert.notEqual(bad311.code, 0);
  });

  it("answers paho-mqtt in MQTT 5 with its correlation data, and in 3.1.1", async () => {
    for (const version of ["5", "3.1.1"]) {
      const deviceId = `paho-${version.replaceAll(".", "")}`;
      const got = await run(pahoPython(), [
        PAHO_SCRIPT,
        String(mqttPort),
        deviceId,
        hmacToken(SECRET, deviceId),
        version,
        "request",
      ]);
      assert.equal(got.code, 0, got.stderr);
      const answer = JSON.parse(got.stdout) as { topic: string; payload: unknown; correlation: string | null };
      assert.deepEqual(answer.payload, { from: "paho" });
      if (version === "5") {
        assert.equal(answer.topic, `tether/res/${deviceId}`);
        assert.equal(answer.correlation, "paho-1");
      } else assert.equal(answer.topic, "tether/res/paho-1");
    }
  });

  it("gives paho-mqtt a push with its message id, and refuses it a bad token", async () => {
    const deviceId = "paho-push";
    await push(deviceId, { to: "paho" });
    const got = await run(pahoPython(), [
      PAHO_SCRIPT,
      String(mqttPort),
      deviceId,
      hmacToken(SECRET, deviceId),
      "5",
      "push",
    ]);
    assert.equal(got.code, 0, got.stderr);
    const message = JSON.parse(got.stdout) as { topic: string; payload: unknown; user: Record<string, string> };
    assert.equal(message.topic, "tether/push/note");
    assert.deepEqual(message.payload, { to: "paho" });
    assert.equal(typeof message.user.id, "string");
    const refused = await run(pahoPython(), [PAHO_SCRIPT, String(mqttPort), deviceId, "bad", "5", "push"]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /bad user ?name or password/i);
  });
});
