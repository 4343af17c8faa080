import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readEdgeConfig } from "../../../services/edge/config.ts";
import { readWorkerConfig } from "../../../services/worker/config.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";

describe("edge configuration", () => {
  it("refuses auth mode none outside development and names the variables", () => {
    assert.throws(
      () => readEdgeConfig({ TETHER_AUTH_MODE: "none" }),
      (error) =>
        hasErrorCode(error, "invalid_config") &&
        /TETHER_AUTH_MODE/.test(error.message) &&
        /TETHER_ENV=development/.test(error.message),
    );
  });

  it("accepts auth mode none in development and uses the documented defaults", () => {
    const config = readEdgeConfig({ TETHER_ENV: "development", TETHER_AUTH_MODE: "none" });
    assert.equal(config.auth.mode, "none");
    assert.equal(config.devicePort, 3000);
    assert.equal(config.httpPort, 9090);
    assert.equal(config.drainMs, 20000);
    assert.equal(config.limits.heartbeatMs, 30000);
    assert.equal(config.limits.helloTimeoutMs, 5000);
    assert.equal(config.limits.maxFrameBytes, 65536);
    assert.equal(config.limits.maxProducerQueue, 5000);
    assert.match(config.edgeId, /^edge-[0-9a-f]{12}$/);
    assert.ok(Object.isFrozen(config.limits));
  });

  it("reads the producer linger, 0 by default (1 in the worker), and names the variable when it is out of range", () => {
    const base = { TETHER_ENV: "development", TETHER_AUTH_MODE: "none" };
    assert.equal(readEdgeConfig(base).common.kafka.lingerMs, 0);
    assert.equal(readWorkerConfig(base).kafka.lingerMs, 1, "the worker batches its answers for a millisecond");
    assert.equal(readWorkerConfig({ ...base, TETHER_KAFKA_LINGER_MS: "0" }).kafka.lingerMs, 0);
    assert.equal(readEdgeConfig({ ...base, TETHER_KAFKA_LINGER_MS: "5" }).common.kafka.lingerMs, 5);
    assert.throws(
      () => readEdgeConfig({ ...base, TETHER_KAFKA_LINGER_MS: "-1" }),
      (error) => hasErrorCode(error, "invalid_config") && /TETHER_KAFKA_LINGER_MS/.test(error.message),
    );
  });

  it("pulls Kafka messages unless TETHER_KAFKA_CONSUME says stream, in the worker too", () => {
    const base = { TETHER_ENV: "development", TETHER_AUTH_MODE: "none" };
    assert.equal(readEdgeConfig(base).common.kafka.consumeMode, "pull");
    assert.equal(readEdgeConfig({ ...base, TETHER_KAFKA_CONSUME: "stream" }).common.kafka.consumeMode, "stream");
    assert.equal(readWorkerConfig(base).kafka.consumeMode, "pull");
    assert.throws(
      () => readWorkerConfig({ ...base, TETHER_KAFKA_CONSUME: "poll" }),
      (error) => hasErrorCode(error, "invalid_config") && /TETHER_KAFKA_CONSUME/.test(error.message),
    );
  });

  it("reads the producer compression, none by default, and names the variable when it is unknown", () => {
    const base = { TETHER_ENV: "development", TETHER_AUTH_MODE: "none" };
    assert.equal(readEdgeConfig(base).common.kafka.compression, "none");
    assert.equal(readEdgeConfig({ ...base, TETHER_KAFKA_COMPRESSION: "zstd" }).common.kafka.compression, "zstd");
    assert.throws(
      () => readEdgeConfig({ ...base, TETHER_KAFKA_COMPRESSION: "brotli" }),
      (error) => hasErrorCode(error, "invalid_config") && /TETHER_KAFKA_COMPRESSION/.test(error.message),
    );
  });

  it("reads every limit and reports all bad variables at once", () => {
    const config = readEdgeConfig({
      TETHER_AUTH_MODE: "hmac",
      TETHER_AUTH_SECRET: "s",
      TETHER_DEVICE_PORT: "4000",
      TETHER_EDGE_ID: "edge-a",
      TETHER_MAX_CONNECTIONS: "10",
      TETHER_MAX_INFLIGHT: "5",
      TETHER_RATE_LIMIT: "7",
      TETHER_MAX_QUEUED_BYTES: "2048",
      TETHER_HELLO_TIMEOUT_MS: "100",
      TETHER_HEARTBEAT_MS: "200",
      TETHER_MAX_FRAME_BYTES: "1024",
      TETHER_DRAIN_MS: "300",
      TETHER_MAX_HELLO_BYTES: "512",
      TETHER_MAX_PENDING_PER_SOURCE: "3",
      TETHER_PROXY_PROTOCOL: "v2",
    });
    assert.deepEqual([config.devicePort, config.edgeId, config.drainMs], [4000, "edge-a", 300]);
    assert.deepEqual(
      { ...config.limits, maxProducerQueue: 0 },
      {
        maxConnections: 10,
        maxInflight: 5,
        rateLimit: 7,
        maxQueuedBytes: 2048,
        helloTimeoutMs: 100,
        heartbeatMs: 200,
        maxFrameBytes: 1024,
        maxProducerQueue: 0,
        maxHelloBytes: 512,
        // Unwelcomed sockets default to the connection cap when it is below 10,000.
        maxPendingConnections: 10,
        maxPendingPerSource: 3,
      },
    );
    assert.equal(config.proxyProtocol, "v2");
    assert.throws(
      () =>
        readEdgeConfig({
          TETHER_AUTH_MODE: "hmac",
          TETHER_MAX_INFLIGHT: "many",
          TETHER_TLS_CERT_FILE: "/c.pem",
          TETHER_PROXY_PROTOCOL: "v1",
          TETHER_MAX_HELLO_BYTES: "10",
        }),
      (error) =>
        hasErrorCode(error, "invalid_config") &&
        [
          "TETHER_AUTH_SECRET",
          "TETHER_MAX_INFLIGHT",
          "TETHER_TLS_CERT_FILE",
          "TETHER_PROXY_PROTOCOL",
          "TETHER_MAX_HELLO_BYTES",
        ].every((name) => error.message.includes(name)),
    );
  });
});
