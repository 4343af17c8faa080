/**
 * The admin API under hostile load: a bound on requests in flight, failed authentications
 * limited per source address, one log line per refused request, and bodies too deep to walk.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, type TestContext, test } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { pino } from "pino";
import { type AdminApp, type AdminDeps, buildApp } from "../../../services/admin/app.ts";
import { AuthFailureLimiter } from "../../../services/admin/auth.ts";
import { type ApiErrorCode, ApiErrorStatus } from "../../../services/admin/errors.ts";
import { jsonDepthExceeds, MAX_JSON_DEPTH } from "../../../services/admin/validation.ts";
import { MemoryBroker, tetherTopics } from "../../../shared/broker/index.ts";
import { resourceNames } from "../../../shared/config/index.ts";
import { type Logger, silentLogger } from "../../../shared/log/index.ts";
import { MemoryRegistry } from "../../../shared/registry/index.ts";
import type { ConnectionRecord, Registry } from "../../../shared/registry/types.ts";
import { bearer } from "./helpers.ts";

const TOKEN = "limits-admin-token-0123456789";
const auth = bearer(TOKEN);
const wrong = bearer("not-the-token");
const names = resourceNames("");

interface Fixture {
  readonly app: AdminApp;
  readonly broker: MemoryBroker;
  readonly clock: { now: number };
}

async function setup(t: TestContext, overrides: Partial<AdminDeps> = {}): Promise<Fixture> {
  const clock = { now: 1_700_000_000_000 };
  const broker = new MemoryBroker();
  const admin = broker.admin();
  await admin.ensureTopics(tetherTopics({ names, maxEdges: 4, workPartitions: 4 }));
  const registry = new MemoryRegistry({ now: () => clock.now });
  const producer = broker.producer();
  await producer.connect();
  const app = await buildApp({
    registry,
    producer,
    admin,
    names,
    maxEdges: 4,
    adminToken: TOKEN,
    logger: silentLogger(),
    now: () => clock.now,
    defaultMetrics: false,
    ...overrides,
  });
  t.after(async () => {
    await app.close();
    await producer.close();
    await admin.close();
    await registry.close();
  });
  return { app, broker, clock };
}

function assertError(response: { statusCode: number; json(): unknown }, code: ApiErrorCode): void {
  const body = response.json() as Record<string, unknown>;
  assert.equal(response.statusCode, ApiErrorStatus[code], `status for ${code}: ${JSON.stringify(body)}`);
  assert.equal(body.code, code);
  assert.equal(body.statusCode, ApiErrorStatus[code]);
  assert.equal(typeof body.message, "string");
}

/** A registry whose first `held` connection lookups wait until `open()`; counts the lookups made. */
function heldRegistry(held: number): { registry: Registry; open: () => void; lookups: () => number } {
  const inner = new MemoryRegistry();
  let lookups = 0;
  let open = (): void => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const registry: Registry = {
    kind: "memory",
    connections: {
      beginAttempt: (deviceId) => inner.connections.beginAttempt(deviceId),
      claim: (claim) => inner.connections.claim(claim),
      release: (deviceId, connId) => inner.connections.release(deviceId, connId),
      restore: (connId, previous) => inner.connections.restore(connId, previous),
      listByEdge: (edgeId, options) => inner.connections.listByEdge(edgeId, options),
      get: async (deviceId): Promise<ConnectionRecord | null> => {
        lookups += 1;
        if (lookups <= held) await opened;
        return inner.connections.get(deviceId);
      },
    },
    leases: inner.leases,
    outbox: inner.outbox,
    ping: () => inner.ping(),
    close: () => inner.close(),
  };
  return { registry, open, lookups: () => lookups };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A pino logger writing into `lines`, one parsed object per line. */
function capturingLogger(lines: Record<string, unknown>[]): Logger {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) {
        if (line.trim() !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return pino({ level: "trace" }, sink);
}

/** `{"type":"x","body":[[...]]}` nesting `depth` deep in all, the request object included. */
function nestedPush(depth: number): string {
  const arrays = depth - 1;
  return `{"type":"deep.test","body":${"[".repeat(arrays)}${"]".repeat(arrays)}}`;
}

describe("requests in flight", () => {
  test("past the bound a request is 429 overloaded with Retry-After, and health and metrics still answer", async (t) => {
    const held = heldRegistry(2);
    const { app } = await setup(t, { registry: held.registry, maxConcurrency: 2 });
    const first = app.inject({ method: "GET", url: "/v1/devices/d1", headers: auth });
    const second = app.inject({ method: "GET", url: "/v1/devices/d2", headers: auth });
    await until(() => held.lookups() === 2, "two lookups in flight");

    const third = await app.inject({ method: "GET", url: "/v1/devices/d3", headers: auth });
    assertError(third, "overloaded");
    assert.equal(third.headers["retry-after"], "1");
    const push = await app.inject({
      method: "POST",
      url: "/v1/devices/d3/messages",
      headers: auth,
      payload: { type: "t", body: null },
    });
    assertError(push, "overloaded");
    assert.equal(held.lookups(), 2, "a refused request did no work");
    for (const url of ["/healthz", "/readyz", "/metrics"]) {
      assert.equal((await app.inject({ method: "GET", url })).statusCode, 200, url);
    }

    held.open();
    assert.equal((await first).statusCode, 404);
    assert.equal((await second).statusCode, 404);
    const after = await app.inject({ method: "GET", url: "/v1/devices/d4", headers: auth });
    assert.equal(after.statusCode, 404, "turns are given back once responses are sent");
  });

  test("refused requests do not use turns up: the bound admits again once the load is gone", async (t) => {
    const { app } = await setup(t, { maxConcurrency: 4 });
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => app.inject({ method: "GET", url: "/v1/devices/x", headers: auth })),
    );
    for (const answer of answers) assert.ok([404, 429].includes(answer.statusCode), String(answer.statusCode));
    const later = await Promise.all(
      Array.from({ length: 4 }, () => app.inject({ method: "GET", url: "/v1/devices/x", headers: auth })),
    );
    assert.deepEqual(
      later.map((answer) => answer.statusCode),
      [404, 404, 404, 404],
    );
  });
});

