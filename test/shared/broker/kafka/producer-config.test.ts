import assert from "node:assert/strict";
import { test } from "node:test";
import { producerConfig } from "../../../../shared/broker/kafka/producer.ts";
import type { KafkaSettings } from "../../../../shared/config/index.ts";
import { silentLogger } from "../../../../shared/log/index.ts";

const settings: KafkaSettings = {
  brokers: ["127.0.0.1:9092"],
  clientId: "test",
  auth: "none",
  ssl: false,
  username: undefined,
  password: undefined,
  region: undefined,
  replicationFactor: 1,
};

test("the producer is idempotent, waits for every in-sync replica and does not batch by default", () => {
  const config = producerConfig(settings, silentLogger(), {});
  assert.equal(config["enable.idempotence"], true);
  assert.equal(config.acks, "all");
  assert.equal(config["linger.ms"], 0);
});

test("by default a record may wait longer than any send() bound so that a report always arrives", () => {
  assert.equal(producerConfig(settings, silentLogger(), {})["message.timeout.ms"], 60_000);
  assert.equal(producerConfig(settings, silentLogger(), { sendTimeoutMs: 45_000 })["message.timeout.ms"], 90_000);
});

test("the configured linger applies unless the caller tunes it itself", () => {
  assert.equal(producerConfig({ ...settings, lingerMs: 5 }, silentLogger(), {})["linger.ms"], 5);
  assert.equal(producerConfig({ ...settings, lingerMs: 5 }, silentLogger(), { lingerMs: 1 })["linger.ms"], 1);
});
