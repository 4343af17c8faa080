import assert from "node:assert/strict";
import { test } from "node:test";
import { readWorkerConfig } from "../../../services/worker/config.ts";

test("the worker configuration has defaults for everything", () => {
  const config = readWorkerConfig({});
  assert.equal(config.worker.httpPort, 9091);
  assert.equal(config.worker.concurrency, 64);
  assert.equal(config.worker.retries, 3);
  assert.equal(config.worker.handlerTimeoutMs, 10_000);
  assert.equal(config.worker.groupId, "workers");
  assert.equal(config.worker.routerGroupId, "router");
  assert.equal(config.worker.kvTable, undefined);
  assert.ok(Object.isFrozen(config.worker));
});

test("names and groups follow the prefix and variables override defaults", () => {
  const config = readWorkerConfig({
    TETHER_NAME_PREFIX: "stage-",
    TETHER_WORKER_HTTP_PORT: "0",
    TETHER_WORKER_CONCURRENCY: "32",
    TETHER_HANDLER_TIMEOUT_MS: "2500",
    TETHER_HANDLER_RETRIES: "0",
    TETHER_KV_TABLE: "stage-kv",
  });
  assert.equal(config.names.requestsTopic, "stage-requests");
  assert.equal(config.worker.groupId, "stage-workers");
  assert.equal(config.worker.routerGroupId, "stage-router");
  assert.equal(config.worker.httpPort, 0);
  assert.equal(config.worker.concurrency, 32);
  assert.equal(config.worker.handlerTimeoutMs, 2500);
  assert.equal(config.worker.retries, 0);
  assert.equal(config.worker.kvTable, "stage-kv");
});

test("every bad variable is named in one error", () => {
  assert.throws(
    () =>
      readWorkerConfig({
        TETHER_WORKER_CONCURRENCY: "0",
        TETHER_HANDLER_TIMEOUT_MS: "soon",
        TETHER_HANDLER_RETRY_BASE_MS: "500",
        TETHER_HANDLER_RETRY_MAX_MS: "100",
      }),
    (error: Error) =>
      /TETHER_WORKER_CONCURRENCY/.test(error.message) &&
      /TETHER_HANDLER_TIMEOUT_MS/.test(error.message) &&
      /TETHER_HANDLER_RETRY_MAX_MS/.test(error.message),
  );
});
