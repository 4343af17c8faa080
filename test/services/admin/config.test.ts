import assert from "node:assert/strict";
import { test } from "node:test";
import { readAdminConfig } from "../../../services/admin/config.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";

test("the admin port defaults to 8080 and the token comes from TETHER_ADMIN_TOKEN", () => {
  const config = readAdminConfig({ TETHER_ADMIN_TOKEN: "from-env-token" });
  assert.equal(config.port, 8080);
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.adminToken, "from-env-token");
  assert.equal(config.adminTokenGenerated, false);
});

test("outside development a missing token stops start-up with a message naming the variable", () => {
  assert.throws(
    () => readAdminConfig({}),
    (error: unknown) => hasErrorCode(error, "invalid_config") && error.message.includes("TETHER_ADMIN_TOKEN"),
  );
});

test("in development a missing token is generated, different on every start", () => {
  const first = readAdminConfig({ TETHER_ENV: "development" });
  const second = readAdminConfig({ TETHER_ENV: "development" });
  assert.equal(first.adminTokenGenerated, true);
  assert.ok(first.adminToken.length >= 32);
  assert.notEqual(first.adminToken, second.adminToken);
  assert.equal(first.host, "127.0.0.1");
});

test("every bad variable is reported at once", () => {
  assert.throws(
    () => readAdminConfig({ TETHER_ADMIN_PORT: "http", TETHER_ADMIN_TOKEN: "has space" }),
    (error: unknown) =>
      hasErrorCode(error, "invalid_config") &&
      error.message.includes("TETHER_ADMIN_PORT") &&
      error.message.includes("TETHER_ADMIN_TOKEN"),
  );
});

test("the configuration is frozen", () => {
  const config = readAdminConfig({ TETHER_ADMIN_TOKEN: "x-token", TETHER_ADMIN_PORT: "9000" });
  assert.equal(config.port, 9000);
  assert.ok(Object.isFrozen(config));
});

test("the bounds on requests in flight default to 256 for the API and 64 for DynamoDB, and can be set", () => {
  const defaults = readAdminConfig({ TETHER_ADMIN_TOKEN: "t" });
  assert.equal(defaults.maxConcurrency, 256);
  assert.equal(defaults.trustedProxyHops, 0);
  assert.equal(defaults.common.dynamodb.maxConcurrency, 64);
  const set = readAdminConfig({
    TETHER_ADMIN_TOKEN: "t",
    TETHER_ADMIN_MAX_CONCURRENCY: "32",
    TETHER_ADMIN_TRUSTED_PROXY_HOPS: "1",
    TETHER_DYNAMODB_MAX_CONCURRENCY: "16",
  });
  assert.equal(set.maxConcurrency, 32);
  assert.equal(set.trustedProxyHops, 1);
  assert.equal(set.common.dynamodb.maxConcurrency, 16);
  assert.throws(
    () =>
      readAdminConfig({
        TETHER_ADMIN_TOKEN: "t",
        TETHER_ADMIN_MAX_CONCURRENCY: "0",
        TETHER_DYNAMODB_MAX_CONCURRENCY: "x",
      }),
    (error: unknown) =>
      hasErrorCode(error, "invalid_config") &&
      error.message.includes("TETHER_ADMIN_MAX_CONCURRENCY") &&
      error.message.includes("TETHER_DYNAMODB_MAX_CONCURRENCY"),
  );
});
