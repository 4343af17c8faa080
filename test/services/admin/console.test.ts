/** The console on the in-memory adapters: its page and files, its /v1 routes, and their OpenAPI entries. */
import assert from "node:assert/strict";
import { describe, type TestContext, test } from "node:test";
import { buildApp } from "../../../services/admin/app.ts";
import { edgeCounters, sumSamples } from "../../../services/admin/edge-metrics.ts";
import { MemoryBroker, tetherTopics } from "../../../shared/broker/index.ts";
import { resourceNames } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { MemoryRegistry } from "../../../shared/registry/index.ts";
import { buildWithoutBroker, type ConsoleAdapters, consoleContract, TOKEN } from "./console-contract.ts";
import { bearer } from "./helpers.ts";

const MAX_EDGES = 4;
const WORK_PARTITIONS = 3;

async function memoryAdapters(t: TestContext): Promise<ConsoleAdapters> {
  const logger = silentLogger();
  const broker = new MemoryBroker({ logger });
  const admin = broker.admin();
  const names = resourceNames("");
  await admin.ensureTopics(tetherTopics({ names, maxEdges: MAX_EDGES, workPartitions: WORK_PARTITIONS }));
  const producer = broker.producer();
  await producer.connect();
  const registry = new MemoryRegistry();
  t.after(async () => {
    await producer.close();
    await admin.close();
    await registry.close();
  });
  return {
    broker,
    admin,
    producer,
    registry,
    names,
    maxEdges: MAX_EDGES,
    workPartitions: WORK_PARTITIONS,
    deliveryMs: 2000,
  };
}

consoleContract("memory", memoryAdapters);

describe("the console page", () => {
  async function app(t: TestContext) {
    const adapters = await memoryAdapters(t);
    const built = await buildApp({
      registry: adapters.registry,
      producer: adapters.producer,
      admin: adapters.admin,
      broker: adapters.broker,
      names: adapters.names,
      maxEdges: MAX_EDGES,
      adminToken: TOKEN,
      logger: silentLogger(),
      defaultMetrics: false,
    });
    t.after(() => built.close());
    return built;
  }

  test("/ redirects to /console, which serves the page without a token, under a policy that allows this origin only", async (t) => {
    const api = await app(t);
    const root = await api.inject({ url: "/" });
    assert.equal(root.statusCode, 302);
    assert.equal(root.headers.location, "/console");
    const page = await api.inject({ url: "/console" });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers["content-type"]), /^text\/html/);
    const policy = String(page.headers["content-security-policy"]);
    assert.match(policy, /default-src 'none'/);
    assert.match(policy, /script-src 'self'(;|$)/);
    assert.match(policy, /connect-src 'self'/);
    assert.match(page.body, /<script type="module" src="\/console\/assets\/console\.js">/);
    // Nothing from another origin: no CDN, no absolute URL at all.
    assert.doesNotMatch(page.body, /(src|href)="(https?:)?\/\//);
  });

  test("the script and style sheet are the esbuild bundle, uPlot included, and unknown files are 404", async (t) => {
    const api = await app(t);
    const script = await api.inject({ url: "/console/assets/console.js" });
    assert.equal(script.statusCode, 200);
    assert.match(String(script.headers["content-type"]), /^text\/javascript/);
    assert.ok(script.body.length > 20_000, `bundle is ${script.body.length} bytes`);
    assert.ok(script.body.includes('"u-axis"'), "uPlot is in the bundle");
    assert.ok(!/\bimport\s*["'{]/.test(script.body), "the bundle imports nothing at run time");
    const style = await api.inject({ url: "/console/assets/console.css" });
    assert.equal(style.statusCode, 200);
    assert.match(style.body, /\.uplot/);
    assert.equal((await api.inject({ url: "/console/assets/other.js" })).statusCode, 404);
    assert.equal((await api.inject({ url: "/console/assets/..%2Fapp.ts" })).statusCode, 400);
  });

  test("every console route is in the OpenAPI document with an operationId and a description", async (t) => {
    const api = await app(t);
    const document = (await api.inject({ url: "/openapi.json" })).json() as {
      paths: Record<string, Record<string, { operationId?: string; description?: string; security?: unknown }>>;
    };
    const expected: Record<string, [string, string]> = {
      getFleetStats: ["get", "/v1/fleet/stats"],
      listDeviceEvents: ["get", "/v1/devices/{deviceId}/events"],
      listDeviceOutbox: ["get", "/v1/devices/{deviceId}/outbox"],
      streamEvents: ["get", "/v1/events/stream"],
      listDeadLetters: ["get", "/v1/dead-letters"],
      replayDeadLetters: ["post", "/v1/dead-letters/replay"],
      getConsole: ["get", "/console"],
      getConsoleAsset: ["get", "/console/assets/{file}"],
    };
    for (const [operationId, [method, path]] of Object.entries(expected)) {
      const operation = document.paths[path]?.[method];
      assert.equal(operation?.operationId, operationId, `${method} ${path}`);
      assert.ok((operation?.description ?? "").length > 20, `${operationId} has a description`);
      if (path.startsWith("/v1/")) assert.ok(operation?.security, `${operationId} names the bearer token`);
    }
  });

  test("without a broker the tail routes answer 503 unavailable, and the fleet figures still answer", async (t) => {
    const adapters = await memoryAdapters(t);
    const api = await buildWithoutBroker(adapters);
    t.after(() => api.close());
    const auth = bearer(TOKEN);
    for (const url of ["/v1/dead-letters", "/v1/devices/d1/events", "/v1/events/stream"]) {
      const response = await api.inject({ url, headers: auth });
      assert.equal(response.statusCode, 503, url);
      assert.equal((response.json() as { code: string }).code, "unavailable");
    }
    const stats = await api.inject({ url: "/v1/fleet/stats", headers: auth });
    assert.equal(stats.statusCode, 200);
  });
});

describe("edge counters from Prometheus text", () => {
  test("samples of one name are summed over their labels; comments, odd lines and NaN are skipped", () => {
    const sums = sumSamples(
      [
        "# TYPE tether_edge_closes_total counter",
        'tether_edge_closes_total{reason="bye"} 2',
        'tether_edge_closes_total{reason="kicked"} 3',
        "garbage line",
        "tether_edge_requests_total NaN",
        "",
      ].join("\n"),
    );
    assert.equal(sums.get("tether_edge_closes_total"), 5);
    assert.equal(sums.has("tether_edge_requests_total"), false);
  });

  test("a metric the edge does not export reads as zero", () => {
    assert.deepEqual(edgeCounters("tether_edge_requests_total 7\n"), {
      connections: 0,
      requests: 7,
      acks: 0,
      ackLatencySeconds: { sum: 0, count: 0 },
      roundTripSeconds: { sum: 0, count: 0 },
    });
  });
});
