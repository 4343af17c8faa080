import assert from "node:assert/strict";
import { test } from "node:test";
import { consumerConfig } from "../../../../shared/broker/kafka/consumer.ts";
import { producerConfig } from "../../../../shared/broker/kafka/producer.ts";
import type { KafkaSettings } from "../../../../shared/config/index.ts";
import { silentLogger } from "../../../../shared/log/index.ts";
import { localKafkaSettings } from "../../../harness/index.ts";

const settings: KafkaSettings = localKafkaSettings({ kafkaBrokers: "127.0.0.1:9092" });

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

test("a consumer commits by hand, gets a fetch answered at the first byte, and idles in fetches of 100 ms", () => {
  const config = consumerConfig(settings, silentLogger(), "group", "worker");
  assert.equal(config["group.id"], "group");
  assert.equal(config["enable.auto.commit"], false);
  assert.equal(config["enable.auto.offset.store"], false);
  assert.equal(config["fetch.min.bytes"], 1);
  assert.equal(config["fetch.wait.max.ms"], 100);
});

test("the producer does not compress unless told to", () => {
  assert.equal(producerConfig(settings, silentLogger(), {})["compression.type"], "none");
  assert.equal(producerConfig({ ...settings, compression: "zstd" }, silentLogger(), {})["compression.type"], "zstd");
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
