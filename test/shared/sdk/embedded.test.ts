import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type DisconnectInfo,
  isTetherRequestError,
  type Push,
  TetherClient,
  type TetherClientOptions,
} from "../../../shared/sdk/index.ts";
import { type Embedded, startEmbedded } from "./embedded-process.ts";

async function embedded(t: TestContext): Promise<Embedded> {
  const e = await startEmbedded();
  t.after(() => e.stop("SIGKILL"));
  return e;
}

function client(
  t: TestContext,
  e: Embedded,
  deviceId: string,
  options: Partial<TetherClientOptions> = {},
): TetherClient {
  const c = new TetherClient({
    host: "127.0.0.1",
    port: e.devicePort,
    deviceId,
    requestTimeoutMs: 10_000,
    reconnect: { initialMs: 50, maxMs: 500, jitter: 1 },
    ...options,
  });
  t.after(() => c.close());
  return c;
}

async function admin(
  e: Embedded,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${e.adminUrl}/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${e.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text === "" ? null : JSON.parse(text) };
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(10);
  }
}

describe("TetherClient against the embedded mode", () => {
  it("gets echo answers and typed errors for unknown types", async (t) => {
    const e = await embedded(t);
    const c = client(t, e, "sdk-e2e-1");
    const info = await c.connect();
    assert.match(info.edgeId, /\S/);
    let acked = false;
    assert.deepEqual(await c.request("echo", { n: [1, 2] }, { onAck: () => (acked = true) }), { n: [1, 2] });
    assert.equal(acked, true);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => c.request("echo", i)));
    assert.deepEqual(
      answers,
      Array.from({ length: 50 }, (_, i) => i),
    );
    try {
      await c.request("no.such.handler", null);
      assert.fail("expected an error");
    } catch (error) {
      assert.ok(isTetherRequestError(error));
      assert.equal(error.code, "unknown_type");
    }
  });

  it("receives a push sent through the admin API, and a kicked client comes back by itself", async (t) => {
    const e = await embedded(t);
    const c = client(t, e, "sdk-e2e-2");
    const pushes: Push[] = [];
    c.onPush((push) => {
      pushes.push(push);
    });
    const disconnects: DisconnectInfo[] = [];
    c.on("disconnected", (info) => disconnects.push(info));
    await c.connect();
    const pushed = await admin(e, "POST", "/devices/sdk-e2e-2/messages", { type: "note", body: { text: "hi" } });
    assert.equal(pushed.status, 202, JSON.stringify(pushed.json));
    await until(() => pushes.length === 1);
    assert.equal(pushes[0]?.type, "note");
    assert.deepEqual(pushes[0]?.body, { text: "hi" });

    const kicked = await admin(e, "DELETE", "/devices/sdk-e2e-2/connection");
    assert.equal(kicked.status, 202, JSON.stringify(kicked.json));
    await until(() => disconnects.length === 1);
    assert.equal(disconnects[0]?.reason, "kicked");
    assert.equal(disconnects[0]?.willReconnect, true);
    assert.equal(await c.request("echo", "after kick"), "after kick");
    assert.equal(c.status, "open");
  });

  it("is replaced by a newer connection of the same device", async (t) => {
    const e = await embedded(t);
    const first = client(t, e, "sdk-e2e-3");
    const second = client(t, e, "sdk-e2e-3");
    let replaced = 0;
    first.on("replaced", () => replaced++);
    await first.connect();
    await second.connect();
    await until(() => replaced === 1);
    assert.equal(first.status, "closed");
    assert.equal(await second.request("echo", "second"), "second");
  });

  it("reconnects after the process restarts and gets the answer to a request made while it was down", async (t) => {
    const e1 = await startEmbedded();
    t.after(() => e1.stop("SIGKILL"));
    const c = client(t, e1, "sdk-e2e-4");
    const reasons: string[] = [];
    c.on("disconnected", (info) => reasons.push(info.reason));
    await c.connect();
    assert.equal(await c.request("echo", "before"), "before");
    assert.equal(await e1.stop("SIGTERM"), 0);
    await until(() => c.status !== "open");
    const during = c.request("echo", "during");
    const e2 = await startEmbedded({ devicePort: e1.devicePort });
    t.after(() => e2.stop("SIGKILL"));
    assert.equal(await during, "during");
    assert.ok(reasons.length >= 1, "saw the disconnect");
    assert.ok(reasons[0] === "draining" || reasons[0] === "socket_closed", reasons.join(","));
  });
});
