/**
 * One request through a real edge and worker on Kafka and DynamoDB Local, with tracing on: the
 * request record, the answer record and the worker's log line carry one trace id, and the spans
 * of both services reach an OTLP/HTTP receiver under it. The edge's metrics show the DynamoDB
 * calls and the Kafka clients' statistics of the same run.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { edgeConfigForTests } from "../../../services/edge/config.ts";
import { createEdge, type Edge } from "../../../services/edge/edge.ts";
import { EdgeMetrics } from "../../../services/edge/metrics.ts";
import { createWorker, readWorkerConfig, type Worker } from "../../../services/worker/index.ts";
import { createAuthenticator } from "../../../shared/auth/index.ts";
import { tetherTopics } from "../../../shared/broker/index.ts";
import { createKafkaBroker } from "../../../shared/broker/kafka/index.ts";
import type { Broker, IncomingMessage } from "../../../shared/broker/types.ts";
import { type CommonConfig, type ResourceNames, resourceNames } from "../../../shared/config/index.ts";
import { createLogger, silentLogger } from "../../../shared/log/index.ts";
import { Header } from "../../../shared/records/index.ts";
import { createDynamoRegistry, ensureTables } from "../../../shared/registry/dynamodb/index.ts";
import type { Registry } from "../../../shared/registry/types.ts";
import {
  buildInfo,
  DynamoCallMetrics,
  KafkaClientMetrics,
  startTracing,
  type Tracing,
} from "../../../shared/telemetry/index.ts";
import {
  localDynamoDbSettings,
  localKafkaSettings,
  testCommonConfig,
  uniquePrefix,
  useLocalCluster,
} from "../../harness/index.ts";
import { Device } from "../../services/edge/helpers.ts";

const MAX_EDGES = 2;
const logger = silentLogger();

/** An OTLP/HTTP receiver: keeps the JSON body of every export. */
class OtlpReceiver {
  readonly bodies: unknown[] = [];
  readonly #server: Server;

