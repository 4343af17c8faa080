import assert from "node:assert/strict";
import { test } from "node:test";
import { consumerConfig } from "../../../../shared/broker/kafka/consumer.ts";
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

test("a consumer commits by hand and answers a fetch within its latency bound", () => {
  const config = consumerConfig(settings, silentLogger(), "group", "worker");
  assert.equal(config["group.id"], "group");
  assert.equal(config["enable.auto.commit"], false);
  assert.equal(config["enable.auto.offset.store"], false);
  assert.ok(Number(config["fetch.wait.max.ms"]) <= 10);
});

test("a backlog over the prefetch bound delays the next fetch by milliseconds, not librdkafka's second", () => {
  const config = consumerConfig(settings, silentLogger(), "group", "worker");
  const prefetch = Number(config["queued.min.messages"]);
  // The bound is low on purpose (the dispatcher bounds the rest), so a backlog crosses it often.
  assert.ok(prefetch <= 10_000, `queued.min.messages ${prefetch}`);
  const backoff = config["fetch.queue.backoff.ms"];
  assert.equal(typeof backoff, "number");
  assert.ok((backoff as number) <= 50, `fetch.queue.backoff.ms ${backoff}`);
});
