/**
 * The DynamoDB adapter's fenced lease calls: short single attempts on fresh connections, against
 * stand-in endpoints (one that never answers, one that answers and counts connections).
 */
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { type TestContext, test } from "node:test";
import { resourceNames } from "../../../shared/config/index.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { createDynamoRegistry } from "../../../shared/registry/dynamodb/index.ts";

/** A TCP server that accepts every connection and never writes a byte. */
async function silentEndpoint(t: TestContext): Promise<{ url: string; accepted: () => number }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, accepted: () => accepted };
}

/** Answers every call with the row of slot 3 held by edge-a, generation 1, counting connections. */
async function answeringEndpoint(t: TestContext): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  const server = createHttpServer((request, response) => {
    request.resume();
    request.on("end", () => {
      response.writeHead(200, { "content-type": "application/x-amz-json-1.0" });
      response.end(
        JSON.stringify({
          Attributes: {
            slot: { N: "3" },
            edgeId: { S: "edge-a" },
            host: { S: "h" },
            startedAt: { N: "1" },
            leaseUntil: { N: "2" },
            leaseMs: { N: "1000" },
            generation: { N: "1" },
            version: { S: "v" },
            released: { BOOL: false },
          },
        }),
      );
    });
  });
  server.on("connection", () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, connections: () => connections };
}

const lease = { slot: 3, edgeId: "edge-a", host: "h", leaseMs: 1000 };

test("every fenced lease call against an endpoint that never answers rejects within the lease timeout", async (t) => {
  const endpoint = await silentEndpoint(t);
  const registry = createDynamoRegistry({
    settings: { endpoint: endpoint.url, region: "us-east-1" },
    names: resourceNames("l-"),
    logger: silentLogger(),
    leaseTimeoutMs: 300,
  });
  t.after(() => registry.close());
  const calls: Array<[string, () => Promise<unknown>]> = [
    ["acquireFree", () => registry.leases.acquireFree(lease)],
    ["takeOver", () => registry.leases.takeOver(lease, "v")],
    ["renewHeld", () => registry.leases.renewHeld(3, "edge-a", 1, 1000, { committed: 4 })],
    ["commitOffset", () => registry.leases.commitOffset(3, "edge-a", 1, 4)],
    ["releaseHeld", () => registry.leases.releaseHeld(3, "edge-a", 1)],
  ];
  for (const [name, call] of calls) {
    const started = performance.now();
    await assert.rejects(call(), (error) => hasErrorCode(error, "timeout"), name);
    const took = performance.now() - started;
    assert.ok(took >= 250 && took < 800, `${name} took ${Math.round(took)} ms`);
  }
  assert.equal(endpoint.accepted(), calls.length, "one attempt each, no retries");
});

test("the lease timeout comes from the settings when the options do not give one", async (t) => {
  const endpoint = await silentEndpoint(t);
  const registry = createDynamoRegistry({
    settings: { endpoint: endpoint.url, region: "us-east-1", leaseTimeoutMs: 200 },
    names: resourceNames("l-"),
    logger: silentLogger(),
  });
  t.after(() => registry.close());
  const started = performance.now();
  await assert.rejects(registry.leases.commitOffset(3, "edge-a", 1, 0), (error) => hasErrorCode(error, "timeout"));
  assert.ok(performance.now() - started < 600);
});

test("each fenced lease call opens a new connection, while other calls reuse theirs", async (t) => {
  const endpoint = await answeringEndpoint(t);
  const registry = createDynamoRegistry({
    settings: { endpoint: endpoint.url, region: "us-east-1" },
    names: resourceNames("l-"),
    logger: silentLogger(),
  });
  t.after(() => registry.close());
  for (let i = 0; i < 4; i++) {
    const renewed = await registry.leases.renewHeld(3, "edge-a", 1, 1000);
    assert.equal(renewed.generation, 1);
  }
  await registry.leases.commitOffset(3, "edge-a", 1, 9);
  assert.equal(endpoint.connections(), 5);
  for (let i = 0; i < 4; i++) await registry.leases.renew(3, "edge-a", 1000);
  assert.equal(endpoint.connections(), 6, "the registry's own client keeps its connection alive");
});