describe("failed authentication", () => {
  const limits = { burst: 3, perSecond: 1, maxSources: 100 };

  test("an address past its failed attempts is 429 rate_limited with Retry-After, even with the right token", async (t) => {
    const { app, clock } = await setup(t, { authFailureLimits: limits });
    for (let i = 0; i < 3; i += 1) {
      assertError(await app.inject({ method: "GET", url: "/v1/edges", headers: wrong }), "unauthorized");
    }
    const limited = await app.inject({ method: "GET", url: "/v1/edges", headers: wrong });
    assertError(limited, "rate_limited");
    assert.equal(limited.headers["retry-after"], "1");
    // A right guess must look the same as a wrong one while the address waits.
    assertError(await app.inject({ method: "GET", url: "/v1/edges", headers: auth }), "rate_limited");

    clock.now += 1000;
    assert.equal((await app.inject({ method: "GET", url: "/v1/edges", headers: auth })).statusCode, 200);
    assertError(await app.inject({ method: "GET", url: "/v1/edges", headers: wrong }), "unauthorized");
    assertError(await app.inject({ method: "GET", url: "/v1/edges", headers: wrong }), "rate_limited");
  });

  test("the limit is per source address", async (t) => {
    const { app } = await setup(t, { authFailureLimits: { ...limits, burst: 1 } });
    const from = (remoteAddress: string, headers: Record<string, string>) =>
      app.inject({ method: "GET", url: "/v1/edges", headers, remoteAddress });
    assertError(await from("10.0.0.1", wrong), "unauthorized");
    assertError(await from("10.0.0.1", wrong), "rate_limited");
    assertError(await from("10.0.0.2", wrong), "unauthorized");
    assert.equal((await from("10.0.0.3", auth)).statusCode, 200);
  });

  test("behind a trusted proxy the address is the one the proxy saw", async (t) => {
    const { app } = await setup(t, { authFailureLimits: { ...limits, burst: 1 }, trustedProxyHops: 1 });
    const via = (client: string, headers: Record<string, string>) =>
      app.inject({
        method: "GET",
        url: "/v1/edges",
        remoteAddress: "10.9.9.9",
        headers: { ...headers, "x-forwarded-for": `203.0.113.50, ${client}` },
      });
    assertError(await via("198.51.100.1", wrong), "unauthorized");
    assertError(await via("198.51.100.1", wrong), "rate_limited");
    // The proxy's address is shared by every client; one offender does not lock the others out.
    assert.equal((await via("198.51.100.2", auth)).statusCode, 200);
  });

  test("the addresses tracked are bounded, and one whose attempts came back is dropped", () => {
    const limiter = new AuthFailureLimiter({ burst: 1, perSecond: 1, maxSources: 2 });
    limiter.fail("a", 0);
    limiter.fail("b", 0);
    assert.ok(limiter.waitMs("a", 0) > 0);
    limiter.fail("c", 0);
    assert.equal(limiter.size, 2);
    assert.equal(limiter.waitMs("a", 0), 0, "the least recently failing address was forgotten");
    assert.equal(limiter.waitMs("b", 500), 500);
    assert.equal(limiter.waitMs("c", 1000), 0);
    assert.equal(limiter.size, 1);
  });
});

