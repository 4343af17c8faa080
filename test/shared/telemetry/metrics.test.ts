import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, type TestContext, test } from "node:test";
import { Registry } from "prom-client";
import { parseStatistics } from "../../../shared/broker/kafka/stats.ts";
import { resourceNames } from "../../../shared/config/index.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { createDynamoRegistry } from "../../../shared/registry/dynamodb/index.ts";
import {
  buildInfo,
  DynamoCallMetrics,
  installProcessMetrics,
  KafkaClientMetrics,
} from "../../../shared/telemetry/index.ts";

/** The value of the first series of `name` whose labels include every one of `labels`. */
async function value(registry: Registry, name: string, ...labels: string[]): Promise<number | undefined> {
  const text = await registry.metrics();
  const line = text
    .split("\n")
    .find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && labels.every((x) => l.includes(x)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("process metrics", () => {
  test("are unprefixed, labelled with the service, next to the build info", async () => {
    const registry = new Registry();
    installProcessMetrics(registry, {
      service: "edge",
      build: { version: "1.2.3", commit: "abc123", node: "v24.0.0" },
    });
    const text = await registry.metrics();
    assert.match(text, /^process_cpu_user_seconds_total\{service="edge"\} /m);
    assert.match(text, /^process_resident_memory_bytes\{service="edge"\} /m);
    assert.match(text, /^nodejs_heap_size_used_bytes\{service="edge"\} /m);
    assert.match(text, /^nodejs_eventloop_lag_p99_seconds\{service="edge"\} /m);
    assert.match(text, /^tether_build_info\{service="edge",version="1.2.3",commit="abc123",node="v24.0.0"\} 1$/m);
    assert.ok(!/^tether_\w+_process_/m.test(text), "no prefix on the process metrics");
  });

  test("can leave the process metrics out and keep the build info", async () => {
    const registry = new Registry();
    installProcessMetrics(registry, { service: "worker", build: buildInfo(), defaults: false });
    const text = await registry.metrics();
    assert.ok(!text.includes("process_cpu_user_seconds_total"));
    assert.match(text, /^tether_build_info\{service="worker",version="[^"]+",commit="[^"]+",node="v\d+/m);
  });

  test("the build info names the package version, the commit given and the running Node.js", () => {
    const build = buildInfo("0123abcd");
    assert.match(build.version, /^\d+\.\d+\.\d+/);
    assert.equal(build.commit, "0123abcd");
    assert.equal(build.node, process.version);
  });
});

/**
 * A stand-in for DynamoDB's HTTP API: GetItem finds nothing, UpdateItem fails its condition,
 * anything else is a server error. Enough to drive the real adapter and its SDK client.
 */
async function fakeDynamo(t: TestContext): Promise<string> {
  const server = createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      const target = String(request.headers["x-amz-target"] ?? "");
      const send = (status: number, body: object): void => {
        response.writeHead(status, { "content-type": "application/x-amz-json-1.0" }).end(JSON.stringify(body));
      };
      if (target.endsWith(".GetItem")) send(200, {});
      else if (target.endsWith(".UpdateItem")) {
        send(400, {
          __type: "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
          message: "The conditional request failed",
        });
      } else send(500, { __type: "com.amazonaws.dynamodb.v20120810#InternalServerError", message: "boom" });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("DynamoDB call metrics", () => {
  test("move with every call the adapter makes: latency by operation and table, failures by code", async (t) => {
    const endpoint = await fakeDynamo(t);
    const metrics = new Registry();
    const names = resourceNames("m-");
    const registry = createDynamoRegistry({
      settings: { endpoint, region: "us-east-1" },
      names,
      logger: silentLogger(),
      maxAttempts: 1,
      calls: new DynamoCallMetrics(metrics),
    });
    t.after(() => registry.close());

    const table = `table="${names.connectionsTable}"`;
    assert.equal(await value(metrics, "tether_dynamodb_call_duration_seconds_count", 'operation="GetItem"'), undefined);
    assert.equal(await registry.connections.get("d1"), null);
    assert.equal(await registry.connections.get("d2"), null);
    assert.equal(await value(metrics, "tether_dynamodb_call_duration_seconds_count", 'operation="GetItem"', table), 2);
    assert.equal(await value(metrics, "tether_dynamodb_call_errors_total", 'operation="GetItem"'), undefined);

    await assert.rejects(registry.connections.beginAttempt("d1"));
    const conflicts = await value(
      metrics,
      "tether_dynamodb_call_errors_total",
      'operation="UpdateItem"',
      'code="conflict"',
    );
    assert.ok(conflicts !== undefined && conflicts >= 1, `a failed condition counts as conflict: ${conflicts}`);

    await assert.rejects(registry.ping(), (error) => hasErrorCode(error, "unavailable"));
    assert.equal(
      await value(metrics, "tether_dynamodb_call_errors_total", 'operation="DescribeTable"', 'code="unavailable"'),
      1,
    );
  });
});

/** A librdkafka statistics report, cut to the fields read (values in microseconds). */
function report(type: string, lag: { app: number; hi: number }): string {
  return JSON.stringify({
    name: `tether-${type}#1`,
    type,
    msg_cnt: 7,
    msg_size: 2048,
    brokers: {
      GroupCoordinator: { nodeid: -1, rtt: { avg: 1, p99: 1 } },
      "127.0.0.1:9092/1": {
        nodeid: 1,
        rtt: { avg: 1500, p99: 4000 },
        int_latency: { avg: 250, p99: 900 },
      },
    },
    topics: {
      replies: {
        partitions: {
          "3": { fetch_state: "active", app_offset: lag.app, hi_offset: lag.hi, consumer_lag: -1 },
          "-1": { fetch_state: "none", consumer_lag: -1 },
        },
      },
    },
  });
}

describe("Kafka client metrics", () => {
  test("read a statistics report: queue depth, broker round trips, the lag of each partition read", async () => {
    const metrics = new Registry();
    const kafka = new KafkaClientMetrics(metrics, 1000);
    const producer = parseStatistics(report("producer", { app: -1001, hi: -1 }));
    assert.ok(producer !== null);
    kafka.onStatistics(producer);
    assert.equal(await value(metrics, "tether_kafka_client_queue_messages", 'client="producer"'), 7);
    assert.equal(await value(metrics, "tether_kafka_client_queue_bytes", 'client="producer"'), 2048);
    const broker = 'broker="127.0.0.1:9092/1"';
    assert.equal(await value(metrics, "tether_kafka_broker_rtt_avg_seconds", 'client="producer"', broker), 0.0015);
    assert.equal(await value(metrics, "tether_kafka_broker_rtt_p99_seconds", 'client="producer"', broker), 0.004);
    assert.equal(await value(metrics, "tether_kafka_producer_queue_latency_p99_seconds", broker), 0.0009);
    assert.equal(
      await value(metrics, "tether_kafka_broker_rtt_avg_seconds", 'broker="GroupCoordinator"'),
      undefined,
      "placeholder connections are left out",
    );

    const consumer = parseStatistics(report("consumer", { app: 40, hi: 52 }));
    assert.ok(consumer !== null);
    kafka.onStatistics(consumer);
    assert.equal(await value(metrics, "tether_kafka_consumer_lag", 'topic="replies"', 'partition="3"'), 12);
    assert.equal(await value(metrics, "tether_kafka_consumer_lag", 'partition="-1"'), undefined);
  });

  test("refuse what is not a statistics report", () => {
    assert.equal(parseStatistics("not json"), null);
    assert.equal(parseStatistics("[]"), null);
    assert.equal(parseStatistics(JSON.stringify({ type: "admin" })), null);
    const odd = parseStatistics(JSON.stringify({ type: "consumer", brokers: 5, topics: { t: { partitions: [] } } }));
    assert.deepEqual(odd, { role: "consumer", queuedMessages: 0, queuedBytes: 0, brokers: [], partitions: [] });
  });
});
