/**
 * The DynamoDB adapter's bound on requests in flight, against a stand-in HTTP endpoint that
 * answers every call slowly and counts how many it holds at once.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type TestContext, test } from "node:test";
import { resourceNames } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { createDynamoRegistry } from "../../../shared/registry/dynamodb/index.ts";
import { localDynamoDbSettings } from "../../harness/settings.ts";

interface SlowEndpoint {
  readonly url: string;
  /** Most requests the endpoint held at once. */
  most(): number;
  served(): number;
}

/** Answers every DynamoDB call with an empty item after `delayMs`. */
async function slowEndpoint(t: TestContext, delayMs: number): Promise<SlowEndpoint> {
  let holding = 0;
  let most = 0;
  let served = 0;
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    holding += 1;
    most = Math.max(most, holding);
    request.resume();
    request.on("end", () => {
      setTimeout(() => {
        holding -= 1;
        served += 1;
        response.writeHead(200, { "content-type": "application/x-amz-json-1.0" });
        response.end("{}");
      }, delayMs);
    });
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
  return { url: `http://127.0.0.1:${port}`, most: () => most, served: () => served };
}

test("no more DynamoDB requests are in flight than the bound, and the ones past it wait instead of failing", async (t) => {
  const endpoint = await slowEndpoint(t, 40);
  const registry = createDynamoRegistry({
    settings: localDynamoDbSettings({ dynamodbEndpoint: endpoint.url }),
    names: resourceNames("c-"),
    logger: silentLogger(),
    maxConcurrency: 4,
    // Well under the time the last calls spend queued (40 calls, 4 at a time, 40 ms each).
    requestTimeoutMs: 250,
    maxAttempts: 1,
  });
  t.after(() => registry.close());
  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => registry.connections.get(`device-${i}`)));
  assert.deepEqual(answers, Array(40).fill(null));
  assert.equal(endpoint.most(), 4);
  assert.equal(endpoint.served(), 40);
  assert.ok(Date.now() - started >= 350, "the calls were spread over time");
});

test("the bound comes from the settings when the options do not give one", async (t) => {
  const endpoint = await slowEndpoint(t, 20);
  const registry = createDynamoRegistry({
    settings: { ...localDynamoDbSettings({ dynamodbEndpoint: endpoint.url }), maxConcurrency: 3 },
    names: resourceNames("c-"),
    logger: silentLogger(),
    maxAttempts: 1,
  });
  t.after(() => registry.close());
  await Promise.all(Array.from({ length: 12 }, (_, i) => registry.leases.get(i)));
  assert.equal(endpoint.most(), 3);
});

test("a burst far past the socket pool is served in full with the default bound", async (t) => {
  const endpoint = await slowEndpoint(t, 20);
  const registry = createDynamoRegistry({
    settings: localDynamoDbSettings({ dynamodbEndpoint: endpoint.url }),
    names: resourceNames("c-"),
    logger: silentLogger(),
    maxAttempts: 1,
  });
  t.after(() => registry.close());
  const answers = await Promise.allSettled(Array.from({ length: 1000 }, (_, i) => registry.connections.get(`d-${i}`)));
  const failed = answers.filter((answer) => answer.status === "rejected");
  assert.equal(failed.length, 0, failed.length > 0 ? String((failed[0] as PromiseRejectedResult).reason) : "");
  assert.equal(endpoint.most(), 64);
});
