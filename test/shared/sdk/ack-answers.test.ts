import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { ClientFrame } from "../../../shared/protocol/index.ts";
import { isTetherRequestError, TetherClient, type TetherClientOptions } from "../../../shared/sdk/index.ts";
import { type FakeConnection, FakeEdge } from "./fake-edge.ts";

/** An edge that confirms `ackAnswers` when asked (or always, or never), acks requests and leaves answers to the test. */
function ackingEdge(echo: "when_asked" | "always" | "never" = "when_asked"): FakeEdge {
  return new FakeEdge({
    onFrame: (conn, frame) => {
      if (frame.t === "hello") {
        const confirm = echo === "always" || (echo === "when_asked" && frame.ackAnswers === true);
        conn.send({
          t: "welcome",
          connId: `c${conn.index}`,
          edgeId: "fake",
          heartbeatMs: 30_000,
          maxFrameBytes: 65_536,
          ...(confirm ? { ackAnswers: true } : {}),
        });
      } else if (frame.t === "req") {
        conn.send({ t: "ack", id: frame.id });
      } else if (frame.t === "ping") {
        conn.send({ t: "pong" });
      } else if (frame.t === "bye") {
        conn.close();
      }
    },
  });
}

async function start(t: TestContext, edge: FakeEdge, options: Partial<TetherClientOptions> = {}) {
  await edge.listen();
  t.after(() => edge.close());
  const client = new TetherClient({
    host: "127.0.0.1",
    port: edge.port,
    deviceId: "dev-1",
    requestTimeoutMs: 2000,
    reconnect: { initialMs: 10, maxMs: 50, jitter: 1 },
    ...options,
  });
  t.after(() => client.close());
  return client;
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(5);
  }
}

function acksOn(conn: FakeConnection): string[] {
  return conn.frames.filter((f): f is Extract<ClientFrame, { t: "ack" }> => f.t === "ack").map((f) => f.id);
}

/** Sends a request and waits until the edge has it; resolves with the request's answer promise, wrapped. */
async function sendRequest(
  client: TetherClient,
  conn: FakeConnection,
  id: string,
): Promise<{ readonly answer: Promise<unknown> }> {
  const answer = client.request("echo", { n: id }, { id });
  // Settled by the test; marked handled here so a rejection waits for its assertion.
  answer.catch(() => {});
  await until(() => conn.frames.some((f) => f.t === "req" && f.id === id));
  return { answer };
}

describe("TetherClient answer acknowledgements", () => {
  it("says nothing of ackAnswers and acks no answer by default", async (t) => {
    const edge = ackingEdge("always");
    const client = await start(t, edge);
    const info = await client.connect();
    const conn = await edge.nextConnection(0);
    assert.equal(info.ackAnswers, false);
    assert.deepEqual(edge.received("hello"), [{ t: "hello", v: 1, deviceId: "dev-1" }]);
    const { answer } = await sendRequest(client, conn, "r1");
    conn.send({ t: "res", id: "r1", body: "one" });
    assert.equal(await answer, "one");
    await client.ping();
    assert.deepEqual(acksOn(conn), [], "an edge's unasked-for echo does not turn acks on");
  });

  it("asks in its hello and, once the edge confirms, acks a res by its request id", async (t) => {
    const edge = ackingEdge();
    const client = await start(t, edge, { ackAnswers: true });
    const info = await client.connect();
    const conn = await edge.nextConnection(0);
    assert.equal(info.ackAnswers, true);
    assert.deepEqual(edge.received("hello"), [{ t: "hello", v: 1, deviceId: "dev-1", ackAnswers: true }]);
    const { answer } = await sendRequest(client, conn, "r1");
    conn.send({ t: "res", id: "r1", body: { ok: true } });
    assert.deepEqual(await answer, { ok: true });
    await until(() => acksOn(conn).length === 1);
    assert.deepEqual(acksOn(conn), ["r1"]);
  });

  it("acks an error answer with an id, and the request still rejects with its code", async (t) => {
    const edge = ackingEdge();
    const client = await start(t, edge, { ackAnswers: true });
    await client.connect();
    const conn = await edge.nextConnection(0);
    const { answer } = await sendRequest(client, conn, "r1");
    conn.send({ t: "error", id: "r1", code: "invalid_input", message: "no", retryable: false });
    await assert.rejects(answer, (error) => isTetherRequestError(error) && error.code === "invalid_input");
    await until(() => acksOn(conn).length === 1);
    assert.deepEqual(acksOn(conn), ["r1"]);
  });

  it("acks a repeated answer it drops, each time it comes", async (t) => {
    const edge = ackingEdge();
    const client = await start(t, edge, { ackAnswers: true });
    await client.connect();
    const conn = await edge.nextConnection(0);
    const { answer } = await sendRequest(client, conn, "r1");
    conn.send({ t: "res", id: "r1", body: "first" });
    conn.send({ t: "res", id: "r1", body: "first" });
    conn.send({ t: "error", id: "r1", code: "internal", retryable: false });
    assert.equal(await answer, "first");
    await until(() => acksOn(conn).length === 3);
    assert.deepEqual(acksOn(conn), ["r1", "r1", "r1"]);
    assert.equal(client.pendingCount, 0);
  });

  it("acks an answer the edge sends again on the next connection, on that connection", async (t) => {
    const edge = ackingEdge();
    const client = await start(t, edge, { ackAnswers: true });
    await client.connect();
    const first = await edge.nextConnection(0);
    const { answer } = await sendRequest(client, first, "r1");
    first.send({ t: "res", id: "r1", body: "kept" });
    assert.equal(await answer, "kept");
    // The ack is lost with the connection: the edge still holds the answer.
    first.socket.destroy();
    const second = await edge.nextConnection(1);
    await until(() => second.frames.some((f) => f.t === "hello"));
    await until(() => client.status === "open");
    second.send({ t: "res", id: "r1", body: "kept" });
    await until(() => acksOn(second).length === 1);
    assert.deepEqual(acksOn(second), ["r1"]);
  });

  it("acks nothing when the edge does not confirm", async (t) => {
    const edge = ackingEdge("never");
    const client = await start(t, edge, { ackAnswers: true });
    const info = await client.connect();
    const conn = await edge.nextConnection(0);
    assert.equal(info.ackAnswers, false);
    assert.equal(edge.received("hello")[0]?.ackAnswers, true);
    const { answer } = await sendRequest(client, conn, "r1");
    conn.send({ t: "res", id: "r1", body: 1 });
    conn.send({ t: "error", id: "r2", code: "internal" });
    assert.equal(await answer, 1);
    await client.ping();
    assert.deepEqual(acksOn(conn), []);
  });

  it("still acks pushes by their message id alongside answers", async (t) => {
    const edge = ackingEdge();
    const client = await start(t, edge, { ackAnswers: true });
    await client.connect();
    const conn = await edge.nextConnection(0);
    const { answer } = await sendRequest(client, conn, "r1");
    conn.send({ t: "push", id: "m-1", type: "note", body: null });
    conn.send({ t: "res", id: "r1", body: null });
    assert.equal(await answer, null);
    await until(() => acksOn(conn).length === 2);
    assert.deepEqual(acksOn(conn).sort(), ["m-1", "r1"]);
  });
});