  constructor() {
    this.#server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        if (request.method === "POST" && request.url === "/v1/traces") {
          this.bodies.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        }
        response.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Every span received: name, trace id and service. */
  spans(): Array<{ name: string; traceId: string; service: string }> {
    const found: Array<{ name: string; traceId: string; service: string }> = [];
    for (const body of this.bodies as Array<{ resourceSpans?: ResourceSpans[] }>) {
      for (const resourceSpans of body.resourceSpans ?? []) {
        const service = resourceSpans.resource?.attributes?.find((a) => a.key === "service.name")?.value?.stringValue;
        for (const scope of resourceSpans.scopeSpans ?? []) {
          for (const span of scope.spans ?? [])
            found.push({ name: span.name, traceId: span.traceId, service: service ?? "" });
        }
      }
    }
    return found;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

interface ResourceSpans {
  resource?: { attributes?: Array<{ key: string; value?: { stringValue?: string } }> };
  scopeSpans?: Array<{ spans?: Array<{ name: string; traceId: string }> }>;
}

/** The trace id of a `traceparent` header (version 00). */
function traceIdOf(traceparent: string | undefined): string | undefined {
  const match = /^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent ?? "");
  return match?.[1];
}

/** Reads `topic` (one partition, or all of them) from the start until `found` says stop. */
async function readUntil(
  broker: Broker,
  topic: string,
  partition: number | undefined,
  found: (message: IncomingMessage) => boolean,
): Promise<IncomingMessage> {
  let hit: IncomingMessage | undefined;
  let done!: () => void;
  const seen = new Promise<void>((resolve) => {
    done = resolve;
  });
  const handler = async (message: IncomingMessage): Promise<void> => {
    if (hit === undefined && found(message)) {
      hit = message;
      done();
    }
  };
  const groupId = `trace-test-${uniquePrefix()}`;
  const consumer =
    partition === undefined
      ? broker.groupConsumer({ groupId, topics: [topic], fromBeginning: true })
      : broker.partitionConsumer({ groupId, topic, partition, fallback: "earliest" });
  await consumer.start(handler);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      seen,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no matching record on ${topic} within 30 s`)), 30_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await consumer.close(1000);
  }
  return hit!;
}

describe("a traced request on real Kafka and DynamoDB", () => {
  let names: ResourceNames;
  let common: CommonConfig;
  let broker: Broker;
  let registry: Registry;
  let worker: Worker;
  let edge: Edge;
  let edgeMetrics: EdgeMetrics;
  let edgeTracing: Tracing | undefined;
  let workerTracing: Tracing | undefined;
  const receiver = new OtlpReceiver();
  const workerLog = new PassThrough();
  const workerLines: string[] = [];
  const cleanup: Array<() => Promise<void> | void> = [];

  before(async () => {
    const env = await useLocalCluster();
    const endpoint = await receiver.listen();
    cleanup.push(() => receiver.close());
    const prefix = uniquePrefix();
    names = resourceNames(prefix);
    const kafka = localKafkaSettings(env, "trace-int", { replicationFactor: 1 });
    const dynamodb = localDynamoDbSettings(env);
    common = testCommonConfig({ names, maxEdges: MAX_EDGES, kafka, dynamodb });
    edgeMetrics = new EdgeMetrics();
    broker = createKafkaBroker({
      settings: kafka,
      logger,
      statistics: new KafkaClientMetrics(edgeMetrics.registry, 200),
    });
    const admin = broker.admin();
    await admin.ensureTopics(tetherTopics({ names, maxEdges: MAX_EDGES, workPartitions: 2, replicationFactor: 1 }));
    await admin.close();
    await ensureTables({ settings: dynamodb, names, logger });
    registry = createDynamoRegistry({
      settings: dynamodb,
      names,
      logger,
      calls: new DynamoCallMetrics(edgeMetrics.registry),
    });
    cleanup.push(() => registry.close());

    // The worker reads its tracing from the standard variables, as its main.ts does.
    const workerConfig = readWorkerConfig({
      TETHER_ENV: "development",
      TETHER_BROKER: "kafka",
      TETHER_KAFKA_BROKERS: env.kafkaBrokers,
      TETHER_REGISTRY: "dynamodb",
      TETHER_DYNAMODB_ENDPOINT: env.dynamodbEndpoint,
      TETHER_NAME_PREFIX: prefix,
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_TRACES_SAMPLER: "always_on",
    });
    assert.ok(workerConfig.telemetry?.tracing !== undefined, "an OTLP endpoint turns tracing on");
    workerTracing = startTracing(workerConfig.telemetry.tracing, buildInfo());
    edgeTracing = startTracing(
      {
        endpoint: `${endpoint}/v1/traces`,
        headers: {},
        timeoutMs: 5000,
        serviceName: "tether-edge",
        sampler: "always_on",
        ratio: 1,
      },
      buildInfo(),
    );
    workerLog.setEncoding("utf8");
    let partial = "";
    workerLog.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      workerLines.push(...lines);
    });
    worker = createWorker({
      config: workerConfig,
      logger: createLogger({ name: "tether-worker", level: "debug", destination: workerLog }),
      broker,
      registry,
      tracing: workerTracing,
    });
    worker.handle("echo", async (request) => request.body);
    await worker.start();
    cleanup.push(() => worker.close(1000));

    edge = createEdge({
      config: edgeConfigForTests(common),
      logger,
      broker,
      registry,
      authenticator: createAuthenticator({ mode: "none" }),
      metrics: edgeMetrics,
      tracing: edgeTracing,
    });
    cleanup.push(() => edge.close());
    await edge.start();
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step();
    await edgeTracing?.close();
    await workerTracing?.close();
  });

  it("carries one trace id from the request record through the worker's log to the answer record", async () => {
    const device = await Device.connect(edge.address().port);
    cleanup.push(() => device.close());
    const welcome = await device.hello("traced-device");
    assert.equal(welcome.t, "welcome", JSON.stringify(welcome));
    device.send({ t: "req", id: "r1", type: "echo", body: { hello: "trace" } });
    const answer = await device.nextOfType("res", 20_000);
    assert.deepEqual(answer.body, { hello: "trace" });

    const requestRecord = await readUntil(
      broker,
      names.requestsTopic,
      undefined,
      (message) => message.key === "traced-device" && JSON.parse(message.value.toString("utf8")).id === "r1",
    );
    const traceId = traceIdOf(requestRecord.headers[Header.TraceParent]);
    assert.ok(traceId !== undefined, `the request record has a traceparent: ${JSON.stringify(requestRecord.headers)}`);

    const answerRecord = await readUntil(
      broker,
      names.repliesTopic,
      edge.slot,
      (message) => message.key === "traced-device" && message.headers[Header.RequestId] === "r1",
    );
    assert.equal(traceIdOf(answerRecord.headers[Header.TraceParent]), traceId, "the answer record continues the trace");
    assert.notEqual(
      answerRecord.headers[Header.TraceParent],
      requestRecord.headers[Header.TraceParent],
      "the answer names the worker's span, not the edge's",
    );

    const handled = workerLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.msg === "request handled" && line.requestId === "r1");
    assert.ok(handled !== undefined, `the worker logged the request: ${workerLines.join("\n")}`);
    assert.equal(handled.traceId, traceId);
    assert.equal(handled.deviceId, "traced-device");

    // Flushed by closing: every span of the round trip reaches the receiver under the trace.
    await edgeTracing?.close();
    await workerTracing?.close();
    const spans = receiver.spans().filter((span) => span.traceId === traceId);
    const byName = new Map(spans.map((span) => [span.name, span.service]));
    assert.equal(byName.get("tether.receive"), "tether-edge");
    assert.equal(byName.get("tether.produce"), "tether-edge");
    assert.equal(byName.get("tether.handle"), "tether-worker");
    assert.equal(byName.get("tether.deliver"), "tether-edge");
  });

  it("counts the edge's DynamoDB calls and reports its Kafka clients' statistics", async () => {
    const value = async (name: string, labels: string): Promise<number | undefined> => {
      const text = await edgeMetrics.registry.metrics();
      const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
    };
    // The hello claimed the device (UpdateItem on the connections table).
    const claims = await value("tether_dynamodb_call_duration_seconds_count", 'operation="UpdateItem"');
    assert.ok(claims !== undefined && claims >= 1, `UpdateItem calls counted: ${claims}`);
    const deadline = Date.now() + 10_000;
    let lag: number | undefined;
    let rtt: number | undefined;
    while (Date.now() < deadline && (lag === undefined || rtt === undefined)) {
      lag = await value("tether_kafka_consumer_lag", `topic="${names.repliesTopic}",partition="${edge.slot}"`);
      rtt = await value("tether_kafka_broker_rtt_avg_seconds", 'client="producer"');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const lagLines = (await edgeMetrics.registry.metrics()).split("\n").filter((l) => l.includes("consumer_lag"));
    assert.equal(lag, 0, `the reply slot is read to its end: ${lagLines.join("\n")}`);
    assert.ok(rtt !== undefined && rtt >= 0, `the producer reports its broker round trip: ${rtt}`);
  });
});
