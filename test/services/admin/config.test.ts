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
