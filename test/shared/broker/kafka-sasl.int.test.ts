/**
 * The adapter's SASL/PLAIN path against a broker that demands it: a private single-node Kafka
 * with a SASL_PLAINTEXT listener (TLS is the same librdkafka code with `ssl` on).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createKafkaBroker } from "../../../shared/broker/kafka/index.ts";
import type { IncomingMessage } from "../../../shared/broker/types.ts";
import type { KafkaSettings } from "../../../shared/config/index.ts";
import { hasErrorCode } from "../../../shared/errors/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { ensureKafkaLibs, type KafkaNode, startKafka } from "../../harness/kafka.ts";
import { removeTree } from "../../harness/process.ts";
import { localKafkaSettings } from "../../harness/settings.ts";

const user = { username: "tether", password: "s3cret-for-tests" };

function settings(bootstrap: string, password: string): KafkaSettings {
  return localKafkaSettings({ kafkaBrokers: bootstrap }, "tether-sasl-test", {
    auth: "plain",
    username: user.username,
    password,
  });
}

describe("Kafka adapter with SASL/PLAIN", () => {
  let node: KafkaNode;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), `tether-sasl-${process.pid}-`));
    node = await startKafka({ libs: await ensureKafkaLibs(), dir, heap: "384m", sasl: user });
  });

  after(async () => {
    await node?.process.stop(3000);
    if (dir !== undefined) removeTree(dir);
  });

  test("creates a topic, produces and consumes when the credentials are right", async (t) => {
    const broker = createKafkaBroker({
      settings: settings(node.saslBootstrap!, user.password),
      logger: silentLogger(),
    });
    const admin = broker.admin();
    t.after(() => admin.close());
    await admin.ensureTopics([{ name: "sasl-smoke", partitions: 1 }]);
    const producer = broker.producer();
    t.after(() => producer.close());
    const report = await producer.send({ topic: "sasl-smoke", key: "k", value: "over sasl" });
    const received: IncomingMessage[] = [];
    const consumer = broker.partitionConsumer({ groupId: "sasl-g", topic: "sasl-smoke", partition: 0 });
    t.after(() => consumer.close());
    await consumer.start(async (message) => {
      received.push(message);
    });
    const deadline = Date.now() + 30_000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(received[0]?.value.toString(), "over sasl");
    assert.equal(received[0]?.offset, report.offset);
  });

  test("rejects a wrong password as unauthorized, never with a vendor error", async (t) => {
    const broker = createKafkaBroker({ settings: settings(node.saslBootstrap!, "wrong"), logger: silentLogger() });
    const admin = broker.admin();
    t.after(() => admin.close());
    await assert.rejects(admin.ping(), (error) => hasErrorCode(error, "unauthorized"));
  });
});