describe("request logging", () => {
  test("a refused request writes exactly one log line, with its code and status", async (t) => {
    const lines: Record<string, unknown>[] = [];
    const held = heldRegistry(1);
    const { app } = await setup(t, {
      logger: capturingLogger(lines),
      registry: held.registry,
      maxConcurrency: 1,
      authFailureLimits: { burst: 1, perSecond: 1, maxSources: 10 },
    });
    const cases: { send: () => Promise<LightMyRequestResponse>; code: ApiErrorCode }[] = [
      { send: () => app.inject({ method: "GET", url: "/v1/edges", headers: wrong }), code: "unauthorized" },
      { send: () => app.inject({ method: "GET", url: "/v1/edges", headers: wrong }), code: "rate_limited" },
      {
        send: () =>
          app.inject({
            method: "POST",
            url: "/v1/devices/d1/messages",
            headers: { ...auth, "content-type": "application/json" },
            remoteAddress: "10.0.0.7",
            payload: nestedPush(200),
          }),
        code: "validation_failed",
      },
      { send: () => app.inject({ method: "GET", url: "/nowhere" }), code: "not_found" },
    ];
    for (const { send, code } of cases) {
      lines.length = 0;
      const response = await send();
      assertError(response, code);
      assert.equal(lines.length, 1, `${code}: ${JSON.stringify(lines)}`);
      assert.equal(lines[0]?.code, code);
      assert.deepEqual(lines[0]?.res, { statusCode: ApiErrorStatus[code] });
      assert.equal((lines[0]?.req as { url?: unknown } | undefined)?.url !== undefined, true);
    }

    const inFlight = app.inject({ method: "GET", url: "/v1/devices/d1", headers: auth, remoteAddress: "10.0.0.8" });
    await until(() => held.lookups() === 1, "a lookup in flight");
    lines.length = 0;
    assertError(await app.inject({ method: "GET", url: "/v1/edges", remoteAddress: "10.0.0.9" }), "overloaded");
    assert.equal(lines.length, 1, JSON.stringify(lines));
    held.open();
    await inFlight;
  });

  test("a wrong token never reaches the log line", async (t) => {
    const lines: Record<string, unknown>[] = [];
    const { app } = await setup(t, { logger: capturingLogger(lines) });
    await app.inject({ method: "GET", url: "/v1/edges", headers: wrong });
    assert.ok(!JSON.stringify(lines).includes("not-the-token"));
  });
});

describe("JSON depth", () => {
  test("a push nested 6,000 deep is 400 validation_failed and nothing reaches the broker", async (t) => {
    const { app, broker } = await setup(t);
    const response = await app.inject({
      method: "POST",
      url: "/v1/devices/d1/messages",
      headers: { ...auth, "content-type": "application/json" },
      payload: nestedPush(6000),
    });
    assertError(response, "validation_failed");
    assert.match((response.json() as { message: string }).message, /64/);
    assert.equal(await broker.admin().groupLag("nobody", names.downlinkTopic), 0);
  });

  test(`a push ${MAX_JSON_DEPTH} deep is accepted and one level more is refused`, async (t) => {
    const { app } = await setup(t);
    const push = (depth: number) =>
      app.inject({
        method: "POST",
        url: "/v1/devices/d1/messages",
        headers: { ...auth, "content-type": "application/json" },
        payload: nestedPush(depth),
      });
    assert.equal((await push(MAX_JSON_DEPTH)).statusCode, 202);
    assertError(await push(MAX_JSON_DEPTH + 1), "validation_failed");
  });

  test("jsonDepthExceeds counts containers, not scalars, and walks any depth without recursion", () => {
    assert.equal(jsonDepthExceeds(42, 0), false);
    assert.equal(jsonDepthExceeds(null, 0), false);
    assert.equal(jsonDepthExceeds({}, 0), true);
    assert.equal(jsonDepthExceeds({}, 1), false);
    assert.equal(jsonDepthExceeds({ a: [1, { b: "x" }] }, 3), false);
    assert.equal(jsonDepthExceeds({ a: [1, { b: "x" }] }, 2), true);
    assert.equal(jsonDepthExceeds([[], [[[]]], {}], 3), true);
    let deep: unknown = [];
    for (let i = 0; i < 1_000_000; i += 1) deep = [deep];
    assert.equal(jsonDepthExceeds(deep, 64), true);
    assert.equal(jsonDepthExceeds(JSON.parse(`${"[".repeat(64)}${"]".repeat(64)}`), 64), false);
  });
});
